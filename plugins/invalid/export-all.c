// expect-violation: unexpected-export
// plugin-flags: -Wl,--export-all
//
// Negative fixture: a plugin that is fine in itself, linked with `-Wl,--export-all`, a common
// way of building seed-era plugins. The flag also exports every helper function and the
// linker's own symbols (`__wasm_call_ctors`, `__stack_low`, `__global_base`, ...), which the
// ABI's "exactly three functions" rule forbids; the report says to drop this flag.

#include <wasm_plugin.h>

static int square(int x) { return x * x; }

int helper(int input) { return square(input) + 1; }

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    return helper(input);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
