//! The one classification of every failure the host reports.
//!
//! Each layer keeps its own error type with typed, matchable causes (`StoreError`,
//! `RuntimeError`, `WorkerFailure`, `RunError`, `ApiError`), and each says which
//! [`FailureKind`] it is with a `kind()` method. Everything else about a failure is decided
//! here, once, in the table below: the stable code clients and dashboards rely on, whether
//! retrying later can succeed without anything changing (the catalog retries a transient load
//! failure on the next call instead of remembering it), whether the plugin was found (so metric
//! labels only ever hold names the store has), and what a client may be told. The table has
//! the server's kinds too (a body that is not JSON, a method not allowed), so that there is one
//! list of codes; which HTTP status each kind answers is the server's business, in one
//! exhaustive `match` there. Adding a failure means one row here, the `kind()` arm of the error
//! that produces it, and its status in the server; a test there checks the README's table.

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
        $kind:ident => $code:literal, transient: $transient:literal, plugin_found: $found:literal,
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

            /// The row's documentation, as one sentence or two (the API's OpenAPI document
            /// describes each code with it).
            pub fn summary(self) -> &'static str {
                match self { $(FailureKind::$kind => concat!($($doc),*).trim_ascii(),)* }
            }
        }
    };
}

use Disclosure::{Details, Fixed};

