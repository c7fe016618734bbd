//! Load once: ABI check, WasmEdge validation and (in AOT mode) native compilation.

use std::{
    ffi::OsString,
    fs,
    io::{ErrorKind, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use wasmedge_sdk::{
    Compiler, CompilerOptimizationLevel, CompilerOutputFormat, Module, RunMode,
    config::{CommonConfigOptions, CompilerConfigOptions, Config, ConfigBuilder, RuntimeConfigOptions},
};

use super::{
    AotCompilation, ExecutionMode, Limits, RuntimeConfig, RuntimeError, deadline, fault_handlers,
    reuse::{self, ReuseState},
};

/// Turns plugin bytes into [`CompiledPlugin`]s. One per process; cheap to share by reference.
#[derive(Debug)]
pub struct Engine {
    pub(super) settings: RuntimeConfig,
    /// The WasmEdge configuration every instance runs with (proposals, memory cap, run mode).
    pub(super) config: Arc<Config>,
    /// The same, for parsing a plugin's bytes (see [`untrusted_bytes_config`]).
    pub(super) parse_config: Config,
    /// Set in AOT mode: the compiler and where its output is cached.
    aot: Option<AotCache>,
}

impl Engine {
    pub fn new(settings: RuntimeConfig) -> Result<Self, RuntimeError> {
        // WasmEdge logs every trap to stderr through spdlog; a hostile plugin could flood the
        // logs that way. The host reports errors itself, through `tracing`.
        wasmedge_sdk::LogManager::log_off();
        let run_mode = match settings.mode {
            ExecutionMode::Interpreter => RunMode::Interpreter,
            ExecutionMode::Aot => RunMode::Aot,
        };
        let config = Arc::new(wasmedge_config(&settings.limits, run_mode)?);
        let parse_config = untrusted_bytes_config(&settings.limits)?;
        let aot = match settings.mode {
            ExecutionMode::Interpreter => None,
            ExecutionMode::Aot => Some(AotCache::new(
                settings.aot_cache_dir(),
                &settings.limits,
                &settings.aot_compilation,
                settings.aot_cache_max_bytes,
            )?),
        };
        // Only where calls run in this process (see `fault_handlers` for why not in a worker,
        // whose supervisor enforces the deadline from outside).
        if let Some(aot) = aot.as_ref().filter(|_| !settings.external_deadline) {
            fault_handlers::keep_installed(&config, |bytes| {
                aot.load(bytes, &content_hash(bytes), &config).map(|native| native.module).map_err(|e| e.to_string())
            });
        }
        Ok(Engine { settings, config, parse_config, aot })
    }

    pub fn settings(&self) -> &RuntimeConfig {
        &self.settings
    }

    /// Admits and compiles a plugin (see [`admit`]). `content_hash` (hex sha256 of `bytes`)
    /// names the AOT artifact; callers already have it because their caches are keyed by it too.
    pub fn compile(&self, bytes: &[u8], content_hash: &str) -> Result<CompiledPlugin, RuntimeError> {
        let admission = admit(bytes, &self.settings)?;
        self.compile_admitted(bytes, content_hash, &admission)
    }

    /// Compiles a plugin already admitted (by this process, or by the server of a worker
    /// process, which sends its verdict with the bytes rather than have it made twice).
    pub fn compile_admitted(
        &self,
        bytes: &[u8],
        content_hash: &str,
        admission: &Admission,
    ) -> Result<CompiledPlugin, RuntimeError> {
        // Only a module that follows the ABI has no state beyond memory and globals, so only
        // such a module is prepared for instance reuse (see `reuse`).
        // A plugin that does not say which ABI it follows is v1 (see `abi_version`).
        let v1 = admission.abi_version.is_none_or(|version| version == 1);
        let exposed = if admission.compliant { reuse::expose_state(bytes, v1) } else { None };
        let (bytes, artifact_key, reuse) = match &exposed {
            Some(exposed) => (
                &exposed.bytes[..],
                // The artifact is of the rewritten module, so its name says which rewrite.
                format!("{content_hash}-{}", if exposed.lifecycle { "lifecycle" } else { "reusable" }),
                Some(Arc::new(ReuseState {
                    globals: exposed.globals.iter().map(|&i| reuse::global_export(i)).collect(),
                    lifecycle: exposed.lifecycle,
                    snapshot: Default::default(),
                    idle: Default::default(),
                })),
            ),
            None => (bytes, content_hash.to_string(), None),
        };
        // Parse with WasmEdge even in AOT mode: its validator is the engine's own word on the
        // module, and a module it refuses must never reach the compiler.
        let module = Module::from_bytes(Some(&self.parse_config), bytes)
            .map_err(|e| RuntimeError::InvalidModule(e.to_string()))?;
        check_memory(&module, self.settings.limits.max_memory_pages)?;
        let (module, watched) = match &self.aot {
            None => (module, false),
            Some(aot) => {
                let native = aot.load(bytes, &artifact_key, &self.config)?;
                (native.module, native.watched)
            }
        };
        let keeper = if self.settings.external_deadline {
            deadline::Keeper::External
        } else if watched {
            deadline::Keeper::Watchdog
        } else {
            deadline::Keeper::Timer
        };
        Ok(CompiledPlugin {
            module,
            config: Arc::clone(&self.config),
            timeout: self.settings.limits.call_timeout,
            keeper,
            abi_version: admission.abi_version,
            interface: admission.interface.clone().map(Arc::new),
            reuse,
        })
    }
}

/// A plugin version's identity: the hex SHA-256 of its bytes. It names the version's AOT
/// artifact, and the caches above the engine are keyed by it too.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What the host decides about a plugin version before compiling it, once per version: it is
/// within the size limit, and the ABI check's verdict, with what that verdict means for running
/// it. Made by [`admit`]; a worker process receives it with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Admission {
    /// Whether the plugin follows the ABI: only such a module has no state beyond memory and
    /// globals, so only its instances are reused (see `reuse`).
    pub compliant: bool,
    /// The ABI version it is checked and runs as.
    pub abi_version: Option<u32>,
    /// A v2 plugin's buffers and functions, as the checker read them.
    pub interface: Option<plugin_sdk::V2Layout>,
}

/// Admits a plugin's bytes: the size limit and the ABI check (refusing a plugin that breaks the
/// ABI unless `settings.enforce_abi` is off). The one place both happen, for both runners.
pub fn admit(bytes: &[u8], settings: &RuntimeConfig) -> Result<Admission, RuntimeError> {
    let limit = settings.limits.max_plugin_bytes;
    if bytes.len() as u64 > limit {
        return Err(RuntimeError::TooLarge { size: bytes.len() as u64, limit });
    }
    let report = plugin_sdk::check_with(bytes, &settings.limits.abi);
    if settings.enforce_abi && !report.is_compliant() {
        return Err(RuntimeError::AbiViolation(report));
    }
    Ok(Admission { compliant: report.is_compliant(), abi_version: report.abi_version, interface: report.v2 })
}

/// Rejects a module whose declared initial memory is over the cap before instantiation, so
/// the error says what happened (WasmEdge's own refusal is a generic instantiation failure).
fn check_memory(module: &Module, limit: u32) -> Result<(), RuntimeError> {
    for export in module.exports() {
        if let Ok(wasmedge_sdk::ExternalInstanceType::Memory(memory)) = export.ty()
            && memory.minimum() > limit
        {
            return Err(RuntimeError::MemoryLimit { requested: memory.minimum(), limit });
        }
    }
    Ok(())
}

/// The configuration for WasmEdge to parse (and compile) a plugin's bytes with: the engine's,
/// but in the interpreter's run mode whatever the engine runs in. In AOT run mode WasmEdge also
/// loads the native code a module may carry in a `wasmedge` custom section ("universal
/// WebAssembly"), maps it and writes into it at offsets the section gives, unchecked (0.17.1,
/// `Loader::loadExecutable`): a plugin could make the parser (or the compiler, which parses with
/// its own configuration) write anywhere in the process. Only native code this host compiled
/// is ever loaded, from its own AOT cache.
fn untrusted_bytes_config(limits: &Limits) -> Result<Config, RuntimeError> {
    wasmedge_config(limits, RunMode::Interpreter)
}

/// One configuration for every engine, in-process and in workers, so they share AOT artifacts.
fn wasmedge_config(limits: &Limits, run_mode: RunMode) -> Result<Config, RuntimeError> {
    // Only the proposals ABI v1 allows (see ABI.md), so WasmEdge refuses the rest even for a
    // module loaded without the ABI check.
    let common = CommonConfigOptions::default()
        .simd(false)
        .relax_simd(false)
        .multi_memories(false)
        .threads(false)
        .gc(false)
        .tail_call(false)
        .memory64(false)
        .exception_handling(false)
        .function_references(false)
        .run_mode(run_mode);
    ConfigBuilder::new(common)
        .with_runtime_config(RuntimeConfigOptions::default().max_memory_pages(limits.max_memory_pages))
        .with_compiler_config(
            CompilerConfigOptions::default()
                .out_format(CompilerOutputFormat::Native)
                .optimization_level(CompilerOptimizationLevel::O2)
                // Not interruptible: WasmEdge's "interruptible" code checks for a stop request on
                // every loop iteration (3.6x native on `primes` against 0.95x without, measured),
                // and no deadline here needs it: in-process a timer signal jumps out of the
                // running code, and a worker that misses its deadline is killed.
                .interruptible(false),
        )
        .build()
        .map_err(|e| RuntimeError::Engine(e.to_string()))
}

/// A plugin that passed every check, ready to instantiate any number of times, from any thread.
#[derive(Debug, Clone)]
pub struct CompiledPlugin {
    pub(super) module: Module,
    pub(super) config: Arc<Config>,
    pub(super) timeout: std::time::Duration,
    /// Who stops its calls at their deadline.
    pub(super) keeper: deadline::Keeper,
    pub(super) reuse: Option<Arc<ReuseState>>,
    pub(super) abi_version: Option<u32>,
    /// A v2 plugin's buffers and functions, as the checker read them.
    pub(super) interface: Option<Arc<plugin_sdk::V2Layout>>,
}

impl CompiledPlugin {
    /// Whether calls reuse instances put back into their fresh state (plugins that follow the
    /// ABI) rather than creating a new one each time (see `runtime::reuse`).
    pub fn reuses_instances(&self) -> bool {
        self.reuse.is_some()
    }

    /// Whether a v1 lifecycle is one call into the engine, the synthesized function that runs
    /// `init`, `process` and `cleanup` under one deadline timer (see `runtime::reuse`).
    pub fn runs_lifecycle_in_one_call(&self) -> bool {
        self.reuse.as_ref().is_some_and(|reuse| reuse.lifecycle)
    }

    /// The ABI version the plugin declares (`None`: it does not say, which means version 1).
    pub fn abi_version(&self) -> Option<u32> {
        self.abi_version
    }
}

/// Native code compiled by this host, never by the plugin's author: an AOT section inside an
/// uploaded `.wasm` would be code we cannot check, so only files this cache wrote are loaded.
#[derive(Debug)]
struct AotCache {
    dir: PathBuf,
    compiler: AotCompiler,
    /// Part of every artifact's name, so a WasmEdge upgrade or an option change never loads a
    /// stale artifact.
    variant: String,
}

/// The name of the artifacts this host compiles: the WasmEdge release and the compile options.
fn variant() -> String {
    format!("wasmedge{}-o2", wasmedge_sdk::utils::CoreVersion::version_string())
}

/// Where [`AotCache`] compiles (see [`AotCompilation`]).
#[derive(Debug)]
enum AotCompiler {
    InProcess(Compiler),
    /// The executable to start with [`AOT_COMPILER_ARG`], and the memory cap its configuration
    /// is built with (the same configuration as in-process).
    ChildProcess {
        executable: PathBuf,
        max_memory_pages: u32,
    },
}

impl AotCompiler {
    /// Compiles `bytes` to `<dir>/<stem>.so`.
    fn compile(&self, bytes: &[u8], stem: &str, dir: &Path) -> Result<(), RuntimeError> {
        let failed = |e: &dyn std::fmt::Display| RuntimeError::Compilation(e.to_string());
        match self {
            AotCompiler::InProcess(compiler) => {
                compiler.compile_from_bytes(bytes, stem, dir).map(drop).map_err(|e| failed(&e))
            }
            AotCompiler::ChildProcess { executable, max_memory_pages } => {
                let mut child = Command::new(executable)
                    .arg(AOT_COMPILER_ARG)
                    .arg(max_memory_pages.to_string())
                    .arg(dir)
                    .arg(stem)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| failed(&format!("starting the compiler process {}: {e}", executable.display())))?;
                // The child reads all of its input before it writes anything, so writing it
                // all first cannot deadlock on a full stderr pipe.
                let written = child.stdin.take().map(|mut stdin| stdin.write_all(bytes));
                let output = child.wait_with_output().map_err(|e| failed(&e))?;
                if !output.status.success() {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let why = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
                    return Err(failed(&format!("compiler process {}: {why}", output.status)));
                }
                match written {
                    Some(Ok(())) => Ok(()),
                    Some(Err(e)) => Err(failed(&format!("sending the module to the compiler process: {e}"))),
                    None => Err(failed(&"the compiler process has no input")),
                }
            }
        }
    }
}

