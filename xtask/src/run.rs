//! `cargo xtask run`: the main job in one command: set up, build the example plugins, serve.
//!
//! It installs only what building and running the host needs (clang, libclang, WasmEdge; see
//! [`Setup::for_running`]), not the tools only the tests use. The host is built with
//! optimisations: this is the command newcomers time and load-test, and a debug build is several
//! times slower (`--debug` asks for one anyway).

use std::path::Path;

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
        Setup::for_running().run(sh)?;
        BuildPlugins::default().run(sh)?;
        let profile = if self.debug { None } else { Some("--release") };
        let source = plugin_source(&sh.current_dir(), &self.host_args, |name| std::env::var(name).ok());
        step(format!(
            "starting the host, {} build (Ctrl-C to stop); plugins come from {source}",
            if self.debug { "debug" } else { "release" },
        ));
        // The binary has no default folder (it cannot know where it is installed): this
        // checkout's example plugins, unless the host's own settings name a folder.
        let mut host_args = self.host_args;
        let plugin_dir = HostSettings { args: &host_args, env: |name: &str| std::env::var(name).ok() }
            .get("--plugin-dir", "PLUGIN_DIR");
        if plugin_dir.is_none() {
            host_args.extend(["--plugin-dir".to_owned(), sh.current_dir().join(PLUGIN_OUT_DIR).display().to_string()]);
        }
        cmd!(sh, "cargo run --quiet {profile...} --package host -- {host_args...}").run()?;
        Ok(())
    }
}

/// The host's settings that say where plugins come from, read as the host reads them (see
/// host/src/config.rs): a flag (`--flag VALUE` or `--flag=VALUE`) wins over its environment
/// variable. xtask cannot use the host's own parser: it must build before WasmEdge exists.
struct HostSettings<'a, E> {
    args: &'a [String],
    env: E,
}

impl<E: Fn(&str) -> Option<String>> HostSettings<'_, E> {
    /// The value of `flag` (empty when it is given without one), else of `variable`.
    fn get(&self, flag: &str, variable: &str) -> Option<String> {
        let inline = format!("{flag}=");
        let from_flag = self.args.iter().enumerate().rev().find_map(|(i, arg)| match arg.strip_prefix(&inline) {
            Some(value) => Some(value.to_owned()),
            None if arg == flag => {
                Some(self.args.get(i + 1).filter(|next| !next.starts_with("--")).cloned().unwrap_or_default())
            }
            None => None,
        });
        from_flag.or_else(|| (self.env)(variable))
    }
}

/// Where the host will read plugins from, in the words of the host's own `describe()`: the local
/// folder, the Fluid mount, or the OCI repository, with the host's defaults.
fn plugin_source(root: &Path, host_args: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    let settings = HostSettings { args: host_args, env };
    match settings.get("--plugin-store", "PLUGIN_STORE").as_deref().unwrap_or("local") {
        "fluid" => {
            let mount = settings.get("--fluid-mount-path", "FLUID_MOUNT_PATH");
            format!("the Fluid dataset mounted at {}", mount.as_deref().unwrap_or("/mnt/fluid/plugins"))
        }
        "oci" => {
            let insecure = matches!(settings.get("--oci-insecure", "OCI_INSECURE").as_deref(), Some("" | "true"));
            let scheme = if insecure { "http" } else { "https" };
            match settings.get("--oci-repository", "OCI_REPOSITORY") {
                Some(repository) => format!("the OCI registry {scheme}://{repository}"),
                None => "an OCI registry, but --oci-repository (OCI_REPOSITORY) is not set: the host will refuse to \
                         start"
                    .to_owned(),
            }
        }
        // `local`, or a value the host will refuse with its own message.
        _ => match settings.get("--plugin-dir", "PLUGIN_DIR") {
            Some(dir) => format!("the local directory {dir}"),
            None => format!(
                "the local directory {} (the example plugins; `-- --plugin-dir DIR` serves another folder)",
                root.join(PLUGIN_OUT_DIR).display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_plugin_source_follows_the_host_flags_and_environment() {
        let root = Path::new("/src/project");
        let source = |args: &[&str], env: &[(&str, &str)]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            plugin_source(root, &args, |name| env.get(name).cloned())
        };
        assert_eq!(
            source(&[], &[]),
            "the local directory /src/project/target/plugins (the example plugins; `-- --plugin-dir DIR` serves \
             another folder)"
        );
        assert_eq!(source(&["--plugin-dir", "/srv/plugins"], &[]), "the local directory /srv/plugins");
        assert_eq!(source(&["--listen=0.0.0.0:80", "--plugin-dir=/srv/p"], &[]), "the local directory /srv/p");
        assert_eq!(source(&[], &[("PLUGIN_DIR", "/env/p")]), "the local directory /env/p");
        // A flag wins over its variable, as in the host.
        assert_eq!(source(&["--plugin-dir", "/flag/p"], &[("PLUGIN_DIR", "/env/p")]), "the local directory /flag/p");
        assert_eq!(
            source(&["--plugin-store", "fluid", "--fluid-mount-path", "/mnt/x"], &[]),
            "the Fluid dataset mounted at /mnt/x"
        );
        assert_eq!(source(&[], &[("PLUGIN_STORE", "fluid")]), "the Fluid dataset mounted at /mnt/fluid/plugins");
        // The issue this fixes: with PLUGIN_STORE=oci the host reads the registry, not target/plugins.
        assert_eq!(
            source(&[], &[("PLUGIN_STORE", "oci"), ("OCI_REPOSITORY", "ghcr.io/acme/plugins")]),
            "the OCI registry https://ghcr.io/acme/plugins"
        );
        assert_eq!(
            source(&["--plugin-store=oci", "--oci-insecure", "--oci-repository", "127.0.0.1:5000/p"], &[]),
            "the OCI registry http://127.0.0.1:5000/p"
        );
        assert_eq!(
            source(&["--oci-insecure=false"], &[("PLUGIN_STORE", "oci"), ("OCI_REPOSITORY", "r.example/p")]),
            "the OCI registry https://r.example/p"
        );
        assert!(source(&["--plugin-store", "oci"], &[]).contains("--oci-repository (OCI_REPOSITORY) is not set"));
    }
}
