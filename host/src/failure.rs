//! The one classification of every failure the host reports.
//!
//! Each layer keeps its own error type with typed, matchable causes (`StoreError`,
//! `RuntimeError`, `WorkerFailure`, `RunError`, `ApiError`), and each says which
//! [`FailureKind`] it is with a `kind()` method. Everything else about a failure is decided
//! here, once, in the table below: the stable code clients and dashboards rely on, the HTTP
//! status, whether retrying later can succeed without anything changing (the catalog retries a
//! transient load failure on the next call instead of remembering it; 503s carry
//! `Retry-After`), whether the plugin was found (so metric labels only ever hold names the
//! store has), and what a client may be told. Adding a failure means one row here plus the
//! `kind()` arm of the error that produces it; a test checks the table against the README.

use axum::http::StatusCode;

/// What a client is told about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// The error's own message: facts about the request or the plugin (which function failed
    /// and how), written for the plugin's author or the caller.
    Details,
    /// Only this fixed sentence. The cause is the host's business and goes to its log: a file
    /// system path, an engine's message, an internal invariant.
    Fixed(&'static str),
}

macro_rules! failure_kinds {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident => $status:ident $code:literal, transient: $transient:literal, plugin_found: $found:literal,
            client_sees: $disclosure:expr;
    )*) => {
        /// Every kind of failure the host reports; see the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FailureKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl FailureKind {
            /// Every kind, in the order of the table.
            pub const ALL: &[FailureKind] = &[$(FailureKind::$kind,)*];

            /// The stable, machine-readable code (`"error": {"code": ...}`, metric outcomes).
            pub fn code(self) -> &'static str {
                match self { $(FailureKind::$kind => $code,)* }
            }

            /// The HTTP status of the answer.
            pub fn status(self) -> StatusCode {
                match self { $(FailureKind::$kind => StatusCode::$status,)* }
            }

            /// Whether the same request may succeed later with nothing changed: a full server,
            /// an unavailable store, a quarantine that will end. A transient failure is never
            /// remembered as the verdict on a plugin version.
            pub fn is_transient(self) -> bool {
                match self { $(FailureKind::$kind => $transient,)* }
            }

            /// Whether the failure happened after the store found the plugin, so that the name
            /// is known to exist (and may become a metric label).
            pub fn plugin_found(self) -> bool {
                match self { $(FailureKind::$kind => $found,)* }
            }

            /// What a client may be told.
            pub fn disclosure(self) -> Disclosure {
                match self { $(FailureKind::$kind => $disclosure,)* }
            }
        }
    };
}

use Disclosure::{Details, Fixed};

