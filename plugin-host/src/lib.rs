//! Runs sandboxed WebAssembly plugins in WasmEdge, for services that embed it.
//!
//! A [`Host`] serves the plugins of one [`PluginStore`] (a folder, a mounted Fluid dataset, an
//! OCI registry): it checks each plugin against the ABI (see `ABI.md`), compiles each version
//! once, notices new versions on the next call (hot swap), and runs every call on a fresh
//! instance under a deadline and a memory cap, in this process or in supervised worker
//! processes ([`Isolation`]). Plugins are called by name, with an optional version
//! requirement ([`Target`]): v1 plugins with an `i32` ([`Host::run`]), v2 plugins with bytes
//! ([`Host::call`]) or a stream fed chunk by chunk ([`Host::function`], [`Function::open_stream`]).
//! Every answer says what ran ([`Ran`]: name, version, SHA-256); every failure is an [`Error`]
//! whose [`kind`](Error::kind) is one of the stable [`FailureKind`]s.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
//! # if !plugins.join("hello.wasm").exists() { return Ok(()) } // `cargo xtask build-plugins` makes them
//! use plugin_host::{Host, LocalPluginStore, Settings, Target};
//!
//! let settings = Settings::default();
//! let store = LocalPluginStore::new(&plugins, settings.limits.max_plugin_bytes)?;
//! let host = Host::new(store, settings)?;
//!
//! // ABI v1: an integer in, an integer out.
//! let hello = host.run(&Target::new("hello")?, 21).await?;
//! assert_eq!(hello.output, 43);
//!
//! // ABI v2: bytes in, bytes out, by function name.
//! let upper = host.call(&Target::new("text")?, "upper", b"hi there".to_vec()).await?;
//! assert_eq!(upper.output, b"HI THERE");
//! # Ok(()) }
//! ```
//!
//! Linking: a program that depends on this crate links WasmEdge's shared library; its build
//! script calls `plugin_host_build::link()` (see that crate) so that the program finds it when
//! it runs. Worker processes are the program itself: call [`run_if_worker`] first in `main`.
//! The README's "Use it as a library" has a complete program, and says what the machine needs.
//!
//! Layers, outermost first (see ARCHITECTURE.md): the [`Host`]; the runners (in this process or
//! in worker processes), which keep each plugin's current version (the catalog, hot swap); the
//! stores; the runtime, the only code that touches WasmEdge.

mod error;
pub mod failure;
mod host;
mod logs;
mod observe;
// The layers below the `Host` are this crate's own; the `internals` feature opens them to this
// repository's tests, fuzz targets, benchmarks and the step-by-step `abi` example (like tokio's
// `test-util`), never to users. Without it, what only those use (the lifecycle step by step,
// test helpers) is unused, and allowed to be.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod runner;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports)]
mod runner;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod runtime;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports)]
mod runtime;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod store;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports)]
mod store;

pub use error::Error;
pub use failure::{Disclosure, FailureKind};
pub use host::{Function, Host, Isolation, Settings, Stream};
pub use observe::{NoObserver, Observer, Outcome};
pub use plugin_sdk::FunctionKind;
pub use runner::{AbiStatus, ConfigStatus, PluginStatus, QuarantineStatus, Ran, Target, VersionStatus};
#[cfg(feature = "workers")]
pub use runner::{WorkerPoolStatus, WorkerSettings};
pub use runtime::{AotCompilation, ExecutionMode, Limits};
#[cfg(feature = "fluid")]
pub use store::FluidPluginStore;
pub use store::trust::{Refusal, Signature, TrustPolicy, Verdict};
pub use store::{
    ConfigOrigin, ConfigOverride, FileIdentity, InvalidName, InvalidRequirement, LocalPluginStore, PluginFile,
    PluginName, PluginRef, PluginStore, StoreError, Version, VersionRequirement, Versions,
};
#[cfg(feature = "oci")]
pub use store::{Credentials, OciPluginStore, OciSettings};

/// Serves this process's part when a [`Host`] started it as a helper, then exits: one of its
/// worker processes ([`Isolation::Workers`]), or one AOT compilation
/// ([`AotCompilation::ChildProcess`]). Returns at once in any other process.
///
/// Helpers are the program's own executable started again with a marker argument, so call
/// this first thing in `main`, before the program reads its arguments or starts threads:
///
/// ```no_run
/// # #[allow(clippy::needless_doctest_main)]
/// fn main() {
///     plugin_host::run_if_worker();
///     // ... the program itself
/// }
/// ```
pub fn run_if_worker() {
    let mut args = std::env::args_os().skip(1);
    let outcome = match args.next() {
        #[cfg(feature = "workers")]
        Some(arg) if arg == runner::worker::WORKER_ARG => runner::worker::run_worker().map_err(|e| format!("{e:#}")),
        Some(arg) if arg == runtime::AOT_COMPILER_ARG => runtime::run_aot_compiler(args).map_err(|e| e.to_string()),
        _ => return,
    };
    std::process::exit(match outcome {
        Ok(()) => 0,
        Err(error) => {
            // One line, as the parent reads it from this process's stderr.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {error}");
            1
        }
    });
}
