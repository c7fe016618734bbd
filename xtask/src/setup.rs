//! `cargo xtask setup`: finds or installs the native toolchain the project needs.
//!
//! Building plugins and running the host needs three things beyond the Rust toolchain
//! ([`Setup::for_running`], what `cargo xtask run` installs):
//! - a clang that targets wasm32, with `wasm-ld`, to compile plugins;
//! - libclang, which wasmedge-sys uses (through bindgen) to read WasmEdge's C header;
//! - the WasmEdge **0.17.x** C library, which `wasmedge-sdk` 0.17.1 binds to;
//!
//! and, for the example plugins in other languages, Debian's Rust compiler for wasm32, Zig
//! (PyPI) and AssemblyScript (npm), each reported rather than fatal when it cannot be had.
//!
//! The tests need more tools ([`Setup::everything`], what `cargo xtask test` and
//! `cargo xtask setup` install), and the API tests' Python tools (schemathesis and
//! openapi-spec-validator, pinned in `host/tests/requirements.txt`, in a private virtualenv):
//! - `bindfs`, a FUSE file system the Fluid store's tests mount for real (killing its daemon
//!   gives the same `ENOTCONN` a crashed Fluid FUSE pod does);
//! - `docker-registry` (the CNCF distribution registry) and `skopeo`, which the OCI store's and
//!   `publish`'s tests run for real: a registry on 127.0.0.1, and a second, standard client to
//!   check that what each side writes the other reads. Debian's `docker-registry` package also
//!   starts a system registry service where systemd runs, which is one reason `run` leaves the
//!   test tools out;
//! - Debian's Go (`golang-go`), for the Go client's tests, and `curl`, which runs README.md's
//!   examples.
//!
//! An existing, matching install is always preferred. Otherwise, on Debian-family machines,
//! clang and libclang come from the distribution, and WasmEdge comes from Debian's own
//! `libwasmedge` 0.17.1 build (only in Debian testing) unpacked with its runtime libraries into
//! a per-user, version-keyed folder (`~/.local/share/wasm-plugin-host/wasmedge-0.17.1`) that
//! `~/.wasmedge` links to (see BUILD.md for why and how). wasmedge-sys finds `~/.wasmedge` by
//! itself, so nothing in the checkout names a path of its own: every clone of the machine, and a
//! target folder they share, builds WasmEdge's bindings once. Every step checks before it acts,
//! so a second run does nothing.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::step;

/// The WasmEdge release `wasmedge-sdk` 0.17.1 (through wasmedge-sys 0.21.1) is written against.
const WASMEDGE_VERSION_PREFIX: &str = "0.17.";

/// The Python tools the host's API tests run (openapi-spec-validator, schemathesis), pinned;
/// the tests find their virtualenv by this file's content, as `pinned_venv` names it.
const API_TEST_TOOLS: &str = "host/tests/requirements.txt";

/// The LLVM release whose Debian packages we install when no suitable clang is present.
const DEBIAN_LLVM: &str = "19";

#[derive(Debug, clap::Args)]
pub struct Setup {
    /// Only what building plugins and running the host need (clang, libclang, WasmEdge), as
    /// `cargo xtask run` does: not the test tools (bindfs, docker-registry, skopeo, Go, curl, the API test tools).
    #[arg(long)]
    without_test_tools: bool,
}

impl Setup {
    /// What building plugins and running the host need: clang, libclang and WasmEdge.
    pub fn for_running() -> Self {
        Self { without_test_tools: true }
    }

    /// That, and the tools the tests run for real (bindfs, docker-registry, skopeo, Go, curl, the API test tools).
    pub fn everything() -> Self {
        Self { without_test_tools: false }
    }

    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let clang = wasm_clang(sh)?;
        let rustc = plugin_rustc(sh);
        let zig = plugin_zig(sh);
        let asc = plugin_asc(sh);
        ensure_libclang(sh)?;
        let wasmedge = ensure_wasmedge(sh)?;
        if !self.without_test_tools {
            ensure_bindfs(sh)?;
            ensure_registry_tools(sh)?;
            ensure_client_test_tools(sh)?;
            crate::check_deploy::pinned_venv(sh, API_TEST_TOOLS, "the API test tools (schemathesis)")?;
            ensure_signer(sh)?;
        }
        step(format!(
            "toolchain ready: {} and WasmEdge {} in {}",
            clang.display(),
            wasmedge.version,
            wasmedge.dir.display()
        ));
        match rustc {
            Ok(rustc) => step(format!("Rust plugins: {} with the wasm32 standard library", rustc.display())),
            Err(missing) => step(format!("Rust plugins cannot be built here, and will fail to build: {missing}")),
        }
        match zig {
            Ok(python) => {
                step(format!("Zig plugins: {} -m ziglang ({})", python.display(), crate::build_plugins::ZIGLANG))
            }
            Err(missing) => step(format!("Zig plugins cannot be built here, and will fail to build: {missing}")),
        }
        match asc {
            Ok(asc) => {
                step(format!("AssemblyScript plugins: {} ({})", asc.display(), crate::build_plugins::ASSEMBLYSCRIPT))
            }
            Err(missing) => {
                step(format!("AssemblyScript plugins cannot be built here, and will fail to build: {missing}"))
            }
        }
        Ok(())
    }
}

