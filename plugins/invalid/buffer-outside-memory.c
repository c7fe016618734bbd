// expect-violation: buffer-outside-memory
// An ABI v2 plugin that claims a 960 KiB output buffer (within the limit) for a 4 KiB array:
// the buffer would run past the end of the plugin's two-page memory.
#include <wasm_plugin_v2.h>

static unsigned char input[4096];
static unsigned char output[4096];
PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) { return (int)(__UINTPTR_TYPE__)input; }
PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) { return sizeof input; }
PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) { return (int)(__UINTPTR_TYPE__)output; }
PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) { return 960 * 1024; }
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    for (int i = 0; i < input_len; i++) {
        output[i] = input[i];
    }
    return input_len;
}
