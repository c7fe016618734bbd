//! `cargo xtask check-abi`: checks compiled plugins against the plugin ABI and reports every
//! violation, for people (`--format human`, the default) or for tools (`--format json`).
//!
//! Without paths it checks the plugins the host serves, `target/plugins/*.wasm` (not the
//! test fixtures in `target/plugin-fixtures/`). A folder given as a path stands for the
//! `*.wasm` files directly inside it.
//!
//! It behaves like a linter: a report is its output, not an error. It exits 0 when every file
//! complies, warnings included (a plugin without an ABI version marker is a warning: it is
//! checked and run as v1), and 1, with no error chain or backtrace, when a file breaks the ABI
//! or cannot be read, or has warnings under `--deny-warnings`. With `--format json`, stdout
//! holds exactly one JSON document whatever happens (a bad command line included); anything
//! else goes to stderr.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context;
use plugin_sdk::AbiReport;
use serde_json::json;
use xshell::Shell;

#[cfg(test)]
use crate::PLUGIN_FIXTURE_DIR;
use crate::PLUGIN_OUT_DIR;

#[derive(Debug, clap::Args)]
pub struct CheckAbi {
    /// `.wasm` files, or folders whose `*.wasm` files to check [default: target/plugins].
    paths: Vec<PathBuf>,
    /// How to print the results: a readable report, or one JSON document.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Fail on warnings too, such as a plugin that does not declare its ABI version.
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// How a `check-abi` run ended, which decides its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every file passed.
    Passed,
    /// At least one file failed; the report says which and why.
    Failed,
}

impl CheckAbi {
    /// Checks, prints the report, and says whether every file passed. Problems with the command
    /// itself (no plugins built yet) are part of the report too: a linter has one output.
    pub fn run(self, sh: &Shell) -> Verdict {
        let targets = if self.paths.is_empty() {
            let served = sh.current_dir().join(PLUGIN_OUT_DIR);
            if !served.is_dir() {
                let problem = format!("{PLUGIN_OUT_DIR} does not exist: run `cargo xtask build-plugins` first");
                return self.format.usage_error(&problem);
            }
            wasm_files_in(&served, Path::new(PLUGIN_OUT_DIR))
        } else {
            // Paths from the command line are relative to where the user ran cargo, which is
            // still the process's working directory (only the shell moved to the project root).
            self.paths.iter().flat_map(|path| expand(path)).collect()
        };
        let checks: Vec<FileCheck> = targets.into_iter().map(FileCheck::run).collect();
        match self.format {
            Format::Human => print!("{}", render_human(&checks, self.deny_warnings)),
            Format::Json => println!("{:#}", render_json(&checks, self.deny_warnings)),
        }
        if checks.iter().all(|check| check.passed(self.deny_warnings)) { Verdict::Passed } else { Verdict::Failed }
    }
}

impl From<Verdict> for std::process::ExitCode {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Passed => std::process::ExitCode::SUCCESS,
            Verdict::Failed => std::process::ExitCode::FAILURE,
        }
    }
}

impl Format {
    /// Reports a problem with the command itself, in this format: a JSON document on stdout
    /// (so a tool reading it always gets one), or a line on stderr.
    #[expect(clippy::print_stderr, reason = "a command-line tool's diagnostics go to stderr")]
    pub fn usage_error(self, problem: &str) -> Verdict {
        match self {
            Format::Human => eprintln!("error: {problem}"),
            Format::Json => println!("{:#}", json!({ "error": problem, "files": [], "passed": false })),
        }
        Verdict::Failed
    }
}

/// A file to check: where it is, and how to name it in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub path: PathBuf,
    pub shown: String,
    /// Set when the path could not be turned into files to check, such as an empty folder.
    pub problem: Option<String>,
}

/// A command-line path: the path itself, or the `*.wasm` files in it if it is a folder.
fn expand(path: &Path) -> Vec<Target> {
    if path.is_dir() { wasm_files_in(path, path) } else { vec![Target::file(path.to_path_buf(), path)] }
}

