//! `cargo xtask registry`: a private OCI registry on 127.0.0.1 for trying versions, in the
//! foreground until Ctrl-C.
//!
//! It runs Debian's `docker-registry` (the CNCF distribution registry) with a configuration
//! of its own, the way the tests do ([`LocalRegistry`] is what they start too): bound to
//! 127.0.0.1 only, on a free port (or `--port`), with its storage in a temporary folder that is
//! removed on exit (or `--storage`, kept). No system service is involved: setup stops and
//! disables the one Debian's package starts where systemd runs.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use xshell::Shell;

use crate::{setup, step};

#[derive(Debug, clap::Args)]
pub struct RegistryCommand {
    /// Port on 127.0.0.1 to serve on. Default: a free one.
    #[arg(long)]
    port: Option<u16>,
    /// Folder to keep the registry's content in (created if needed, kept on exit). Default: a
    /// temporary folder, removed on exit.
    #[arg(long)]
    storage: Option<PathBuf>,
}

impl RegistryCommand {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        setup::ensure_docker_registry(sh)?;
        let registry = LocalRegistry::start(self.port, self.storage.as_deref(), None)?;
        let repository = format!("{}/plugins", registry.addr);
        let storage = match &self.storage {
            Some(folder) => format!("{} (kept)", folder.display()),
            None => format!("{} (temporary, removed on exit)", registry.storage().display()),
        };
        step(format!("OCI registry on http://{}, storage {storage}; Ctrl-C stops it", registry.addr));
        println!(
            "\n    --to / OCI_REPOSITORY:  {repository}\n\n    \
             cargo xtask publish hello --version 1.0.0 --to {repository} --insecure\n    \
             PLUGIN_STORE=oci OCI_REPOSITORY={repository} OCI_INSECURE=true cargo xtask run\n"
        );
        registry.serve_until_ctrl_c()
    }
}

/// A `docker-registry` process serving one storage folder on 127.0.0.1; killed (and its
/// temporary storage removed) when dropped.
pub(crate) struct LocalRegistry {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// The configuration (and, without a storage folder of the caller's, the storage).
    _dir: tempfile::TempDir,
    storage: PathBuf,
    child: Child,
}

impl LocalRegistry {
    /// Starts a registry and waits until it accepts connections. `port`: a free one when
    /// `None`; `storage`: a folder inside the temporary configuration folder when `None`;
    /// `htpasswd`: the lines of an htpasswd file (bcrypt), whose credentials every client then
    /// needs.
    pub(crate) fn start(port: Option<u16>, storage: Option<&Path>, htpasswd: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Bound here first: a port in use is a clear error instead of a registry that exits.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .with_context(|| format!("port {} on 127.0.0.1 is not free", port.unwrap_or(0)))?;
        let addr = listener.local_addr()?.to_string();
        drop(listener);
        let storage = match storage {
            Some(folder) => {
                fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
                folder.canonicalize()?
            }
            None => {
                let folder = dir.path().join("storage");
                fs::create_dir(&folder)?;
                folder
            }
        };
        let auth = match htpasswd {
            Some(lines) => {
                fs::write(dir.path().join("htpasswd"), lines)?;
                format!("auth:\n  htpasswd:\n    realm: local\n    path: {}\n", dir.path().join("htpasswd").display())
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{auth}",
            storage.display()
        );
        fs::write(dir.path().join("config.yml"), config)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting docker-registry (`cargo xtask setup` installs it)")?;
        let mut registry = LocalRegistry { addr, _dir: dir, storage, child };
        let give_up = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            if let Some(status) = registry.child.try_wait()? {
                bail!("docker-registry exited ({status}) before serving on {}", registry.addr);
            }
            if Instant::now() > give_up {
                bail!("docker-registry did not start serving on {} within 10 s", registry.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }

    pub(crate) fn storage(&self) -> &Path {
        &self.storage
    }

    /// Waits until Ctrl-C (or SIGTERM), or until the registry exits by itself; then stops it
    /// and removes the temporary folders.
    fn serve_until_ctrl_c(mut self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // Handled, so that this process outlives the signal long enough to clean up (the
        // registry, in the same process group, gets Ctrl-C from the terminal too).
        let exited = runtime.block_on(async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return anyhow::Ok(None),
                    _ = terminate.recv() => return Ok(None),
                    _ = tick.tick() => if let Some(status) = self.child.try_wait()? {
                        return Ok(Some(status));
                    },
                }
            }
        })?;
        match exited {
            Some(status) => bail!("docker-registry exited by itself ({status})"),
            None => {
                step("stopping the registry");
                Ok(())
            }
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo xtask registry` runs: a registry on 127.0.0.1 only, its storage removed
    /// with it unless it is the caller's.
    #[test]
    fn serves_on_loopback_only_and_removes_its_temporary_storage() {
        let registry = LocalRegistry::start(None, None, None).unwrap();
        assert!(registry.addr.starts_with("127.0.0.1:"), "{}", registry.addr);
        let port = registry.addr.rsplit_once(':').unwrap().1.to_string();
        let answer = Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().unwrap();
        let listening = String::from_utf8_lossy(&answer.stdout).to_string();
        assert!(listening.contains(&registry.addr) && !listening.contains("*:"), "{listening}");
        let temporary = registry.storage().to_path_buf();
        assert!(temporary.exists());
        drop(registry);
        assert!(!temporary.exists(), "the temporary storage is removed");

        let kept = tempfile::tempdir().unwrap();
        let storage = kept.path().join("registry");
        let registry = LocalRegistry::start(None, Some(&storage), None).unwrap();
        assert_eq!(registry.storage(), storage.canonicalize().unwrap());
        let busy = LocalRegistry::start(Some(registry.addr.rsplit_once(':').unwrap().1.parse().unwrap()), None, None);
        assert!(busy.err().unwrap().to_string().contains("is not free"));
        drop(registry);
        assert!(storage.exists(), "a storage folder of the caller's is kept");
    }
}
