// expect-violation: recursion
//
// Fault plugin: process() recurses about a billion calls deep, on the engine's call stack. Run
// ahead of time (AOT) by WasmEdge, wasm calls are native calls on the host thread's stack,
// which overflows after some hundred thousand frames: the process dies of SIGSEGV instead of
// trapping. The interpreter keeps its frames on the heap and runs until the deadline. This is
// why the ABI forbids recursion; the host's tests load this plugin with the ABI check off, and
// the host must survive it (a supervised worker process dies, the host answers an error and
// replaces the worker).
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  for every n: recurses 2^30 (1073741824) calls deep. An engine with that much
//               stack would return 1073741824 (not reachable in practice).
//   cleanup()   0 (PLUGIN_OK), always
//
// The recursion must stay on the engine's stack, not on the C shadow stack in linear memory
// (whose overflow is a clean out-of-bounds trap, see shadow-stack-recursion.c): `descend` has
// no local whose address is taken, so its state lives in wasm locals and on the value stack.
// And it must stay a recursion: clang turns `return 1 + f(n + 1)` into a loop (tail-recursion
// elimination with an accumulator). Adding a volatile read after the call prevents that, since
// a volatile access cannot be moved above a call, and `noinline` keeps it one function.

#include <wasm_plugin.h>

#define DEPTH (1 << 30)

// Always 1; read after each call so the call cannot become a loop (see above).
static volatile int one = 1;

// Returns DEPTH - depth, one call per level.
__attribute__((noinline)) static int descend(int depth) {
    if (depth == DEPTH) {
        return 0;
    }
    return descend(depth + 1) + one;
}

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    (void)input;
    return descend(0);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
