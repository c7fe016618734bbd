//! `cargo xtask build-plugins`: compiles every plugin under `plugins/` to wasm32 and checks the
//! result against the plugin ABI.
//!
//! # Layout
//!
//! - `plugins/<name>/<name>.c` or `plugins/<name>/<name>.cpp` is an example plugin. It is built
//!   to `target/plugins/<name>.wasm`, the folder the host serves, and must be ABI-compliant.
//!   Names are lowercase ASCII letters, digits, `-` and `_`, which are safe in a URL and a path.
//! - Everything else is a test fixture, built below `target/plugin-fixtures/`, a folder of its
//!   own: the host's local store reads a subfolder of the served folder as a plugin's version
//!   folder, so fixtures there would be listed as plugins named `invalid`, `faults` and `compat`
//!   (with a warning per file on every listing).
//! - `plugins/invalid/<rule>.c`, `.cpp` or `.wat` is a negative fixture: a plugin that breaks
//!   exactly one ABI rule. It is built to `target/plugin-fixtures/invalid/<rule>.wasm` and it
//!   must produce exactly the violation its `expect-violation` directive names. `.wat` is for
//!   rules C cannot break, such as having a start function; it is assembled with the `wat` crate
//!   instead of clang.
//! - `plugins/faults/<name>.c`, `.cpp` or `.wat` is a fault plugin: a hostile plugin (an
//!   infinite loop, a stack overflow, a trap, a module that does not validate...) for the host's
//!   tests, which load it with the host's ABI check switched off to prove the host survives it.
//!   It is built to `target/plugin-fixtures/faults/<name>.wasm`. Some faults break an ABI rule
//!   and some are compliant but misbehave at run time, so each states which with a directive
//!   (`expect-violation` or `expect-abi: compliant`), and the build fails unless the ABI check
//!   agrees: the suite cannot drift from what the host's tests assume.
//!
//! - `plugins/compat/<name>.c` or `.cpp` is a compatibility fixture: a plugin written to the
//!   seed's original contract **without** `wasm_plugin.h`, in one of the common ways of building
//!   such a plugin. It is compiled without the SDK's include folder, so it cannot include the
//!   header, and at `-O0`, `-O2` and `-Oz`, each into
//!   `target/plugin-fixtures/compat/<name>[-<variant>]-<level>.wasm` (`-o0`, `-o2`, `-oz`). Each
//!   must pass the ABI check as v1 with exactly the `missing-abi-version` warning (so none may
//!   declare a version); the host's tests serve them.
//!
//! `invalid`, `faults` and `compat` are therefore not available as example names.
//!
//! # Directives
//!
//! The comment lines at the very top of a source file (up to the first line that is neither a
//! comment nor blank) may carry directives, one per line:
//!
//! ```text
//! // plugin-flags: -O1 -fno-inline
//! // expect-violation: float-instruction
//! ```
//!
//! - `plugin-flags:` extra clang arguments, split on whitespace (there is no quoting). They come
//!   after the default arguments, so they override them (`-O1` beats the default `-O2`). The
//!   directive may repeat; its arguments accumulate. `.wat` files cannot have it.
//! - `expect-violation:` the [`plugin_sdk::AbiViolation::code`] the fixture or fault must
//!   produce, and the only one it may produce (any number of times). Every fixture has exactly
//!   one, because a fixture without an assertion would test nothing.
//! - `expect-abi: compliant` (the only value): the fault plugin must pass the ABI check; it is
//!   hostile only at run time. Only faults may have it: an example is compliant by definition and
//!   a fixture must break a rule.
//! - `plugin-variant: <variant> [flags]` (compat plugins only; may repeat): build the plugin once
//!   more per variant, with these extra clang arguments, named `<name>-<variant>-<level>`. The
//!   variant name follows the rule for plugin names.
//!
//! Every fault has exactly one of the two expectations, since the host's tests rely on knowing
//! whether the host's own ABI check would have refused the plugin; examples have neither.
//!
//! `.wat` files write the comment as `;;` instead of `//`. A misspelt directive (any other
//! `plugin-…:` or `expect-…:`) is an error rather than silently ignored.
//!
//! # Compilation
//!
//! The `cc` crate assembles the clang command line, as it would in a build script: target
//! `wasm32-wasip1`, `-O2`, warnings as errors, and whatever `CFLAGS`/`CXXFLAGS` (or their
//! `_wasm32_wasip1` variants) say. On top of that come `-nostdlib -Wl,--no-entry` (a plugin is
//! a library with no libc and no `main`), `-I plugin-sdk/include`, `-fno-exceptions -fno-rtti`
//! for C++, and the file's `plugin-flags`. One clang call compiles and links each plugin.
//!
//! Each output is written under a temporary name in its final folder, checked, and only then
//! renamed into place, so a server reading `target/plugins/` never sees half a module or one
//! that failed its check; a plugin that fails also loses its previous output. An output newer
//! than its source, every header in `plugin-sdk/include` and the xtask binary itself (which holds
//! the compile flags) is up to date and not rebuilt, unless `--force` is given. The ABI check runs
//! on every output, rebuilt or not, so the verdict never depends on what happened to be rebuilt.

