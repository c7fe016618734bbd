// expect-violation: import
//
// Negative fixture: calls WASI's proc_exit on bad input. Plugins get no WASI and no host
// functions, so any import at all makes the module impossible to instantiate.

#include <wasm_plugin.h>

__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit")))
void proc_exit(int code);

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0) {
        proc_exit(1);
    }
    return input;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
