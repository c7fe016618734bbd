//! The image's file system: the debootstrapped root (cached), the layer of the image's own
//! files, and commands run inside both in a private mount namespace.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail, ensure};
use xshell::{Shell, cmd};

use super::{ARCHIVE_KEYRING, containerfile::RuntimeStage, pod::Pod};
use crate::{PLUGIN_OUT_DIR, setup, step};

/// The debootstrapped suite with the stage's packages, made once and kept in the user's cache.
pub(super) fn ensure_rootfs(sh: &Shell, stage: &RuntimeStage, refresh: bool) -> anyhow::Result<PathBuf> {
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
pub(super) fn make_layer(
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
            // Built here, the binary may use the private loader and libraries `cargo xtask setup`
            // installed (plugin-host/build.rs); in the image it uses the system's, as the builder stage
            // links it.
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
        for path in pod.empty_dirs.iter().chain(&pod.secrets).chain(&pod.dataset) {
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
pub(super) struct Environment<'a> {
    pub(super) rootfs: &'a Path,
    pub(super) layer: &'a Path,
    pub(super) newroot: &'a Path,
    pub(super) empty: &'a Path,
    pub(super) out: &'a Path,
}

/// Mounts the image in a new mount namespace and runs a command in it under `chroot`. The
/// namespace (and every mount in it) ends with the command.
pub(super) const ENTER_IMAGE: &str = r#"set -eu
rootfs=$1 layer=$2 newroot=$3 empty=$4 userspec=$5 volumes=$6 masked=$7 secrets=$8
shift 8
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
# Secret volumes: a folder laid out as kubelet lays one out, read-only (`source:mount-path`).
for secret in $secrets; do
    mount --bind -o ro "${secret%%:*}" "$newroot${secret#*:}"
done
for file in $masked; do
    mount --bind -o ro "$empty" "$newroot/$file"
done
exec chroot --userspec="$userspec" "$newroot" "$@"
"#;

impl Environment<'_> {
    /// `secrets` are `(folder on this machine, mount path)`: neither may hold whitespace or `:`.
    pub(super) fn command(
        &self,
        userspec: &str,
        volumes: &[String],
        masked: &[&str],
        secrets: &[(PathBuf, String)],
        program: &[String],
    ) -> Command {
        let secrets: Vec<String> =
            secrets.iter().map(|(source, path)| format!("{}:{path}", source.display())).collect();
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c", ENTER_IMAGE, "sh"])
            .args([self.rootfs, self.layer, self.newroot, self.empty])
            .args([userspec, &volumes.join(" "), &masked.join(" "), &secrets.join(" ")])
            .args(program);
        command
    }
}

/// `ldd` inside the root file system: every library resolves there, and none from this machine.
pub(super) fn check_libraries(sh: &Shell, env: &Environment<'_>, rootfs: &Path, binary: &str) -> anyhow::Result<()> {
    for compiler in ["usr/bin/cc", "usr/bin/gcc", "usr/bin/clang", "usr/bin/ld"] {
        ensure!(!rootfs.join(compiler).exists(), "the runtime root file system has a compiler: /{compiler}");
    }
    let output = env.command("0:0", &[], &[], &[], &["/usr/bin/ldd".into(), binary.into()]).output()?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "ldd {binary} in the root file system failed:\n{report}");
    ensure!(!report.contains("not found"), "libraries missing in the root file system:\n{report}");
    let project = sh.current_dir();
    ensure!(
        !report.contains("wasm-plugin-host/wasmedge-") && !report.contains(&*project.to_string_lossy()),
        "the binary still loads libraries of this machine's private WasmEdge or this checkout:\n{report}"
    );
    let wasmedge = report.lines().find(|l| l.contains("libwasmedge")).context("the host does not link libwasmedge")?;
    println!("ldd in the rootfs: {}", wasmedge.trim());
    Ok(())
}
