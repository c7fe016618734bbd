// expect-violation: initial-memory-too-large
//
// Fault plugin: a 64 MiB static array, so the module's memory starts at 1026 pages (64 MiB
// plus the shadow stack and the static data), far above the ABI's limit (16 pages) and the
// host's default cap (64 pages). The array is zero-initialized, so it costs nothing in the file:
// the .wasm is tiny and only instantiating it would reserve the memory. The host must refuse to
// instantiate it under its page cap rather than allocate 64 MiB per request.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  n, for n >= 0, after storing it in the array's last 4 bytes (64 MiB in) and
//               reading it back; -3 (PLUGIN_ERR_INVALID_ARGUMENT) for n < 0
//   cleanup()   0 (PLUGIN_OK), always

#include <wasm_plugin.h>

#define BALLAST_BYTES (64 * 1024 * 1024)

static volatile int ballast[BALLAST_BYTES / sizeof(int)];

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    ballast[sizeof ballast / sizeof ballast[0] - 1] = input;
    return ballast[sizeof ballast / sizeof ballast[0] - 1];
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
