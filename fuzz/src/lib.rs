//! Fuzz targets for the parts of the host that read untrusted input: the ABI checker (on any
//! bytes, and on plugin-shaped modules), the worker protocol's frame decoder, `POST /run`'s
//! request parsing with the plugin-name allowlist, and "accepted means harmless": every module
//! the checker accepts is compiled and called through the real runtime, and may only end in an
//! outcome that is the plugin's fault.
//!
//! Each target is a function from bytes to nothing that panics on a finding ([`Target::run`]).
//! Two drivers call them: `tests/short_runs.rs` replays the committed corpus and a fixed number
//! of seeded inputs on every `cargo xtask test` (seconds, deterministic), and `cargo xtask fuzz`
//! runs the AFL++ binaries in `src/bin/` for as long as asked, with coverage guidance.

mod harmless;
mod request;
pub mod seeded;
mod smith;
mod targets;

use std::path::PathBuf;

pub use harmless::{Harmless, Outcome};
pub use request::RequestHarness;
pub use smith::plugin_shaped_module;
pub use targets::{checker_bytes, checker_smith, worker_frame};

/// The fuzz targets, each with a name (its AFL++ binary, its corpus folder) and its harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The ABI checker on arbitrary bytes: never panics, and its work is linear in the input.
    CheckerBytes,
    /// The ABI checker on plugin-shaped modules from wasm-smith (the three exports, no imports,
    /// no floats).
    CheckerSmith,
    /// The worker protocol's frame decoder on arbitrary bytes.
    WorkerFrame,
    /// `POST /run` through the real router: JSON parsing, the request's fields, the name
    /// allowlist.
    RunRequest,
    /// Every plugin-shaped module the checker accepts, compiled and called in-process (AOT and
    /// interpreter) under a deadline: only plugin faults are allowed.
    AcceptedHarmless,
}

impl Target {
    pub const ALL: [Target; 5] =
        [Target::CheckerBytes, Target::CheckerSmith, Target::WorkerFrame, Target::RunRequest, Target::AcceptedHarmless];

    /// The name of the AFL++ binary and of the corpus folder.
    pub fn name(self) -> &'static str {
        match self {
            Target::CheckerBytes => "checker_bytes",
            Target::CheckerSmith => "checker_smith",
            Target::WorkerFrame => "worker_frame",
            Target::RunRequest => "run_request",
            Target::AcceptedHarmless => "accepted_harmless",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|target| target.name() == name)
    }

    /// The committed, minimized corpus: `fuzz/corpus/<name>/`.
    pub fn corpus_dir(self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(self.name())
    }
}
