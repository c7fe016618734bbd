//! The plugin ABI in one place: its version, its error codes, the C header plugins include, and
//! the checker that decides whether a compiled `.wasm` file follows the ABI.
//!
//! Both sides of the ABI depend on this crate, so they cannot drift apart: `xtask` runs
//! [`check()`] after compiling each plugin (and for `cargo xtask check-abi`), and the host runs
//! it again before loading a plugin and refuses one whose [`AbiReport`] is not compliant.
//!
//! Plugin authors never see the Rust side. They include `include/wasm_plugin.h`
//! ([`HEADER`], in [`INCLUDE_DIR`]), which declares the three entry points, defines the error
//! codes below as `PLUGIN_ERR_*` and records [`ABI_VERSION`] in the compiled module as the
//! custom section [`CUSTOM_SECTION`]. A test in this crate keeps the header's numbers equal to
//! the constants here.

pub mod check;
mod error_code;

pub use check::{
    AbiLimits, AbiReport, AbiViolation, ExportCause, ExternKind, Feature, FloatUsage, FunctionRef, Location, Signature,
    ValueType, Violation, check, check_with,
};
pub use error_code::ErrorCode;

/// The version of the plugin ABI this crate describes; equal to `WASM_PLUGIN_ABI_VERSION` in
/// the header.
pub const ABI_VERSION: u32 = 1;

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

/// The text of `wasm_plugin.h`, the only header plugins include.
pub const HEADER: &str = include_str!("../include/wasm_plugin.h");

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the value of `#define NAME value` in the header.
    fn header_define(name: &str) -> i64 {
        HEADER
            .lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(name)).then(|| words.next()).flatten()
            })
            .unwrap_or_else(|| panic!("wasm_plugin.h does not #define {name}"))
            .parse()
            .unwrap_or_else(|err| panic!("{name} in wasm_plugin.h is not an integer: {err}"))
    }

    #[test]
    fn header_abi_version_matches_the_crate() {
        assert_eq!(header_define("WASM_PLUGIN_ABI_VERSION"), i64::from(ABI_VERSION));
    }

    #[test]
    fn header_error_codes_match_the_crate() {
        assert_eq!(header_define("PLUGIN_OK"), 0);
        for code in ErrorCode::ALL {
            assert_eq!(header_define(code.c_name()), i64::from(code.code()), "{code:?}");
        }
    }

    #[test]
    fn header_names_the_custom_section() {
        let directive = format!(".section .custom_section.{CUSTOM_SECTION},");
        assert!(HEADER.contains(&directive), "wasm_plugin.h must emit {directive}");
    }

    #[test]
    fn include_dir_holds_the_header() {
        let on_disk = std::fs::read_to_string(format!("{INCLUDE_DIR}/wasm_plugin.h"))
            .expect("INCLUDE_DIR/wasm_plugin.h is readable");
        assert_eq!(on_disk, HEADER);
    }
}