/// Zig for plugins: PyPI's `ziglang` wheel in a private virtual environment under the project's
/// cache (about 100 MB, shared by every checkout on the machine). Like [`plugin_rustc`], a failure
/// is reported, not fatal.
fn plugin_zig(sh: &Shell) -> Result<PathBuf, String> {
    if let Ok(python) = crate::build_plugins::find_zig() {
        return Ok(python);
    }
    let venv = crate::build_plugins::zig_venv_dir();
    let package = crate::build_plugins::ZIGLANG;
    step(format!("installing {package} from PyPI into {}", venv.display()));
    let pip = venv.join("bin/pip");
    let install = || -> anyhow::Result<()> {
        // A fresh Debian has no python3 (or no venv module) until something installs it.
        crate::check_deploy::ensure_python(sh)?;
        cmd!(sh, "python3 -m venv {venv}").run()?;
        cmd!(sh, "{pip} install -q {package}").run()?;
        Ok(())
    };
    install().map_err(|err| format!("{err:#}"))?;
    crate::build_plugins::find_zig()
}

/// AssemblyScript for plugins: npm's `assemblyscript` in a private folder under the project's
/// cache. Like [`plugin_rustc`], a failure is reported, not fatal.
fn plugin_asc(sh: &Shell) -> Result<PathBuf, String> {
    if let Ok(asc) = crate::build_plugins::find_asc() {
        return Ok(asc);
    }
    let dir = crate::build_plugins::asc_dir();
    let package = crate::build_plugins::ASSEMBLYSCRIPT;
    step(format!("installing {package} from npm into {}", dir.display()));
    let install = || -> anyhow::Result<()> {
        // A fresh Debian has no npm: Debian's own (with its Node.js) is enough.
        if resolve_program(Path::new("npm")).is_none() {
            apt_install(sh, &["npm".to_string()], "npm (for AssemblyScript)")?;
        }
        fs::create_dir_all(&dir)?;
        cmd!(sh, "npm install --no-audit --no-fund --prefix {dir} {package}").run()?;
        Ok(())
    };
    install().map_err(|err| format!("{err:#}"))?;
    crate::build_plugins::find_asc()
}

/// Debian's Rust compiler for plugins (`rustc`, `libstd-rust-dev-wasm32`, `lld-14`), installed
/// when missing. A machine where it cannot be installed still builds C plugins, so this is not
/// an error here: building a Rust plugin fails instead, saying what is missing.
fn plugin_rustc(sh: &Shell) -> Result<PathBuf, String> {
    if let Ok(rustc) = crate::build_plugins::find_rustc() {
        return Ok(rustc);
    }
    let packages = crate::build_plugins::RUST_DEBIAN_PACKAGES.map(str::to_owned);
    apt_install(sh, &packages, "Debian's Rust compiler for wasm32 plugins").map_err(|err| format!("{err:#}"))?;
    crate::build_plugins::find_rustc()
}

/// A WasmEdge install whose version has been checked.
#[derive(Debug)]
pub struct WasmEdgeInstall {
    /// Holds `include/wasmedge/wasmedge.h` and `lib/libwasmedge.so*`.
    pub dir: PathBuf,
    pub version: String,
}

/// Returns a clang that compiles and links a wasm32 module, installing one on Debian-family
/// machines when none is found.
pub fn wasm_clang(sh: &Shell) -> anyhow::Result<PathBuf> {
    if let Some(clang) = find_wasm_clang(sh) {
        return Ok(clang);
    }
    let packages = [format!("clang-{DEBIAN_LLVM}"), format!("lld-{DEBIAN_LLVM}")];
    apt_install(sh, &packages, "a clang that targets wasm32, with wasm-ld")?;
    find_wasm_clang(sh).context("clang was installed but still cannot build a wasm32 module")
}

/// Candidates in order of preference: what the user asked for, then the usual names.
fn find_wasm_clang(sh: &Shell) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(clang) = std::env::var("CLANG") {
        candidates.push(PathBuf::from(clang));
    }
    if let Ok(wasi_sdk) = std::env::var("WASI_SDK_PATH") {
        candidates.push(Path::new(&wasi_sdk).join("bin/clang"));
    }
    candidates.push("clang".into());
    candidates.extend((15..=22).rev().map(|v| PathBuf::from(format!("clang-{v}"))));
    candidates.into_iter().filter_map(|c| resolve_program(&c)).find(|c| builds_wasm(sh, c))
}

