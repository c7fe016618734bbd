//! Zig plugins: `plugins/<name>/<name>.zig`, built with the Zig compiler from PyPI's `ziglang`
//! wheel (installed by `cargo xtask setup` into a private virtual environment under the
//! project's cache, [`venv_dir`]) against `plugin-sdk/zig/wasm_plugin.zig`, imported as
//! `wasm_plugin`.

use crate::command_line::CommandLine;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The `ziglang` release the SDK and the examples are written for: Zig's syntax changes between
/// releases, so it is pinned.
pub(crate) const ZIGLANG: &str = "ziglang==0.17.1";

/// The SDK's folder below the project root.
pub(crate) const SDK_DIR: &str = "plugin-sdk/zig";

/// Flags for every plugin, and why: a bare wasm32 module (no WASI, so no imports), small code,
/// no `_start`, and a 64 KiB stack (Zig's default is 1 MiB, 17 pages, over the host's limit).
const FLAGS: [&str; 7] = ["-target", "wasm32-freestanding", "-O", "ReleaseSmall", "-fno-entry", "--stack", "65536"];

/// The private virtual environment that holds `ziglang` (`ZIG_VENV` overrides it).
pub(crate) fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZIG_VENV") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("wasm-plugin-host/zig-venv")
}

/// The venv's Python, if `ziglang` is installed in it; else what is missing and how to get it.
pub(crate) fn find_zig() -> Result<PathBuf, String> {
    let python = venv_dir().join("bin/python");
    let works =
        Command::new(&python).args(["-m", "ziglang", "version"]).output().is_ok_and(|output| output.status.success());
    if works {
        Ok(python)
    } else {
        Err(format!(
            "Zig plugins need PyPI's {ZIGLANG} in {}: run `cargo xtask setup`, or `python3 -m venv {0} && {0}/bin/pip \
             install {ZIGLANG}`",
            venv_dir().display()
        ))
    }
}

/// The names a Zig source exports (`export fn NAME`), each of which needs `--export=NAME`.
fn exports(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("export fn "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .collect()
}

/// Compiles `source` (with `flags` from its `plugin-flags` directive) into `wasm`; `cache` is a
/// scratch folder for Zig's caches.
pub(crate) fn compile(
    zig: &Result<PathBuf, String>,
    sdk_dir: &Path,
    source: &Path,
    flags: &[String],
    wasm: &Path,
    cache: &Path,
) -> anyhow::Result<()> {
    let python = zig.as_deref().map_err(|missing| anyhow::anyhow!("{missing}"))?;
    let text = std::fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?;
    let mut command = Command::new(python);
    command.args(["-m", "ziglang", "build-exe"]).args(FLAGS);
    command.args(exports(&text).into_iter().map(|name| format!("--export={name}")));
    command
        .args(flags)
        .arg("--cache-dir")
        .arg(cache.join("zig-cache"))
        .arg("--global-cache-dir")
        .arg(cache.join("zig-global-cache"))
        .args(["--dep", "wasm_plugin"])
        .arg(format!("-Mroot={}", source.display()))
        .arg(format!("-Mwasm_plugin={}", sdk_dir.join("wasm_plugin.zig").display()))
        .arg(format!("-femit-bin={}", wasm.display()));
    let result = command.output().with_context(|| format!("cannot run {}", CommandLine(&command)))?;
    if !result.status.success() {
        let diagnostics = String::from_utf8_lossy(&result.stderr);
        bail!("zig failed ({}):\n{}\ncommand: {}", result.status, diagnostics.trim_end(), CommandLine(&command));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_export_fn_is_exported_by_name() {
        let source = "export fn init() i32 {\n    export fn fn_upper(len: i32) i32 {\nfn helper() void {}\n";
        assert_eq!(exports(source), ["init", "fn_upper"]);
    }

    #[test]
    fn without_zig_a_zig_plugin_fails_and_says_what_is_missing() {
        let scratch = tempfile::tempdir().unwrap();
        let missing = Err("Zig plugins need PyPI's ziglang".to_owned());
        let source = crate::project_root().join("plugins/hello_zig/hello_zig.zig");
        let sdk = crate::project_root().join(SDK_DIR);
        let out = scratch.path().join("out.wasm");
        let err = format!("{:#}", compile(&missing, &sdk, &source, &[], &out, scratch.path()).unwrap_err());
        assert!(err.contains("Zig plugins need PyPI's ziglang"), "{err}");
    }
}
