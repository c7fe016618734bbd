// hello in AssemblyScript: the same plugin as `plugins/hello/hello.cpp`, answer for answer.
// Doubles its input and adds one, but only between init() and cleanup(); -3 for x < 0 or
// x > 1073741823. No `new` anywhere: it would bring an allocator, memory.grow and an import.

const OK: i32 = 0;
const ERR_NOT_INITIALIZED: i32 = -1;
const ERR_ALREADY_INITIALIZED: i32 = -2;
const ERR_INVALID_ARGUMENT: i32 = -3;

// The largest input whose result, 2 * x + 1, still fits in an i32.
const MAX_INPUT: i32 = 1073741823;

let initialized = false;

export function init(): i32 {
  if (initialized) return ERR_ALREADY_INITIALIZED;
  initialized = true;
  return OK;
}

export function process(input: i32): i32 {
  if (!initialized) return ERR_NOT_INITIALIZED;
  if (input < 0 || input > MAX_INPUT) return ERR_INVALID_ARGUMENT;
  return 2 * input + 1;
}

export function cleanup(): i32 {
  initialized = false;
  return OK;
}
