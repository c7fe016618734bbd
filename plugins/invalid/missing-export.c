// expect-violation: missing-export
//
// Negative fixture: defines init() and process() but forgets cleanup(), so the host would have
// nothing to call before unloading it.

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    return input;
}