/// Checks a clang by building the smallest possible plugin, which exercises the wasm32 backend
/// and wasm-ld together: `--print-targets` alone misses a missing linker.
fn builds_wasm(sh: &Shell, clang: &Path) -> bool {
    let Ok(dir) = sh.create_temp_dir() else {
        return false;
    };
    let src = dir.path().join("probe.c");
    let out = dir.path().join("probe.wasm");
    if fs::write(&src, "__attribute__((export_name(\"init\"))) int init(void) { return 0; }\n").is_err() {
        return false;
    }
    cmd!(sh, "{clang} --target=wasm32 -nostdlib -Wl,--no-entry -o {out} {src}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
        && out.exists()
}

/// Resolves a bare program name through `PATH`; paths are taken as they are.
pub(crate) fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// wasmedge-sys generates its bindings with bindgen, which loads libclang at build time.
fn ensure_libclang(sh: &Shell) -> anyhow::Result<()> {
    if find_libclang().is_some() {
        return Ok(());
    }
    apt_install(sh, &[format!("libclang-{DEBIAN_LLVM}-dev")], "libclang (for bindgen)")?;
    find_libclang().map(drop).context("libclang was installed but still cannot be found")
}

/// Looks where clang-sys looks: `LIBCLANG_PATH`, then the distribution's LLVM folders.
fn find_libclang() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LIBCLANG_PATH").map(PathBuf::from).into_iter().collect();
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llvm-")))
                .map(|p| p.join("lib")),
        );
    }
    dirs.extend(["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"].map(PathBuf::from));
    dirs.into_iter().find_map(|dir| {
        fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("libclang")
                    && n.to_string_lossy().contains(".so")
                    && !n.to_string_lossy().starts_with("libclang-cpp")
            })
        })
    })
}

/// Installs distribution packages when that is possible without asking anybody (root on a
/// Debian-family machine); otherwise fails with the exact command to run.
pub(crate) fn apt_install(sh: &Shell, packages: &[String], what: &str) -> anyhow::Result<()> {
    let command = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if !is_debian_family() {
        bail!(
            "{what} is missing; install it with your package manager (on Debian/Ubuntu: `sudo {command}`) and re-run"
        );
    }
    if !is_root(sh) {
        bail!("{what} is missing; run `sudo apt-get update && sudo {command}` and re-run");
    }
    step(format!("installing {}", packages.join(" ")));
    // A fresh machine has no package lists yet; refresh them once per run.
    static LISTS_UPDATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LISTS_UPDATED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        cmd!(sh, "apt-get update -qq").run()?;
    }
    cmd!(sh, "apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {packages...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .with_context(|| format!("`{command}` failed"))
}

fn is_debian_family() -> bool {
    Path::new("/etc/debian_version").exists() && Path::new("/usr/bin/apt-get").exists()
}

pub(crate) fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u").quiet().read().is_ok_and(|uid| uid.trim() == "0")
}

/// `bindfs` for the Fluid store's tests (see the module documentation).
fn ensure_bindfs(sh: &Shell) -> anyhow::Result<()> {
    if resolve_program(Path::new("bindfs")).is_some() {
        return Ok(());
    }
    apt_install(sh, &["bindfs".to_owned()], "bindfs (a FUSE file system the tests mount)")
}

/// The registry and the second OCI client the tests use (see the module documentation).
fn ensure_registry_tools(sh: &Shell) -> anyhow::Result<()> {
    ensure_docker_registry(sh)?;
    if resolve_program(Path::new("skopeo")).is_some() {
        return Ok(());
    }
    apt_install(sh, &["skopeo".to_owned()], "skopeo (a second OCI client the tests use)")
}

/// Go, whose tests of the Go client (`clients/go`, standard library only) run against the real
/// server, and `curl`, which runs README.md's examples. Debian's Go is the one wanted: the
/// tests run it with `GOTOOLCHAIN=local` and `GOPROXY=off`, so it never downloads anything.
fn ensure_client_test_tools(sh: &Shell) -> anyhow::Result<()> {
    let mut packages = Vec::new();
    if resolve_program(Path::new("go")).is_none() {
        packages.push("golang-go".to_owned());
    }
    if resolve_program(Path::new("curl")).is_none() {
        packages.push("curl".to_owned());
    }
    if packages.is_empty() {
        return Ok(());
    }
    apt_install(sh, &packages, "Go and curl (the Go client's tests and README.md's examples)")
}

/// The pinned requirements of the independent cosign signer the registry tests run.
pub(crate) const SIGNER_REQUIREMENTS: &str = "host/tests/signer/requirements.txt";

