// expect-violation: duplicate-function-name
// An ABI v2 plugin whose one-shot function and stream are both called `echo`.
#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
PLUGIN_FUNCTION(echo) {
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}
static int begin(void) { return PLUGIN_OK; }
static int feed(int input_len) { return fn_echo(input_len); }
static int end(void) { return 0; }
PLUGIN_STREAM(echo, begin, feed, end)
