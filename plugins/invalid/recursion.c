// expect-violation: recursion
//
// Negative fixture: computes Fibonacci numbers recursively. The ABI forbids recursion because
// its depth depends on the input, so the plugin's stack use cannot be bounded in advance.
// Two recursive calls, because the compiler turns a single tail call into a loop.

#include <wasm_plugin.h>

static int fibonacci(int n) {
    if (n < 2) {
        return n;
    }
    return fibonacci(n - 1) + fibonacci(n - 2);
}

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0 || input > 46) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return fibonacci(input);
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
