// expect-violation: float-instruction
//
// Negative fixture: compares in floating point inside process(), returning 1 when
// input * 1.5 exceeds 100 and 0 otherwise. The exported signatures stay integer-only; the ABI
// rejects float in function bodies too, because float results may differ between engines (NaN
// bit patterns), which would make the plugin nondeterministic. The value never needs a local
// variable, so the only violation is the float instructions themselves (a float local would
// add `float-type`).

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    return (float)input * 1.5f > 100.0f;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
