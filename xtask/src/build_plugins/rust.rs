//! Rust plugins: `plugins/<name>/<name>.rs`, built with Debian's `rustc` for
//! `wasm32-unknown-unknown` against the Rust plugin SDK (`plugin-sdk/rust/wasm_plugin.rs`).
//!
//! rustup's toolchains have no wasm32 standard library and none can be fetched here, so the
//! compiler is Debian's (`rustc`, `libstd-rust-dev-wasm32`, `lld-14`), called by its full path
//! because rustup's `rustc` comes first on `PATH`. Every flag lives in
//! `plugin-sdk/rust/wasm32.args`, a rustc argument file that plugin authors pass by hand too
//! (`rustc @plugin-sdk/rust/wasm32.args ...`), so the build here and the documented one cannot
//! drift apart. No cargo is involved: a plugin is one file and the SDK another, and keeping them
//! out of the workspace keeps `cargo clippy --workspace` and `cargo test --workspace` (host
//! target, where a `#![no_std]` crate with a panic handler would not link) away from them.

use crate::command_line::CommandLine;
use std::{
    cell::OnceCell,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The Debian packages that make a Rust compiler for plugins; `cargo xtask setup` installs them.
pub(crate) const DEBIAN_PACKAGES: [&str; 3] = ["rustc", "libstd-rust-dev-wasm32", "lld-14"];

/// The linker `wasm32.args` names: Debian ships no `rust-lld`, and `wasm-ld-19` cannot read
/// Debian 12's Rust libraries.
pub(crate) const LINKER: &str = "wasm-ld-14";

/// The SDK's folder below the project root.
pub(crate) const SDK_DIR: &str = "plugin-sdk/rust";

/// A Rust compiler that can build plugins, or why there is none (reported when a Rust plugin is
/// built, never skipped).
#[derive(Debug)]
pub(crate) struct RustCompiler {
    rustc: Result<PathBuf, String>,
    sdk_dir: PathBuf,
    /// Where the SDK's rlib is built, once per run, on first use.
    scratch: PathBuf,
    sdk: OnceCell<Result<PathBuf, String>>,
}

impl RustCompiler {
    pub(crate) fn new(rustc: Result<PathBuf, String>, sdk_dir: &Path, scratch: &Path) -> Self {
        Self { rustc, sdk_dir: sdk_dir.to_path_buf(), scratch: scratch.to_path_buf(), sdk: OnceCell::new() }
    }

    fn rustc(&self) -> anyhow::Result<&Path> {
        self.rustc.as_deref().map_err(|missing| anyhow::anyhow!("{missing}"))
    }

    fn args_file(&self) -> String {
        format!("@{}", self.sdk_dir.join("wasm32.args").display())
    }

    /// The SDK compiled as an rlib (built on first use; a failure is remembered, not retried).
    fn sdk(&self) -> anyhow::Result<&Path> {
        let built = self.sdk.get_or_init(|| {
            let build = || -> anyhow::Result<PathBuf> {
                let rlib = self.scratch.join("libwasm_plugin.rlib");
                let mut command = Command::new(self.rustc()?);
                command
                    .arg(self.args_file())
                    .args(["--crate-type=rlib", "--crate-name=wasm_plugin"])
                    .arg(self.sdk_dir.join("wasm_plugin.rs"))
                    .arg("-o")
                    .arg(&rlib);
                run(command, "the Rust plugin SDK")?;
                Ok(rlib)
            };
            build().map_err(|err| format!("{err:#}"))
        });
        built.as_deref().map_err(|err| anyhow::anyhow!("{err}"))
    }

    /// Compiles `source` (with `flags` from its `plugin-flags` directive) into `wasm`.
    pub(crate) fn compile(&self, source: &Path, flags: &[String], wasm: &Path) -> anyhow::Result<()> {
        let sdk = self.sdk()?;
        let mut command = Command::new(self.rustc()?);
        command
            .arg(self.args_file())
            .arg("--crate-type=cdylib")
            .arg("--extern")
            .arg(format!("wasm_plugin={}", sdk.display()))
            .args(flags)
            .arg(source)
            .arg("-o")
            .arg(wasm);
        run(command, &source.display().to_string())
    }
}

fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let result = command.output().with_context(|| format!("cannot run {}", CommandLine(&command)))?;
    if !result.status.success() {
        let diagnostics = String::from_utf8_lossy(&result.stderr);
        bail!(
            "rustc failed on {what} ({}):\n{}\ncommand: {}",
            result.status,
            diagnostics.trim_end(),
            CommandLine(&command)
        );
    }
    Ok(())
}

/// Debian's `rustc`, if it is installed with the wasm32 standard library and `wasm-ld-14`:
/// `WASM_RUSTC` if set, else `/usr/bin/rustc`. The error says what is missing and how to get it.
pub(crate) fn find_rustc() -> Result<PathBuf, String> {
    let rustc = std::env::var_os("WASM_RUSTC").map_or_else(|| PathBuf::from("/usr/bin/rustc"), PathBuf::from);
    let install = format!(
        "install Debian's Rust compiler for wasm32 with `cargo xtask setup` (as root), or `sudo apt-get install {}`",
        DEBIAN_PACKAGES.join(" ")
    );
    if !rustc.is_file() {
        return Err(format!(
            "Rust plugins need {} (rustup's toolchains have no wasm32 standard library): {install}",
            rustc.display()
        ));
    }
    let sysroot = Command::new(&rustc).arg("--print=sysroot").output().ok().filter(|o| o.status.success());
    let has_std = sysroot.is_some_and(|o| {
        Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("lib/rustlib/wasm32-unknown-unknown/lib").is_dir()
    });
    if !has_std {
        return Err(format!("{} has no wasm32-unknown-unknown standard library: {install}", rustc.display()));
    }
    if crate::setup::resolve_program(Path::new(LINKER)).is_none() {
        return Err(format!("Rust plugins link with {LINKER}, which is not on PATH: {install}"));
    }
    Ok(rustc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_compiler_a_rust_plugin_fails_and_says_what_is_missing() {
        let scratch = tempfile::tempdir().unwrap();
        let sdk = crate::project_root().join(SDK_DIR);
        let missing = Err("Rust plugins need /usr/bin/rustc: install it".to_owned());
        let compiler = RustCompiler::new(missing, &sdk, scratch.path());
        let source = crate::project_root().join("plugins/hello_rust/hello_rust.rs");
        let err = format!("{:#}", compiler.compile(&source, &[], &scratch.path().join("out.wasm")).unwrap_err());
        assert!(err.contains("Rust plugins need /usr/bin/rustc"), "{err}");
    }

    #[test]
    fn the_argument_file_holds_the_documented_flags() {
        let args = std::fs::read_to_string(crate::project_root().join(SDK_DIR).join("wasm32.args")).unwrap();
        for flag in ["--target=wasm32-unknown-unknown", "-Cpanic=abort", "-Clink-arg=-zstack-size=65536"] {
            assert!(args.lines().any(|line| line == flag), "wasm32.args lacks {flag}");
        }
        assert!(args.lines().any(|line| line == format!("-Clinker={LINKER}")));
        let docs = std::fs::read_to_string(crate::project_root().join("docs/writing-plugins.md")).unwrap();
        for line in args.lines() {
            assert!(docs.contains(line), "docs/writing-plugins.md does not explain {line}");
        }
    }
}
