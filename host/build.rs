//! Link arguments for the private WasmEdge install made by `cargo xtask setup`.
//!
//! That install (see BUILD.md) runs on its own newer glibc and libstdc++ from
//! `.toolchain/wasmedge/sysroot`, so every binary of this crate (server, tests, examples,
//! benches) must use that folder's dynamic loader and find its libraries there. Build scripts
//! and proc-macros must not, which is why these flags live here and not in a global RUSTFLAGS:
//! `cargo:rustc-link-arg` reaches exactly this package's linked targets.
//!
//! With a system install of WasmEdge nothing but an rpath to its library folder is added.

use std::path::Path;

pub(crate) fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WASMEDGE_LIB_DIR");
    let Some(lib_dir) = std::env::var_os("WASMEDGE_LIB_DIR") else {
        return;
    };
    let lib_dir = Path::new(&lib_dir);
    let Ok(lib_dir) = lib_dir.canonicalize() else {
        return;
    };
    println!("cargo:rerun-if-changed={}", lib_dir.display());

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
