//! The host running in the image: started in its namespace as the pod would start it,
//! asked over HTTP, inspected through `/proc`, and stopped with SIGTERM.

use std::{
    fs,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};

use super::{
    SHELLS,
    checks::env_value,
    containerfile::RuntimeStage,
    image::Environment,
    pod::Pod,
    secrets::{SecretFolder, new_token, tokens_file},
};
use crate::http::{Answer, HttpClient};

/// A host process in its namespace; killed (with its workers, which exit with it) if a check
/// fails before it is stopped.
#[derive(Debug)]
pub(super) struct RunningHost {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    client: HttpClient,
    /// The tokens Secret and the token every request sends, when the pod has `TOKENS_FILE`.
    tokens: Option<(SecretFolder, String)>,
}

impl RunningHost {
    pub(super) fn start(env: &Environment<'_>, stage: &RuntimeStage, pod: &Pod, name: &str) -> anyhow::Result<Self> {
        ensure!(pod.read_only_root, "the Deployment must set readOnlyRootFilesystem");
        let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut environment = pod.environment(stage);
        // The one difference from the pod: the machine's loopback, on a free port.
        environment.retain(|(k, _)| k != "LISTEN_ADDR");
        environment.push(("LISTEN_ADDR".into(), addr.to_string()));
        let userspec = format!("{}:{}", pod.user.0, pod.user.1);
        let masked: Vec<&str> = SHELLS.iter().copied().filter(|s| env.rootfs.join(s).is_file()).collect();
        ensure!(!masked.is_empty(), "no shell found to hide in the root file system");
        let log = env.out.join(format!("host-{name}.log"));
        let tokens = Self::tokens_secret(env, &environment, pod, name)?;
        let secrets: Vec<(PathBuf, String)> =
            tokens.iter().map(|(folder, _, mount)| (folder.root().to_owned(), mount.clone())).collect();
        let tokens = tokens.map(|(folder, token, _)| (folder, token));
        let mut command = env.command(&userspec, &pod.empty_dirs, &masked, &secrets, &stage.entrypoint);
        let child = command
            .env_clear()
            .envs(environment)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(fs::File::create(&log)?.try_clone()?)
            .spawn()
            .context("starting unshare")?;
        // The host's answers are small; 15 s covers a cold AOT compilation of `hello`.
        let client = HttpClient::new(Some(Duration::from_secs(15)))?;
        let mut host = RunningHost { child, addr, log, client, tokens };
        host.wait_for_health()?;
        Ok(host)
    }

    fn wait_for_health(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the host exited ({status}) before it served /healthz:\n{}", self.log_text());
            }
            if self.call("GET", "/healthz", None).is_ok_and(|answer| answer.status == 200) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "no answer on /healthz within 60 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Secret volume holding `TOKENS_FILE`, made with a new token: the folder, the token
    /// and the mount path. The only Secret volume this command can emulate.
    fn tokens_secret(
        env: &Environment<'_>,
        environment: &[(String, String)],
        pod: &Pod,
        name: &str,
    ) -> anyhow::Result<Option<(SecretFolder, String, String)>> {
        let Some(path) = env_value(environment, "TOKENS_FILE") else {
            ensure!(pod.secrets.is_empty(), "rootfs-smoke can emulate only the Secret volume holding TOKENS_FILE");
            return Ok(None);
        };
        let [mount] = &pod.secrets[..] else {
            bail!("rootfs-smoke can emulate one Secret volume, the one holding TOKENS_FILE {path}");
        };
        let file = path
            .strip_prefix(mount.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|file| !file.contains('/') && !mount.contains(':'))
            .with_context(|| format!("TOKENS_FILE {path} is not a file of the Secret volume at {mount}"))?;
        let token = new_token()?;
        let folder = SecretFolder::new(env.out.join(format!("secret-tokens-{name}")), file, &tokens_file(&token))?;
        Ok(Some((folder, token, mount.clone())))
    }

    /// One request to the host, with the smoke test's token if tokens are on; the status and
    /// the whole body.
    pub(super) fn call(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Answer> {
        let token = self.tokens.as_ref().map(|(_, token)| token.as_str());
        self.call_with_token(method, path, body, token)
    }

    /// One request with `token` (or none).
    pub(super) fn call_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Answer> {
        self.client.send_with_token(method, &format!("http://{}{path}", self.addr), body, token)
    }

    /// Whether the host runs with bearer tokens.
    pub(super) fn has_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Updates the tokens Secret, as kubelet would, to a new token alone; returns the old one,
    /// which is thereby revoked.
    pub(super) fn replace_token(&mut self) -> anyhow::Result<String> {
        let (folder, token) = self.tokens.as_mut().context("the host runs without tokens")?;
        let new = new_token()?;
        folder.update(&tokens_file(&new))?;
        Ok(std::mem::replace(token, new))
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A file or folder as the host sees it (through its root and mounts).
    pub(super) fn view(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    /// The real, effective, saved and file-system user and group IDs of the server and each of
    /// its worker processes.
    pub(super) fn ids(&self) -> anyhow::Result<Vec<ProcessIds>> {
        let pid = self.pid();
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
        std::iter::once(pid)
            .chain(children.split_whitespace().filter_map(|c| c.parse().ok()))
            .map(|pid| {
                let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
                let ids = |field: &str| -> Vec<u32> {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(field))
                        .map(|ids| ids.split_whitespace().filter_map(|id| id.parse().ok()).collect())
                        .unwrap_or_default()
                };
                Ok(ProcessIds { pid, uids: ids("Uid:"), gids: ids("Gid:") })
            })
            .collect()
    }

    /// SIGTERM, then the host must exit by itself, successfully, within its grace period.
    pub(super) fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        let status = Command::new("sh").args(["-c", "kill -TERM \"$1\"", "sh", &pid]).status()?;
        ensure!(status.success(), "could not send SIGTERM to {pid}");
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the host exited with {status} after SIGTERM:\n{}", self.log_text());
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "the host did not stop within {grace:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A process's real, effective, saved and file-system IDs, from `/proc/PID/status`.
#[derive(Debug)]
pub(super) struct ProcessIds {
    pub(super) pid: u32,
    pub(super) uids: Vec<u32>,
    pub(super) gids: Vec<u32>,
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
