// hello: the example from the project's README. Doubles its input and adds one, but only
// between init() and cleanup(), to show the lifecycle a host drives.
//
//   init()      0 (PLUGIN_OK)
//               -2 (PLUGIN_ERR_ALREADY_INITIALIZED) if called again before cleanup()
//   process(x)  2 * x + 1 for 0 <= x <= 1073741823; process(21) == 43
//               -1 (PLUGIN_ERR_NOT_INITIALIZED) before init() or after cleanup()
//               -3 (PLUGIN_ERR_INVALID_ARGUMENT) for x < 0 or x > 1073741823: a negative
//                  result would read as an error code, and a larger x overflows int
//   cleanup()   0 (PLUGIN_OK), always; afterwards init() may be called again

#include <wasm_plugin.h>

// The largest input whose result, 2 * x + 1, still fits in an int.
static const int MAX_INPUT = (__INT_MAX__ - 1) / 2;

static bool initialized = false;

PLUGIN_EXPORT(init) int init(void) {
    if (initialized) {
        return PLUGIN_ERR_ALREADY_INITIALIZED;
    }
    initialized = true;
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (!initialized) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    if (input < 0 || input > MAX_INPUT) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return 2 * input + 1;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    initialized = false;
    return PLUGIN_OK;
}
