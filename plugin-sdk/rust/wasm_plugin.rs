//! The plugin ABI for plugins written in Rust: `#![no_std]`, no allocator, for
//! `wasm32-unknown-unknown`. The Rust counterpart of `wasm_plugin.h` and `wasm_plugin_v2.h`.
//!
//! A v1 plugin (three integer functions):
//!
//! ```ignore
//! #![no_std]
//! use wasm_plugin::{Error, State};
//!
//! static INITIALIZED: State<bool> = State::new(false);
//!
//! fn init() -> Result<(), Error> { INITIALIZED.set(true); Ok(()) }
//! fn process(input: i32) -> Result<i32, Error> { Ok(2 * input + 1) }
//! fn cleanup() -> Result<(), Error> { INITIALIZED.set(false); Ok(()) }
//!
//! wasm_plugin::plugin_v1!(init, process, cleanup);
//! ```
//!
//! A v2 plugin (bytes in, bytes out, through two static buffers):
//!
//! ```ignore
//! #![no_std]
//! use wasm_plugin::Error;
//!
//! wasm_plugin::plugin_v2!(buffers(65536, 65536), init = init, cleanup = cleanup);
//! wasm_plugin::function!(upper, upper);   // exported as fn_upper
//!
//! fn init() -> Result<(), Error> { Ok(()) }
//! fn cleanup() -> Result<(), Error> { Ok(()) }
//! fn upper(input: &[u8], output: &mut [u8]) -> Result<usize, Error> { ... }
//! ```
//!
//! Build it with the flags in `wasm32.args` next to this file (Debian's `rustc` 1.63 with
//! `libstd-rust-dev-wasm32` and `lld-14`; `cargo xtask build-plugins` does this for every
//! `plugins/<name>/<name>.rs`):
//!
//! ```text
//! rustc @plugin-sdk/rust/wasm32.args --crate-type=rlib --crate-name=wasm_plugin plugin-sdk/rust/wasm_plugin.rs -o libwasm_plugin.rlib
//! rustc @plugin-sdk/rust/wasm32.args --crate-type=cdylib --extern wasm_plugin=libwasm_plugin.rlib hello.rs -o hello.wasm
//! ```
//!
//! Why each flag: `panic=abort` (no unwinding tables, no imports), `-zstack-size=65536` (rustc's
//! default stack is 1 MiB, which alone is over the host's 16-page limit), `lto` and `opt-level=s`
//! (the buffer functions become one `i32.const`, which the host's checker requires),
//! `strip=symbols` (no name section), `linker=wasm-ld-14` (Debian ships no `rust-lld`, and
//! `wasm-ld-19` cannot read Debian 12's Rust libraries). rustc also exports `__heap_base` and
//! `__data_end`: immutable globals the checker allows (see ABI.md).
//!
//! Everything below is safe to use: the buffers are handed to each function as slices, bounds
//! checked, and a panic traps (`unreachable`), which the host reports as `plugin_trapped`.

#![no_std]

use core::cell::Cell;

/// The ABI version `plugin_v1!` declares.
pub const ABI_V1: u32 = 1;
/// The ABI version `plugin_v2!` declares.
pub const ABI_V2: u32 = 2;

/// Success, for `init`, `cleanup` and a stream's begin (`PLUGIN_OK` in C).
pub const OK: i32 = 0;

/// An error a plugin reports; the host maps each to an HTTP answer (see ABI.md). The values are
/// plugin-sdk's `ErrorCode` (`plugin-sdk/src/error_code.rs`), which a test there keeps equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Error {
    /// `process` or `cleanup` ran before `init` succeeded (`PLUGIN_ERR_NOT_INITIALIZED`).
    NotInitialized = -1,
    /// `init` ran twice without `cleanup` in between (`PLUGIN_ERR_ALREADY_INITIALIZED`).
    AlreadyInitialized = -2,
    /// The plugin does not accept this input: HTTP 422 (`PLUGIN_ERR_INVALID_ARGUMENT`).
    InvalidArgument = -3,
    /// Anything else went wrong inside the plugin (`PLUGIN_ERR_INTERNAL`).
    Internal = -4,
}

impl Error {
    /// The number the plugin returns for this error.
    pub const fn code(self) -> i32 {
        self as i32
    }
}

/// A value kept between calls on one instance (plugins are single-threaded, and every request
/// gets a fresh instance, so this is a plain cell that may live in a `static`).
#[derive(Debug)]
pub struct State<T: Copy>(Cell<T>);

// A plugin instance runs on one thread: wasm32-unknown-unknown has no threads, and the ABI
// refuses the threads feature, so nothing can reach a `State` from two threads.
unsafe impl<T: Copy> Sync for State<T> {}

impl<T: Copy> State<T> {
    /// A state holding `value`.
    pub const fn new(value: T) -> Self {
        State(Cell::new(value))
    }

    /// The current value.
    pub fn get(&self) -> T {
        self.0.get()
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        self.0.set(value)
    }
}

/// What `init` and `cleanup` return, as the number the host reads.
pub fn status(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => OK,
        Err(error) => error.code(),
    }
}

