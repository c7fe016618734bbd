// expect-violation: v1-export-in-v2
// An ABI v2 plugin that also defines v1's process(), as if half-converted from v1.
#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}
PLUGIN_EXPORT(process) int process(int input) { return input; }
