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
//!    loader and rpath from `plugin-host/build.rs` removed with patchelf, so it runs on the rootfs's own
//!    glibc and libwasmedge, which `ldd` inside the rootfs confirms) and the example plugins.
//! 4. For the base Deployment and then the Fluid one (rendered with kustomize), the host runs in
//!    a private mount namespace: the two layers as a read-only overlay (readOnlyRootFilesystem),
//!    a world-writable tmpfs at every emptyDir mount (as kubelet makes them), the bearer tokens
//!    Secret as a read-only folder in kubelet's layout with a client of its own, a minimal `/dev`,
//!    every shell in the rootfs hidden, `chroot` as the pod's numeric user, the pod's
//!    environment. Only the listen address differs: 127.0.0.1 and a free port.
//! 5. Base: `/healthz`, `/readyz` and `POST /run` answer (401 without a token, then with a new
//!    token once the Secret is updated as kubelet updates it), the AOT cache is written on the volume,
//!    the server and its workers run as the pod's user, SIGTERM stops it cleanly. Fluid: the
//!    host starts before its dataset is mounted (`/healthz` 200, `/readyz` 503), then a
//!    read-only bind mount appears at `FLUID_MOUNT_PATH` (as Fluid's FUSE recovery would make
//!    it) and the host serves from it without a restart.
//!
//! [`containerfile`] reads the image definition, [`pod`] the rendered Deployment, [`image`]
//! builds the file system and enters it, [`host`] runs the host in it and [`checks`] asks it
//! what a pod would; requests go through [`crate::http`].

mod checks;
mod containerfile;
mod host;
mod image;
mod pod;
mod secrets;

use std::{fs, path::Path, time::Instant};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use self::{
    checks::{smoke_base, smoke_fluid},
    containerfile::RuntimeStage,
    image::{Environment, check_libraries, ensure_rootfs, make_layer},
    pod::Pod,
};
use crate::{build_plugins::BuildPlugins, check_deploy::Tools, setup, setup::Setup, step};

/// The Debian archive's signing keys, as Debian's `debian-archive-keyring` package installs them.
pub(super) const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Where this command keeps its layer, logs and mount point.
const OUT_DIR: &str = "target/rootfs-smoke";
/// Shells a Debian minbase system has; they are hidden while the host runs.
pub(super) const SHELLS: &[&str] = &["usr/bin/bash", "usr/bin/dash"];

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
