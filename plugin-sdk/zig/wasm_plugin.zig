//! The plugin ABI for plugins written in Zig: the error codes (the values of plugin-sdk's
//! `ErrorCode`, which a test keeps equal). A plugin declares its ABI version itself, because
//! Zig writes a custom section only from a top-level `comptime` asm block in the plugin's file:
//!
//!     comptime {
//!         asm (".section .custom_section.wasm_plugin_abi,\"\",@\n.int32 1\n.text");
//!     }
//!
//! (`.int32 2` for ABI v2.) `cargo xtask build-plugins` builds `plugins/<name>/<name>.zig` with
//! `-target wasm32-freestanding -O ReleaseSmall -fno-entry --stack 65536` and one
//! `--export=NAME` per `export fn` (never `-rdynamic`, which also exports `__stack_pointer`).

/// Success, for `init` and `cleanup`.
pub const OK: i32 = 0;
/// `process` or `cleanup` ran before `init` succeeded.
pub const ERR_NOT_INITIALIZED: i32 = -1;
/// `init` ran twice without `cleanup` in between.
pub const ERR_ALREADY_INITIALIZED: i32 = -2;
/// The plugin does not accept this input (HTTP 422).
pub const ERR_INVALID_ARGUMENT: i32 = -3;
/// Anything else went wrong inside the plugin.
pub const ERR_INTERNAL: i32 = -4;

/// Bytes at the start of a configuration buffer that hold the configuration's length.
pub const CONFIG_LENGTH_BYTES = 4;

/// The operator's configuration in a configuration buffer (ABI.md, "Configuration"): the
/// 4-byte little-endian length the host wrote, then that many bytes (never more than the
/// buffer holds); empty without a configuration. A plugin that takes one declares the buffer
/// and its two functions, constants like the buffer functions, and reads it in `init`:
///
///     var config_buffer: [abi.CONFIG_LENGTH_BYTES + 4096]u8 = undefined;
///     export fn plugin_config_ptr() i32 {
///         return @intCast(@intFromPtr(&config_buffer));
///     }
///     export fn plugin_config_capacity() i32 {
///         return config_buffer.len;
///     }
///     export fn init() i32 {
///         const settings = abi.config(&config_buffer);
///         ... return abi.ERR_INVALID_ARGUMENT to refuse it ...
///     }
pub fn config(buffer: []const u8) []const u8 {
    if (buffer.len < CONFIG_LENGTH_BYTES) return buffer[0..0];
    const length: usize = @as(usize, buffer[0]) | @as(usize, buffer[1]) << 8 |
        @as(usize, buffer[2]) << 16 | @as(usize, buffer[3]) << 24;
    const room = buffer[CONFIG_LENGTH_BYTES..];
    return room[0..@min(length, room.len)];
}
