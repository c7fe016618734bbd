// expect-violation: incomplete-stream
// An ABI v2 streaming function defined part by part by hand, without its end.
#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}
PLUGIN_EXPORT(stream_count_begin) int stream_count_begin(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(stream_count_feed) int stream_count_feed(int input_len) { return input_len < 0 ? -3 : 0; }
