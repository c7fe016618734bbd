//! `cargo xtask run`: the main job in one command: set up, build the example plugins, serve.
//!
//! The host is built with optimisations: this is the command newcomers time and load-test, and a
//! debug build is several times slower (`--debug` asks for one anyway).

use xshell::{Shell, cmd};

use crate::{PLUGIN_OUT_DIR, build_plugins::BuildPlugins, setup::Setup, step};

#[derive(Debug, clap::Args)]
pub struct Run {
    /// Serve a debug build of the host instead of the optimised one (quicker to rebuild, much
    /// slower to run).
    #[arg(long)]
    debug: bool,
    /// Arguments passed to the host binary, after `--` (see `cargo run -p host -- --help`).
    #[arg(last = true)]
    host_args: Vec<String>,
}

impl Run {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        Setup {}.run(sh)?;
        BuildPlugins::default().run(sh)?;
        let profile = if self.debug { None } else { Some("--release") };
        step(format!(
            "starting the host, {} build (Ctrl-C to stop); plugins are read from {}",
            if self.debug { "debug" } else { "release" },
            plugin_source(sh, &self.host_args)
        ));
        // The binary has no default folder (it cannot know where it is installed): this
        // checkout's example plugins, unless the host's own settings name a folder.
        let mut host_args = self.host_args;
        if setting(&host_args, "--plugin-dir", "PLUGIN_DIR").is_none() {
            host_args.extend(["--plugin-dir".to_owned(), sh.current_dir().join(PLUGIN_OUT_DIR).display().to_string()]);
        }
        cmd!(sh, "cargo run --quiet {profile...} --package host -- {host_args...}").run()?;
        Ok(())
    }
}

/// One of the host's settings as the host will read it: the flag, else the environment variable.
fn setting(host_args: &[String], flag: &str, variable: &str) -> Option<String> {
    let inline = format!("{flag}=");
    host_args
        .iter()
        .enumerate()
        .find_map(|(i, arg)| match arg.strip_prefix(&inline) {
            Some(value) => Some(value.to_owned()),
            None if arg == flag => host_args.get(i + 1).cloned(),
            None => None,
        })
        .or_else(|| std::env::var(variable).ok())
}

/// Where the host will read plugins from, as its settings decide: a flag, else the environment
/// variable, else this checkout's `target/plugins`, which `run` passes.
fn plugin_source(sh: &Shell, host_args: &[String]) -> String {
    let setting = |flag: &str, variable: &str| setting(host_args, flag, variable);
    if setting("--plugin-store", "PLUGIN_STORE").as_deref() == Some("fluid") {
        let mount = setting("--fluid-mount-path", "FLUID_MOUNT_PATH").unwrap_or_else(|| "/mnt/fluid/plugins".into());
        return format!("the Fluid dataset mounted at {mount}");
    }
    match setting("--plugin-dir", "PLUGIN_DIR") {
        Some(dir) => dir,
        None => format!(
            "{} (the example plugins; `-- --plugin-dir DIR` serves another folder)",
            sh.current_dir().join(PLUGIN_OUT_DIR).display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_source_follows_the_host_flags() {
        let sh = Shell::new().unwrap();
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(plugin_source(&sh, &args(&["--plugin-dir", "/srv/plugins"])), "/srv/plugins");
        assert_eq!(plugin_source(&sh, &args(&["--listen=0.0.0.0:80", "--plugin-dir=/srv/p"])), "/srv/p");
        assert_eq!(
            plugin_source(&sh, &args(&["--plugin-store", "fluid", "--fluid-mount-path", "/mnt/x"])),
            "the Fluid dataset mounted at /mnt/x"
        );
        if std::env::var_os("PLUGIN_DIR").is_none() && std::env::var_os("PLUGIN_STORE").is_none() {
            assert!(plugin_source(&sh, &[]).contains("target/plugins (the example plugins"));
        }
    }
}
