//! The plugin ABI in one place: its version, its error codes, the C header plugins include, and
//! the checker that decides whether a compiled `.wasm` file follows the ABI.
//!
//! Both sides of the ABI depend on this crate, so they cannot drift apart: `xtask` runs
//! [`check()`] after compiling each plugin (and for `cargo xtask check-abi`), and the host runs
//! it again before loading a plugin and refuses one whose [`AbiReport`] is not compliant.
//!
//! Plugin authors never see the Rust side. A v1 plugin includes `include/wasm_plugin.h`
//! ([`HEADER`], in [`INCLUDE_DIR`]), which declares the three entry points, defines the error
//! codes below as `PLUGIN_ERR_*` and records the version 1 in the compiled module as the custom
//! section [`CUSTOM_SECTION`]; a v2 plugin includes `include/wasm_plugin_v2.h`
//! ([`HEADER_V2`]), which declares the buffers and functions of v2 and records the version 2.
//! A test in this crate keeps the headers' numbers equal to the constants here.

pub mod check;
mod error_code;
pub mod names;

pub use check::{
    AbiLimits, AbiReport, AbiViolation, Buffer, BufferKind, CONFIG_LENGTH_BYTES, ExportCause, ExternKind, Feature,
    FloatUsage, FunctionKind, FunctionRef, Location, MAX_FUNCTION_LOCALS, MAX_FUNCTION_PARAMS, MAX_FUNCTION_RESULTS,
    MAX_NESTING_DEPTH, MAX_TYPES, PluginFunction, Signature, StreamPart, V2Layout, ValueType, Violation, check,
    check_with, is_valid_function_name,
};
pub use error_code::{ErrorCode, PluginErrorCode};

/// The newest version of the plugin ABI this crate describes: the version `wasm_plugin_v2.h`
/// declares (`WASM_PLUGIN_ABI_VERSION`). Every version in [`SUPPORTED_ABI_VERSIONS`] is
/// checked and runs; a plugin says which one it follows.
pub const ABI_VERSION: u32 = 2;

/// Every ABI version the checker knows, oldest first: v1 (three integer functions, header
/// `wasm_plugin.h`) and v2 (bytes in and out through two static buffers, several functions,
/// streaming; header `wasm_plugin_v2.h`). A plugin declaring any other version is refused
/// ([`AbiViolation::UnsupportedAbiVersion`]).
pub const SUPPORTED_ABI_VERSIONS: [u32; 2] = [1, 2];

/// The version a plugin that declares none is checked and run as: the seed's original
/// contract (three integer functions), which defined no version marker. Plugins built for it
/// must keep running, so a missing marker means this version and is only a warning; any later
/// version must be declared.
pub const IMPLIED_ABI_VERSION: u32 = 1;

/// Name of the custom section in which a plugin records the ABI version it was built for.
///
/// Its content is one or more copies of the version as a little-endian `u32`: the header
/// emits one copy per translation unit and wasm-ld concatenates same-named custom sections,
/// so a plugin built from N C files carries N identical copies. See
/// [`AbiViolation::MissingAbiVersion`] and its neighbours for what the checker requires.
pub const CUSTOM_SECTION: &str = "wasm_plugin_abi";

/// The folder holding `wasm_plugin.h`, to pass to clang as `-I`.
///
/// It is this crate's own folder on the machine that built it, which is what `xtask` and the
/// tests need; a program shipped elsewhere should write out [`HEADER`] instead.
pub const INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include");

/// The text of `wasm_plugin.h`, the header v1 plugins include (and `wasm_plugin_v2.h` too).
pub const HEADER: &str = include_str!("../include/wasm_plugin.h");

