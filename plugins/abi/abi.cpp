// abi: takes every path of the plugin ABI, so hosts can test their handling of each error
// code against a real plugin. process() squares its input.
//
//   init()      0 (PLUGIN_OK)
//               -2 (PLUGIN_ERR_ALREADY_INITIALIZED) if called again before cleanup()
//   process(x)  checked in this order:
//               -1 (PLUGIN_ERR_NOT_INITIALIZED) before init() or after cleanup()
//               -3 (PLUGIN_ERR_INVALID_ARGUMENT) for x < 0
//               -4 (PLUGIN_ERR_INTERNAL) for x > 46340, whose square does not fit in an int
//                  (46341 * 46341 = 2147488281 > 2147483647)
//               x * x otherwise: process(0) == 0, process(7) == 49,
//                  process(46340) == 2147395600
//   cleanup()   0 (PLUGIN_OK), and afterwards init() may be called again
//               -1 (PLUGIN_ERR_NOT_INITIALIZED) if not initialized (before init(), or twice)

#include <wasm_plugin.h>

// The largest x with x * x <= 2147483647 (INT_MAX).
static const int MAX_ROOT = 46340;

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
    if (input < 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    if (input > MAX_ROOT) {
        // The input is valid, but this plugin cannot represent the answer: that is an
        // internal limitation, not the caller's mistake.
        return PLUGIN_ERR_INTERNAL;
    }
    return input * input;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    if (!initialized) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    initialized = false;
    return PLUGIN_OK;
}