/// The virtualenv of the independent cosign signer (`host/tests/signer/cosign_sign.py`, PyPI's
/// `cryptography`): made again whenever the pinned requirements change (its copy of them is
/// written last, so an interrupted install is redone rather than trusted).
fn ensure_signer(sh: &Shell) -> anyhow::Result<()> {
    let requirements_path = sh.current_dir().join(SIGNER_REQUIREMENTS);
    let requirements = fs::read(&requirements_path)?;
    let venv = cache_dir().join("signer-venv");
    let marker = venv.join("requirements.txt");
    if fs::read(&marker).is_ok_and(|done| done == requirements) {
        return Ok(());
    }
    crate::check_deploy::ensure_python(sh)?;
    if venv.exists() {
        fs::remove_dir_all(&venv)?;
    }
    step(format!("installing the test signer's pinned `cryptography` into {}", venv.display()));
    cmd!(sh, "python3 -m venv {venv}").run()?;
    cmd!(sh, "{venv}/bin/pip install --quiet --disable-pip-version-check --no-input -r {requirements_path}").run()?;
    fs::write(&marker, &requirements)?;
    Ok(())
}

/// `docker-registry`, for the tests and `cargo xtask registry`. Debian's package also starts
/// a system-wide registry service, on every interface, where systemd runs: nothing here uses
/// it, so it is stopped and disabled right after the install.
pub(crate) fn ensure_docker_registry(sh: &Shell) -> anyhow::Result<()> {
    if resolve_program(Path::new("docker-registry")).is_some() {
        return Ok(());
    }
    apt_install(
        sh,
        &["docker-registry".to_owned()],
        "docker-registry (an OCI registry the tests and `cargo xtask registry` run)",
    )?;
    if Path::new("/run/systemd/system").exists() {
        step("stopping and disabling the docker-registry system service the package started");
        cmd!(sh, "systemctl disable --now docker-registry.service").run()?;
    }
    Ok(())
}

/// What wasmedge-sys searches, in its order (shared with `plugin-host/build.rs`).
#[path = "../../plugin-host/wasmedge_search.rs"]
mod wasmedge_search;

/// Makes sure the WasmEdge that wasmedge-sys will find by itself is 0.17.x: an install it
/// already finds, else a distribution install in `/usr` or Debian's build, installed once per
/// user and reached through `~/.wasmedge` (see the module documentation).
fn ensure_wasmedge(sh: &Shell) -> anyhow::Result<WasmEdgeInstall> {
    ensure_wasmedge_with(sh, &|name| std::env::var_os(name))
}

/// [`ensure_wasmedge`] with the environment variables `env` gives.
fn ensure_wasmedge_with(sh: &Shell, env: &dyn Fn(&str) -> Option<OsString>) -> anyhow::Result<WasmEdgeInstall> {
    let home = env("HOME").map(PathBuf::from).context("HOME is not set: wasmedge-sys looks under it")?;
    let link = home.join(".wasmedge");
    let ours = data_dir(&home, env);
    // wasmedge-sys takes the first install it finds, whatever its version.
    let mut before_link = true;
    for location in wasmedge_search::locations(env) {
        let under_link = location.include.starts_with(&link);
        before_link &= !under_link;
        if !location.is_install() {
            continue;
        }
        let place = install_dir(&location);
        match installed_version(&location.include) {
            Some(version) if version.starts_with(WASMEDGE_VERSION_PREFIX) => {
                return Ok(WasmEdgeInstall { dir: place, version });
            }
            // Our own link, to an install of another version: made again below.
            _ if under_link && links_into(&link, &ours) => break,
            version if before_link || under_link => bail!(
                "wasmedge-sys would build against WasmEdge {} in {}, but wasmedge-sdk 0.17.1 needs \
                 {WASMEDGE_VERSION_PREFIX}x; point WASMEDGE_DIR at a WasmEdge 0.17 install (wasmedge-sys reads it \
                 first), or remove that one, and re-run",
                version.as_deref().unwrap_or("of unknown version"),
                place.display()
            ),
            // Found after ~/.wasmedge: the link made below comes first.
            version => {
                let version = version.as_deref().unwrap_or("of unknown version");
                step(format!("ignoring WasmEdge {version} in {} (need {WASMEDGE_VERSION_PREFIX}x)", place.display()));
                break;
            }
        }
    }

    let target = if let Some(lib) = distribution_install() {
        link_distribution_install(&ours, &lib)?
    } else if let Some(dir) = private_install(&ours) {
        dir
    } else if is_debian_family() {
        debian_wasmedge::install(sh, &ours)?
    } else {
        bail!(
            "WasmEdge {WASMEDGE_VERSION_PREFIX}x was not found. Install it with the official installer \
             (https://wasmedge.org/docs/start/install, `install.sh -v 0.17.1`, which installs into ~/.wasmedge) \
             or set WASMEDGE_DIR to an install"
        )
    };
    point_link(&link, &ours, &target)?;
    let found = wasmedge_search::find(env)
        .filter(|found| found.include.starts_with(&link))
        .with_context(|| format!("{} was made, but wasmedge-sys would not use it", link.display()))?;
    let version = installed_version(&found.include).context("the WasmEdge install has no version.h")?;
    Ok(WasmEdgeInstall { dir: target, version })
}

