//! AssemblyScript plugins: `plugins/<name>/<name>.ts`, built with npm's `assemblyscript`
//! (installed by `cargo xtask setup` into a private folder under the project's cache,
//! [`install_dir`]) and the ABI marker transform `plugin-sdk/assemblyscript/abi-marker.js`.

use crate::command_line::CommandLine;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The npm package, pinned to the release the examples are written for.
pub(crate) const PACKAGE: &str = "assemblyscript@0.28";

/// The SDK's folder below the project root.
pub(crate) const SDK_DIR: &str = "plugin-sdk/assemblyscript";

/// Flags for every plugin, and why: `--runtime stub` (no garbage collector), `--noAssert` (an
/// assertion imports `env.abort`), `--disable bulk-memory` (otherwise every module with static
/// data has a data count section, refused as the `bulk-memory` feature), `-Oz` (small code).
const FLAGS: [&str; 6] = ["--runtime", "stub", "-Oz", "--noAssert", "--disable", "bulk-memory"];

/// The private npm folder that holds `assemblyscript` (`ASC_DIR` overrides it).
pub(crate) fn install_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASC_DIR") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("wasm-plugin-host/assemblyscript")
}

/// `asc`, if it is installed; else what is missing and how to get it.
pub(crate) fn find_asc() -> Result<PathBuf, String> {
    let asc = install_dir().join("node_modules/.bin/asc");
    let works = Command::new(&asc).arg("--version").output().is_ok_and(|output| output.status.success());
    if works {
        Ok(asc)
    } else {
        Err(format!(
            "AssemblyScript plugins need npm's {PACKAGE} in {0} (and node): run `cargo xtask setup`, or `npm install \
             --prefix {0} {PACKAGE}`",
            install_dir().display()
        ))
    }
}

/// The ABI version the marker declares: 2 for a plugin that exports the v2 buffer functions.
fn abi_version(source: &str) -> &'static str {
    if source.contains("export function plugin_input_ptr") { "2" } else { "1" }
}

/// Compiles `source` (with `flags` from its `plugin-flags` directive) into `wasm`.
pub(crate) fn compile(
    asc: &Result<PathBuf, String>,
    sdk_dir: &Path,
    source: &Path,
    flags: &[String],
    wasm: &Path,
) -> anyhow::Result<()> {
    let asc = asc.as_deref().map_err(|missing| anyhow::anyhow!("{missing}"))?;
    let text = std::fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?;
    let mut command = Command::new(asc);
    command
        .arg(source)
        .args(FLAGS)
        .arg("--transform")
        .arg(sdk_dir.join("abi-marker.js"))
        .args(flags)
        .arg("-o")
        .arg(wasm)
        .env("ABI_VERSION", abi_version(&text));
    let result = command.output().with_context(|| format!("cannot run {}", CommandLine(&command)))?;
    if !result.status.success() {
        let diagnostics = String::from_utf8_lossy(&result.stderr);
        bail!("asc failed ({}):\n{}\ncommand: {}", result.status, diagnostics.trim_end(), CommandLine(&command));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_asc_an_assemblyscript_plugin_fails_and_says_what_is_missing() {
        let scratch = tempfile::tempdir().unwrap();
        let missing = Err("AssemblyScript plugins need npm's assemblyscript".to_owned());
        let source = crate::project_root().join("plugins/hello_as/hello_as.ts");
        let sdk = crate::project_root().join(SDK_DIR);
        let err = format!("{:#}", compile(&missing, &sdk, &source, &[], &scratch.path().join("o.wasm")).unwrap_err());
        assert!(err.contains("AssemblyScript plugins need npm's assemblyscript"), "{err}");
        assert_eq!(abi_version("export function plugin_input_ptr(): i32 {"), "2");
        assert_eq!(abi_version("export function process(input: i32): i32 {"), "1");
    }
}
