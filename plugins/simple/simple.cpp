// simple: the smallest plugin worth copying. It keeps no state, so init() and cleanup() have
// nothing to do, and process() adds one to its input.
//
//   init()      0 (PLUGIN_OK), always
//   process(x)  x + 1 for 0 <= x <= 2147483646; process(1) == 2, process(0) == 1
//               -3 (PLUGIN_ERR_INVALID_ARGUMENT) for x < 0 (a negative result would read as
//                  an error code) and for x == 2147483647 (x + 1 would overflow int)
//               Works without init(): there is nothing to initialize.
//   cleanup()   0 (PLUGIN_OK), always

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0 || input == __INT_MAX__) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return input + 1;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
