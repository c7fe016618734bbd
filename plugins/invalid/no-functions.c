// expect-violation: no-functions
// An ABI v2 plugin with buffers and a lifecycle but nothing to call.
#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)
PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
