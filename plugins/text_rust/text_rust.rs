//! text in Rust: the same plugin as `plugins/text/text.c`, answer for answer. Small text
//! transformations, one ABI v2 function each; 64 KiB of input, 64 KiB of output; stateless.
//!
//!   fn_upper(n)       ASCII a-z into A-Z, every other byte unchanged; n bytes out
//!   fn_lower(n)       ASCII A-Z into a-z; n bytes out
//!   fn_reverse(n)     the UTF-8 characters in reverse order; -3 if the input is not UTF-8
//!   fn_word_count(n)  the number of runs of bytes other than space, \t, \n, \v, \f, \r, in
//!                     decimal ASCII without a newline
//!
//! (An input length outside the buffer is -3, as in C; the SDK checks it before these run.)

#![no_std]

use wasm_plugin::Error;

const CAPACITY: usize = 65536;

wasm_plugin::plugin_v2!(buffers(CAPACITY, CAPACITY), init = init, cleanup = cleanup);
wasm_plugin::function!(upper, upper);
wasm_plugin::function!(lower, lower);
wasm_plugin::function!(reverse, reverse);
wasm_plugin::function!(word_count, word_count);

fn init() -> Result<(), Error> {
    Ok(())
}

fn cleanup() -> Result<(), Error> {
    Ok(())
}

/// Writes `map` of each input byte to the output; both buffers hold 64 KiB, so it fits.
fn map_bytes(input: &[u8], output: &mut [u8], map: fn(u8) -> u8) -> Result<usize, Error> {
    let output = output.get_mut(..input.len()).ok_or(Error::InvalidArgument)?;
    for (out, byte) in output.iter_mut().zip(input) {
        *out = map(*byte);
    }
    Ok(input.len())
}

fn upper(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    map_bytes(input, output, |byte| byte.to_ascii_uppercase())
}

fn lower(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    map_bytes(input, output, |byte| byte.to_ascii_lowercase())
}

/// The length of the valid UTF-8 sequence at the start of `text`, or `None` (RFC 3629: no
/// over-long forms, no surrogates, nothing above U+10FFFF), exactly as text.c decides it.
fn utf8_sequence_length(text: &[u8]) -> Option<usize> {
    let lead = text[0];
    let (length, min, mut code) = match lead {
        0x00..=0x7F => return Some(1),
        0xC2..=0xDF => (2, 0x80, u32::from(lead & 0x1F)),
        0xE0..=0xEF => (3, 0x800, u32::from(lead & 0x0F)),
        0xF0..=0xF4 => (4, 0x10000, u32::from(lead & 0x07)),
        _ => return None,
    };
    let rest = text.get(1..length)?;
    for byte in rest {
        if byte & 0xC0 != 0x80 {
            return None;
        }
        code = (code << 6) | u32::from(byte & 0x3F);
    }
    if code < min || code > 0x10FFFF || (0xD800..=0xDFFF).contains(&code) {
        return None;
    }
    Some(length)
}

fn reverse(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    let n = input.len();
    let output = output.get_mut(..n).ok_or(Error::InvalidArgument)?;
    // Each character is copied whole to the mirrored position, so the output is UTF-8 too.
    let mut i = 0;
    while i < n {
        let length = utf8_sequence_length(&input[i..]).ok_or(Error::InvalidArgument)?;
        output[n - i - length..n - i].copy_from_slice(&input[i..i + length]);
        i += length;
    }
    Ok(n)
}

fn word_count(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    let is_space = |byte: u8| byte == b' ' || (b'\t'..=b'\r').contains(&byte);
    let mut words: u32 = 0;
    let mut in_word = false;
    for &byte in input {
        let space = is_space(byte);
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
    }
    Ok(write_decimal(output, words))
}

/// Writes `value` in decimal at the start of `out`; returns the number of digits.
fn write_decimal(out: &mut [u8], mut value: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut count = 0;
    loop {
        digits[count] = b'0' + (value % 10) as u8;
        count += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for i in 0..count {
        out[i] = digits[count - 1 - i];
    }
    count
}
