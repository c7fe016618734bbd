// text: small text transformations, one ABI v2 function each. Input and output are bytes; the
// functions treat them as UTF-8 text where it matters (reverse) and as ASCII otherwise, so any
// byte string is accepted except where stated. Stateless: init() and cleanup() do nothing.
// Buffers: 64 KiB of input, 64 KiB of output.
//
//   init(), cleanup()    0 (PLUGIN_OK), always
//   fn_upper(n)          the input with ASCII a-z turned into A-Z; every other byte (UTF-8
//                        included) unchanged; n bytes out. "hello, World" -> "HELLO, WORLD"
//   fn_lower(n)          the same with A-Z into a-z. "Hello, WORLD" -> "hello, world"
//   fn_reverse(n)        the input's UTF-8 characters in reverse order (not its bytes, so
//                        "añb" -> "bña", and "" -> ""); n bytes out; -3
//                        (PLUGIN_ERR_INVALID_ARGUMENT) if the input is not valid UTF-8
//                        (a stray continuation byte, a truncated sequence, an over-long
//                        encoding, a surrogate, or a code point above U+10FFFF)
//   fn_word_count(n)     the number of words, in decimal ASCII without a newline: a word is a
//                        maximal run of bytes other than space, \t, \n, \v, \f and \r.
//                        "" -> "0", "  one two\tthree\n" -> "3"
//
// A negative n, or n above the input capacity, cannot come from a correct host; each function
// answers -3 for it rather than reading outside the buffer.

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 65536)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

/* Whether a call's input length is one the buffers can hold (the output is as long as the input
 * for every function that copies, and the buffers are the same size). */
static int valid_length(int input_len) {
    return input_len >= 0 && input_len <= PLUGIN_INPUT_CAPACITY && input_len <= PLUGIN_OUTPUT_CAPACITY;
}

PLUGIN_FUNCTION(upper) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    for (int i = 0; i < input_len; i++) {
        unsigned char c = plugin_input[i];
        plugin_output[i] = (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
    }
    return input_len;
}

PLUGIN_FUNCTION(lower) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    for (int i = 0; i < input_len; i++) {
        unsigned char c = plugin_input[i];
        plugin_output[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
    }
    return input_len;
}

/* The length of the valid UTF-8 sequence starting at text[0], of at most `available` bytes, or
 * 0 if it is not one (RFC 3629: no over-long forms, no surrogates, nothing above U+10FFFF). */
static int utf8_sequence_length(const unsigned char *text, int available) {
    unsigned char lead = text[0];
    int length;
    unsigned int min, code;
    if (lead < 0x80) {
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2, min = 0x80, code = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, min = 0x800, code = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, min = 0x10000, code = lead & 0x07;
    } else {
        return 0;
    }
    if (length > available) {
        return 0;
    }
    for (int i = 1; i < length; i++) {
        if ((text[i] & 0xC0) != 0x80) {
            return 0;
        }
        code = (code << 6) | (text[i] & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
        return 0;
    }
    return length;
}

PLUGIN_FUNCTION(reverse) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    // Each character is copied whole to the mirrored position, so multi-byte characters keep
    // their byte order and the output is valid UTF-8 too.
    int i = 0;
    while (i < input_len) {
        int length = utf8_sequence_length(plugin_input + i, input_len - i);
        if (length == 0) {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
        plugin_copy(plugin_output + (input_len - i - length), plugin_input + i, length);
        i += length;
    }
    return input_len;
}

static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Writes `value` in decimal at `out`; returns the number of digits. */
static int write_decimal(unsigned char *out, unsigned int value) {
    unsigned char digits[10];
    int count = 0;
    do {
        digits[count++] = (unsigned char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (int i = 0; i < count; i++) {
        out[i] = digits[count - 1 - i];
    }
    return count;
}

PLUGIN_FUNCTION(word_count) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    unsigned int words = 0;
    int in_word = 0;
    for (int i = 0; i < input_len; i++) {
        int space = is_space(plugin_input[i]);
        if (!space && !in_word) {
            words++;
        }
        in_word = !space;
    }
    return write_decimal(plugin_output, words);
}
