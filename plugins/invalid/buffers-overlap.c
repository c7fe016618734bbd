// expect-violation: buffers-overlap
// An ABI v2 plugin that uses one array for both buffers, the output 16 bytes into the input.
#include <wasm_plugin_v2.h>

static unsigned char input[4096];
static unsigned char output[4096];
PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) { return (int)(__UINTPTR_TYPE__)input; }
PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) { return sizeof input - 16; }
PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) { return (int)(__UINTPTR_TYPE__)(input + 16); }
PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) { return sizeof input - 16; }
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    (void)output;
    return input_len;
}
