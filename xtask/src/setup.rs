//! `cargo xtask setup`: finds or installs the native toolchain the project needs.
//!
//! Four things are needed beyond the Rust toolchain:
//! - a clang that targets wasm32, with `wasm-ld`, to compile plugins;
//! - libclang, which wasmedge-sys uses (through bindgen) to read WasmEdge's C header;
//! - the WasmEdge **0.17.x** C library, which `wasmedge-sdk` 0.17.1 binds to;
//! - `bindfs`, a FUSE file system the Fluid store's tests mount for real (killing its daemon
//!   gives the same `ENOTCONN` a crashed Fluid FUSE pod does);
//! - `docker-registry` (the CNCF distribution registry) and `skopeo`, which the OCI store's and
//!   `publish`'s tests run for real: a registry on 127.0.0.1, and a second, standard client to
//!   check that what each side writes the other reads.
//!
//! An existing, matching install is always preferred. Otherwise, on Debian-family machines,
//! clang and libclang come from the distribution, and WasmEdge comes from Debian's own
//! `libwasmedge` 0.17.1 build (only in Debian testing) unpacked with its runtime libraries into
//! `.toolchain/wasmedge` (see BUILD.md for why and how). Every step checks before it acts, so a
//! second run does nothing.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::step;

/// The WasmEdge release `wasmedge-sdk` 0.17.1 (through wasmedge-sys 0.21.1) is written against.
const WASMEDGE_VERSION_PREFIX: &str = "0.17.";

/// Where a private WasmEdge install lives, relative to the project root. `.cargo/config.toml`
/// points wasmedge-sys here and `host/build.rs` adds the matching link arguments.
const PRIVATE_WASMEDGE: &str = ".toolchain/wasmedge";

/// The LLVM release whose Debian packages we install when no suitable clang is present.
const DEBIAN_LLVM: &str = "19";

#[derive(Debug, clap::Args)]
pub struct Setup {}

impl Setup {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let clang = wasm_clang(sh)?;
        let rustc = plugin_rustc(sh);
        let zig = plugin_zig(sh);
        let asc = plugin_asc(sh);
        ensure_libclang(sh)?;
        let wasmedge = ensure_wasmedge(sh)?;
        ensure_bindfs(sh)?;
        ensure_registry_tools(sh)?;
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
/// Debian's `docker-registry` package would also start a system-wide registry service where
/// systemd runs; the tests start their own on a free port and never use that one.
fn ensure_registry_tools(sh: &Shell) -> anyhow::Result<()> {
    let missing: Vec<String> = [("docker-registry", "docker-registry"), ("skopeo", "skopeo")]
        .into_iter()
        .filter(|(program, _)| resolve_program(Path::new(program)).is_none())
        .map(|(_, package)| package.to_owned())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(sh, &missing, "an OCI registry and skopeo (the OCI store's tests run them)")
}

/// Finds a WasmEdge 0.17.x install, or makes the private one.
fn ensure_wasmedge(sh: &Shell) -> anyhow::Result<WasmEdgeInstall> {
    let private = sh.current_dir().join(PRIVATE_WASMEDGE);
    for dir in wasmedge_candidates(&private) {
        match installed_version(&dir) {
            Some(version) if version.starts_with(WASMEDGE_VERSION_PREFIX) => {
                if dir != private {
                    link_private_to(&private, &dir)?;
                }
                return Ok(WasmEdgeInstall { dir, version });
            }
            Some(version) => {
                step(format!("ignoring WasmEdge {version} in {} (need {WASMEDGE_VERSION_PREFIX}x)", dir.display()));
            }
            None => {}
        }
    }
    if !is_debian_family() {
        bail!(
            "WasmEdge {WASMEDGE_VERSION_PREFIX}x was not found. Install it with the official installer \
             (https://wasmedge.org/docs/start/install, `install.sh -v 0.17.1`) or set WASMEDGE_DIR to an install"
        );
    }
    debian_wasmedge::install(sh, &private)?;
    let version = installed_version(&private).context("the private WasmEdge install has no version.h")?;
    if !version.starts_with(WASMEDGE_VERSION_PREFIX) {
        bail!("Debian's libwasmedge is {version}, but wasmedge-sdk 0.17.1 needs {WASMEDGE_VERSION_PREFIX}x");
    }
    Ok(WasmEdgeInstall { dir: private, version })
}

/// Install folders to try, most specific first. Each holds `include/wasmedge/` and `lib/`.
fn wasmedge_candidates(private: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![private.to_path_buf()];
    if let Some(dir) = std::env::var_os("WASMEDGE_DIR") {
        dirs.push(dir.into());
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".wasmedge"));
    }
    dirs.push("/usr/local".into());
    dirs.push("/usr".into());
    dirs
}

/// Reads the version from the install's `version.h`, which needs no running of anything.
fn installed_version(dir: &Path) -> Option<String> {
    let header = fs::read_to_string(dir.join("include/wasmedge/version.h")).ok()?;
    let line = header.lines().find(|l| l.contains("#define WASMEDGE_VERSION "))?;
    Some(line.split('"').nth(1)?.to_string())
}

/// Makes `.toolchain/wasmedge/{include,lib}` point at a system install, so the fixed paths in
/// `.cargo/config.toml` work whichever install was found.
fn link_private_to(private: &Path, install: &Path) -> anyhow::Result<()> {
    let lib = ["lib64", "lib", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"]
        .into_iter()
        .map(|l| install.join(l))
        .find(|l| l.join("libwasmedge.so").exists())
        .with_context(|| format!("{} has WasmEdge headers but no libwasmedge.so", install.display()))?;
    if private.exists() {
        fs::remove_dir_all(private)?;
    }
    fs::create_dir_all(private)?;
    std::os::unix::fs::symlink(install.join("include"), private.join("include"))?;
    std::os::unix::fs::symlink(lib, private.join("lib"))?;
    Ok(())
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

    pub(super) fn install(sh: &Shell, target: &Path) -> anyhow::Result<()> {
        step(format!("installing Debian's libwasmedge 0.17 into {}", target.display()));
        ensure_tools(sh)?;
        let debs = download(sh)?;
        let staging = target.with_extension("partial");
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
        // Rename last, so an interrupted setup never leaves a half-made install in place.
        if target.exists() || target.is_symlink() {
            fs::remove_dir_all(target)?;
        }
        fs::rename(&staging, target)?;
        Ok(())
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
    /// and the dynamic loader that the host's binaries are linked to use (see `host/build.rs`).
    fn lay_out(sh: &Shell, unpacked: &Path, out: &Path) -> anyhow::Result<()> {
        let include = out.join("include");
        let lib = out.join("lib");
        let sysroot = out.join("sysroot");
        for dir in [&include, &lib, &sysroot] {
            fs::create_dir_all(dir)?;
        }
        let headers = unpacked.join("usr/include/wasmedge");
        cmd!(sh, "cp -a {headers} {include}").quiet().run()?;

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
    use super::debian_wasmedge::{is_debian_archive, source_uris};

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
