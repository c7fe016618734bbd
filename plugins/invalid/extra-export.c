// expect-violation: unexpected-export
//
// Negative fixture: exports a fourth function. The ABI is exactly init, process and cleanup
// (plus the memory), so a host never has to guess what an extra entry point is for.

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    return input;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(extra) int extra(int input) {
    return -input;
}
