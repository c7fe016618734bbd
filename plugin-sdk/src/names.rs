//! The names and sizes the ABI fixes (see ABI.md): what a host looks up in a plugin. The
//! checker, the host and the tests of the headers take them from here, so that none of them
//! restates one (a tidy test refuses them in the host).

use crate::StreamPart;

/// The v1 entry point run first on every fresh instance (and by v2 plugins before any function).
pub const INIT: &str = "init";
/// The v1 entry point given the call's integer.
pub const PROCESS: &str = "process";
/// The entry point run last on every instance.
pub const CLEANUP: &str = "cleanup";
/// The three v1 entry points, in the order the host calls them.
pub const ENTRY_POINTS: [&str; 3] = [INIT, PROCESS, CLEANUP];
/// The plugin's exported linear memory.
pub const MEMORY: &str = "memory";
/// What a v2 function's export name starts with: `fn_<name>`.
pub const CALL_PREFIX: &str = "fn_";
/// What a v2 stream's export names start with: `stream_<name>_<part>`.
pub const STREAM_PREFIX: &str = "stream_";
/// The size of a WebAssembly memory page, in bytes.
pub const PAGE_BYTES: u64 = 64 * 1024;

/// The export of the v2 function `function`: `fn_<function>`.
pub fn call_export(function: &str) -> String {
    format!("{CALL_PREFIX}{function}")
}

/// The export of one part of the v2 stream `function`: `stream_<function>_<part>`.
pub fn stream_export(function: &str, part: StreamPart) -> String {
    format!("{STREAM_PREFIX}{function}_{}", part.suffix())
}

/// Whether an export is one of a v2 plugin's functions (a call or a stream part), which are
/// given the caller's input.
pub fn is_function_export(name: &str) -> bool {
    name.starts_with(CALL_PREFIX) || name.starts_with(STREAM_PREFIX)
}
