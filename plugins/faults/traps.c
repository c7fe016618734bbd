// expect-abi: compliant
//
// Fault plugin: process() traps in a different way for each of the inputs 1 to 5. Every one is
// a trap the engine must turn into an error for that call (the host answers 500 and keeps
// serving); none of them breaks an ABI rule, so the plugin is ABI-compliant.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  1: `unreachable` (__builtin_trap)
//               2: integer division by zero (i32.div_s)
//               3: integer overflow, INT_MIN / -1 (i32.div_s)
//               4: out-of-bounds memory access, a load from address 0xFFFFFFF0, far past the
//                  end of the plugin's memory (2 pages)
//               5: indirect call type mismatch: a call through a pointer to int(int) that
//                  points at an int(void) function (call_indirect with the wrong signature)
//               n, for every other n (negative n thus come back as error codes)
//   cleanup()   0 (PLUGIN_OK), always
//
// Operands come from volatile variables, so clang can neither fold the division nor prove the
// undefined behaviour and replace the trap with something else (or with nothing): it has to
// emit the very instruction that traps at run time.

#include <wasm_plugin.h>

typedef int (*unary_fn)(int);
typedef int (*nullary_fn)(void);

static volatile int zero = 0;
static volatile int minus_one = -1;
static volatile int int_min = -__INT_MAX__ - 1;
static volatile unsigned int far_address = 0xFFFFFFF0u;

static int seven(void) {
    return 7;
}

// Holds `seven`; the volatile load hides the target, so the call below is a real call_indirect
// with the type (i32) -> i32 into a table slot whose function has the type () -> i32.
static nullary_fn volatile wrong_type = seven;

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    switch (input) {
    case 1:
        __builtin_trap();
    case 2:
        return input / zero;
    case 3:
        return int_min / minus_one;
    case 4:
        return *(volatile int *)far_address;
    case 5:
        // Through `void (*)(void)`, the type C uses for "any function", which clang's
        // -Wcast-function-type-mismatch (an error with -Werror) accepts on purpose.
        return ((unary_fn)(void (*)(void))wrong_type)(input);
    default:
        return input;
    }
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
