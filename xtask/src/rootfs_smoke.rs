//! `cargo xtask rootfs-smoke`: builds the container image's runtime file system without a
//! container daemon and runs the host in it as the Deployment would.
//!
//! No image registry or daemon is reachable from the project's machines, so this proves the
//! image's *contents* instead:
//!
//! 1. The runtime stage of `Containerfile` is read: its Debian suite, its `apt-get install`
//!    packages, its `COPY`s, `install -d` folders, `ENV`, `USER` and `ENTRYPOINT`. Anything else
//!    there is an error, so this command cannot drift from the image unnoticed.
//! 2. `debootstrap --variant=minbase` of that suite from the machine's own Debian archive,
//!    verified with `debian-archive-keyring`, then the same `apt-get install` inside it. The
//!    result is cached in the user's cache folder (`--refresh-rootfs` makes it again).
//! 3. The files the `COPY`s name go into a second layer: the release host binary (its private
//!    loader and rpath from `host/build.rs` removed with patchelf, so it runs on the rootfs's own
//!    glibc and libwasmedge, which `ldd` inside the rootfs confirms) and the example plugins.
//! 4. For the base Deployment and then the Fluid one (rendered with kustomize), the host runs in
//!    a private mount namespace: the two layers as a read-only overlay (readOnlyRootFilesystem),
//!    a world-writable tmpfs at every emptyDir mount (as kubelet makes them), a minimal `/dev`,
//!    every shell in the rootfs hidden, `chroot` as the pod's numeric user, the pod's
//!    environment. Only the listen address differs: 127.0.0.1 and a free port.
//! 5. Base: `/healthz`, `/readyz` and `POST /run` answer, the AOT cache is written on the volume,
//!    the server and its workers run as the pod's user, SIGTERM stops it cleanly. Fluid: the
//!    host starts before its dataset is mounted (`/healthz` 200, `/readyz` 503), then a
//!    read-only bind mount appears at `FLUID_MOUNT_PATH` (as Fluid's FUSE recovery would make
//!    it) and the host serves from it without a restart.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use xshell::{Shell, cmd};

use crate::{PLUGIN_OUT_DIR, build_plugins::BuildPlugins, check_deploy::Tools, setup, setup::Setup, step};

/// The Debian archive's signing keys, as Debian's `debian-archive-keyring` package installs them.
const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Where this command keeps its layer, logs and mount point.
const OUT_DIR: &str = "target/rootfs-smoke";
/// Shells a Debian minbase system has; they are hidden while the host runs.
const SHELLS: &[&str] = &["usr/bin/bash", "usr/bin/dash"];

#[derive(Debug, clap::Args)]
pub struct RootfsSmoke {
    /// Make the cached root file system again (Debian testing moves on).
    #[arg(long)]
    refresh_rootfs: bool,
}

impl RootfsSmoke {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        if !setup::is_root(sh) {
            bail!("rootfs-smoke needs root: debootstrap, chroot and mount namespaces do");
        }
        let root = sh.current_dir();
        let stage = RuntimeStage::parse(&fs::read_to_string(root.join("Containerfile"))?)?;
        ensure_tools(sh)?;
        let tools = Tools::find_or_install(sh)?;
        let base = Pod::from_rendering(&tools.render_json(sh, &root.join("deploy/base"))?)?;
        let fluid = Pod::from_rendering(&tools.render_json(sh, &root.join("deploy/overlays/fluid"))?)?;

        Setup::for_running().run(sh)?;
        BuildPlugins::default().run(sh)?;
        step("building the release host");
        cmd!(sh, "cargo build --quiet --release --package host --bin host").run()?;
        let timings_build = started.elapsed();

        let rootfs_started = Instant::now();
        let rootfs = ensure_rootfs(sh, &stage, self.refresh_rootfs)?;
        let timings_rootfs = rootfs_started.elapsed();

