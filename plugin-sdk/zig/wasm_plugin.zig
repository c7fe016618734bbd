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