/// Where setup keeps what it installs for this user, shared by every checkout:
/// `$XDG_DATA_HOME/wasm-plugin-host`, else `~/.local/share/wasm-plugin-host`.
fn data_dir(home: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .unwrap_or_else(|| home.join(".local/share"))
        .join("wasm-plugin-host")
}

/// The folder an install's `include/` and library folder are in.
fn install_dir(found: &wasmedge_search::Location) -> PathBuf {
    found.include.parent().map_or_else(|| found.include.clone(), Path::to_path_buf)
}

/// Reads the version from an include folder's `wasmedge/version.h`, which needs no running of
/// anything.
fn installed_version(include: &Path) -> Option<String> {
    let header = fs::read_to_string(include.join("wasmedge/version.h")).ok()?;
    let line = header.lines().find(|l| l.contains("#define WASMEDGE_VERSION "))?;
    Some(line.split('"').nth(1)?.to_string())
}

/// Whether `link` is a symbolic link setup made: one that points into `ours`.
fn links_into(link: &Path, ours: &Path) -> bool {
    fs::read_link(link).is_ok_and(|target| target.starts_with(ours))
}

/// A distribution's WasmEdge 0.17 in `/usr` (Debian forky's `libwasmedge-dev`, for example),
/// which wasmedge-sys does not search: its library folder.
fn distribution_install() -> Option<PathBuf> {
    if !installed_version(Path::new("/usr/include")).is_some_and(|v| v.starts_with(WASMEDGE_VERSION_PREFIX)) {
        return None;
    }
    ["/usr/lib64", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
        .into_iter()
        .map(PathBuf::from)
        .find(|lib| lib.join("libwasmedge.so").exists())
}

/// Gives a distribution install the `include/` and `lib/` pair wasmedge-sys expects, as links.
fn link_distribution_install(ours: &Path, lib: &Path) -> anyhow::Result<PathBuf> {
    let dir = ours.join("wasmedge-from-usr");
    let expected = [("include", Path::new("/usr/include")), ("lib", lib)];
    if expected.iter().all(|(name, to)| fs::read_link(dir.join(name)).is_ok_and(|t| t == *to)) {
        return Ok(dir);
    }
    step(format!("linking the distribution's WasmEdge in /usr from {}", dir.display()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    for (name, to) in expected {
        std::os::unix::fs::symlink(to, dir.join(name))?;
    }
    Ok(dir)
}

/// A complete private install of a 0.17 release left by an earlier setup (of any checkout), the
/// newest if there are several.
fn private_install(ours: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(ours)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("wasmedge-{WASMEDGE_VERSION_PREFIX}")))
                && installed_version(&dir.join("include")).is_some_and(|v| v.starts_with(WASMEDGE_VERSION_PREFIX))
                && dir.join("lib/libwasmedge.so").exists()
                && dir.join("sysroot/ld-linux-x86-64.so.2").exists()
        })
        .collect();
    found.sort();
    found.pop()
}

/// Points `~/.wasmedge` at `target`, replacing only a link setup made: anything else there is
/// the user's.
fn point_link(link: &Path, ours: &Path, target: &Path) -> anyhow::Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    if fs::symlink_metadata(link).is_ok() && !links_into(link, ours) {
        bail!(
            "{} exists and is not a WasmEdge 0.17 install; remove it, or set WASMEDGE_DIR={} (which \
             wasmedge-sys reads first), and re-run",
            link.display(),
            target.display()
        );
    }
    step(format!("linking {} to {}", link.display(), target.display()));
    // A new link renamed over the old one: the old one stays whole until the new one is there.
    let staging = link.with_file_name(format!(".wasmedge.{}.partial", std::process::id()));
    let _ = fs::remove_file(&staging);
    std::os::unix::fs::symlink(target, &staging)?;
    fs::rename(&staging, link).with_context(|| format!("replacing {}", link.display()))
}

/// The machine's Debian archive and the project's cache folder, also used by `rootfs-smoke` and
/// `check-deploy`.
pub(crate) use debian_wasmedge::{cache_dir, debian_mirror};

/// Debian's `libwasmedge` 0.17.1 build, which only exists in Debian testing ("forky"), made to
/// run on an older Debian by shipping its runtime libraries and their loader beside it.
mod debian_wasmedge {
    use super::*;