/// The first argument that makes an executable a compiler process (see
/// [`AotCompilation::ChildProcess`]).
pub const AOT_COMPILER_ARG: &str = "__plugin-host-aot-compiler";

/// The body of a compiler process: `args` (those after [`AOT_COMPILER_ARG`]) are the memory
/// cap in pages, the output folder and the file stem; the module's bytes come on stdin. Writes
/// `<folder>/<stem>.so` with this process's compiler, configured as [`Engine`] configures it,
/// and returns; the process should then exit, taking with it what WasmEdge keeps of the
/// compilation.
pub fn run_aot_compiler(args: impl IntoIterator<Item = OsString>) -> Result<(), RuntimeError> {
    let usage = || RuntimeError::Engine(format!("usage: {AOT_COMPILER_ARG} <max memory pages> <folder> <stem>"));
    let mut args = args.into_iter();
    let (Some(pages), Some(dir), Some(stem), None) = (args.next(), args.next(), args.next(), args.next()) else {
        return Err(usage());
    };
    let max_memory_pages = pages.to_str().and_then(|p| p.parse().ok()).ok_or_else(usage)?;
    let stem = stem.into_string().map_err(|_| usage())?;
    wasmedge_sdk::LogManager::log_off();
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|e| RuntimeError::Compilation(e.to_string()))?;
    let limits = Limits { max_memory_pages, ..Limits::default() };
    let config = untrusted_bytes_config(&limits)?;
    let compiler = Compiler::new(Some(&config)).map_err(|e| RuntimeError::Engine(e.to_string()))?;
    AotCompiler::InProcess(compiler).compile(&bytes, &stem, Path::new(&dir))
}

