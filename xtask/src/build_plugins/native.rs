//! Native tests of v2 example plugins: `plugins/<name>/<name>.test.c` includes the plugin's
//! source and checks its functions against known vectors, compiled for the build machine with the
//! system C compiler and run there. No WebAssembly engine is involved, so a plugin's logic is
//! proven here, in the crate that builds it, independently of the host.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use super::discovery::{Layout, Plugin};

/// The native test next to an example's source, if there is one.
pub(super) fn test_source(plugin: &Plugin) -> Option<PathBuf> {
    let test = plugin.source.with_file_name(format!("{}.test.c", plugin.name));
    test.is_file().then_some(test)
}

/// Compiles `test` into `scratch` and runs it. It is compiled with AddressSanitizer and
/// UndefinedBehaviorSanitizer where the compiler has them, so that a read past a buffer fails
/// the test instead of passing by luck; a compiler without them still runs the checks.
pub(super) fn run(test: &Path, layout: &Layout, scratch: &Path) -> anyhow::Result<()> {
    let binary = scratch.join("native-test");
    let compile = |sanitize: bool| -> anyhow::Result<std::process::Output> {
        let mut command = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
        command.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"]);
        if sanitize {
            command.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
        }
        command.arg("-I").arg(&layout.include_dir).arg("-I").arg(&layout.plugins_dir);
        command.arg("-o").arg(&binary).arg(test);
        command.output().with_context(|| format!("cannot run {}", crate::command_line::CommandLine(&command)))
    };
    let mut compiled = compile(true)?;
    if !compiled.status.success() {
        compiled = compile(false)?;
    }
    if !compiled.status.success() {
        bail!("{}: the native test does not compile:\n{}", test.display(), String::from_utf8_lossy(&compiled.stderr));
    }
    let ran = Command::new(&binary).output().with_context(|| format!("cannot run {}", binary.display()))?;
    if !ran.status.success() {
        bail!(
            "{}: the native test failed ({}):\n{}{}",
            test.display(),
            ran.status,
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
    }
    Ok(())
}