    /// The packages, as verified by hand (see the shared notes); the glibc, libstdc++ and LLVM
    /// they bring are newer than the system's, which is why they live in a private sysroot.
    const PACKAGES: &[&str] = &[
        "libwasmedge0",
        "libwasmedge-dev",
        "libc6",
        "libgcc-s1",
        "libstdc++6",
        "libllvm21",
        "libfmt11",
        "libspdlog1.15",
        "libzstd1",
        "zlib1g",
        "libxml2-16",
        "libz3-4",
        "libedit2",
        "libffi8",
        "libbsd0",
        "libmd0",
        "libtinfo6",
    ];
    const SUITE: &str = "forky";

    /// Installs into `<ours>/wasmedge-<version>` and returns that folder.
    pub(super) fn install(sh: &Shell, ours: &Path) -> anyhow::Result<PathBuf> {
        step(format!("installing Debian's libwasmedge 0.17 into {}", ours.display()));
        ensure_tools(sh)?;
        let debs = download(sh)?;
        // A staging folder of this process's own: two checkouts may run setup at once.
        fs::create_dir_all(ours)?;
        let staging = ours.join(format!("wasmedge.{}.partial", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        let unpacked = staging.join("unpacked");
        fs::create_dir_all(&unpacked)?;
        for deb in &debs {
            cmd!(sh, "dpkg -x {deb} {unpacked}").quiet().run()?;
        }
        lay_out(sh, &unpacked, &staging)?;
        fs::remove_dir_all(&unpacked)?;
        let version = installed_version(&staging.join("include")).context("Debian's libwasmedge has no version.h")?;
        if !version.starts_with(WASMEDGE_VERSION_PREFIX) {
            fs::remove_dir_all(&staging)?;
            bail!("Debian's libwasmedge is {version}, but wasmedge-sdk 0.17.1 needs {WASMEDGE_VERSION_PREFIX}x");
        }
        // Rename last, so an interrupted setup never leaves a half-made install in place. A
        // folder of that name is incomplete (`private_install` passed it over) unless another
        // setup has just finished it: only the incomplete one is replaced.
        let target = ours.join(format!("wasmedge-{version}"));
        if private_install(ours).is_some_and(|done| done == target) {
            fs::remove_dir_all(&staging)?;
            return Ok(target);
        }
        if target.exists() {
            fs::remove_dir_all(&target)?;
        }
        fs::rename(&staging, &target)?;
        Ok(target)
    }

    fn ensure_tools(sh: &Shell) -> anyhow::Result<()> {
        if resolve_program(Path::new("patchelf")).is_none() {
            apt_install(sh, &["patchelf".to_string()], "patchelf")?;
        }
        Ok(())
    }

    /// Downloads the `.deb`s with a private apt state, leaving the system's apt lists alone.
    /// They are kept in the user's cache so that fresh clones on the same machine reuse them.
    fn download(sh: &Shell) -> anyhow::Result<Vec<PathBuf>> {
        let cache = cache_dir().join(format!("debian-{SUITE}"));
        let debs_dir = cache.join("debs");
        let existing = |dir: &Path| -> Vec<PathBuf> {
            let mut found: Vec<PathBuf> = PACKAGES
                .iter()
                .filter_map(|p| {
                    fs::read_dir(dir)
                        .ok()?
                        .flatten()
                        .map(|e| e.path())
                        .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{p}_"))))
                })
                .collect();
            found.sort();
            found
        };
        let cached = existing(&debs_dir);
        if cached.len() == PACKAGES.len() {
            return Ok(cached);
        }

        let mirror = debian_mirror()?;
        let lists = cache.join("lists");
        fs::create_dir_all(lists.join("partial"))?;
        fs::create_dir_all(cache.join("archives/partial"))?;
        fs::create_dir_all(&debs_dir)?;
        let sources = cache.join("sources.list");
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let signed_by = if Path::new(keyring).exists() { format!("[signed-by={keyring}] ") } else { String::new() };
        fs::write(&sources, format!("deb {signed_by}{mirror} {SUITE} main\n"))?;
        let apt_options = [
            format!("-oDir::Etc::sourcelist={}", sources.display()),
            "-oDir::Etc::sourceparts=/dev/null".to_string(),
            format!("-oDir::State::Lists={}", lists.display()),
            format!("-oDir::Cache={}", cache.display()),
            "-oDebug::NoLocking=1".to_string(),
            // The cache lives in the invoking user's home, which apt's `_apt` user cannot write.
            "-oAPT::Sandbox::User=root".to_string(),
            // A testing suite's index is valid for a week only, and a mirror (or a snapshot of
            // the archive) may serve one past that: then apt refuses it, and a fresh machine
            // cannot set up at all. Its signature is still checked (`signed-by` above), and what
            // it brings is checked too: the WasmEdge version must be 0.17 (`install`).
            "-oAcquire::Check-Valid-Until=false".to_string(),
        ];
        step(format!("fetching the {SUITE} package index from {mirror} (private apt state in {})", cache.display()));
        let apt_options = &apt_options;
        cmd!(sh, "apt-get -qq {apt_options...} update")
            .run()
            .context("apt-get update of the private Debian source failed")?;
        let _dir = sh.push_dir(&debs_dir);
        cmd!(sh, "apt-get -qq {apt_options...} download {PACKAGES...}")
            .run()
            .context("downloading Debian's libwasmedge packages failed")?;
        let downloaded = existing(&debs_dir);
        if downloaded.len() != PACKAGES.len() {
            bail!("expected {} packages in {}, found {}", PACKAGES.len(), debs_dir.display(), downloaded.len());
        }
        Ok(downloaded)
    }

    pub(crate) fn cache_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join("wasm-plugin-host")
    }

    /// The Debian archive the machine itself is configured to use: never a hard-coded mirror.
    /// `DEBIAN_MIRROR` overrides it.
    pub(crate) fn debian_mirror() -> anyhow::Result<String> {
        if let Ok(mirror) = std::env::var("DEBIAN_MIRROR") {
            return Ok(mirror);
        }
        let mut texts = Vec::new();
        if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            texts.extend(paths.iter().filter_map(|p| fs::read_to_string(p).ok()));
        }
        texts.extend(fs::read_to_string("/etc/apt/sources.list").ok());
        texts
            .iter()
            .flat_map(|text| source_uris(text))
            .find(|uri| is_debian_archive(uri))
            .context("no Debian archive found in /etc/apt/sources.list{,.d}; set DEBIAN_MIRROR to one")
    }