        let out = root.join(OUT_DIR);
        if out.exists() {
            fs::remove_dir_all(&out)?;
        }
        let layer = out.join("layer");
        let newroot = out.join("newroot");
        let dataset = out.join("dataset");
        for dir in [&layer, &newroot, &dataset] {
            fs::create_dir_all(dir)?;
        }
        let empty = out.join("empty");
        fs::write(&empty, "")?;
        let plugins = make_layer(sh, &stage, &layer, &rootfs, &[&base, &fluid])?;
        for plugin in &plugins {
            fs::copy(plugin, dataset.join(plugin.file_name().context("plugin file")?))?;
        }
        let env = Environment { rootfs: &rootfs, layer: &layer, newroot: &newroot, empty: &empty, out: &out };
        let binary = stage.entrypoint.first().context("the runtime stage has no ENTRYPOINT")?;
        check_libraries(sh, &env, &rootfs, binary)?;

        let smoke_started = Instant::now();
        step("base deployment: local store with the image's example plugins");
        smoke_base(&env, &stage, &base, plugins.len())?;
        step("fluid deployment: the dataset is mounted after the host started");
        smoke_fluid(&env, &stage, &fluid, &dataset)?;
        step(format!(
            "rootfs smoke test passed in {:.0}s (build {:.0}s, root file system {:.0}s, host runs {:.1}s)",
            started.elapsed().as_secs_f64(),
            timings_build.as_secs_f64(),
            timings_rootfs.as_secs_f64(),
            smoke_started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// debootstrap, patchelf and the archive keyring; unshare, nsenter and chroot come with every
/// Debian (util-linux, coreutils).
fn ensure_tools(sh: &Shell) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for program in ["debootstrap", "patchelf"] {
        if setup::resolve_program(Path::new(program)).is_none()
            && setup::resolve_program(&Path::new("/usr/sbin").join(program)).is_none()
        {
            missing.push(program.to_string());
        }
    }
    if !Path::new(ARCHIVE_KEYRING).exists() {
        missing.push("debian-archive-keyring".to_string());
    }
    if !missing.is_empty() {
        setup::apt_install(sh, &missing, "debootstrap, patchelf and Debian's archive keyring")?;
    }
    Ok(())
}

/// What the Containerfile's last stage puts into the image.
#[derive(Debug, Default, PartialEq)]
struct RuntimeStage {
    suite: String,
    packages: Vec<String>,
    /// `COPY --from=builder <source> <destination>`, sources as the builder sees them.
    copies: Vec<(String, String)>,
    /// `install -d -o UID -g GID -m MODE PATH`.
    dirs: Vec<ImageDir>,
    env: Vec<(String, String)>,
    user: (u32, u32),
    entrypoint: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct ImageDir {
    path: String,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl RuntimeStage {
    fn parse(containerfile: &str) -> anyhow::Result<Self> {
        // Instructions, with continuation lines joined and comments dropped.
        let mut instructions = Vec::new();
        let mut current = String::new();
        for line in containerfile.lines() {
            let line = line.trim();
            if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    if !current.trim().is_empty() {
                        instructions.push(std::mem::take(&mut current));
                    }
                    current.clear();
                }
            }
        }
        let last_from =
            instructions.iter().rposition(|i| i.starts_with("FROM ")).context("the Containerfile has no FROM")?;
        let mut stage = RuntimeStage::default();
        for instruction in &instructions[last_from..] {
            let (keyword, rest) = instruction.split_once(' ').unwrap_or((instruction, ""));
            let words: Vec<&str> = rest.split_whitespace().collect();
            match keyword {
                "FROM" => {
                    let image = words.first().context("FROM without an image")?;
                    let tag =
                        image.strip_prefix("debian:").context("the runtime stage must be FROM debian:<suite>-slim")?;
                    stage.suite = tag.strip_suffix("-slim").unwrap_or(tag).to_string();
                }
                "RUN" => {
                    for command in rest.split("&&").map(str::trim) {
                        let words: Vec<&str> = command.split_whitespace().collect();
                        match words.as_slice() {
                            ["apt-get", "install", args @ ..] => stage
                                .packages
                                .extend(args.iter().filter(|a| !a.starts_with('-')).map(|a| a.to_string())),
                            ["install", "-d", args @ ..] => stage.dirs.push(parse_install_dir(args)?),
                            ["apt-get", "update" | "clean"] | ["rm", "-rf", "/var/lib/apt/lists/*"] => {}
                            _ => bail!("rootfs-smoke does not know what `RUN {command}` does to the image"),
                        }
                    }
                }
                "COPY" => match words.as_slice() {
                    [from, source, destination] if from.starts_with("--from=") => {
                        stage.copies.push((source.to_string(), destination.to_string()))
                    }
                    _ => bail!(
                        "rootfs-smoke only knows `COPY --from=<stage> <source> <destination>`, not `{instruction}`"
                    ),
                },
                "ENV" => {
                    for pair in &words {
                        let (key, value) =
                            pair.split_once('=').with_context(|| format!("ENV {pair}: not KEY=VALUE"))?;
                        stage.env.push((key.to_string(), value.to_string()));
                    }
                }
                "USER" => {
                    let (uid, gid) = rest.trim().split_once(':').context("USER must be numeric UID:GID")?;
                    stage.user = (uid.parse().context("USER's UID")?, gid.parse().context("USER's GID")?);
                }
                "ENTRYPOINT" => {
                    stage.entrypoint = serde_json::from_str(rest).context("ENTRYPOINT must be in exec form")?;
                }
                "EXPOSE" | "LABEL" | "STOPSIGNAL" => {}
                _ => bail!("rootfs-smoke does not know what `{keyword}` does to the image"),
            }
        }
        ensure!(!stage.packages.is_empty(), "the runtime stage installs no packages");
        ensure!(!stage.entrypoint.is_empty(), "the runtime stage has no ENTRYPOINT");
        Ok(stage)
    }
}

fn parse_install_dir(args: &[&str]) -> anyhow::Result<ImageDir> {
    let mut dir = ImageDir { path: String::new(), uid: 0, gid: 0, mode: 0o755 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("install {arg} needs a value"));
        match *arg {
            "-o" => dir.uid = value()?.parse()?,
            "-g" => dir.gid = value()?.parse()?,
            "-m" => dir.mode = u32::from_str_radix(value()?, 8)?,
            path if !path.starts_with('-') => dir.path = path.to_string(),
            other => bail!("install -d: unknown option {other}"),
        }
    }
    ensure!(dir.path.starts_with('/'), "install -d needs an absolute path");
    Ok(dir)
}

/// What the rendered Deployment asks of its pod.
#[derive(Debug)]
struct Pod {
    env: Vec<(String, String)>,
    user: (u32, u32),
    read_only_root: bool,
    /// Mount paths of emptyDir volumes.
    empty_dirs: Vec<String>,
    /// Mount path of a read-only PersistentVolumeClaim (the Fluid dataset), if any.
    dataset: Option<String>,
}

impl Pod {
    fn from_rendering(documents: &[serde_json::Value]) -> anyhow::Result<Self> {
        let deployment =
            documents.iter().find(|d| d["kind"] == "Deployment").context("the rendering has no Deployment")?;
        let spec = &deployment["spec"]["template"]["spec"];
        let container = spec["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "host"))
            .context("no container named host")?;
        let string = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let env = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| Ok((string(&e["name"]).context("env name")?, string(&e["value"]).context("env value")?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let id = |key: &str| {
            container["securityContext"][key]
                .as_u64()
                .or(spec["securityContext"][key].as_u64())
                .and_then(|id| u32::try_from(id).ok())
                .with_context(|| format!("the pod sets no numeric {key}"))
        };
        let user = (id("runAsUser")?, id("runAsGroup")?);
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let volume =
            |name: &serde_json::Value| volumes.iter().find(|v| v["name"] == *name).cloned().unwrap_or_default();
        let mut empty_dirs = Vec::new();
        let mut dataset = None;
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let path = string(&mount["mountPath"]).context("mountPath")?;
            ensure!(!path.contains(char::is_whitespace), "mount path {path:?} has whitespace");
            let volume = volume(&mount["name"]);
            if volume.get("emptyDir").is_some() {
                empty_dirs.push(path);
            } else if volume.get("persistentVolumeClaim").is_some() {
                dataset = Some(path);
            } else {
                bail!("rootfs-smoke cannot emulate the volume mounted at {path}");
            }
        }
        Ok(Pod {
            env,
            user,
            read_only_root: container["securityContext"]["readOnlyRootFilesystem"] == true,
            empty_dirs,
            dataset,
        })
    }

    /// The container's environment: the image's `ENV`, then the pod's (which wins), as the
    /// container runtime builds it.
    fn environment(&self, stage: &RuntimeStage) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            vec![("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())];
        for (key, value) in stage.env.iter().chain(&self.env) {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }
}

/// The debootstrapped suite with the stage's packages, made once and kept in the user's cache.
fn ensure_rootfs(sh: &Shell, stage: &RuntimeStage, refresh: bool) -> anyhow::Result<PathBuf> {
    let key = format!("{} minbase {}", stage.suite, stage.packages.join(" "));
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let rootfs = setup::cache_dir().join(format!("rootfs-{}-{hash:016x}", stage.suite));
    if rootfs.is_dir() && !refresh {
        step(format!("reusing the {} root file system in {}", stage.suite, rootfs.display()));
        return Ok(rootfs);
    }
    let staging = rootfs.with_extension("partial");
    for dir in [&staging, &rootfs] {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
    }
    let mirror = setup::debian_mirror()?;
    let suite = &stage.suite;
    // Debian 12's debootstrap predates forky; testing and unstable share the `sid` script.
    let scripts = Path::new("/usr/share/debootstrap/scripts");
    let script = if scripts.join(suite).exists() { scripts.join(suite) } else { scripts.join("sid") };
    step(format!("debootstrap {suite} (minbase) from {mirror}, verified with {ARCHIVE_KEYRING}"));
    cmd!(sh, "debootstrap --variant=minbase --keyring={ARCHIVE_KEYRING} {suite} {staging} {mirror} {script}")
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("debootstrap failed; its log is {}/debootstrap/debootstrap.log", staging.display()))?;

    // The same commands as the Containerfile's runtime stage, inside the new system. apt there
    // gets the machine's own choice about expired Release files (a snapshot mirror's are).
    let packages = &stage.packages;
    let mut apt_options = Vec::new();
    if cmd!(sh, "apt-config dump").quiet().read()?.lines().any(|l| l.trim() == "Acquire::Check-Valid-Until \"false\";")
    {
        apt_options.push("-oAcquire::Check-Valid-Until=false");
    }
    step(format!("apt-get install {} in the new root file system", packages.join(" ")));
    let script = r#"set -eu
root=$1; shift
mount -t proc proc "$root/proc"
chroot "$root" apt-get -qq "$@" update
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -qq -o Dpkg::Use-Pty=0 -y --no-install-recommends "$@" install $PACKAGES
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
"#;
    cmd!(sh, "unshare --mount --propagation private sh -c {script} sh {staging} {apt_options...}")
        .env("PACKAGES", packages.join(" "))
        .quiet()
        .ignore_stdout()
        .run()
        .context("installing the runtime stage's packages failed")?;
    fs::rename(&staging, &rootfs)?;
    Ok(rootfs)
}

/// The image's own files as an overlay layer: the `COPY`s, the `install -d` folders and the
/// mount points the container runtime would create. Returns the example plugins copied.
fn make_layer(
    sh: &Shell,
    stage: &RuntimeStage,
    layer: &Path,
    rootfs: &Path,
    pods: &[&Pod],
) -> anyhow::Result<Vec<PathBuf>> {
    let root = sh.current_dir();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut plugins = Vec::new();
    for (source, destination) in &stage.copies {
        let in_layer = layer.join(destination.trim_start_matches('/'));
        if source.ends_with("target/release/host") {
            fs::create_dir_all(in_layer.parent().context("binary destination")?)?;
            fs::copy(target.join("release/host"), &in_layer)?;
            // Built here, the binary uses the private loader and libraries of `.toolchain`
            // (host/build.rs); in the image it uses the system's, as the builder stage links it.
            cmd!(sh, "patchelf --set-interpreter /lib64/ld-linux-x86-64.so.2 --remove-rpath {in_layer}").run()?;
        } else if source.ends_with("target/plugins/*.wasm") {
            ensure!(destination.ends_with('/'), "COPY of several plugins needs a folder as destination");
            fs::create_dir_all(&in_layer)?;
            let mut found: Vec<PathBuf> = fs::read_dir(root.join(PLUGIN_OUT_DIR))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "wasm"))
                .collect();
            found.sort();
            ensure!(!found.is_empty(), "no plugins in {PLUGIN_OUT_DIR}");
            for plugin in found {
                fs::copy(&plugin, in_layer.join(plugin.file_name().context("plugin file")?))?;
                plugins.push(plugin);
            }
        } else {
            bail!("rootfs-smoke does not know the builder's {source}");
        }
    }
    for dir in &stage.dirs {
        let path = layer.join(dir.path.trim_start_matches('/'));
        fs::create_dir_all(&path)?;
        std::os::unix::fs::chown(&path, Some(dir.uid), Some(dir.gid))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(dir.mode))?;
    }
    // The container runtime creates missing mount points before it makes the root read-only.
    for pod in pods {
        for path in pod.empty_dirs.iter().chain(&pod.dataset) {
            let relative = path.trim_start_matches('/');
            if !rootfs.join(relative).is_dir() && !layer.join(relative).is_dir() {
                fs::create_dir_all(layer.join(relative))?;
            }
        }
    }
    Ok(plugins)
}

/// The paths every namespace run needs.
#[derive(Debug)]
struct Environment<'a> {
    rootfs: &'a Path,
    layer: &'a Path,
    newroot: &'a Path,
    empty: &'a Path,
    out: &'a Path,
}

