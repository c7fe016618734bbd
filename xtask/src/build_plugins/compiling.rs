//! Turning a plugin's source into a module: the clang command line (assembled by `cc`), the
//! call to clang or the `wat` assembler, and whether an existing output is still up to date.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::command_line::CommandLine;

use super::{
    assemblyscript,
    directives::Directives,
    discovery::{Kind, Language, Layout, Plugin, sorted_entries},
    rust::{self, RustCompiler},
    zig,
};

/// The clang target: `wasm32-wasip1` is today's name for `wasm32-wasi`, the target the project's
/// design names. With `-nostdlib` and no imports allowed, nothing WASI-specific is used; the
/// triple mainly defines `__wasi__` for code that wants to know.
const TARGET: &str = "wasm32-wasip1";

/// A clang command line per language, assembled once by `cc` and reused for every plugin.
#[derive(Debug)]
pub(crate) struct Compiler {
    c: cc::Tool,
    cpp: cc::Tool,
    /// `plugin-sdk/include`, given to every plugin but the compatibility fixtures, which must
    /// build without it.
    include_dir: PathBuf,
    /// Rust plugins' compiler (which may be missing: then building one fails and says why).
    rust: RustCompiler,
    /// Zig plugins' compiler, the same way.
    zig: Result<PathBuf, String>,
    zig_sdk_dir: PathBuf,
    /// AssemblyScript plugins' compiler, the same way.
    asc: Result<PathBuf, String>,
    assemblyscript_sdk_dir: PathBuf,
    scratch: PathBuf,
}

impl Compiler {
    /// `scratch` is where `cc` may write while it inspects the compiler; it must outlive this call only.
    pub(crate) fn new(clang: &Path, layout: &Layout, scratch: &Path) -> anyhow::Result<Self> {
        let include_dir = &layout.include_dir;
        let tool = |cpp: bool| -> anyhow::Result<cc::Tool> {
            let mut build = cc::Build::new();
            // Outside a build script cargo provides no TARGET, HOST, OPT_LEVEL, DEBUG or OUT_DIR,
            // so every one of them is set here, and cargo metadata (meant for a build script's
            // stdout) is switched off.
            build
                .compiler(clang)
                .cpp(cpp)
                .target(TARGET)
                .host(&host_triple())
                .opt_level(2)
                .debug(false)
                .out_dir(scratch)
                .cargo_metadata(false)
                .warnings_into_errors(true)
                // A plugin is a library without libc or `main`: the host calls its exports.
                .flag("-nostdlib")
                .flag("-Wl,--no-entry");
            if cpp {
                // Both need runtime support (unwinding, type_info) that a plugin cannot link.
                build.flag("-fno-exceptions").flag("-fno-rtti");
            }
            build.try_get_compiler().with_context(|| format!("cannot set up {} for {TARGET}", clang.display()))
        };
        let rust = RustCompiler::new(rust::find_rustc(), &layout.rust_sdk_dir, scratch);
        Ok(Self {
            c: tool(false)?,
            cpp: tool(true)?,
            include_dir: include_dir.to_path_buf(),
            rust,
            zig: zig::find_zig(),
            zig_sdk_dir: layout.zig_sdk_dir.clone(),
            asc: assemblyscript::find_asc(),
            assemblyscript_sdk_dir: layout.assemblyscript_sdk_dir.clone(),
            scratch: scratch.to_path_buf(),
        })
    }

    fn command(&self, plugin: &Plugin) -> Command {
        let mut command = if plugin.language == Language::Cpp { self.cpp.to_command() } else { self.c.to_command() };
        if plugin.kind != Kind::Compat {
            command.arg("-I").arg(&self.include_dir);
        }
        command
    }
}

/// The triple of the machine running xtask. `cc` compares it with the target to know this is a
/// cross-compile (so it reads `TARGET_CFLAGS`, not `HOST_CFLAGS`); cargo only provides it to
/// build scripts, and only the architecture and OS matter here.
fn host_triple() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        "windows" => format!("{arch}-pc-windows-msvc"),
        os => format!("{arch}-unknown-{os}"),
    }
}

