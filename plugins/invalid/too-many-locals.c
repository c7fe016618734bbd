// expect-violation: too-many-locals
// plugin-flags: -O0
//
// Negative fixture: one long function built without optimisation. At -O0 clang gives every
// temporary its own WebAssembly local instead of reusing them, so these 2000 statements declare
// about 18000 locals, over the ABI's 16384; at -O1 and above the same code needs a handful.

#include <wasm_plugin.h>

#define STEP(i) x = ((x * 31u) + (unsigned)(i)) ^ (x >> 3);
#define STEP10(i) STEP(i) STEP(i + 1) STEP(i + 2) STEP(i + 3) STEP(i + 4) \
    STEP(i + 5) STEP(i + 6) STEP(i + 7) STEP(i + 8) STEP(i + 9)
#define STEP100(i) STEP10(i) STEP10(i + 10) STEP10(i + 20) STEP10(i + 30) STEP10(i + 40) \
    STEP10(i + 50) STEP10(i + 60) STEP10(i + 70) STEP10(i + 80) STEP10(i + 90)
#define STEP1000(i) STEP100(i) STEP100(i + 100) STEP100(i + 200) STEP100(i + 300) STEP100(i + 400) \
    STEP100(i + 500) STEP100(i + 600) STEP100(i + 700) STEP100(i + 800) STEP100(i + 900)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

// A hash of `input` mixed 2000 times.
PLUGIN_EXPORT(process) int process(int input) {
    unsigned x = (unsigned)input;
    STEP1000(0)
    STEP1000(1000)
    return (int)(x & 0x7fffffffu);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