/// Mounts the image in a new mount namespace and runs a command in it under `chroot`. The
/// namespace (and every mount in it) ends with the command.
const ENTER_IMAGE: &str = r#"set -eu
rootfs=$1 layer=$2 newroot=$3 empty=$4 userspec=$5 volumes=$6 masked=$7
shift 7
# Two lower layers and no upper one: overlayfs makes the mount read-only.
mount -t overlay overlay -o "lowerdir=$layer:$rootfs" "$newroot"
mount -t proc -o nosuid,nodev,noexec proc "$newroot/proc"
mount -t tmpfs -o mode=0755,nosuid,size=64k tmpfs "$newroot/dev"
for device in null zero full random urandom; do
    : > "$newroot/dev/$device"
    mount --bind "/dev/$device" "$newroot/dev/$device"
done
# emptyDir volumes: kubelet makes their root mode 0777, owned by root.
for volume in $volumes; do
    mount -t tmpfs -o mode=0777,nosuid,nodev,size=256m tmpfs "$newroot$volume"
done
for file in $masked; do
    mount --bind -o ro "$empty" "$newroot/$file"
done
exec chroot --userspec="$userspec" "$newroot" "$@"
"#;

impl Environment<'_> {
    fn command(&self, userspec: &str, volumes: &[String], masked: &[&str], program: &[String]) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c", ENTER_IMAGE, "sh"])
            .args([self.rootfs, self.layer, self.newroot, self.empty])
            .args([userspec, &volumes.join(" "), &masked.join(" ")])
            .args(program);
        command
    }
}

