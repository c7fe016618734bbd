//! The one line an embedder's build script needs: `plugin_host_build::link();`.
//!
//! A program that depends on `plugin-host` links against WasmEdge's shared library, and must
//! find it (and, for the private install `cargo xtask setup` makes, that install's own dynamic
//! loader and C library) when it runs. `plugin-host`'s build script finds the install exactly
//! as `wasmedge-sys` does and passes what it found to its dependents' build scripts as `links`
//! metadata; [`link`] turns it into link arguments for the calling package's binaries, tests
//! and examples:
//!
//! ```toml
//! # Cargo.toml of a program that embeds plugin-host
//! [dependencies]
//! plugin-host = { path = "../wasm-plugin-host/plugin-host" }
//! [build-dependencies]
//! plugin-host-build = { path = "../wasm-plugin-host/plugin-host-build" }
//! ```
//!
//! and its `build.rs` is `fn main() { plugin_host_build::link(); }`.

use std::path::PathBuf;

/// Prints the `cargo:rustc-link-arg` lines that let this package's binaries load WasmEdge.
/// Call it from the build script of a package that depends on `plugin-host` directly (cargo
/// gives the metadata only to direct dependents).
///
/// # Panics
/// When called from anywhere else: without `plugin-host` as a direct dependency there is
/// nothing to link, and a binary would fail only when started.
pub fn link() {
    for arg in link_args() {
        println!("cargo:rustc-link-arg={arg}");
    }
}

/// The arguments [`link`] prints.
///
/// # Panics
/// As [`link`].
pub fn link_args() -> Vec<String> {
    let rpath = std::env::var("DEP_PLUGIN_HOST_RPATH").expect(
        "DEP_PLUGIN_HOST_RPATH is not set: call plugin_host_build::link() from the build script of a package \
         that depends on plugin-host directly",
    );
    let sysroot = std::env::var_os("DEP_PLUGIN_HOST_SYSROOT").map(PathBuf::from);
    Link { rpath, sysroot }.args()
}

/// What a binary linked against WasmEdge needs (see `plugin-host/build.rs`).
struct Link {
    rpath: String,
    sysroot: Option<PathBuf>,
}

include!("args.rs");
