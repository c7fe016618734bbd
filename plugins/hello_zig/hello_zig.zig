//! hello in Zig: the same plugin as `plugins/hello/hello.cpp`, answer for answer. Doubles its
//! input and adds one, but only between init() and cleanup(); -3 for x < 0 or x > 1073741823.

const abi = @import("wasm_plugin");

comptime {
    asm (".section .custom_section.wasm_plugin_abi,\"\",@\n.int32 1\n.text");
}

/// The largest input whose result, 2 * x + 1, still fits in an i32.
const max_input: i32 = @divTrunc(2147483647 - 1, 2);

var initialized: bool = false;

export fn init() i32 {
    if (initialized) return abi.ERR_ALREADY_INITIALIZED;
    initialized = true;
    return abi.OK;
}

export fn process(input: i32) i32 {
    if (!initialized) return abi.ERR_NOT_INITIALIZED;
    if (input < 0 or input > max_input) return abi.ERR_INVALID_ARGUMENT;
    return 2 * input + 1;
}

export fn cleanup() i32 {
    initialized = false;
    return abi.OK;
}