/// `ldd` inside the root file system: every library resolves there, and none from this machine.
fn check_libraries(sh: &Shell, env: &Environment<'_>, rootfs: &Path, binary: &str) -> anyhow::Result<()> {
    for compiler in ["usr/bin/cc", "usr/bin/gcc", "usr/bin/clang", "usr/bin/ld"] {
        ensure!(!rootfs.join(compiler).exists(), "the runtime root file system has a compiler: /{compiler}");
    }
    let output = env.command("0:0", &[], &[], &["/usr/bin/ldd".into(), binary.into()]).output()?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "ldd {binary} in the root file system failed:\n{report}");
    ensure!(!report.contains("not found"), "libraries missing in the root file system:\n{report}");
    let project = sh.current_dir();
    ensure!(
        !report.contains(".toolchain") && !report.contains(&*project.to_string_lossy()),
        "the binary still loads libraries from this checkout:\n{report}"
    );
    let wasmedge = report.lines().find(|l| l.contains("libwasmedge")).context("the host does not link libwasmedge")?;
    println!("ldd in the rootfs: {}", wasmedge.trim());
    Ok(())
}

/// A host process in its namespace; killed (with its workers, which exit with it) if a check
/// fails before it is stopped.
#[derive(Debug)]
struct RunningHost {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl RunningHost {
    fn start(env: &Environment<'_>, stage: &RuntimeStage, pod: &Pod, name: &str) -> anyhow::Result<Self> {
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
        let mut command = env.command(&userspec, &pod.empty_dirs, &masked, &stage.entrypoint);
        let child = command
            .env_clear()
            .envs(environment)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(fs::File::create(&log)?.try_clone()?)
            .spawn()
            .context("starting unshare")?;
        let mut host = RunningHost { child, addr, log };
        host.wait_for_health()?;
        Ok(host)
    }