failure_kinds! {
    /// The request body is not JSON.
    InvalidJson => BAD_REQUEST "invalid_json", transient: false, plugin_found: false, client_sees: Details;
    /// A field is missing, unknown or of the wrong type.
    InvalidRequest => BAD_REQUEST "invalid_request", transient: false, plugin_found: false, client_sees: Details;
    /// The request is not `application/json`.
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE "unsupported_media_type", transient: false, plugin_found: false,
        client_sees: Details;
    /// The request body is over the limit.
    BodyTooLarge => PAYLOAD_TOO_LARGE "body_too_large", transient: false, plugin_found: false, client_sees: Details;
    /// The plugin name breaks the name rules.
    InvalidPluginName => BAD_REQUEST "invalid_plugin_name", transient: false, plugin_found: false,
        client_sees: Details;
    /// A method other than the route's.
    MethodNotAllowed => METHOD_NOT_ALLOWED "method_not_allowed", transient: false, plugin_found: false,
        client_sees: Details;
    /// The server is at its concurrency limit, or no worker became free in time.
    Overloaded => SERVICE_UNAVAILABLE "overloaded", transient: true, plugin_found: false, client_sees: Details;
    /// No plugin by that name (or only something that is not a regular file).
    PluginNotFound => NOT_FOUND "plugin_not_found", transient: false, plugin_found: false,
        client_sees: Fixed("no such plugin");
    /// The plugin exists, but no version of it satisfies the request's requirement.
    VersionNotFound => NOT_FOUND "version_not_found", transient: false, plugin_found: true, client_sees: Details;
    /// The version requirement is not Cargo syntax.
    InvalidVersionRequirement => BAD_REQUEST "invalid_version_requirement", transient: false, plugin_found: false,
        client_sees: Details;
    /// A registry sent content that does not match its digest; it was refused, never run.
    DigestMismatch => BAD_GATEWAY "digest_mismatch", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin registry sent content that does not match its digest; it was refused");
    /// A registry answered with something that is not a Wasm plugin artifact.
    InvalidArtifact => BAD_GATEWAY "invalid_artifact", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin registry's artifact is not a Wasm plugin (see the host's log)");
    /// The store cannot be read right now (an absent or disconnected mount).
    StoreUnavailable => SERVICE_UNAVAILABLE "store_unavailable", transient: true, plugin_found: false,
        client_sees: Fixed("the plugin store is unavailable; retry shortly");
    /// Reading the plugin failed otherwise.
    StoreError => INTERNAL_SERVER_ERROR "store_error", transient: false, plugin_found: false,
        client_sees: Fixed("internal error");
    /// The plugin file is over the size limit.
    PluginTooLarge => INTERNAL_SERVER_ERROR "plugin_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// The call is for another ABI version than the plugin's (an integer call on a v2 plugin,
    /// or a call by function name on a v1 plugin).
    WrongAbiVersion => BAD_REQUEST "wrong_abi_version", transient: false, plugin_found: true, client_sees: Details;
    /// The v2 plugin has no function by that name.
    FunctionNotFound => NOT_FOUND "function_not_found", transient: false, plugin_found: true,
        client_sees: Details;
    /// The input is over the plugin's input buffer (or an NDJSON line is).
    InputTooLarge => PAYLOAD_TOO_LARGE "input_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// A stream went past the host's limit on its total size.
    StreamTooLarge => PAYLOAD_TOO_LARGE "stream_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// A whole request body arrived slower than the minimum rate, or took longer than the cap.
    BodyTimeout => REQUEST_TIMEOUT "body_timeout", transient: false, plugin_found: false, client_sees: Details;
    /// A stream went past the host's limit on its duration, or its client stopped sending.
    StreamTimeout => REQUEST_TIMEOUT "stream_timeout", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin breaks the ABI.
    AbiViolation => INTERNAL_SERVER_ERROR "abi_violation", transient: false, plugin_found: true, client_sees: Details;
    /// WebAssembly validation refused the module.
    InvalidModule => INTERNAL_SERVER_ERROR "invalid_module", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin is not a valid WebAssembly module");
    /// The engine could not instantiate the plugin (a segment outside its memory or table, or
    /// another limit of the engine): the plugin's fault, on every call, never the host's.
    PluginInstantiationFailed => INTERNAL_SERVER_ERROR "plugin_instantiation_failed", transient: false,
        plugin_found: true, client_sees: Fixed("the plugin could not be instantiated");
    /// The plugin's memory is over the host's cap.
    MemoryLimit => INTERNAL_SERVER_ERROR "memory_limit", transient: false, plugin_found: true, client_sees: Details;
    /// `process` or a v2 function refused its input (-3).
    InvalidArgument => UNPROCESSABLE_ENTITY "invalid_argument", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin returned another error code.
    PluginError => INTERNAL_SERVER_ERROR "plugin_error", transient: false, plugin_found: true, client_sees: Details;
    /// A v2 plugin broke the buffer contract (an output length over its capacity, a buffer
    /// that moved).
    BufferFault => INTERNAL_SERVER_ERROR "buffer_fault", transient: false, plugin_found: true, client_sees: Details;
    /// The plugin's `init` refused the operator's configuration (-3): remembered until the
    /// configuration or the plugin changes. Nothing of the configuration is disclosed.
    ConfigurationRefused => INTERNAL_SERVER_ERROR "configuration_refused", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin refused its configuration; see its `config` in GET /plugins/{name}");
    /// The plugin's configuration file is not usable (not JSON, larger than the plugin's
    /// configuration buffer, given to a plugin without one) and no earlier good one is held.
    InvalidConfiguration => INTERNAL_SERVER_ERROR "invalid_configuration", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin's configuration is invalid; see its `config` in GET /plugins/{name}");
    /// The plugin trapped.
    PluginTrapped => INTERNAL_SERVER_ERROR "plugin_trapped", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin crashed its worker process.
    PluginCrashed => INTERNAL_SERVER_ERROR "plugin_crashed", transient: false, plugin_found: true,
        client_sees: Details;
    /// No worker process is alive and none can be started (the executable is gone, the process
    /// limit is reached): a fault of this replica, not of the plugin, and never remembered as
    /// a verdict on the plugin's file.
    NoWorkers => SERVICE_UNAVAILABLE "no_workers", transient: true, plugin_found: false,
        client_sees: Fixed("no worker process could be started; retry shortly or on another replica");
    /// The worker running the call was killed from outside (an operator, the OOM killer), on
    /// the call and on its one retry.
    WorkerLost => SERVICE_UNAVAILABLE "worker_lost", transient: true, plugin_found: true,
        client_sees: Fixed("the worker process running the call was stopped from outside; retry shortly");
    /// The call ran past its deadline.
    PluginTimeout => GATEWAY_TIMEOUT "plugin_timeout", transient: false, plugin_found: true, client_sees: Details;
    /// The plugin kept crashing workers and is refused for a while.
    PluginQuarantined => SERVICE_UNAVAILABLE "plugin_quarantined", transient: true, plugin_found: true,
        client_sees: Details;
    /// A fault in the host.
    Internal => INTERNAL_SERVER_ERROR "internal_error", transient: false, plugin_found: true,
        client_sees: Fixed("internal error");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_and_every_503_is_transient() {
        let codes: HashSet<_> = FailureKind::ALL.iter().map(|kind| kind.code()).collect();
        assert_eq!(codes.len(), FailureKind::ALL.len());
        for kind in FailureKind::ALL {
            // A 503 promises that retrying can help, and carries Retry-After.
            assert_eq!(kind.status() == StatusCode::SERVICE_UNAVAILABLE, kind.is_transient(), "{kind:?}");
        }
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let readme = include_str!("../../README.md");
        for kind in FailureKind::ALL {
            let row = format!("| {} | `{}` |", kind.status().as_u16(), kind.code());
            let listed = readme.lines().any(|line| line.starts_with(&row));
            assert!(listed, "README.md's error table lacks a row starting with {row:?}");
        }
        // And the table has no row for a code the host does not send.
        for line in readme.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, status, code, ..] = cells[..] else { continue };
            let (Ok(status), Some(code)) =
                (status.parse::<u16>(), code.strip_prefix('`').and_then(|c| c.strip_suffix('`')))
            else {
                continue;
            };
            let known = FailureKind::ALL.iter().any(|k| k.code() == code && k.status().as_u16() == status);
            assert!(known, "README.md's error table has a row for {status} `{code}`, which the host never sends");
        }
    }
}
