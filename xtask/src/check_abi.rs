//! `cargo xtask check-abi`: checks compiled plugins against the plugin ABI and reports every
//! violation, for people (`--format human`, the default) or for tools (`--format json`).
//!
//! Without paths it checks the plugins the host serves, `target/plugins/*.wasm` (not the
//! negative fixtures in `target/plugins/invalid/`). A folder given as a path stands for the
//! `*.wasm` files directly inside it. The command fails if any file breaks the ABI or cannot be
//! read, so CI can run it as is.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, ensure};
use plugin_sdk::AbiReport;
use serde_json::json;
use xshell::Shell;

use crate::PLUGIN_OUT_DIR;

#[derive(Debug, clap::Args)]
pub struct CheckAbi {
    /// `.wasm` files, or folders whose `*.wasm` files to check [default: target/plugins].
    paths: Vec<PathBuf>,
    /// How to print the results: a readable report, or one JSON document.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}

impl CheckAbi {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let targets = if self.paths.is_empty() {
            let served = sh.current_dir().join(PLUGIN_OUT_DIR);
            ensure!(served.is_dir(), "{PLUGIN_OUT_DIR} does not exist: run `cargo xtask build-plugins` first");
            wasm_files_in(&served, Path::new(PLUGIN_OUT_DIR))
        } else {
            // Paths from the command line are relative to where the user ran cargo, which is
            // still the process's working directory (only the shell moved to the project root).
            self.paths.iter().flat_map(|path| expand(path)).collect()
        };
        let checks: Vec<FileCheck> = targets.into_iter().map(FileCheck::run).collect();
        match self.format {
            Format::Human => print!("{}", render_human(&checks)),
            Format::Json => println!("{}", serde_json::to_string_pretty(&render_json(&checks))?),
        }
        let failed = checks.iter().filter(|check| !check.passed()).count();
        ensure!(failed == 0, "{failed} of {} failed the ABI check", file_count(checks.len()));
        Ok(())
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

    fn passed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(AbiReport::is_compliant)
    }
}

/// Each file's report under its name, a blank line between files, then a summary line.
pub(crate) fn render_human(checks: &[FileCheck]) -> String {
    let mut out = String::new();
    for check in checks {
        let text = match &check.outcome {
            Ok(report) => report.render(&check.shown),
            Err(problem) => format!("{}: error: {problem}", check.shown),
        };
        let _ = writeln!(out, "{text}\n");
    }
    let (compliant, violating, unreadable) = tally(checks);
    let _ = writeln!(
        out,
        "checked {}: {compliant} compliant, {violating} with violations, {unreadable} unreadable",
        file_count(checks.len())
    );
    out
}

/// One document: `files` holds an entry per file, which is its `path` plus either the report's
/// fields (`abi_version`, `compliant`, `violations`) or `compliant: false` and an `error`;
/// `summary` holds the counts of the human summary line.
pub(crate) fn render_json(checks: &[FileCheck]) -> serde_json::Value {
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
    let (compliant, violating, unreadable) = tally(checks);
    json!({
        "files": files,
        "summary": { "files": checks.len(), "compliant": compliant, "with_violations": violating, "unreadable": unreadable },
    })
}

fn file_count(count: usize) -> String {
    if count == 1 { "1 file".to_owned() } else { format!("{count} files") }
}

fn tally(checks: &[FileCheck]) -> (usize, usize, usize) {
    let compliant = checks.iter().filter(|c| c.passed()).count();
    let unreadable = checks.iter().filter(|c| c.outcome.is_err()).count();
    (compliant, checks.len() - compliant - unreadable, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_plugins::tests::{Harness, project_shell};

    /// Builds every negative fixture into a temporary folder and checks them as
    /// `check-abi target/plugins/invalid` would, naming files as it would.
    fn checked_fixtures() -> Vec<FileCheck> {
        let harness = Harness::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.fixture) {
            harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
        }
        let shown = Path::new(PLUGIN_OUT_DIR).join("invalid");
        wasm_files_in(&harness.out.path().join("invalid"), &shown).into_iter().map(FileCheck::run).collect()
    }

    #[test]
    fn human_report_over_the_fixtures() {
        insta::assert_snapshot!(render_human(&checked_fixtures()));
    }

    #[test]
    fn json_report_over_the_fixtures() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&render_json(&checked_fixtures())).unwrap());
    }

    #[test]
    fn compliant_plugins_pass_and_the_served_folder_excludes_fixtures() {
        let harness = Harness::new();
        for plugin in harness.plugins() {
            harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
        }
        let out = harness.out.path().to_str().unwrap().to_owned();
        // The default target list: only the examples, not what is in `invalid/`.
        let served = wasm_files_in(harness.out.path(), Path::new(PLUGIN_OUT_DIR));
        let shown: Vec<_> = served.iter().map(|t| t.shown.as_str()).collect();
        assert_eq!(
            shown,
            ["abi", "checksum", "hello", "primes", "simple"].map(|name| format!("{PLUGIN_OUT_DIR}/{name}.wasm"))
        );
        let command = CheckAbi { paths: vec![out.into()], format: Format::Human };
        command.run(&project_shell()).expect("every example is compliant");
    }

    #[test]
    fn violations_and_unreadable_files_fail_the_command() {
        let harness = Harness::new();
        let fixture = harness.plugins().into_iter().find(|p| p.name == "invalid/float").unwrap();
        let built = harness.build(&fixture).unwrap();
        let command = CheckAbi { paths: vec![built.output], format: Format::Json };
        let err = command.run(&project_shell()).unwrap_err();
        assert_eq!(err.to_string(), "1 of 1 file failed the ABI check");

        let missing = harness.out.path().join("missing.wasm");
        let check = FileCheck::run(expand(&missing).remove(0));
        let problem = check.outcome.as_ref().unwrap_err();
        assert!(problem.starts_with("cannot read the file: "), "{problem}");
        let human = render_human(&[check]);
        assert!(human.starts_with(&format!("{}: error: cannot read the file", missing.display())), "{human}");
    }

    #[test]
    fn a_folder_without_plugins_is_an_error_not_an_empty_success() {
        let empty = tempfile::tempdir().unwrap();
        let checks: Vec<_> = expand(empty.path()).into_iter().map(FileCheck::run).collect();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].outcome.as_ref().unwrap_err(), "this folder holds no .wasm file");
        assert!(render_human(&checks).ends_with("checked 1 file: 0 compliant, 0 with violations, 1 unreadable\n"));
    }
}
