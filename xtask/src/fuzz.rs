//! `cargo xtask fuzz [TARGET] [--time S]`: long, coverage-guided runs of the fuzz targets in
//! `fuzz/` under AFL++ (through cargo-afl, which works on stable Rust), one target after the
//! other.
//!
//! Each run starts from the committed corpus (`fuzz/corpus/<target>/`) and writes AFL++'s
//! state to `target/fuzz/<target>/`; crashes and hangs it finds are copied to
//! `fuzz/crashes/<target>/`, the place to look after a run (and to commit a finding from, as a
//! regression fixture in `fuzz/regressions/` once it is fixed). `--update-corpus` replaces the
//! committed corpus with the run's queue, minimized by `afl-cmin`. The short, seeded runs in
//! `cargo xtask test` need none of this.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{setup::Setup, step};

/// The targets, as named in `fuzz/src/lib.rs` (`Target::name`) and `fuzz/Cargo.toml`.
const TARGETS: [&str; 5] = ["checker_bytes", "checker_smith", "worker_frame", "run_request", "accepted_harmless"];

#[derive(Debug, clap::Args)]
pub struct Fuzz {
    /// The target to run (default: all of them, one after the other).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    target: Option<String>,
    /// Seconds to run each target.
    #[arg(long, default_value_t = 1800)]
    time: u64,
    /// Replace the committed corpus with the run's queue, minimized by afl-cmin.
    #[arg(long)]
    update_corpus: bool,
}

impl Fuzz {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // WasmEdge (the runtime targets link it), then AFL++.
        Setup::for_running().run(sh)?;
        ensure_cargo_afl(sh)?;
        step("building the fuzz targets with AFL++ instrumentation (release)");
        cmd!(sh, "cargo afl build --release --package fuzz --features afl --bins").run()?;
        let targets: Vec<&str> = match &self.target {
            Some(target) => vec![target.as_str()],
            None => TARGETS.to_vec(),
        };
        let target_dir = target_dir(sh);
        for target in targets {
            let binary = target_dir.join("release").join(target);
            let corpus = sh.current_dir().join("fuzz/corpus").join(target);
            let out = target_dir.join("fuzz").join(target);
            run_target(sh, target, &binary, &corpus, &out, self.time)?;
            collect_findings(sh, target, &out)?;
            if self.update_corpus {
                minimize_corpus(sh, target, &binary, &corpus, &out)?;
            }
        }
        Ok(())
    }
}

