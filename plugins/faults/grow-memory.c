// expect-violation: memory-grow
//
// Fault plugin: process() grows its linear memory one 64 KiB page at a time until the engine
// refuses, then writes to and reads back the last byte of the last page. The module declares no
// maximum memory size, so only the host's page cap (`--max-memory-pages`) stops it short of
// WebAssembly's 4 GiB limit. The host must enforce the cap: the growth fails (memory.grow
// returns -1, which is not a trap) and the plugin gets an answer, not the host's RAM.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  for every n: the number of pages the memory has once growing fails, that is
//               the host's cap (65536 without one, after allocating 4 GiB)
//   cleanup()   0 (PLUGIN_OK), always

#include <wasm_plugin.h>

#define PAGE_BYTES 65536u

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    (void)input;
    while (__builtin_wasm_memory_grow(0, 1) != (__SIZE_TYPE__)-1) {
    }
    __SIZE_TYPE__ pages = __builtin_wasm_memory_size(0);
    // The last byte of memory; with 65536 pages the product wraps to 0 and minus one is still
    // the right address, 0xFFFFFFFF. Volatile, so the access really happens.
    volatile unsigned char *last = (volatile unsigned char *)(pages * PAGE_BYTES - 1);
    *last = 0xA5;
    if (*last != 0xA5) {
        return PLUGIN_ERR_INTERNAL;
    }
    return (int)pages;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
