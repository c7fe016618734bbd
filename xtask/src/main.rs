//! `cargo xtask`: the project's automation, written in Rust so it runs wherever cargo does.
//!
//! Every command works from a fresh clone: the ones that need a C toolchain or WasmEdge run
//! [`setup`] first, which finds or installs them (see BUILD.md). Each subcommand lives in its
//! own module with a `run(self, sh: &Shell)` entry point.

mod bench;
mod build_plugins;
mod check_abi;
mod check_deploy;
mod command_line;
mod fuzz;
mod http;
mod keygen;
mod new_plugin;
mod profile;
mod publish;
mod registry;
mod rootfs_smoke;
mod run;
mod setup;
mod test;
#[cfg(test)]
mod test_support;
mod tidy;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use xshell::Shell;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, check and run the WebAssembly plugin host")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find or install clang for wasm32, libclang, WasmEdge 0.17 and the test tools (idempotent).
    Setup(setup::Setup),
    /// Compile every plugin under `plugins/` to `target/plugins/` and check its ABI.
    BuildPlugins(build_plugins::BuildPlugins),
    /// Write a new plugin under `plugins/<name>/` that builds and runs as it is.
    NewPlugin(new_plugin::NewPlugin),
    /// Check compiled plugins against the plugin ABI (all of `target/plugins/` by default).
    CheckAbi(check_abi::CheckAbi),
    /// Set everything up, build the example plugins and start the server.
    Run(run::Run),
    /// Set everything up and run every test in the workspace.
    Test(test::Test),
    /// Run every benchmark (release build) and write BENCHMARKS.md and docs/benchmarks.svg.
    Bench(bench::Bench),
    /// Profile the release server under load (perf, software clock): flame graphs in docs/ and
    /// the cost breakdown per request in BENCHMARKS.md.
    Profile(profile::Profile),
    /// Validate the Containerfile and the Kubernetes manifests under `deploy/` offline.
    CheckDeploy(check_deploy::CheckDeploy),
    /// Publish a plugin version to an OCI registry (`<registry>/<prefix>`) or a folder (`dir:PATH`).
    Publish(publish::Publish),
    /// Write a new key pair for signing plugins (`<OUT>.key`, mode 0600, and `<OUT>.pub`).
    Keygen(keygen::Keygen),
    /// Run a private OCI registry on 127.0.0.1 for trying versions, until Ctrl-C.
    Registry(registry::RegistryCommand),
    /// Run the fuzz targets under AFL++ for a long time (`fuzz/`; installs cargo-afl if needed).
    Fuzz(fuzz::Fuzz),
    /// Build the container image's file system without a container daemon and run the host in it.
    RootfsSmoke(rootfs_smoke::RootfsSmoke),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return command_line_error(error),
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(error) => return failed(error.into()),
    };
    sh.change_dir(project_root());
    let result = match cli.command {
        Command::Setup(cmd) => cmd.run(&sh),
        Command::BuildPlugins(cmd) => cmd.run(&sh),
        Command::NewPlugin(cmd) => cmd.run(&sh),
        // A linter's findings are its output, not an error: no error chain, no backtrace.
        Command::CheckAbi(cmd) => return cmd.run(&sh).into(),
        Command::Run(cmd) => cmd.run(&sh),
        Command::Test(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Profile(cmd) => cmd.run(&sh),
        Command::CheckDeploy(cmd) => cmd.run(&sh),
        Command::Fuzz(cmd) => cmd.run(&sh),
        Command::RootfsSmoke(cmd) => cmd.run(&sh),
        Command::Publish(cmd) => cmd.run(&sh),
        Command::Registry(cmd) => cmd.run(&sh),
        Command::Keygen(cmd) => cmd.run(&sh),
    };
    result.map_or_else(failed, |()| ExitCode::SUCCESS)
}

/// A command that failed: the error and its causes, one a line. Never a backtrace, even with
/// `RUST_BACKTRACE=1` (which CI and many shells set): these are ordinary failures (a refused
/// publish, a plugin that does not compile), and a backtrace of xtask itself would bury the one
/// useful line.
#[expect(clippy::print_stderr, reason = "the command's own error report")]
fn failed(error: anyhow::Error) -> ExitCode {
    eprintln!("Error: {error}");
    let causes: Vec<_> = error.chain().skip(1).collect();
    if !causes.is_empty() {
        eprintln!("\nCaused by:");
        for cause in causes {
            eprintln!("    {cause}");
        }
    }
    ExitCode::FAILURE
}

/// A command line clap refused (or `--help`). `check-abi --format json` promises one JSON
/// document on stdout whatever happens, so it gets one here too; the message goes to stderr.
fn command_line_error(error: clap::Error) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let wants_json = args.iter().any(|a| a == "check-abi")
        && (args.iter().any(|a| a == "--format=json") || args.windows(2).any(|w| w[0] == "--format" && w[1] == "json"));
    if wants_json && error.use_stderr() {
        let _ = error.print();
        let text = error.render().to_string();
        let first_line = text.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ");
        return check_abi::Format::Json.usage_error(first_line).into();
    }
    let _ = error.print();
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
}

/// The workspace root: the parent of this crate's manifest directory. `cargo run` names that
/// directory at run time, which is the checkout `cargo xtask` was typed in even when the binary
/// was built from another clone sharing the target folder (cargo reuses it when the sources
/// match); the path compiled in is for running the binary directly.
fn project_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Where `build-plugins` writes the example plugins; the host serves this folder by default.
const PLUGIN_OUT_DIR: &str = "target/plugins";

/// Where `build-plugins` writes the test fixtures (`invalid/`, `faults/`, `compat/`): a folder
/// of their own, because the local store would read a subfolder of the served folder as the
/// version folder of a plugin named `invalid`, and warn about every file in it on every listing.
const PLUGIN_FIXTURE_DIR: &str = "target/plugin-fixtures";

/// Prints a progress line that stands out from cargo's own output.
fn step(message: impl std::fmt::Display) {
    println!("==> {message}");
}