/// What `process` returns: a result must not be negative, or the host would read it as an
/// error code, so a negative `Ok` is reported as [`Error::Internal`].
pub fn result(result: Result<i32, Error>) -> i32 {
    match result {
        Ok(value) if value >= 0 => value,
        Ok(_) => Error::Internal.code(),
        Err(error) => error.code(),
    }
}

/// What a v2 function returns: the number of output bytes, which cannot exceed the output
/// buffer (the slice the function got is that long, so an `Ok` beyond it is a bug, reported as
/// [`Error::Internal`] rather than as a length the host would refuse).
pub fn output_length(result: Result<usize, Error>, capacity: usize) -> i32 {
    match result {
        Ok(written) if written <= capacity => written as i32,
        Ok(_) => Error::Internal.code(),
        Err(error) => error.code(),
    }
}

/// The `input_len` a v2 function was called with, as a length into a buffer of `capacity`
/// bytes: `None` for a negative length or one above the capacity, which no correct host sends.
pub fn input_length(input_len: i32, capacity: usize) -> Option<usize> {
    if input_len < 0 || input_len as usize > capacity {
        return None;
    }
    Some(input_len as usize)
}

/// Traps: a panic inside a plugin ends the call with `plugin_trapped`, never with anything the
/// host would have to unwind.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// Declares the ABI version in the `wasm_plugin_abi` custom section. `plugin_v1!` and
/// `plugin_v2!` use it; use it directly only to write the exports by hand.
#[macro_export]
macro_rules! abi_version {
    ($version:expr) => {
        #[link_section = "wasm_plugin_abi"]
        #[used]
        static __WASM_PLUGIN_ABI: [u8; 4] = ($version as u32).to_le_bytes();
    };
}

/// An ABI v1 plugin: exports `init`, `process` and `cleanup`, calling the plugin's own
/// `fn() -> Result<(), Error>`, `fn(i32) -> Result<i32, Error>` and `fn() -> Result<(), Error>`,
/// and declares ABI v1.
#[macro_export]
macro_rules! plugin_v1 {
    ($init:path, $process:path, $cleanup:path $(,)?) => {
        $crate::abi_version!($crate::ABI_V1);

        #[export_name = "init"]
        pub extern "C" fn __wasm_plugin_init() -> i32 {
            $crate::status($init())
        }

        #[export_name = "process"]
        pub extern "C" fn __wasm_plugin_process(input: i32) -> i32 {
            $crate::result($process(input))
        }

        #[export_name = "cleanup"]
        pub extern "C" fn __wasm_plugin_cleanup() -> i32 {
            $crate::status($cleanup())
        }
    };
}

/// An ABI v2 plugin: declares ABI v2, the two static buffers (capacities in bytes) with their
/// four exported buffer functions, and exports `init` and `cleanup` (each the plugin's own
/// `fn() -> Result<(), Error>`). Add functions with [`function!`] and streams with [`stream!`],
/// in the same module.
#[macro_export]
macro_rules! plugin_v2 {
    (buffers($input:expr, $output:expr), init = $init:path, cleanup = $cleanup:path $(,)?) => {
        $crate::abi_version!($crate::ABI_V2);

        const __WASM_PLUGIN_INPUT_CAPACITY: usize = $input;
        const __WASM_PLUGIN_OUTPUT_CAPACITY: usize = $output;
        static mut __WASM_PLUGIN_INPUT: [u8; __WASM_PLUGIN_INPUT_CAPACITY] = [0; __WASM_PLUGIN_INPUT_CAPACITY];
        static mut __WASM_PLUGIN_OUTPUT: [u8; __WASM_PLUGIN_OUTPUT_CAPACITY] = [0; __WASM_PLUGIN_OUTPUT_CAPACITY];

        // Each returns a constant (an address or a size), which the host's checker reads
        // without running the plugin; taking an address creates no reference.
        #[export_name = "plugin_input_ptr"]
        pub extern "C" fn __wasm_plugin_input_ptr() -> i32 {
            unsafe { core::ptr::addr_of!(__WASM_PLUGIN_INPUT) as i32 }
        }
        #[export_name = "plugin_input_capacity"]
        pub extern "C" fn __wasm_plugin_input_capacity() -> i32 {
            __WASM_PLUGIN_INPUT_CAPACITY as i32
        }
        #[export_name = "plugin_output_ptr"]
        pub extern "C" fn __wasm_plugin_output_ptr() -> i32 {
            unsafe { core::ptr::addr_of!(__WASM_PLUGIN_OUTPUT) as i32 }
        }
        #[export_name = "plugin_output_capacity"]
        pub extern "C" fn __wasm_plugin_output_capacity() -> i32 {
            __WASM_PLUGIN_OUTPUT_CAPACITY as i32
        }

        /// The first `len` bytes of the input buffer and the whole output buffer, for one call.
        /// Only the exported functions call this, once per call, and a plugin instance runs one
        /// call at a time on one thread, so the two slices are the only references to the
        /// buffers while they live.
        fn __wasm_plugin_buffers(len: usize) -> (&'static [u8], &'static mut [u8]) {
            unsafe {
                let input = &*core::ptr::addr_of!(__WASM_PLUGIN_INPUT);
                let output = &mut *core::ptr::addr_of_mut!(__WASM_PLUGIN_OUTPUT);
                (&input[..len], &mut output[..])
            }
        }

        #[export_name = "init"]
        pub extern "C" fn __wasm_plugin_init() -> i32 {
            $crate::status($init())
        }

        #[export_name = "cleanup"]
        pub extern "C" fn __wasm_plugin_cleanup() -> i32 {
            $crate::status($cleanup())
        }
    };
}

