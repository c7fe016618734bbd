// expect-violation: invalid-function-name
// An ABI v2 function whose name has an upper-case letter: fn_Echo.
#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}
PLUGIN_FUNCTION(Echo) {
    return input_len;
}