/// Whether `output` is newer than everything that went into it.
pub(super) fn is_up_to_date(output: &Path, source: &Path, sdk_dir: &Path) -> anyhow::Result<bool> {
    let Ok(built_at) = fs::metadata(output).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    let mut inputs = vec![source.to_path_buf()];
    inputs.extend(sorted_entries(sdk_dir)?);
    // The compile flags live in this binary: a rebuilt xtask may compile differently.
    inputs.extend(std::env::current_exe().ok());
    for input in inputs {
        let modified = fs::metadata(&input)
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot read the modification time of {}", input.display()))?;
        if modified > built_at {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Compiles (or assembles) `plugin` into `wasm`, a temporary file next to the output that the
/// caller moves into place once the result passed its check: one rename is atomic, so a server
/// never sees half a module.
pub(super) fn compile(
    compiler: &Compiler,
    plugin: &Plugin,
    directives: &Directives,
    wasm: &Path,
) -> anyhow::Result<()> {
    if plugin.language == Language::Wat {
        // `wat` only parses and encodes; it does not validate (no type checking of function
        // bodies), which faults/invalid-module.wat relies on to reach the host ill-typed.
        let module = wat::parse_file(&plugin.source).map_err(|err| anyhow::anyhow!("{err}"))?;
        fs::write(wasm, module).with_context(|| format!("cannot write {}", wasm.display()))?;
    } else if plugin.language == Language::Rust {
        compiler.rust.compile(&plugin.source, &directives.flags, wasm)?;
    } else if plugin.language == Language::AssemblyScript {
        assemblyscript::compile(
            &compiler.asc,
            &compiler.assemblyscript_sdk_dir,
            &plugin.source,
            &directives.flags,
            wasm,
        )?;
    } else if plugin.language == Language::Zig {
        zig::compile(&compiler.zig, &compiler.zig_sdk_dir, &plugin.source, &directives.flags, wasm, &compiler.scratch)?;
    } else {
        let mut command = compiler.command(plugin);
        command.args(&directives.flags).args(&plugin.build_flags).arg("-o").arg(wasm).arg(&plugin.source);
        let result = command.output().with_context(|| format!("cannot run {}", CommandLine(&command)))?;
        if !result.status.success() {
            // Clang's own diagnostics first, since they say what is wrong; then the command,
            // without the environment `cc` passes (see `CommandLine`).
            let diagnostics = String::from_utf8_lossy(&result.stderr);
            bail!("clang failed ({}):\n{}\ncommand: {}", result.status, diagnostics.trim_end(), CommandLine(&command));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{
        build_plugins::build,
        test_support::{COMPLIANT_C, Harness, scratch_plugin},
    };

    #[test]
    fn a_compat_fixture_cannot_include_the_header() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("compat/with-header.c", COMPLIANT_C);
        assert_eq!(plugin.name, "compat/with-header-o0");
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("clang failed") && err.contains("wasm_plugin.h"), "{err}");
    }

    /// A build that fails shows clang's error and the command, but nothing of the environment:
    /// this test runs itself again as a child process with a secret in its environment (so `cc`
    /// passes it on to clang as it would any variable), and the child prints the error of a
    /// plugin that fails to link as `main` would print it.
    #[test]
    fn a_failing_build_shows_the_linker_error_and_no_environment_values() {
        const SECRET_VAR: &str = "XTASK_TEST_SECRET";
        const SECRET: &str = "hunter2-must-not-be-logged";
        if std::env::var_os(SECRET_VAR).is_some() {
            let harness = Harness::new();
            let source = COMPLIANT_C
                .replace("return input;", "return undefined_helper(input);")
                .replace("#include <wasm_plugin.h>\n", "#include <wasm_plugin.h>\nint undefined_helper(int);\n");
            let (_dir, plugin) = scratch_plugin("unlinked/unlinked.c", &source);
            let err = harness.build(&plugin).unwrap_err();
            println!("Error: {err:?}");
            return;
        }
        let test = concat!(module_path!(), "::a_failing_build_shows_the_linker_error_and_no_environment_values");
        let test = test.split_once("::").unwrap().1;
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(SECRET_VAR, SECRET)
            .output()
            .unwrap();
        let output = format!("{}{}", String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
        assert!(child.status.success() && output.contains("1 passed"), "{output}");
        assert!(output.contains("clang failed"), "{output}");
        assert!(output.contains("undefined symbol: undefined_helper"), "the linker's own error: {output}");
        assert!(output.contains("command: ") && output.contains("unlinked.c"), "the command: {output}");
        assert!(!output.contains(SECRET), "the environment leaked: {output}");
        assert!(!output.contains(SECRET_VAR), "xtask did not set it, so it is not even named: {output}");
    }

    #[test]
    fn plugin_flags_reach_clang() {
        let harness = Harness::new();
        // An unknown warning flag is harmless, but -Werror (from cc) makes an unknown `-W`
        // option fatal, which proves the flag was passed.
        let source =
            format!("// expect-violation: float-instruction\n// plugin-flags: -Wno-such-warning-exists\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("invalid/flagged.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("clang failed") && err.contains("no-such-warning-exists"), "{err}");
    }

    #[test]
    fn a_second_build_reuses_up_to_date_outputs() {
        let mut harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("fresh/fresh.c", COMPLIANT_C);
        // A copy of the headers, whose modification time this test may change.
        let include = tempfile::tempdir().unwrap();
        for header in sorted_entries(&harness.layout.include_dir).unwrap() {
            fs::copy(&header, include.path().join(header.file_name().unwrap())).unwrap();
        }
        harness.layout.include_dir = include.path().to_path_buf();
        let header = include.path().join("wasm_plugin.h");
        // Moving an input's modification time into the future makes it newer than any output;
        // moving it back makes the output up to date again.
        let set_modified = |path: &Path, time: SystemTime| {
            let file = fs::File::options().write(true).open(path).unwrap();
            file.set_modified(time).unwrap();
        };
        let modified = |path: &Path| fs::metadata(path).unwrap().modified().unwrap();
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);

        assert!(harness.build(&plugin).unwrap().rebuilt);
        let again = harness.build(&plugin).unwrap();
        assert!(!again.rebuilt, "the output is newer than every input");
        assert!(again.report.is_compliant(), "an up-to-date output is still checked");
        let forced = build(&harness.compiler, &harness.layout, &plugin, true).unwrap();
        assert!(forced.rebuilt, "--force rebuilds anyway");

        for input in [&plugin.source, &header] {
            let before = modified(input);
            set_modified(input, future);
            assert!(harness.build(&plugin).unwrap().rebuilt, "{} is newer", input.display());
            set_modified(input, before);
            assert!(!harness.build(&plugin).unwrap().rebuilt);
        }

        // Only the output is left: partial files were renamed or removed.
        let files: Vec<_> = fs::read_dir(harness.out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["fresh.wasm"]);
    }
}
