// expect-violation: buffer-not-constant
// An ABI v2 plugin whose input capacity is a variable it could change at run time.
#include <wasm_plugin_v2.h>

static int input_capacity = 4096;
static unsigned char input[4096];
static unsigned char output[4096];
PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) { return (int)(__UINTPTR_TYPE__)input; }
PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) { return input_capacity; }
PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) { return (int)(__UINTPTR_TYPE__)output; }
PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) { return sizeof output; }
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(shrink) {
    input_capacity = input_len;
    return 0;
}
PLUGIN_FUNCTION(echo) {
    for (int i = 0; i < input_len; i++) {
        output[i] = input[i];
    }
    return input_len;
}
