//! Where wasmedge-sys 0.21 finds WasmEdge, in its order: shared by `plugin-host/build.rs` (whose link
//! arguments must name the library wasmedge-sys linked) and `cargo xtask setup` (which checks
//! and prepares what wasmedge-sys will find).
//!
//! wasmedge-sys publishes no `links` metadata, so its search (`SEARCH_LOCATIONS` in its
//! build.rs) is repeated here. Keep the two in step when wasmedge-sys is updated.

use std::{ffi::OsString, path::PathBuf};

/// An install folder pair as wasmedge-sys takes it: `include` holds `wasmedge/wasmedge.h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) include: PathBuf,
    pub(crate) lib: PathBuf,
}

impl Location {
    /// wasmedge-sys's own test: the header is there and the library folder exists.
    pub(crate) fn is_install(&self) -> bool {
        self.include.join("wasmedge/wasmedge.h").is_file() && self.lib.is_dir()
    }
}

/// Every place wasmedge-sys would look, most preferred first. `env` reads one environment
/// variable (a build script also declares it with `rerun-if-env-changed`).
pub(crate) fn locations(env: impl Fn(&str) -> Option<OsString>) -> Vec<Location> {
    let at = |base: &PathBuf, include: &str, lib: &str| Location { include: base.join(include), lib: base.join(lib) };
    let mut found = Vec::new();
    if let (Some(include), Some(lib)) = (env("WASMEDGE_INCLUDE_DIR"), env("WASMEDGE_LIB_DIR")) {
        found.push(Location { include: include.into(), lib: lib.into() });
    }
    if let Some(dir) = env("WASMEDGE_DIR").map(PathBuf::from) {
        found.extend([at(&dir, "include", "lib64"), at(&dir, "include", "lib")]);
    }
    if let Some(dir) = env("WASMEDGE_BUILD_DIR").map(PathBuf::from) {
        found.extend([at(&dir, "include/api", "lib64/api"), at(&dir, "include/api", "lib/api")]);
    }
    let home = env("HOME").map(PathBuf::from);
    if let Some(home) = &home {
        found
            .extend([at(home, ".wasmedge/include", ".wasmedge/lib64"), at(home, ".wasmedge/include", ".wasmedge/lib")]);
    }
    let usr_local = PathBuf::from("/usr/local");
    found.extend([at(&usr_local, "include", "lib64"), at(&usr_local, "include", "lib")]);
    if let Some(home) = &home {
        found.extend([at(home, ".local/include", ".local/lib64"), at(home, ".local/include", ".local/lib")]);
    }
    found
}

/// The install wasmedge-sys links against: the first location that holds one.
pub(crate) fn find(env: impl Fn(&str) -> Option<OsString>) -> Option<Location> {
    locations(env).into_iter().find(Location::is_install)
}