failure_kinds! {
    /// The request body is not JSON.
    InvalidJson => "invalid_json", transient: false, plugin_found: false, client_sees: Details;
    /// A field is missing, unknown or of the wrong type.
    InvalidRequest => "invalid_request", transient: false, plugin_found: false, client_sees: Details;
    /// The request is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type", transient: false, plugin_found: false,
        client_sees: Details;
    /// The request body is over the limit.
    BodyTooLarge => "body_too_large", transient: false, plugin_found: false, client_sees: Details;
    /// The plugin name breaks the name rules.
    InvalidPluginName => "invalid_plugin_name", transient: false, plugin_found: false,
        client_sees: Details;
    /// Tokens are on and the request has no bearer token, or one the tokens file does not know.
    Unauthorized => "unauthorized", transient: false, plugin_found: false, client_sees: Details;
    /// The client's token does not allow this plugin, the listings or the metrics.
    Forbidden => "forbidden", transient: false, plugin_found: false, client_sees: Details;
    /// A method other than the route's.
    MethodNotAllowed => "method_not_allowed", transient: false, plugin_found: false,
        client_sees: Details;
    /// The server is at its concurrency limit, or no worker became free in time.
    Overloaded => "overloaded", transient: true, plugin_found: false, client_sees: Details;
    /// No plugin by that name (or only something that is not a regular file).
    PluginNotFound => "plugin_not_found", transient: false, plugin_found: false,
        client_sees: Fixed("no such plugin");
    /// The plugin exists, but no version of it satisfies the request's requirement.
    VersionNotFound => "version_not_found", transient: false, plugin_found: true, client_sees: Details;
    /// The version requirement is not Cargo syntax.
    InvalidVersionRequirement => "invalid_version_requirement", transient: false, plugin_found: false,
        client_sees: Details;
    /// A registry sent content that does not match its digest; it was refused, never run.
    DigestMismatch => "digest_mismatch", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin registry sent content that does not match its digest; it was refused");
    /// A registry answered with something that is not a Wasm plugin artifact.
    InvalidArtifact => "invalid_artifact", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin registry's artifact is not a Wasm plugin (see the host's log)");
    /// The trust policy requires a signature and the plugin version has none: refused, never
    /// compiled or run.
    SignatureMissing => "signature_missing", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin version's signatures are malformed or for something else (another digest or
    /// repository: a replayed signature): refused, never compiled or run.
    SignatureInvalid => "signature_invalid", transient: false, plugin_found: true,
        client_sees: Details;
    /// Signed, but not by the keys the trust policy trusts (or not by all it requires), or the
    /// signed payload was altered; or no rule of the policy covers the plugin: refused.
    UntrustedSigner => "untrusted_signer", transient: false, plugin_found: true,
        client_sees: Details;
    /// The store cannot be read right now (an absent or disconnected mount).
    StoreUnavailable => "store_unavailable", transient: true, plugin_found: false,
        client_sees: Fixed("the plugin store is unavailable; retry shortly");
    /// Reading the plugin failed otherwise.
    StoreError => "store_error", transient: false, plugin_found: false,
        client_sees: Fixed("internal error");
    /// The plugin file is over the size limit.
    PluginTooLarge => "plugin_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// The call is for another ABI version than the plugin's (an integer call on a v2 plugin,
    /// or a call by function name on a v1 plugin).
    WrongAbiVersion => "wrong_abi_version", transient: false, plugin_found: true, client_sees: Details;
    /// The v2 plugin has no function by that name.
    FunctionNotFound => "function_not_found", transient: false, plugin_found: true,
        client_sees: Details;
    /// The input is over the plugin's input buffer (or an NDJSON line is).
    InputTooLarge => "input_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// A stream went past the host's limit on its total size.
    StreamTooLarge => "stream_too_large", transient: false, plugin_found: true,
        client_sees: Details;
    /// A whole request body arrived slower than the minimum rate, or took longer than the cap.
    BodyTimeout => "body_timeout", transient: false, plugin_found: false, client_sees: Details;
    /// A stream went past the host's limit on its duration, or its client stopped sending.
    StreamTimeout => "stream_timeout", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin breaks the ABI.
    AbiViolation => "abi_violation", transient: false, plugin_found: true, client_sees: Details;
    /// WebAssembly validation refused the module.
    InvalidModule => "invalid_module", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin is not a valid WebAssembly module");
    /// The engine could not instantiate the plugin (a segment outside its memory or table, or
    /// another limit of the engine): the plugin's fault, on every call, never the host's.
    PluginInstantiationFailed => "plugin_instantiation_failed", transient: false,
        plugin_found: true, client_sees: Fixed("the plugin could not be instantiated");
    /// The plugin's memory is over the host's cap.
    MemoryLimit => "memory_limit", transient: false, plugin_found: true, client_sees: Details;
    /// `process` or a v2 function refused its input (-3).
    InvalidArgument => "invalid_argument", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin returned another error code.
    PluginError => "plugin_error", transient: false, plugin_found: true, client_sees: Details;
    /// A v2 plugin broke the buffer contract (an output length over its capacity, a buffer
    /// that moved).
    BufferFault => "buffer_fault", transient: false, plugin_found: true, client_sees: Details;
    /// The plugin's `init` refused the operator's configuration (-3): remembered until the
    /// configuration or the plugin changes. Nothing of the configuration is disclosed.
    ConfigurationRefused => "configuration_refused", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin refused its configuration; see its `config` in GET /plugins/{name}");
    /// The plugin's configuration file is not usable (not JSON, larger than the plugin's
    /// configuration buffer, given to a plugin without one) and no earlier good one is held.
    InvalidConfiguration => "invalid_configuration", transient: false, plugin_found: true,
        client_sees: Fixed("the plugin's configuration is invalid; see its `config` in GET /plugins/{name}");
    /// The plugin trapped.
    PluginTrapped => "plugin_trapped", transient: false, plugin_found: true,
        client_sees: Details;
    /// The plugin crashed its worker process.
    PluginCrashed => "plugin_crashed", transient: false, plugin_found: true,
        client_sees: Details;
    /// No worker process is alive and none can be started (the executable is gone, the process
    /// limit is reached): a fault of this replica, not of the plugin, and never remembered as
    /// a verdict on the plugin's file.
    NoWorkers => "no_workers", transient: true, plugin_found: false,
        client_sees: Fixed("no worker process could be started; retry shortly or on another replica");
    /// The worker running the call was killed from outside (an operator, the OOM killer), on
    /// the call and on its one retry.
    WorkerLost => "worker_lost", transient: true, plugin_found: true,
        client_sees: Fixed("the worker process running the call was stopped from outside; retry shortly");
    /// The call ran past its deadline.
    PluginTimeout => "plugin_timeout", transient: false, plugin_found: true, client_sees: Details;
    /// The plugin kept crashing workers and is refused for a while.
    PluginQuarantined => "plugin_quarantined", transient: true, plugin_found: true,
        client_sees: Details;
    /// A fault in the host.
    Internal => "internal_error", transient: false, plugin_found: true,
        client_sees: Fixed("internal error");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique() {
        let codes: HashSet<_> = FailureKind::ALL.iter().map(|kind| kind.code()).collect();
        assert_eq!(codes.len(), FailureKind::ALL.len());
    }
}
