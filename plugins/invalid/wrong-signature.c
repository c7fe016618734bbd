// expect-violation: wrong-signature
//
// Negative fixture: exports `process` with 64-bit integers, (i64) -> i64, instead of the ABI's
// (i32) -> i32. The C function has another name because the header already declares process().

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) long long process_wide(long long input) {
    return input * 2;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
