// expect-abi: compliant
//
// Fault plugin: init() never returns. It is ABI-compliant, so only the host's deadline can stop
// it. The deadline covers init() as well as process(): the host must answer 504 without ever
// calling process() or cleanup() (cleanup runs only after a successful init).
//
//   init()      never returns: spins forever, incrementing a counter
//   process(n)  n, for every n (never reached through init)
//   cleanup()   0 (PLUGIN_OK), always
//
// The counter is volatile so that every iteration is a store the compiler must keep (see
// loop-process.c).

#include <wasm_plugin.h>

static volatile unsigned int spins;

PLUGIN_EXPORT(init) int init(void) {
    for (;;) {
        spins = spins + 1;
    }
}

PLUGIN_EXPORT(process) int process(int input) {
    return input;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
