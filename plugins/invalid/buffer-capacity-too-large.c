// expect-violation: buffer-capacity-too-large
// An ABI v2 plugin that claims a 2 MiB input buffer, over the default limit of 1 MiB (the
// array is small, and memory too, but the capacity is what the checker reports, alone).
#include <wasm_plugin_v2.h>

static unsigned char input[4096];
static unsigned char output[4096];
PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) { return (int)(__UINTPTR_TYPE__)input; }
PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) { return 2 * 1024 * 1024; }
PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) { return (int)(__UINTPTR_TYPE__)output; }
PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) { return sizeof output; }
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    for (int i = 0; i < input_len; i++) {
        output[i] = input[i];
    }
    return input_len;
}
