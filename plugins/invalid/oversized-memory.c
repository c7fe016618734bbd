// expect-violation: initial-memory-too-large
//
// Negative fixture: a 4 MiB static table. Static data is part of the initial linear memory,
// which the ABI keeps small (1 MiB by default) so that many instances fit side by side.

#include <wasm_plugin.h>

static unsigned char seen[4 * 1024 * 1024];

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

// Returns how many times `input` (modulo the table size) was seen before, saturating at 255.
PLUGIN_EXPORT(process) int process(int input) {
    unsigned int slot = (unsigned int)input % sizeof seen;
    int before = seen[slot];
    if (before < 255) {
        seen[slot] = (unsigned char)(before + 1);
    }
    return before;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