impl Target {
    fn file(path: PathBuf, shown: &Path) -> Self {
        Self { path, shown: shown.display().to_string(), problem: None }
    }
}

/// The `*.wasm` files directly in `dir`, sorted, each shown as `shown_dir/<file>`. Folders and
/// files named otherwise (fixtures in `invalid/`, partial outputs being written) are skipped. A
/// folder that cannot be listed or has no `.wasm` file becomes one failing entry, because
/// checking nothing is more likely a mistake than a success.
pub(crate) fn wasm_files_in(dir: &Path, shown_dir: &Path) -> Vec<Target> {
    let listing =
        fs::read_dir(dir).and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>());
    let problem = |problem: String| {
        vec![Target { path: dir.to_path_buf(), shown: shown_dir.display().to_string(), problem: Some(problem) }]
    };
    let mut files = match listing {
        Ok(entries) => entries,
        Err(err) => return problem(format!("cannot list this folder: {err}")),
    };
    files.retain(|file| file.is_file() && file.extension().is_some_and(|ext| ext == "wasm"));
    files.sort();
    if files.is_empty() {
        return problem("this folder holds no .wasm file".to_owned());
    }
    files
        .into_iter()
        .map(|file| {
            let shown = shown_dir.join(file.file_name().expect("listed files have names"));
            Target::file(file, &shown)
        })
        .collect()
}

/// One file's outcome: its report, or why there is none.
#[derive(Debug)]
pub(crate) struct FileCheck {
    pub shown: String,
    pub outcome: Result<AbiReport, String>,
}

impl FileCheck {
    pub fn run(target: Target) -> Self {
        let outcome = match target.problem {
            Some(problem) => Err(problem),
            None => fs::read(&target.path)
                .context("cannot read the file")
                .map(|wasm| plugin_sdk::check(&wasm))
                .map_err(|err| format!("{err:#}")),
        };
        Self { shown: target.shown, outcome }
    }

    fn passed(&self, deny_warnings: bool) -> bool {
        self.outcome.as_ref().is_ok_and(|report| report.is_compliant() && !(deny_warnings && has_warnings(report)))
    }
}

fn has_warnings(report: &AbiReport) -> bool {
    !report.warnings.is_empty()
}

/// Each file's report under its name, a blank line between files, then a summary line.
pub(crate) fn render_human(checks: &[FileCheck], deny_warnings: bool) -> String {
    let mut out = String::new();
    for check in checks {
        let text = match &check.outcome {
            Ok(report) => report.render(&check.shown),
            Err(problem) => format!("{}: error: {problem}", check.shown),
        };
        let _ = writeln!(out, "{text}\n");
    }
    let tally = Tally::of(checks);
    let _ = write!(
        out,
        "checked {}: {} compliant, {} with violations, {} unreadable",
        file_count(checks.len()),
        tally.compliant,
        tally.violating,
        tally.unreadable
    );
    match (tally.with_warnings, deny_warnings) {
        (0, _) => {}
        (n, false) => {
            let _ = write!(out, "; {} with warnings (pass --deny-warnings to fail on them)", file_count(n));
        }
        (n, true) => {
            let _ = write!(out, "; {} with warnings, failing (--deny-warnings)", file_count(n));
        }
    }
    out.push('\n');
    out
}

/// One document: `files` holds an entry per file, which is its `path` plus either the report's
/// fields (`abi_version`, the version the file is checked and run as; `declared_abi_version`,
/// what its marker says, `null` without one; `compliant`; `violations`; `warnings`; and for a
/// compliant ABI v2 plugin `v2`, its buffers and functions) or
/// `compliant: false` and an `error`; `summary` holds the counts of the human summary line;
/// `passed` is the exit status as a boolean.
pub(crate) fn render_json(checks: &[FileCheck], deny_warnings: bool) -> serde_json::Value {
    let files: Vec<_> = checks
        .iter()
        .map(|check| {
            let mut entry = match &check.outcome {
                Ok(report) => serde_json::to_value(report).expect("a report always serializes"),
                Err(problem) => json!({ "compliant": false, "error": problem }),
            };
            entry["path"] = json!(check.shown);
            entry
        })
        .collect();
    let tally = Tally::of(checks);
    json!({
        "files": files,
        "summary": {
            "files": checks.len(),
            "compliant": tally.compliant,
            "with_violations": tally.violating,
            "unreadable": tally.unreadable,
            "with_warnings": tally.with_warnings,
        },
        "deny_warnings": deny_warnings,
        "passed": checks.iter().all(|check| check.passed(deny_warnings)),
    })
}

