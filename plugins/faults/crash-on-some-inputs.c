// expect-violation: recursion
//
// Fault plugin: well behaved for most inputs, fatal for some. For multiples of 7 process()
// does the deep native recursion of deep-recursion.c, which under WasmEdge AOT overflows the
// host thread's stack and kills the process (SIGSEGV). The host must survive the crash, answer
// that request with an error, and keep answering the other inputs correctly afterwards
// (a supervised worker is replaced, not the whole host).
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  for n divisible by 7 (including 0 and negative multiples such as -7): recurses
//               2^30 calls deep, as deep-recursion.c does (would return 1073741824)
//               n, for every other n (negative n thus come back as error codes: -3 is
//               PLUGIN_ERR_INVALID_ARGUMENT, -1 PLUGIN_ERR_NOT_INITIALIZED, ...)
//   cleanup()   0 (PLUGIN_OK), always
//
// The recursion is the one of deep-recursion.c, copied so that each fault plugin is one file;
// see there why it is written this way.

#include <wasm_plugin.h>

#define DEPTH (1 << 30)

// Always 1; read after each call so the call cannot become a loop.
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
    if (input % 7 == 0) {
        return descend(0);
    }
    return input;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
