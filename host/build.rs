//! Link arguments for the WasmEdge install wasmedge-sys links the host against.
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
    let loader = sysroot.join("ld-linux-x86-64.so.2");
    if loader.exists() {
        let sysroot = sysroot.canonicalize().expect("sysroot exists");
        let (lib, sys) = (lib_dir.display(), sysroot.display());
        println!("cargo:rustc-link-arg=-Wl,--dynamic-linker={sys}/ld-linux-x86-64.so.2");
        // DT_RPATH (not RUNPATH) also applies to the libraries' own dependencies.
        println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}:{sys}");
        println!("cargo:rustc-link-arg=-Wl,-rpath-link,{sys}");
    } else {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    }
}