/// An ABI v2 function, exported as `fn_<name>`: calls the plugin's own
/// `fn(input: &[u8], output: &mut [u8]) -> Result<usize, Error>` with the `input_len` bytes of
/// input and the whole output buffer, and returns the number of bytes it wrote. An input length
/// outside the buffer (which no correct host sends) is [`Error::InvalidArgument`].
#[macro_export]
macro_rules! function {
    ($name:ident, $function:path $(,)?) => {
        const _: () = {
            #[export_name = concat!("fn_", stringify!($name))]
            pub extern "C" fn __wasm_plugin_function(input_len: i32) -> i32 {
                let len = match $crate::input_length(input_len, __WASM_PLUGIN_INPUT_CAPACITY) {
                    Some(len) => len,
                    None => return $crate::Error::InvalidArgument.code(),
                };
                let (input, output) = __wasm_plugin_buffers(len);
                $crate::output_length($function(input, output), __WASM_PLUGIN_OUTPUT_CAPACITY)
            }
        };
    };
}

/// An ABI v2 streaming function, exported as `stream_<name>_begin`, `_feed` and `_end`: one
/// macro, so a stream cannot lack a part. The plugin's own functions are
/// `begin() -> Result<(), Error>`, `feed(input: &[u8], output: &mut [u8]) -> Result<usize, Error>`
/// (the output this chunk produced) and `end(output: &mut [u8]) -> Result<usize, Error>` (the
/// final output); the stream's state lives in [`State`]s between the calls.
#[macro_export]
macro_rules! stream {
    ($name:ident, $begin:path, $feed:path, $end:path $(,)?) => {
        const _: () = {
            #[export_name = concat!("stream_", stringify!($name), "_begin")]
            pub extern "C" fn __wasm_plugin_stream_begin() -> i32 {
                $crate::status($begin())
            }

            #[export_name = concat!("stream_", stringify!($name), "_feed")]
            pub extern "C" fn __wasm_plugin_stream_feed(input_len: i32) -> i32 {
                let len = match $crate::input_length(input_len, __WASM_PLUGIN_INPUT_CAPACITY) {
                    Some(len) => len,
                    None => return $crate::Error::InvalidArgument.code(),
                };
                let (input, output) = __wasm_plugin_buffers(len);
                $crate::output_length($feed(input, output), __WASM_PLUGIN_OUTPUT_CAPACITY)
            }

            #[export_name = concat!("stream_", stringify!($name), "_end")]
            pub extern "C" fn __wasm_plugin_stream_end() -> i32 {
                let (_, output) = __wasm_plugin_buffers(0);
                $crate::output_length($end(output), __WASM_PLUGIN_OUTPUT_CAPACITY)
            }
        };
    };
}

/// The configuration in a configuration buffer (its 4-byte little-endian length, then the
/// bytes): at most what the buffer holds, whatever the length says; empty without one.
pub fn config_bytes(buffer: &[u8]) -> &[u8] {
    if buffer.len() < 4 {
        return &[];
    }
    let length = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    let room = &buffer[4..];
    &room[..length.min(room.len())]
}

/// An optional ABI v2 configuration buffer holding up to `max_bytes` of configuration (ABI.md,
/// "Configuration"), with its two exported functions, and `fn plugin_config() -> &'static [u8]`
/// in the same module: the operator's configuration, empty without one. The host writes it
/// before every `init`; read it there and return [`Error::InvalidArgument`] to refuse it.
#[macro_export]
macro_rules! config {
    ($max_bytes:expr) => {
        const __WASM_PLUGIN_CONFIG_CAPACITY: usize = 4 + $max_bytes;
        static mut __WASM_PLUGIN_CONFIG: [u8; __WASM_PLUGIN_CONFIG_CAPACITY] = [0; __WASM_PLUGIN_CONFIG_CAPACITY];

        #[export_name = "plugin_config_ptr"]
        pub extern "C" fn __wasm_plugin_config_ptr() -> i32 {
            unsafe { core::ptr::addr_of!(__WASM_PLUGIN_CONFIG) as i32 }
        }
        #[export_name = "plugin_config_capacity"]
        pub extern "C" fn __wasm_plugin_config_capacity() -> i32 {
            __WASM_PLUGIN_CONFIG_CAPACITY as i32
        }

        /// The operator's configuration (empty without one). The plugin never writes the
        /// buffer, so shared references to it are all there are.
        fn plugin_config() -> &'static [u8] {
            $crate::config_bytes(unsafe { &*core::ptr::addr_of!(__WASM_PLUGIN_CONFIG) })
        }
    };
}