    /// The archive URIs in an apt sources file, in either the one-line or the deb822 format.
    pub(super) fn source_uris(text: &str) -> Vec<String> {
        let mut uris = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("URIs:") {
                uris.extend(rest.split_whitespace().map(str::to_string));
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // `deb [options] uri suite components...`
                let rest = match rest.trim_start().strip_prefix('[') {
                    Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                uris.extend(rest.split_whitespace().next().map(str::to_string));
            }
        }
        uris
    }

    /// The main archive (not security, not a third-party repository): its path ends in `/debian`.
    pub(super) fn is_debian_archive(uri: &str) -> bool {
        uri.trim_end_matches('/').ends_with("/debian")
    }

    /// Three folders, because wasmedge-sys puts `lib/` on rustc's own `LD_LIBRARY_PATH`: a newer
    /// glibc there would break rustc itself. `lib/` gets only libwasmedge, `sysroot/` the rest
    /// and the dynamic loader that the host's binaries are linked to use (see `plugin-host/build.rs`).
    fn lay_out(sh: &Shell, unpacked: &Path, out: &Path) -> anyhow::Result<()> {
        let include = out.join("include");
        let lib = out.join("lib");
        let sysroot = out.join("sysroot");
        for dir in [&include, &lib, &sysroot] {
            fs::create_dir_all(dir)?;
        }
        // Copied with fresh modification times (no `-a`): wasmedge-sys reruns when the header
        // it read is newer than its last run, which is how a new install reaches a build.
        let headers = unpacked.join("usr/include/wasmedge");
        cmd!(sh, "cp -R {headers} {include}").quiet().run()?;

        let multiarch =
            ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu"];
        for dir in multiarch.iter().map(|d| unpacked.join(d)).filter(|d| d.is_dir()) {
            for entry in fs::read_dir(&dir)?.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.contains(".so") || path.is_dir() {
                    continue;
                }
                let dest = if name.starts_with("libwasmedge.so") { &lib } else { &sysroot };
                cmd!(sh, "cp -a {path} {dest}").quiet().run()?;
            }
        }
        if !sysroot.join("ld-linux-x86-64.so.2").exists() {
            bail!("the unpacked libc6 has no ld-linux-x86-64.so.2 (is this x86_64?)");
        }

