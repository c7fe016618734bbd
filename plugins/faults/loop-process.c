// expect-abi: compliant
//
// Fault plugin: process() never returns. It is ABI-compliant (a loop is not recursion and
// allocates nothing), so only the host's deadline can stop it; the host must answer 504 and
// stay responsive to other requests.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  never returns, for every n: spins forever, incrementing a counter
//   cleanup()   0 (PLUGIN_OK), always (never reached through process)
//
// The counter is volatile so that every iteration is a store the compiler must keep: without
// a side effect the loop would be dead code, and in C++ (not C) a side-effect-free infinite
// loop is undefined behaviour that clang may delete.

#include <wasm_plugin.h>

static volatile unsigned int spins;

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    (void)input;
    for (;;) {
        spins = spins + 1;
    }
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