    fn wait_for_health(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the host exited ({status}) before it served /healthz:\n{}", self.log_text());
            }
            if let Ok((200, _)) = http(self.addr, "GET", "/healthz", None) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "no answer on /healthz within 60 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A file or folder as the host sees it (through its root and mounts).
    fn view(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    /// The real, effective, saved and file-system user and group IDs of the server and each of
    /// its worker processes.
    fn ids(&self) -> anyhow::Result<Vec<ProcessIds>> {
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
    fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
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

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A process's real, effective, saved and file-system IDs, from `/proc/PID/status`.
#[derive(Debug)]
struct ProcessIds {
    pid: u32,
    uids: Vec<u32>,
    gids: Vec<u32>,
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn grace(stage: &RuntimeStage, pod: &Pod) -> Duration {
    let secs = env_value(&pod.environment(stage), "SHUTDOWN_GRACE_SECS").and_then(|s| s.parse().ok()).unwrap_or(10);
    Duration::from_secs(secs + 5)
}

fn expect(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    contains: &str,
) -> anyhow::Result<()> {
    let (got, text) = http(addr, method, path, body).with_context(|| format!("{method} {path}"))?;
    ensure!(
        got == status && text.contains(contains),
        "{method} {path}: expected {status} with {contains:?}, got {got}: {text}"
    );
    let body = body.map(|b| format!(" {b}")).unwrap_or_default();
    println!("{method} {path}{body} -> {got} {}", text.trim());
    Ok(())
}

const RUN_HELLO: &str = r#"{"plugin":"hello","input":21}"#;

fn smoke_base(env: &Environment<'_>, stage: &RuntimeStage, pod: &Pod, plugins: usize) -> anyhow::Result<()> {
    let host = RunningHost::start(env, stage, pod, "base")?;
    expect(host.addr, "GET", "/healthz", None, 200, "ok")?;
    expect(host.addr, "GET", "/readyz", None, 200, &format!("\"plugins\":{plugins}"))?;
    expect(host.addr, "POST", "/run", Some(RUN_HELLO), 200, r#"{"output":43}"#)?;

    let environment = pod.environment(stage);
    let aot = env_value(&environment, "AOT_CACHE_DIR").context("no AOT_CACHE_DIR")?;
    let artifacts: Vec<_> = fs::read_dir(host.view(aot))
        .with_context(|| format!("the AOT cache {aot} was not made"))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "so"))
        .collect();
    let meta = fs::metadata(host.view(aot))?;
    ensure!(!artifacts.is_empty(), "no compiled plugin in the AOT cache {aot}");
    ensure!(
        meta.uid() == pod.user.0 && meta.mode() & 0o077 == 0,
        "the AOT cache {aot} is not private to the pod's user"
    );
    println!(
        "AOT cache {aot}: {} compiled plugin(s), mode {:o}, owner {}",
        artifacts.len(),
        meta.mode() & 0o7777,
        meta.uid()
    );

    let ids = host.ids()?;
    let workers = env_value(&environment, "WORKERS").and_then(|w| w.parse::<usize>().ok());
    ensure!(workers.is_none_or(|w| ids.len() == w + 1), "expected {workers:?} workers, found {}", ids.len() - 1);
    for ProcessIds { pid, uids, gids } in &ids {
        ensure!(
            uids.len() == 4 && uids.iter().all(|&id| id == pod.user.0) && gids.iter().all(|&id| id == pod.user.1),
            "process {pid} does not run as {}:{} (uids {uids:?}, gids {gids:?})",
            pod.user.0,
            pod.user.1
        );
    }
    // The host's own view of its root: every shell is an empty file, so nothing it did (or
    // its workers did) can have needed one.
    for shell in SHELLS.iter().filter(|s| env.rootfs.join(s).is_file()) {
        let len = fs::metadata(host.view(&format!("/{shell}")))?.len();
        ensure!(len == 0, "/{shell} is not hidden from the host ({len} bytes)");
    }
    println!("server and {} workers run as {}:{}, with every shell hidden", ids.len() - 1, pod.user.0, pod.user.1);
    host.stop(grace(stage, pod))?;
    println!("SIGTERM: the host stopped cleanly");
    Ok(())
}

fn smoke_fluid(env: &Environment<'_>, stage: &RuntimeStage, pod: &Pod, dataset: &Path) -> anyhow::Result<()> {
    let environment = pod.environment(stage);
    ensure!(
        env_value(&environment, "PLUGIN_STORE") == Some("fluid"),
        "the fluid overlay does not set PLUGIN_STORE=fluid"
    );
    let mount_path = pod.dataset.as_deref().context("the fluid overlay mounts no dataset")?;
    ensure!(
        env_value(&environment, "FLUID_MOUNT_PATH") == Some(mount_path),
        "FLUID_MOUNT_PATH is not where the dataset is mounted ({mount_path})"
    );
    let host = RunningHost::start(env, stage, pod, "fluid")?;
    // Liveness does not depend on the dataset; readiness does.
    expect(host.addr, "GET", "/healthz", None, 200, "ok")?;
    expect(host.addr, "GET", "/readyz", None, 503, "store_unavailable")?;
    expect(host.addr, "POST", "/run", Some(RUN_HELLO), 503, "store_unavailable")?;

    // The dataset appears in the running container, as Fluid's FUSE recovery (or a late mount)
    // makes it appear through mountPropagation: HostToContainer.
    let target = env.newroot.join(mount_path.trim_start_matches('/'));
    let namespace = format!("--mount=/proc/{}/ns/mnt", host.pid());
    let status =
        Command::new("nsenter").args([&namespace, "mount", "--bind", "-o", "ro"]).args([dataset, &target]).status()?;
    ensure!(status.success(), "could not mount the dataset into the host's namespace");
    println!("mounted the dataset read-only at {mount_path}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(host.addr, "GET", "/readyz", None).map(|(s, _)| s).unwrap_or(0) != 200 {
        ensure!(
            Instant::now() < deadline,
            "the host did not become ready within 30 s of the mount:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    expect(host.addr, "GET", "/readyz", None, 200, "\"status\":\"ready\"")?;
    expect(host.addr, "POST", "/run", Some(RUN_HELLO), 200, r#"{"output":43}"#)?;
    host.stop(grace(stage, pod))?;
    println!("SIGTERM: the host stopped cleanly");
    Ok(())
}

/// One HTTP/1.1 exchange (`Connection: close`), enough for the host's small JSON answers.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    Ok((status, if chunked { dechunk(body)? } else { body.to_string() }))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("chunk size")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runtime_stage_of_the_containerfile() {
        let text = fs::read_to_string(crate::project_root().join("Containerfile")).unwrap();
        let stage = RuntimeStage::parse(&text).unwrap();
        // The suite that has WasmEdge 0.17, and nothing installed but its library.
        assert_eq!(stage.suite, "forky");
        assert_eq!(stage.packages, ["libwasmedge0"]);
        assert_eq!(stage.user, (65532, 65532));
        assert_eq!(stage.entrypoint, ["/usr/local/bin/plugin-host"]);
        assert!(stage.copies.iter().any(|(s, d)| s.ends_with("target/release/host") && d == &stage.entrypoint[0]));
        assert_eq!(
            stage.dirs,
            [ImageDir { path: "/var/cache/plugin-host".into(), uid: 65532, gid: 65532, mode: 0o700 }]
        );
        let listen = stage.env.iter().find(|(k, _)| k == "LISTEN_ADDR").map(|(_, v)| v.as_str());
        assert_eq!(listen, Some("0.0.0.0:8080"), "a container must not listen on its own loopback only");
    }

    #[test]
    fn refuses_instructions_it_cannot_reproduce() {
        let base = "FROM debian:forky-slim\nRUN apt-get install -y libwasmedge0\nENTRYPOINT [\"/x\"]\n";
        assert!(RuntimeStage::parse(base).is_ok());
        for extra in ["RUN curl -o /x http://example.com/x", "ADD x /x", "COPY x /x", "VOLUME /data"] {
            let text = format!("{base}{extra}\n");
            assert!(RuntimeStage::parse(&text).is_err(), "{extra} was accepted");
        }
        let builder_only =
            "FROM debian:forky AS b\nRUN make\nFROM debian:forky-slim\nRUN apt-get install x\nENTRYPOINT [\"/x\"]\n";
        assert_eq!(RuntimeStage::parse(builder_only).unwrap().packages, ["x"], "only the last stage counts");
    }

    #[test]
    fn decodes_chunked_bodies() {
        assert_eq!(dechunk("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").unwrap(), "hello!");
    }
}
