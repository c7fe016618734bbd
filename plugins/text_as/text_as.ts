// text in AssemblyScript: the same plugin as `plugins/text/text.c`, answer for answer: `upper`,
// `lower`, `reverse` (UTF-8 characters in reverse order; -3 for input that is not UTF-8) and
// `word_count`. 64 KiB of input, 64 KiB of output; stateless. No `new` anywhere.

const OK: i32 = 0;
const ERR_INVALID_ARGUMENT: i32 = -3;

const CAPACITY: i32 = 65536;
const input: usize = memory.data(CAPACITY, 16);
const output: usize = memory.data(CAPACITY, 16);

// Each returns a constant, which the host reads before the plugin runs.
export function plugin_input_ptr(): i32 {
  return <i32>input;
}
export function plugin_input_capacity(): i32 {
  return CAPACITY;
}
export function plugin_output_ptr(): i32 {
  return <i32>output;
}
export function plugin_output_capacity(): i32 {
  return CAPACITY;
}

export function init(): i32 {
  return OK;
}

export function cleanup(): i32 {
  return OK;
}

function at(i: i32): u8 {
  return load<u8>(input + <usize>i);
}

function put(i: i32, byte: u8): void {
  store<u8>(output + <usize>i, byte);
}

export function fn_upper(input_len: i32): i32 {
  if (input_len < 0 || input_len > CAPACITY) return ERR_INVALID_ARGUMENT;
  for (let i: i32 = 0; i < input_len; i++) {
    const c = at(i);
    put(i, c >= 0x61 && c <= 0x7a ? c - 0x20 : c);
  }
  return input_len;
}

export function fn_lower(input_len: i32): i32 {
  if (input_len < 0 || input_len > CAPACITY) return ERR_INVALID_ARGUMENT;
  for (let i: i32 = 0; i < input_len; i++) {
    const c = at(i);
    put(i, c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  }
  return input_len;
}

// The length of the valid UTF-8 sequence at input[start], of at most `available` bytes, or 0
// (RFC 3629: no over-long forms, no surrogates, nothing above U+10FFFF), as text.c decides it.
function utf8SequenceLength(start: i32, available: i32): i32 {
  const lead = <u32>at(start);
  let length: i32 = 0;
  let min: u32 = 0;
  let code: u32 = 0;
  if (lead < 0x80) {
    return 1;
  } else if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    min = 0x80;
    code = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    min = 0x800;
    code = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    min = 0x10000;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (length > available) return 0;
  for (let k: i32 = 1; k < length; k++) {
    const byte = <u32>at(start + k);
    if ((byte & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

export function fn_reverse(input_len: i32): i32 {
  if (input_len < 0 || input_len > CAPACITY) return ERR_INVALID_ARGUMENT;
  // Each character is copied whole to the mirrored position, so the output is UTF-8 too.
  let i: i32 = 0;
  while (i < input_len) {
    const length = utf8SequenceLength(i, input_len - i);
    if (length == 0) return ERR_INVALID_ARGUMENT;
    for (let k: i32 = 0; k < length; k++) put(input_len - i - length + k, at(i + k));
    i += length;
  }
  return input_len;
}

export function fn_word_count(input_len: i32): i32 {
  if (input_len < 0 || input_len > CAPACITY) return ERR_INVALID_ARGUMENT;
  let words: u32 = 0;
  let inWord = false;
  for (let i: i32 = 0; i < input_len; i++) {
    const c = at(i);
    const space = c == 0x20 || (c >= 0x09 && c <= 0x0d);
    if (!space && !inWord) words++;
    inWord = !space;
  }
  // The count in decimal, without a newline: the digits are written backwards, then turned.
  let count: i32 = 0;
  do {
    put(count, <u8>(0x30 + words % 10));
    count++;
    words /= 10;
  } while (words > 0);
  for (let k: i32 = 0; k < count / 2; k++) {
    const swap = load<u8>(output + <usize>k);
    put(k, load<u8>(output + <usize>(count - 1 - k)));
    put(count - 1 - k, swap);
  }
  return count;
}
