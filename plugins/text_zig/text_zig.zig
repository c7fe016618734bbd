//! text in Zig: the same plugin as `plugins/text/text.c`, answer for answer: `upper`, `lower`,
//! `reverse` (UTF-8 characters in reverse order; -3 for input that is not UTF-8) and
//! `word_count`. 64 KiB of input, 64 KiB of output; stateless.

const abi = @import("wasm_plugin");

comptime {
    asm (".section .custom_section.wasm_plugin_abi,\"\",@\n.int32 2\n.text");
}

const capacity = 65536;
var input: [capacity]u8 = undefined;
var output: [capacity]u8 = undefined;

// Each returns a constant, which the host reads before the plugin runs.
export fn plugin_input_ptr() i32 {
    return @intCast(@intFromPtr(&input));
}
export fn plugin_input_capacity() i32 {
    return capacity;
}
export fn plugin_output_ptr() i32 {
    return @intCast(@intFromPtr(&output));
}
export fn plugin_output_capacity() i32 {
    return capacity;
}

export fn init() i32 {
    return abi.OK;
}

export fn cleanup() i32 {
    return abi.OK;
}

/// The input length as a slice length, or null if no correct host could have sent it.
fn length(input_len: i32) ?usize {
    if (input_len < 0 or input_len > capacity) return null;
    return @intCast(input_len);
}

export fn fn_upper(input_len: i32) i32 {
    const n = length(input_len) orelse return abi.ERR_INVALID_ARGUMENT;
    for (input[0..n], output[0..n]) |byte, *out| {
        out.* = if (byte >= 'a' and byte <= 'z') byte - ('a' - 'A') else byte;
    }
    return input_len;
}

export fn fn_lower(input_len: i32) i32 {
    const n = length(input_len) orelse return abi.ERR_INVALID_ARGUMENT;
    for (input[0..n], output[0..n]) |byte, *out| {
        out.* = if (byte >= 'A' and byte <= 'Z') byte + ('a' - 'A') else byte;
    }
    return input_len;
}

/// The length of the valid UTF-8 sequence at `text[0]`, or 0 (RFC 3629: no over-long forms, no
/// surrogates, nothing above U+10FFFF), exactly as text.c decides it.
fn utf8SequenceLength(text: []const u8) usize {
    const lead = text[0];
    var len: usize = undefined;
    var min: u32 = undefined;
    var code: u32 = undefined;
    if (lead < 0x80) {
        return 1;
    } else if (lead >= 0xC2 and lead <= 0xDF) {
        len = 2;
        min = 0x80;
        code = lead & 0x1F;
    } else if (lead >= 0xE0 and lead <= 0xEF) {
        len = 3;
        min = 0x800;
        code = lead & 0x0F;
    } else if (lead >= 0xF0 and lead <= 0xF4) {
        len = 4;
        min = 0x10000;
        code = lead & 0x07;
    } else {
        return 0;
    }
    if (len > text.len) return 0;
    for (text[1..len]) |byte| {
        if (byte & 0xC0 != 0x80) return 0;
        code = (code << 6) | (byte & 0x3F);
    }
    if (code < min or code > 0x10FFFF or (code >= 0xD800 and code <= 0xDFFF)) return 0;
    return len;
}

export fn fn_reverse(input_len: i32) i32 {
    const n = length(input_len) orelse return abi.ERR_INVALID_ARGUMENT;
    // Each character is copied whole to the mirrored position, so the output is UTF-8 too.
    var i: usize = 0;
    while (i < n) {
        const len = utf8SequenceLength(input[i..n]);
        if (len == 0) return abi.ERR_INVALID_ARGUMENT;
        for (0..len) |k| output[n - i - len + k] = input[i + k];
        i += len;
    }
    return input_len;
}

export fn fn_word_count(input_len: i32) i32 {
    const n = length(input_len) orelse return abi.ERR_INVALID_ARGUMENT;
    var words: u32 = 0;
    var in_word = false;
    for (input[0..n]) |byte| {
        const space = byte == ' ' or (byte >= '\t' and byte <= '\r');
        if (!space and !in_word) words += 1;
        in_word = !space;
    }
    // The count in decimal, without a newline.
    var digits: [10]u8 = undefined;
    var count: usize = 0;
    while (true) {
        digits[count] = '0' + @as(u8, @intCast(words % 10));
        count += 1;
        words /= 10;
        if (words == 0) break;
    }
    for (0..count) |k| output[k] = digits[count - 1 - k];
    return @intCast(count);
}
