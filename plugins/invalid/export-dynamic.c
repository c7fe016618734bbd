// expect-violation: unexpected-export
// plugin-flags: -fvisibility=default -Wl,--export-dynamic
//
// Negative fixture: `-Wl,--export-dynamic` with default symbol visibility exports every
// non-static function and variable, here `helper` and `calls`, besides the three entry points.
// (With clang's default hidden visibility the flag exports nothing extra: see
// plugins/compat/linker-export.c.) The report says to drop the flag or make them static.

#include <wasm_plugin.h>

int calls;

int helper(int input) { return input + calls; }

PLUGIN_EXPORT(init) int init(void) {
    calls = 0;
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    calls++;
    return helper(input);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
