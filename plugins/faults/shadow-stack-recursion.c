// expect-violation: recursion
//
// Fault plugin: process() recurses with a 4 KiB array in every frame. Arrays whose address is
// taken live on the C shadow stack, which clang keeps in linear memory and moves with the
// global `__stack_pointer`; wasm-ld reserves 64 KiB for it right after the static data, and it
// grows down towards address 0 (over the static data, of which this plugin has none). 16
// frames fill it; the 17th moves the stack pointer below 0, where it wraps around to near
// 4 GiB, so that frame's first store is out of bounds: the engine traps
// (WasmEdge: MemoryOutOfBounds) long before the native stack is in danger. Unlike
// deep-recursion.c, this one must end in an ordinary trap, in AOT as in the interpreter.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  for every n: traps with an out-of-bounds memory access, 17 calls deep (it
//               would return 0 after 2^30 calls, which no 4 GiB memory can hold)
//   cleanup()   0 (PLUGIN_OK), always
//
// The array is volatile and indexed by the depth, so clang must give it memory in every frame
// and cannot shrink, merge or drop it; the read after the call keeps the recursion from turning
// into a loop.

#include <wasm_plugin.h>

#define DEPTH (1 << 30)
#define FRAME_BYTES 4096

__attribute__((noinline)) static int burrow(int depth) {
    volatile unsigned char frame[FRAME_BYTES];
    frame[depth % FRAME_BYTES] = (unsigned char)depth;
    if (depth == DEPTH) {
        return 0;
    }
    return burrow(depth + 1) + frame[depth % FRAME_BYTES] - (unsigned char)depth;
}

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    (void)input;
    return burrow(0);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