/// The text of `wasm_plugin_v2.h`, the header v2 plugins include; it includes [`HEADER`].
pub const HEADER_V2: &str = include_str!("../include/wasm_plugin_v2.h");

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the value of `#define NAME value` in the header.
    fn header_define(name: &str) -> i64 {
        define_in(HEADER, "wasm_plugin.h", name)
    }

    /// Returns the value of `#define NAME value` in `text`, a header called `file`.
    fn define_in(text: &str, file: &str, name: &str) -> i64 {
        text.lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(name)).then(|| words.next()).flatten()
            })
            .unwrap_or_else(|| panic!("{file} does not #define {name}"))
            .parse()
            .unwrap_or_else(|err| panic!("{name} in {file} is not an integer: {err}"))
    }

    #[test]
    fn header_abi_versions_match_the_crate() {
        // wasm_plugin.h is v1 by default; wasm_plugin_v2.h sets the newest version first.
        assert_eq!(header_define("WASM_PLUGIN_ABI_VERSION"), i64::from(IMPLIED_ABI_VERSION));
        assert_eq!(define_in(HEADER_V2, "wasm_plugin_v2.h", "WASM_PLUGIN_ABI_VERSION"), i64::from(ABI_VERSION));
        assert_eq!(SUPPORTED_ABI_VERSIONS, [IMPLIED_ABI_VERSION, ABI_VERSION]);
    }

    #[test]
    fn the_v2_header_defines_what_the_checker_requires() {
        // The buffer functions the checker looks for are the ones PLUGIN_BUFFERS defines, and
        // the prefixes it reads are the ones the function macros paste.
        for name in ["plugin_input_ptr", "plugin_input_capacity", "plugin_output_ptr", "plugin_output_capacity"] {
            assert!(HEADER_V2.contains(&format!("PLUGIN_EXPORT({name}) int {name}(void) {{")), "{name}");
        }
        assert!(HEADER_V2.contains("PLUGIN_EXPORT(fn_##name) int fn_##name(int input_len)"));
        for part in StreamPart::ALL {
            let export = format!("stream_##name##_{}", part.suffix());
            assert!(HEADER_V2.contains(&format!("PLUGIN_EXPORT({export}) int {export}(")), "{export}");
        }
    }

    #[test]
    fn header_error_codes_match_the_crate() {
        assert_eq!(header_define("PLUGIN_OK"), 0);
        for code in ErrorCode::ALL {
            assert_eq!(header_define(code.c_name()), i64::from(code.code()), "{code:?}");
        }
    }

    #[test]
    fn the_rust_sdk_has_the_same_error_codes_and_section() {
        // `plugin-sdk/rust` is compiled for wasm32 by Debian's rustc, outside this workspace, so
        // it cannot use `ErrorCode`; this keeps its copy equal, variant for variant.
        let rust_sdk = include_str!("../rust/wasm_plugin.rs");
        for code in ErrorCode::ALL {
            let variant = format!("    {code:?} = {},", code.code());
            assert!(rust_sdk.lines().any(|line| line == variant), "plugin-sdk/rust lacks `{}`", variant.trim());
            assert!(rust_sdk.contains(&format!("(`{}`)", code.c_name())), "{code:?} names its C define");
        }
        let variants =
            rust_sdk.lines().filter(|line| line.starts_with("    ") && line.contains(" = -") && line.ends_with(','));
        assert_eq!(variants.count(), ErrorCode::ALL.len(), "plugin-sdk/rust has codes the crate does not know");
        assert!(rust_sdk.contains(&format!("#[link_section = \"{CUSTOM_SECTION}\"]")));
        assert!(rust_sdk.contains(&format!("pub const ABI_V1: u32 = {IMPLIED_ABI_VERSION};")));
        assert!(rust_sdk.contains(&format!("pub const ABI_V2: u32 = {ABI_VERSION};")));
    }

    #[test]
    fn the_zig_sdk_has_the_same_error_codes() {
        let zig_sdk = include_str!("../zig/wasm_plugin.zig");
        for code in ErrorCode::ALL {
            let name = code.c_name().trim_start_matches("PLUGIN_");
            let line = format!("pub const {name}: i32 = {};", code.code());
            assert!(zig_sdk.lines().any(|l| l == line), "plugin-sdk/zig lacks `{line}`");
        }
    }

    #[test]
    fn header_names_the_custom_section() {
        let directive = format!(".section .custom_section.{CUSTOM_SECTION},");
        assert!(HEADER.contains(&directive), "wasm_plugin.h must emit {directive}");
    }

    #[test]
    fn include_dir_holds_the_headers() {
        for (file, text) in [("wasm_plugin.h", HEADER), ("wasm_plugin_v2.h", HEADER_V2)] {
            let on_disk =
                std::fs::read_to_string(format!("{INCLUDE_DIR}/{file}")).expect("INCLUDE_DIR holds the headers");
            assert_eq!(on_disk, text, "{file}");
        }
    }
}