fn file_count(count: usize) -> String {
    if count == 1 { "1 file".to_owned() } else { format!("{count} files") }
}

/// How many files ended which way. `with_warnings` counts compliant files with warnings, which
/// also count as compliant.
struct Tally {
    compliant: usize,
    violating: usize,
    unreadable: usize,
    with_warnings: usize,
}

impl Tally {
    fn of(checks: &[FileCheck]) -> Self {
        let reports = || checks.iter().filter_map(|c| c.outcome.as_ref().ok());
        let compliant = reports().filter(|r| r.is_compliant()).count();
        let unreadable = checks.iter().filter(|c| c.outcome.is_err()).count();
        let with_warnings = reports().filter(|r| r.is_compliant() && has_warnings(r)).count();
        Tally { compliant, violating: checks.len() - compliant - unreadable, unreadable, with_warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        build_plugins::Kind,
        test_support::{Harness, project_shell},
    };

    /// Builds every negative fixture into a temporary folder and checks them as
    /// `check-abi target/plugin-fixtures/invalid` would, naming files as it would.
    fn checked_fixtures() -> Vec<FileCheck> {
        let harness = Harness::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Fixture) {
            harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
        }
        let shown = Path::new(PLUGIN_FIXTURE_DIR).join("invalid");
        wasm_files_in(&harness.fixtures.path().join("invalid"), &shown).into_iter().map(FileCheck::run).collect()
    }

