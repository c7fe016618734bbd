//! `cargo xtask run`: the main job in one command: set up, build the example plugins, serve.

use xshell::{Shell, cmd};

use crate::{build_plugins::BuildPlugins, setup::Setup, step};

#[derive(Debug, clap::Args)]
pub struct Run {
    /// Build the host with optimisations (recommended for anything but development).
    #[arg(long)]
    release: bool,
    /// Arguments passed to the host binary, after `--` (see `cargo run -p host -- --help`).
    #[arg(last = true)]
    host_args: Vec<String>,
}

impl Run {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        Setup {}.run(sh)?;
        BuildPlugins::default().run(sh)?;
        let release = self.release.then_some("--release");
        let host_args = self.host_args;
        step("starting the host (Ctrl-C to stop)");
        cmd!(sh, "cargo run --quiet {release...} --package host -- {host_args...}").run()?;
        Ok(())
    }
}