        // The libraries carry DT_RUNPATH, which hides the executable's rpath from their own
        // dependencies; point them at their neighbours instead.
        let libwasmedge = real_file(&lib, "libwasmedge.so.")?;
        cmd!(sh, "patchelf --set-rpath $ORIGIN:$ORIGIN/../sysroot {libwasmedge}").quiet().run()?;
        let libllvm = real_file(&sysroot, "libLLVM.so.")?;
        cmd!(sh, "patchelf --set-rpath $ORIGIN {libllvm}").quiet().run()?;
        Ok(())
    }

    /// The regular file (not a symlink) in `dir` whose name starts with `prefix`.
    fn real_file(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
        fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| !p.is_symlink() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .with_context(|| format!("no {prefix}* in {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, ffi::OsString, fs, path::Path};

    use xshell::Shell;

    use super::{
        debian_wasmedge::{is_debian_archive, source_uris},
        ensure_wasmedge_with,
    };

    /// The shape of an install as wasmedge-sys and setup test for it: the header, its version,
    /// the library and the private loader (empty files are enough; nothing is linked here).
    fn fake_install(dir: &Path, version: &str) {
        fs::create_dir_all(dir.join("include/wasmedge")).unwrap();
        fs::create_dir_all(dir.join("lib")).unwrap();
        fs::create_dir_all(dir.join("sysroot")).unwrap();
        fs::write(dir.join("include/wasmedge/wasmedge.h"), "").unwrap();
        fs::write(dir.join("include/wasmedge/version.h"), format!("#define WASMEDGE_VERSION \"{version}\"\n")).unwrap();
        fs::write(dir.join("lib/libwasmedge.so"), "").unwrap();
        fs::write(dir.join("sysroot/ld-linux-x86-64.so.2"), "").unwrap();
    }

    #[test]
    fn wasmedge_is_installed_once_per_user_and_only_setups_own_link_is_replaced() {
        // This machine's own WasmEdge in /usr or /usr/local would be chosen instead.
        if super::distribution_install().is_some() || Path::new("/usr/local/include/wasmedge").exists() {
            return;
        }
        let sh = Shell::new().unwrap();
        let home = tempfile::tempdir().unwrap();
        let link = home.path().join(".wasmedge");
        let ours = home.path().join(".local/share/wasm-plugin-host");
        let run = |extra: &[(&str, &Path)]| {
            let mut vars: HashMap<String, OsString> = HashMap::from([("HOME".into(), home.path().into())]);
            vars.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), value.as_os_str().to_owned())));
            ensure_wasmedge_with(&sh, &|name| vars.get(name).cloned())
        };

        // A fresh home, with the install an earlier setup (of another clone) left.
        fake_install(&ours.join("wasmedge-0.17.1"), "0.17.1");
        let installed = run(&[]).unwrap();
        assert_eq!(installed.version, "0.17.1");
        assert_eq!(fs::read_link(&link).unwrap(), ours.join("wasmedge-0.17.1"));
        // Idempotent: the link stays as it is.
        let made = fs::symlink_metadata(&link).unwrap().modified().unwrap();
        run(&[]).unwrap();
        assert_eq!(fs::symlink_metadata(&link).unwrap().modified().unwrap(), made);

        // Setup's own link to another version is pointed at a 0.17 install again.
        fake_install(&ours.join("wasmedge-0.16.0"), "0.16.0");
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(ours.join("wasmedge-0.16.0"), &link).unwrap();
        run(&[]).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), ours.join("wasmedge-0.17.1"));

        // WASMEDGE_DIR comes first in wasmedge-sys's search: a 0.17 install there is used as it
        // is, and one of another version is refused, naming both.
        let elsewhere = tempfile::tempdir().unwrap();
        fake_install(elsewhere.path(), "0.17.2");
        assert_eq!(run(&[("WASMEDGE_DIR", elsewhere.path())]).unwrap().dir, elsewhere.path());
        fake_install(elsewhere.path(), "0.14.1");
        let refused = run(&[("WASMEDGE_DIR", elsewhere.path())]).unwrap_err().to_string();
        assert!(
            refused.contains("WasmEdge 0.14.1") && refused.contains(&*elsewhere.path().to_string_lossy()),
            "{refused}"
        );

        // A ~/.wasmedge setup did not make is the user's: refused, never replaced.
        fs::remove_file(&link).unwrap();
        fake_install(&link, "0.16.0");
        let refused = run(&[]).unwrap_err().to_string();
        assert!(refused.contains("WasmEdge 0.16.0") && refused.contains("WASMEDGE_DIR"), "{refused}");
        fs::remove_dir_all(&link).unwrap();
        fs::create_dir_all(link.join("bin")).unwrap();
        let refused = run(&[]).unwrap_err().to_string();
        assert!(refused.contains("is not a WasmEdge 0.17 install"), "{refused}");
        assert!(link.join("bin").is_dir() && !link.is_symlink());
    }

    #[test]
    fn reads_archive_uris_from_both_source_formats() {
        let deb822 = "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        let one_line = "deb [arch=amd64 signed-by=/k.gpg] http://other.example/debian/ bookworm main\n\
                        deb https://vendor.example/apt stable main\n";
        assert_eq!(source_uris(deb822), ["http://mirror.example/debian", "http://mirror.example/debian-security"]);
        assert_eq!(source_uris(one_line), ["http://other.example/debian/", "https://vendor.example/apt"]);

        let archives: Vec<_> =
            source_uris(deb822).into_iter().chain(source_uris(one_line)).filter(|u| is_debian_archive(u)).collect();
        assert_eq!(archives, ["http://mirror.example/debian", "http://other.example/debian/"]);
    }
}
