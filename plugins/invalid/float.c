// expect-violation: float-instruction
//
// Negative fixture: computes with floating point inside process(). The exported signatures
// are still integer-only; the ABI rejects float in the body too, because float results can
// differ between engines (NaN bit patterns) and the plugin would no longer be deterministic.

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    float scaled = (float)input * 1.5f;
    return (int)scaled;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
