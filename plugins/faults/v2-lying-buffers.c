// expect-violation: buffer-outside-memory
//
// Fault plugin for ABI v2: its buffer functions are constants, but the input capacity lies: it
// claims 512 KiB (within the host's 1 MiB limit) for an array of 64 bytes, past the end of its
// memory. Written by hand instead of with PLUGIN_BUFFERS, which cannot lie. The checker refuses it (the host would otherwise
// write the input outside the plugin's memory); the host must answer its calls with
// `abi_violation` and keep serving every other plugin.
//
//   init(), cleanup()   0 (PLUGIN_OK), always
//   fn_echo(n)          the n input bytes, unchanged (never reached)

#include <wasm_plugin_v2.h>

static unsigned char input[64];
static unsigned char output[64];

PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) {
    return (int)(__UINTPTR_TYPE__)input;
}

PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) {
    return 512 * 1024;
}

PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) {
    return (int)(__UINTPTR_TYPE__)output;
}

PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) {
    return (int)sizeof output;
}

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(fn_echo) int fn_echo(int input_len) {
    for (int i = 0; i < input_len; i++) {
        output[i] = input[i];
    }
    return input_len;
}
