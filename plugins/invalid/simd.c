// expect-violation: unsupported-feature
// plugin-flags: -msimd128
//
// Negative fixture: uses 128-bit SIMD vectors, which clang only emits when asked with
// -msimd128 (given above through `plugin-flags`). The ABI limits plugins to the "lime1"
// feature set, which every engine the host may run on supports; SIMD is not part of it.
// process() scales four running weights by the input and returns their sum.

#include <wasm_plugin.h>

typedef int i32x4 __attribute__((vector_size(16)));

static i32x4 weights = {1, 2, 3, 4};

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    i32x4 scaled = weights * input;
    weights = scaled + weights;
    return scaled[0] + scaled[1] + scaled[2] + scaled[3];
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
