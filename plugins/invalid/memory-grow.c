// expect-violation: memory-grow
//
// Negative fixture: grows its linear memory at run time, a do-it-yourself heap. The ABI
// forbids it so a plugin's memory use is fixed and known before the host runs it.

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

// Grows memory by `input` 64 KiB pages and returns the previous size in pages.
PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return (int)__builtin_wasm_memory_grow(0, (unsigned long)input);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