impl AotCache {
    fn new(dir: PathBuf, limits: &Limits, compilation: &AotCompilation, max_bytes: u64) -> Result<Self, RuntimeError> {
        ensure_private_dir(&dir)?;
        let compiler = match compilation {
            AotCompilation::InProcess => {
                let config = untrusted_bytes_config(limits)?;
                AotCompiler::InProcess(Compiler::new(Some(&config)).map_err(|e| RuntimeError::Engine(e.to_string()))?)
            }
            AotCompilation::ChildProcess { executable } => {
                AotCompiler::ChildProcess { executable: executable.clone(), max_memory_pages: limits.max_memory_pages }
            }
        };
        let cache = AotCache { dir, compiler, variant: variant() };
        cache.clean(max_bytes);
        Ok(cache)
    }

    /// Keeps the folder from growing without bound, once per engine start: removes artifacts
    /// no engine of this release can use (another WasmEdge release or compile options), compilations
    /// abandoned over an hour ago, and then the oldest artifacts until the rest fit in
    /// `max_bytes`. Removing a file another process has loaded is safe: its mapping stays.
    fn clean(&self, max_bytes: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let suffix = format!("-{}.so", variant());
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let mut kept = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            let abandoned = name.starts_with('.') && modified < hour_ago;
            let foreign = !name.starts_with('.') && !name.ends_with(suffix.as_str());
            if abandoned || foreign {
                let _ = fs::remove_file(entry.path());
            } else if !name.starts_with('.') {
                kept.push((modified, meta.len(), entry.path()));
            }
        }
        kept.sort();
        let mut total: u64 = kept.iter().map(|(_, len, _)| len).sum();
        for (_, len, path) in kept {
            if total <= max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    fn load(&self, bytes: &[u8], content_hash: &str, config: &Config) -> Result<NativeModule, RuntimeError> {
        let name = format!("{content_hash}-{}", self.variant);
        let artifact = self.dir.join(format!("{name}.so"));
        // Checked again before every use, not only at start-up: code found here is executed,
        // and a folder under /tmp can be cleaned away and recreated by somebody else.
        ensure_private_dir(&self.dir)?;
        if !artifact.exists() {
            // Compile into a file of its own and rename it into place: concurrent compilations
            // of the same plugin (other threads, other processes) never see a half-written
            // file, and a failed one leaves nothing behind (the reserved file is removed when
            // dropped). WasmEdge writes `<dir>/<name>.so`, so it gets the reserved file's stem.
            let failed = |e: &dyn std::fmt::Display| RuntimeError::Compilation(e.to_string());
            let reserved = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".so")
                .tempfile_in(&self.dir)
                .map_err(|e| failed(&e))?;
            let stem = reserved.path().file_stem().and_then(|s| s.to_str()).ok_or_else(|| failed(&"temporary name"))?;
            self.compiler.compile(bytes, stem, &self.dir)?;
            reserved.persist(&artifact).map_err(|e| failed(&e))?;
            tracing::info!(artifact = %artifact.display(), "compiled plugin to native code");
        }
        let module =
            Module::from_file(Some(config), &artifact).map_err(|e| RuntimeError::InvalidModule(e.to_string()))?;
        let watched = deadline::watch_code(&artifact);
        Ok(NativeModule { module, watched })
    }
}

/// A plugin loaded from its AOT artifact.
struct NativeModule {
    module: Module,
    /// Whether the deadline watchdog knows where its code is (see `deadline::watch_code`).
    watched: bool,
}

/// The AOT folder holds code this process will execute: it must be ours alone.
fn ensure_private_dir(dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let unsafe_dir = |why: &str| RuntimeError::Engine(format!("AOT cache {}: {why}", dir.display()));
    match fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unsafe_dir(&e.to_string())),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| unsafe_dir(&e.to_string()))?;
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir("must be a directory owned by this user and writable by nobody else"));
    }
    // Whoever controls the parent can swap the folder for another: it must be ours or root's,
    // and not writable by others (unless sticky, like /tmp itself).
    if let Some(parent) = dir.parent().and_then(|p| fs::metadata(p).ok()) {
        let trusted_owner = parent.uid() == uid || parent.uid() == 0;
        let others_can_swap = parent.mode() & 0o022 != 0 && parent.mode() & 0o1000 == 0;
        if !trusted_owner || others_can_swap {
            return Err(unsafe_dir(
                "its parent folder must belong to this user or root and be writable by nobody else",
            ));
        }
    }
    Ok(())
}