    /// The compatibility fixtures at -O2, checked as `check-abi target/plugin-fixtures/compat` would.
    fn checked_compat_builds() -> Vec<FileCheck> {
        let harness = Harness::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Compat && p.name.ends_with("-o2")) {
            harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
        }
        let shown = Path::new(PLUGIN_FIXTURE_DIR).join("compat");
        wasm_files_in(&harness.fixtures.path().join("compat"), &shown).into_iter().map(FileCheck::run).collect()
    }

    #[test]
    fn human_report_over_the_fixtures() {
        insta::assert_snapshot!(render_human(&checked_fixtures(), false));
    }

    #[test]
    fn json_report_over_the_fixtures() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&render_json(&checked_fixtures(), false)).unwrap());
    }

    #[test]
    fn v2_plugins_show_their_buffers_and_functions() {
        let harness = Harness::new();
        let mut checks = Vec::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Example) {
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            let shown = Path::new(PLUGIN_OUT_DIR).join(format!("{}.wasm", plugin.name));
            let check = FileCheck::run(Target::file(built.output, &shown));
            if check.outcome.as_ref().is_ok_and(|report| report.v2.is_some()) {
                checks.push(check);
            }
        }
        assert_eq!(checks.len(), 8, "the four C examples, two Rust ports, text in Zig and in AssemblyScript");
        insta::assert_snapshot!("v2_human", render_human(&checks, true));
        let json = render_json(&checks, true);
        assert_eq!(json["passed"], json!(true));
        insta::assert_snapshot!("v2_json", serde_json::to_string_pretty(&json).unwrap());
    }

    #[test]
    fn plugins_without_a_marker_pass_with_a_warning_unless_warnings_are_denied() {
        let checks = checked_compat_builds();
        assert_eq!(checks.len(), 5, "one -O2 build per compat variant");
        assert!(checks.iter().all(|check| check.passed(false)));
        assert!(checks.iter().all(|check| !check.passed(true)));
        insta::assert_snapshot!("compat_human", render_human(&checks, false));
        let denied = render_human(&checks, true);
        assert!(denied.ends_with("5 files with warnings, failing (--deny-warnings)\n"), "{denied}");
        // JSON tells the declared version (none) from the version the file is checked as.
        let json = render_json(&checks, false);
        for file in json["files"].as_array().unwrap() {
            assert_eq!((&file["declared_abi_version"], &file["abi_version"]), (&json!(null), &json!(1)), "{file}");
            assert_eq!(file["compliant"], json!(true));
            assert_eq!(file["warnings"][0]["code"], json!("missing-abi-version"));
        }
        assert_eq!((&json["summary"]["with_warnings"], &json["passed"]), (&json!(5), &json!(true)));
        assert_eq!(render_json(&checks, true)["passed"], json!(false));
    }

    #[test]
    fn extra_exports_from_linker_flags_say_which_flag_to_drop() {
        let checks = checked_fixtures();
        let help = |name: &str| -> Vec<String> {
            let check = checks.iter().find(|c| c.shown.ends_with(&format!("/{name}.wasm"))).unwrap();
            check.outcome.as_ref().unwrap().violations.iter().map(|v| v.kind.help()).collect()
        };
        let export_all = help("export-all");
        assert!(
            !export_all.is_empty() && export_all.iter().all(|h| h.starts_with("drop `-Wl,--export-all`")),
            "{export_all:?}"
        );
        let export_dynamic = help("export-dynamic");
        assert_eq!(export_dynamic.len(), 2, "`helper` and `calls`: {export_dynamic:?}");
        assert!(export_dynamic.iter().all(|h| h.starts_with("drop `-Wl,--export-dynamic`")), "{export_dynamic:?}");
    }

    #[test]
    fn compliant_plugins_pass_and_the_served_folder_excludes_fixtures() {
        let harness = Harness::new();
        for plugin in harness.plugins() {
            harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
        }
        let out = harness.out.path().to_str().unwrap().to_owned();
        // The default target list: only the examples; fixtures went to a folder of their own.
        let served = wasm_files_in(harness.out.path(), Path::new(PLUGIN_OUT_DIR));
        let shown: Vec<_> = served.iter().map(|t| t.shown.as_str()).collect();
        assert_eq!(
            shown,
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
            .map(|name| format!("{PLUGIN_OUT_DIR}/{name}.wasm"))
        );
        // Nothing else either: a subfolder would be read by the host as a plugin's versions.
        let entries: Vec<_> = fs::read_dir(harness.out.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(entries.iter().all(|path| path.is_file() && path.extension() == Some("wasm".as_ref())), "{entries:?}");
        let command = CheckAbi { paths: vec![out.into()], format: Format::Human, deny_warnings: true };
        assert_eq!(command.run(&project_shell()), Verdict::Passed, "every example is compliant, without warnings");
    }

    #[test]
    fn violations_and_unreadable_files_fail_the_command() {
        let harness = Harness::new();
        let fixture = harness.plugins().into_iter().find(|p| p.name == "invalid/float").unwrap();
        let built = harness.build(&fixture).unwrap();
        let command = CheckAbi { paths: vec![built.output], format: Format::Json, deny_warnings: false };
        assert_eq!(command.run(&project_shell()), Verdict::Failed);

        let missing = harness.out.path().join("missing.wasm");
        let check = FileCheck::run(expand(&missing).remove(0));
        let problem = check.outcome.as_ref().unwrap_err();
        assert!(problem.starts_with("cannot read the file: "), "{problem}");
        let human = render_human(&[check], false);
        assert!(human.starts_with(&format!("{}: error: cannot read the file", missing.display())), "{human}");
    }

    #[test]
    fn a_folder_without_plugins_is_an_error_not_an_empty_success() {
        let empty = tempfile::tempdir().unwrap();
        let checks: Vec<_> = expand(empty.path()).into_iter().map(FileCheck::run).collect();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].outcome.as_ref().unwrap_err(), "this folder holds no .wasm file");
        assert!(
            render_human(&checks, false).ends_with("checked 1 file: 0 compliant, 0 with violations, 1 unreadable\n")
        );
    }
}
