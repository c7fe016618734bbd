// expect-violation: dynamic-allocation
// plugin-flags: -Wl,--allow-undefined
//
// Negative fixture: allocates with malloc, which the plugin expects its environment to provide.
// `--allow-undefined` is what an author would reach for when wasm-ld reports "undefined symbol:
// malloc"; it turns the symbol into an `env.malloc` import, which no host provides.

#include <wasm_plugin.h>

extern void *malloc(unsigned long size);

// The buffer's size depends on the first input, so the compiler cannot replace the allocation
// with a static array (which it does for a constant size).
static int *totals;

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    if (!totals) {
        totals = malloc(sizeof(int) * ((unsigned long)input + 1));
        if (!totals) {
            return PLUGIN_ERR_INTERNAL;
        }
        totals[0] = 0;
    }
    totals[0] += input;
    return totals[0];
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