/// Installs cargo-afl (which builds its own AFL++ and the LLVM runtime for this rustc) if it
/// is missing. Only this command needs it.
fn ensure_cargo_afl(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "cargo afl --version").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
        return Ok(());
    }
    step("installing cargo-afl (AFL++ for Rust, stable toolchain) from crates.io");
    cmd!(sh, "cargo install cargo-afl --locked").run()?;
    // `cargo install` builds AFL++ and its runtime for the current rustc; after a toolchain
    // update, cargo-afl asks for `config --build --force`, which this runs if needed.
    if cmd!(sh, "cargo afl config --build").quiet().ignore_stderr().run().is_err() {
        cmd!(sh, "cargo afl config --build --force").run()?;
    }
    Ok(())
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` if set, else `target/`.
fn target_dir(sh: &Shell) -> PathBuf {
    sh.var_os("CARGO_TARGET_DIR").map_or_else(|| sh.current_dir().join("target"), PathBuf::from)
}

fn run_target(sh: &Shell, target: &str, binary: &Path, corpus: &Path, out: &Path, seconds: u64) -> anyhow::Result<()> {
    let files = fs::read_dir(corpus).map(|entries| entries.count()).unwrap_or(0);
    if files == 0 {
        bail!("{} is empty: AFL++ needs at least one input to start from", corpus.display());
    }
    step(format!("fuzzing {target} for {seconds} s from {} ({files} inputs) into {}", corpus.display(), out.display()));
    fs::create_dir_all(out)?;
    let (seconds, binary) = (seconds.to_string(), binary.to_owned());
    // The runtime targets compile each accepted module ahead of time (tens of milliseconds),
    // so the per-input timeout is generous; a hang past it is a finding. WasmEdge reserves
    // gigabytes of address space per linear memory, so AFL++'s memory limit is off (`-m none`).
    let timeout = if target == "accepted_harmless" { "5000" } else { "1000" };
    let _env = [
        // No terminal: plain status lines instead of the interactive screen.
        sh.push_env("AFL_NO_UI", "1"),
        // Containers and CI machines cannot change the CPU governor or the core pattern.
        sh.push_env("AFL_SKIP_CPUFREQ", "1"),
        sh.push_env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1"),
        // A run that was interrupted continues where it stopped.
        sh.push_env("AFL_AUTORESUME", "1"),
    ];
    cmd!(sh, "cargo afl fuzz -i {corpus} -o {out} -V {seconds} -t {timeout} -m none -- {binary}").run()?;
    print_stats(target, &out.join("default/fuzzer_stats"))
}

/// The figures worth reporting from AFL++'s `fuzzer_stats`.
fn print_stats(target: &str, stats: &Path) -> anyhow::Result<()> {
    let text = fs::read_to_string(stats).with_context(|| format!("reading {}", stats.display()))?;
    let wanted = [
        "run_time",
        "execs_done",
        "execs_per_sec",
        "corpus_count",
        "edges_found",
        "total_edges",
        "bitmap_cvg",
        "saved_crashes",
        "saved_hangs",
    ];
    let figures: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim(), value.trim()))
        .filter(|(key, _)| wanted.contains(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    step(format!("{target}: {}", figures.join(" ")));
    Ok(())
}

/// Copies what AFL++ saved as crashes and hangs to `fuzz/crashes/<target>/`.
fn collect_findings(sh: &Shell, target: &str, out: &Path) -> anyhow::Result<()> {
    let destination = sh.current_dir().join("fuzz/crashes").join(target);
    let mut found = 0;
    for kind in ["crashes", "hangs"] {
        let Ok(entries) = fs::read_dir(out.join("default").join(kind)) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // AFL++ keeps a README next to the crashes it saves.
            if name.starts_with("README") {
                continue;
            }
            fs::create_dir_all(&destination)?;
            fs::copy(entry.path(), destination.join(format!("{kind}-{name}")))?;
            found += 1;
        }
    }
    if found > 0 {
        step(format!("{target}: {found} finding(s) copied to {}", destination.display()));
    }
    Ok(())
}

/// Replaces the committed corpus with the run's queue, minimized to the inputs that keep its
/// coverage.
fn minimize_corpus(sh: &Shell, target: &str, binary: &Path, corpus: &Path, out: &Path) -> anyhow::Result<()> {
    let queue = out.join("default/queue");
    let minimized = out.join("cmin");
    if minimized.exists() {
        fs::remove_dir_all(&minimized)?;
    }
    step(format!("minimizing {target}'s queue into {}", corpus.display()));
    let _env = sh.push_env("AFL_SKIP_BIN_CHECK", "1");
    // afl-cmin runs the first `afl-showmap` on PATH; a distribution's older AFL++ (Debian 12
    // has 4.04c) lacks options it passes, so cargo-afl's own tools go first.
    let _path = afl_bin_dir().map(|dir| {
        let path = std::env::join_paths(
            std::iter::once(dir).chain(std::env::split_paths(&sh.var("PATH").unwrap_or_default())),
        );
        sh.push_env("PATH", path.unwrap_or_default())
    });
    cmd!(sh, "cargo afl cmin -i {queue} -o {minimized} -m none -t 5000 -- {binary}").run()?;
    // afl-cmin can come back empty (it found no coverage in the traces it took): keep the
    // committed corpus then, rather than replace it with nothing.
    let kept = fs::read_dir(&minimized).map(|entries| entries.count()).unwrap_or(0);
    if kept == 0 {
        bail!("afl-cmin kept no input of {target}'s queue; {} is left as it was", corpus.display());
    }
    fs::remove_dir_all(corpus)?;
    fs::create_dir_all(corpus)?;
    for entry in fs::read_dir(&minimized)?.flatten() {
        fs::copy(entry.path(), corpus.join(entry.file_name()))?;
    }
    Ok(())
}

/// Where cargo-afl keeps the AFL++ it built (`~/.local/share/afl.rs/rustc-<version>/afl.rs-<version>/afl/bin`,
/// or under `XDG_DATA_HOME`), if there is one.
fn afl_bin_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))?;
    let mut found: Vec<PathBuf> = fs::read_dir(data.join("afl.rs"))
        .ok()?
        .flatten()
        .flat_map(|toolchain| fs::read_dir(toolchain.path()).into_iter().flatten().flatten())
        .map(|version| version.path().join("afl/bin"))
        .filter(|bin| bin.join("afl-showmap").exists())
        .collect();
    // The newest build last: cargo-afl names its folders by rustc and its own version.
    found.sort();
    found.pop()
}
