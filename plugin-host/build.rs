//! Link arguments for the WasmEdge install wasmedge-sys links the host against, for this
//! package's own binaries (tests, examples, benches) and, through `links` metadata, for every
//! program that depends on it: its build script calls `plugin_host_build::link()`, which turns
//! `DEP_PLUGIN_HOST_RPATH` and `DEP_PLUGIN_HOST_LOADER` into the same arguments.
//!
//! The private install made by `cargo xtask setup` (see BUILD.md) runs on its own newer glibc
//! and libstdc++ from its `sysroot/` folder, so every binary of this crate (server, tests,
//! examples, benches) must use that folder's dynamic loader and find its libraries there. Build
//! scripts and proc-macros must not, which is why these flags live here and not in a global
//! RUSTFLAGS: `cargo:rustc-link-arg` reaches exactly this package's linked targets.
//!
//! With any other install nothing but an rpath to its library folder is added.
//!
//! The paths come from wasmedge-sys's own search (`wasmedge_search.rs`), resolved through
//! symbolic links: setup's `~/.wasmedge` link leads to a per-user, version-keyed folder, so
//! these arguments are the same for every checkout on the machine (a shared target folder then
//! does not relink the host when switching checkouts), and a binary keeps the exact install it
//! was built with when `~/.wasmedge` later points at another.

mod wasmedge_search;

pub(crate) fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wasmedge_search.rs");
    let found = wasmedge_search::find(|name| {
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var_os(name)
    });
    // Without an install wasmedge-sys fails first, with its own message.
    let Some(found) = found else {
        return;
    };
    // The library as found, not resolved: `~/.wasmedge` re-pointed at another install reruns
    // this (cargo follows the links to the file's modification time). Only the library: its
    // folder may be the system's, which every package upgrade touches.
    println!("cargo:rerun-if-changed={}", found.lib.join("libwasmedge.so").display());
    let Ok(lib_dir) = found.lib.canonicalize() else {
        return;
    };

    let sysroot = lib_dir.join("../sysroot");
    let link = if sysroot.join("ld-linux-x86-64.so.2").exists() {
        let sysroot = sysroot.canonicalize().expect("sysroot exists");
        Link { rpath: format!("{}:{}", lib_dir.display(), sysroot.display()), sysroot: Some(sysroot) }
    } else {
        Link { rpath: lib_dir.display().to_string(), sysroot: None }
    };
    for arg in link.args() {
        println!("cargo:rustc-link-arg={arg}");
    }
    // For dependents' build scripts (`links = "plugin_host"`).
    println!("cargo:rpath={}", link.rpath);
    if let Some(sysroot) = &link.sysroot {
        println!("cargo:sysroot={}", sysroot.display());
    }
}

/// What a binary linked against WasmEdge needs: where its libraries are and, for a private
/// install with its own C library, that install's loader.
struct Link {
    rpath: String,
    sysroot: Option<std::path::PathBuf>,
}

// The same code builds these arguments here and in `plugin-host-build`, for dependents.
include!("../plugin-host-build/src/args.rs");
