//! `cargo xtask test`: every test in the workspace, from a fresh clone, in one command, after
//! the formatting and lint gates.

use xshell::{Shell, cmd};

use crate::{build_plugins::BuildPlugins, check_deploy::CheckDeploy, setup::Setup, step};

#[derive(Debug, clap::Args)]
pub struct Test {
    /// Extra arguments for the test runner (for example a test name filter), after `--`.
    #[arg(last = true)]
    runner_args: Vec<String>,
}

impl Test {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        Setup::everything().run(sh)?;
        // Host tests run the compiled example plugins from `target/plugins` and the fixtures
        // from `target/plugin-fixtures`.
        BuildPlugins::default().run(sh)?;
        // The same gates as the GitHub workflow, so that `.ci/run` (which runs this command)
        // refuses what it would refuse.
        step("checking formatting (cargo fmt --check)");
        cmd!(sh, "cargo fmt --all --check").run()?;
        step("linting (cargo clippy, warnings denied)");
        cmd!(sh, "cargo clippy --quiet --workspace --all-targets -- -D warnings").run()?;
        // The libraries' API documentation builds clean: a public item's doc that links to a
        // private one is a dead link for the reader of docs.rs.
        step("checking the libraries' documentation (cargo doc, warnings denied)");
        cmd!(sh, "cargo doc --quiet --no-deps -p plugin-host -p plugin-sdk -p host")
            .env("RUSTDOCFLAGS", "-D warnings")
            .run()?;
        // The container image definition and Kubernetes manifests, validated offline.
        CheckDeploy {}.run(sh)?;
        let runner_args = self.runner_args;
        // nextest runs each test in its own process, which isolates WasmEdge's process-wide
        // state (signal handlers for timeouts) between tests; plain `cargo test` also works.
        if cmd!(sh, "cargo nextest --version").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
            // nextest does not run doc tests; run them first so that the summary printed last
            // is the one that counts every other test.
            step("running doc tests");
            cmd!(sh, "cargo test --workspace --doc --quiet").run()?;
            step("running tests with cargo-nextest");
            cmd!(sh, "cargo nextest run --workspace --no-fail-fast {runner_args...}").run()?;
        } else {
            step("running tests with cargo test (install cargo-nextest for per-test isolation)");
            cmd!(sh, "cargo test --workspace --no-fail-fast {runner_args...}").run()?;
        }
        Ok(())
    }
}