mod assemblyscript;
mod compiling;
mod directives;
mod discovery;
mod expectations;
#[cfg(test)]
mod native;
mod output;
mod rust;
mod zig;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, ensure};
use plugin_sdk::AbiReport;
use xshell::Shell;

pub(crate) use self::{
    assemblyscript::{PACKAGE as ASSEMBLYSCRIPT, find_asc, install_dir as asc_dir},
    compiling::Compiler,
    discovery::{Layout, Plugin, check_name, discover},
    rust::{DEBIAN_PACKAGES as RUST_DEBIAN_PACKAGES, find_rustc},
    zig::{ZIGLANG, find_zig, venv_dir as zig_venv_dir},
};
// Tests elsewhere pick plugins by what they are for.
use self::directives::Directives;
pub(crate) use self::discovery::Kind;
use crate::{PLUGIN_FIXTURE_DIR, PLUGIN_OUT_DIR, setup, step};

#[derive(Debug, Default, clap::Args)]
pub struct BuildPlugins {
    /// Rebuild every plugin, even those whose output is newer than their sources.
    #[arg(long)]
    pub force: bool,
}

impl BuildPlugins {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let clang = setup::wasm_clang(sh)?;
        let layout = Layout::in_project(&sh.current_dir());
        // cc writes its compiler-detection scratch files here; nothing in it is kept.
        let scratch = sh.create_temp_dir()?;
        let compiler = Compiler::new(&clang, &layout, scratch.path())?;
        let plugins = discover(&layout.plugins_dir)?;
        remove_fixtures_from_served_folder(&layout, &plugins)?;
        step(format!("building {} plugins into {PLUGIN_OUT_DIR} (fixtures into {PLUGIN_FIXTURE_DIR})", plugins.len()));

        let root = sh.current_dir();
        let shown = |path: &Path| path.strip_prefix(&root).unwrap_or(path).display().to_string();
        let width = plugins.iter().map(|p| shown(&layout.output(p)).len()).max().unwrap_or(0);
        let mut failures = String::new();
        let mut failed = 0;
        for plugin in &plugins {
            match build(&compiler, &layout, plugin, self.force) {
                Ok(built) => {
                    let action = if built.rebuilt { "built" } else { "up to date" };
                    println!("{action:>10}  {:<width$}  {}", shown(&built.output), built.verdict());
                }
                Err(err) => {
                    failed += 1;
                    println!("{:>10}  {:<width$}  (see below)", "FAILED", shown(&layout.output(plugin)));
                    write!(failures, "\n\n{}: {err:#}", shown(&plugin.source))?;
                }
            }
        }
        ensure!(failed == 0, "{failed} of {} plugins failed to build or check:{failures}", plugins.len());
        Ok(())
    }
}

/// Removes what earlier versions of this command built into the served folder (fixtures in
/// `target/plugins/{invalid,faults,compat}/`), so an existing checkout stops serving them too.
/// Only files this command would have written there are removed, and then their folder if that
/// left it empty: anything else in the served folder is someone's own.
fn remove_fixtures_from_served_folder(layout: &Layout, plugins: &[Plugin]) -> anyhow::Result<()> {
    let mut folders = std::collections::BTreeSet::new();
    for plugin in plugins.iter().filter(|p| p.kind != Kind::Example) {
        let old = layout.out_dir.join(format!("{}.wasm", plugin.name));
        output::remove_stale(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        folders.extend(old.parent().map(Path::to_path_buf));
    }
    for folder in folders {
        // Not empty (or not there): left as it is.
        let _ = fs::remove_dir(folder);
    }
    Ok(())
}

/// A plugin's output after [`build`], which met its expectation: where it is, whether this run
/// wrote it, and what the ABI check found.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) output: PathBuf,
    rebuilt: bool,
    pub(crate) report: AbiReport,
}

impl Built {
    /// The one-line verdict for the progress output.
    fn verdict(&self) -> String {
        expectations::verdict(&self.report)
    }
}

/// Builds one plugin into `layout.out_dir` or `layout.fixture_dir` (unless it is up to date) and checks the output
/// against the ABI and the plugin's expectation. An `Err` means the plugin failed the build.
pub(crate) fn build(compiler: &Compiler, layout: &Layout, plugin: &Plugin, force: bool) -> anyhow::Result<Built> {
    let text =
        fs::read_to_string(&plugin.source).with_context(|| format!("cannot read {}", plugin.source.display()))?;
    let directives = Directives::parse(&text, plugin.language)?;
    directives.check_allowed_for(plugin.kind)?;

    let output = layout.output(plugin);
    let rebuilt = force || !compiling::is_up_to_date(&output, &plugin.source, layout.sdk_dir(plugin.language))?;
    let (wasm, partial) = if rebuilt {
        let partial = output::partial_file(&output)?;
        compiling::compile(compiler, plugin, &directives, partial.path())?;
        let wasm = fs::read(partial.path()).with_context(|| format!("cannot read {}", partial.path().display()))?;
        (wasm, Some(partial))
    } else {
        (fs::read(&output).with_context(|| format!("cannot read {}", output.display()))?, None)
    };
    let report = plugin_sdk::check(&wasm);
    match expectations::verify(plugin.kind, directives.expected_violation(), &report) {
        Ok(()) => {
            if let Some(partial) = partial {
                output::persist(partial, &output)?;
            }
            Ok(Built { output, rebuilt, report })
        }
        Err(err) => {
            // A plugin that fails its check never reaches the output folder, and an older build
            // of it leaves: the host serves that folder, and the next run must not call it up to
            // date. (A new build that failed is dropped with `partial`.)
            match output::remove_stale(&output) {
                Ok(()) => Err(err),
                Err(io) => Err(err.context(format!("also cannot remove {}: {io}", output.display()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{
        directives::Expectation,
        discovery::{FAULT_DIR, FIXTURE_DIR},
        *,
    };
    use crate::test_support::Harness;

    #[test]
    fn every_example_builds_and_is_compliant() {
        let harness = Harness::new();
        let examples: Vec<_> = harness.plugins().into_iter().filter(|p| p.kind == Kind::Example).collect();
        let names: Vec<_> = examples.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "abi",
                "checksum",
                "csvsum",
                "hello",
                "hello_as",
                "hello_rust",
                "hello_zig",
                "primes",
                "redact",
                "sha256",
                "sha256_rust",
                "simple",
                "text",
                "text_as",
                "text_rust",
                "text_zig"
            ]
        );
        let mut v2 = String::new();
        for plugin in &examples {
            let built = harness.build(plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            assert!(built.report.is_compliant(), "{}:\n{}", plugin.name, built.report);
            assert_eq!(built.output, harness.out.path().join(format!("{}.wasm", plugin.name)));
            if built.report.v2.is_some() {
                writeln!(v2, "{}", built.report.render(&plugin.name)).unwrap();
            }
        }
        // What the host's tests and clients will rely on: each v2 example's buffers and functions.
        insta::assert_snapshot!("v2_examples", v2);
    }

    #[test]
    fn every_v2_example_passes_its_native_test() {
        let harness = Harness::new();
        let mut tested = Vec::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Example) {
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            // A plugin in another language is the port of a C one, and the host's tests hold it
            // to the C plugin's answers instead.
            if built.report.v2.is_none()
                || matches!(
                    plugin.language,
                    discovery::Language::Rust | discovery::Language::Zig | discovery::Language::AssemblyScript
                )
            {
                continue;
            }
            let test = native::test_source(&plugin)
                .unwrap_or_else(|| panic!("{}: a v2 example needs a native test of its logic", plugin.name));
            let scratch = tempfile::tempdir().unwrap();
            native::run(&test, &harness.layout, scratch.path()).unwrap_or_else(|err| panic!("{err:#}"));
            tested.push(plugin.name);
        }
        assert_eq!(tested, ["csvsum", "redact", "sha256", "text"]);
    }

    #[test]
    fn every_fixture_produces_exactly_its_expected_violation() {
        let harness = Harness::new();
        let mut expectations = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Fixture) {
            let text = fs::read_to_string(&plugin.source).unwrap();
            let Some(Expectation::Violation(expected)) = Directives::parse(&text, plugin.language).unwrap().expect
            else {
                panic!("{}: a fixture always names a violation", plugin.name)
            };
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            let codes: BTreeSet<_> = built.report.violations.iter().map(|v| v.kind.code()).collect();
            assert_eq!(codes, BTreeSet::from([expected.as_str()]), "{}:\n{}", plugin.name, built.report);
            // Fixtures land in the fixture folder, never in the served one.
            assert_eq!(
                built.output,
                harness.fixtures.path().join(FIXTURE_DIR).join(format!("{}.wasm", file_stem(&plugin.source)))
            );
            writeln!(expectations, "{} -> {expected}", plugin.name).unwrap();
        }
        // The list of fixtures is part of the contract with the host's tests: adding or
        // renaming one should show up in review.
        insta::assert_snapshot!(expectations);
    }

    #[test]
    fn every_fault_builds_and_meets_its_expectation() {
        let harness = Harness::new();
        let mut expectations = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Fault) {
            let text = fs::read_to_string(&plugin.source).unwrap();
            let expected = Directives::parse(&text, plugin.language).unwrap().expect.unwrap();
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            let codes: BTreeSet<_> = built.report.violations.iter().map(|v| v.kind.code()).collect();
            let wanted = match &expected {
                Expectation::Compliant => BTreeSet::new(),
                Expectation::Violation(code) => BTreeSet::from([code.as_str()]),
            };
            assert_eq!(codes, wanted, "{}:\n{}", plugin.name, built.report);
            // Faults land in the fixture folder, never where the host serves plugins from.
            assert_eq!(
                built.output,
                harness.fixtures.path().join(FAULT_DIR).join(format!("{}.wasm", file_stem(&plugin.source)))
            );
            writeln!(expectations, "{} -> {expected}", plugin.name).unwrap();
        }
        // The host's tests load these by name and assume these verdicts: a change shows up here.
        insta::assert_snapshot!(expectations);
    }

    #[test]
    fn every_compat_fixture_builds_at_every_level_as_an_undeclared_v1_plugin() {
        let harness = Harness::new();
        let mut builds = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Compat) {
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            assert!(built.report.is_compliant(), "{}:\n{}", plugin.name, built.report);
            assert_eq!((built.report.declared_abi_version, built.report.abi_version), (None, Some(1)));
            assert_eq!(built.output, harness.fixtures.path().join(format!("{}.wasm", plugin.name)));
            writeln!(builds, "{} <- {} {}", plugin.name, file_stem(&plugin.source), plugin.build_flags.join(" "))
                .unwrap();
        }
        // The host's tests serve every one of these: a new build style shows up here.
        insta::assert_snapshot!(builds);
    }

    fn file_stem(path: &Path) -> &str {
        path.file_stem().unwrap().to_str().unwrap()
    }
}
