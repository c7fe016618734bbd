//! The HTTP API's OpenAPI 3.1 document (`GET /openapi.json`, committed as `docs/openapi.json`),
//! generated from the API's own types and handlers (utoipa) and, for every error answer, from
//! the failure table ([`FailureKind::ALL`]), so it cannot drift from what the server sends.
//!
//! The handlers' `#[utoipa::path]` attributes give the operations and their successful answers.
//! Errors are added here: [`Endpoint::can_fail_with`] says, for every failure kind, on which
//! endpoints it can happen (an exhaustive match, so a new kind cannot be forgotten), and each
//! operation gets one response per status with the codes of that status in its `code` enum.
//! The document is built once, on first use; requests for it copy nothing.

use std::{collections::BTreeMap, sync::LazyLock};

use axum::{http::header, response::IntoResponse};
use utoipa::{
    OpenApi,
    openapi::{
        self, ContentBuilder, HeaderBuilder, ObjectBuilder, RefOr, ResponseBuilder, Schema, Type,
        path::Operation,
        schema::{AllOfBuilder, KnownFormat, SchemaFormat},
    },
};

use super::{
    ErrorBody, ErrorDetail, FunctionResponse, REQUEST_ID, Readiness, RunInput, RunRequest, RunResponse,
    VersionsResponse,
};
use plugin_host::{
    AbiStatus, FailureKind, PluginName, PluginStatus, QuarantineStatus, VersionStatus, WorkerPoolStatus,
};

use crate::descriptors::Descriptors;

/// The rule of [`PluginName::new`] as a regular expression (a test holds them together).
pub const PLUGIN_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

/// The rule of [`plugin_sdk::is_valid_function_name`] as a regular expression (a test holds
/// them together).
pub const FUNCTION_NAME_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";

pub use run_answer::RunAnswer;

mod run_answer {
    // utoipa's derive spells the variants' types with their paths, in the variants' spans.
    #![allow(unused_qualifications)]

    use super::super::{FunctionResponse, RunResponse};

    /// Answer of a successful `POST /run`: the ABI v1 form or the ABI v2 form.
    #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    pub enum RunAnswer {
        V1(RunResponse),
        V2(FunctionResponse),
    }
}

/// The path of the plugin endpoints.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginPath {
    /// The plugin's name: 1 to 64 ASCII letters, digits, `_` and `-`, starting with a letter or
    /// digit.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", example = "hello")]
    pub name: String,
}

/// The path of `POST /plugins/{name}/functions/{function}`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FunctionPath {
    /// The plugin's name: 1 to 64 ASCII letters, digits, `_` and `-`, starting with a letter or
    /// digit.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", example = "text")]
    pub name: String,
    /// The ABI v2 function: 1 to 32 of `a-z`, `0-9` and `_`, starting with a letter.
    #[param(pattern = "^[a-z][a-z0-9_]{0,31}$", example = "upper")]
    pub function: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasm-plugin-host",
        description = "Sandboxed WebAssembly plugins behind HTTP: each call runs in a fresh, isolated WasmEdge \
            instance. Every error is JSON, `{\"error\": {\"code\", \"message\"}}`, with a stable `code`; each \
            operation lists the codes it can answer, by status. Every response carries `x-request-id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::run,
        super::functions::call_function,
        super::list_plugins,
        super::show_plugin,
        super::list_versions,
        super::healthz,
        super::readyz,
        super::metrics,
        serve,
    ),
    components(schemas(
        RunRequest,
        RunInput,
        RunResponse,
        FunctionResponse,
        RunAnswer,
        ErrorBody,
        ErrorDetail,
        PluginStatus,
        VersionStatus,
        VersionsResponse,
        AbiStatus,
        QuarantineStatus,
        Readiness,
        WorkerPoolStatus,
        Descriptors,
        PluginName,
    )),
    tags(
        (name = "calls", description = "Running plugins"),
        (name = "plugins", description = "What the store holds"),
        (name = "operations", description = "Probes, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The endpoints, each an operation of the document (named by its `operation_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Run,
    CallFunction,
    ListPlugins,
    ShowPlugin,
    ListVersions,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
}

impl Endpoint {
    pub const ALL: &[Endpoint] = &[
        Endpoint::Run,
        Endpoint::CallFunction,
        Endpoint::ListPlugins,
        Endpoint::ShowPlugin,
        Endpoint::ListVersions,
        Endpoint::Healthz,
        Endpoint::Readyz,
        Endpoint::Metrics,
        Endpoint::OpenApi,
    ];

    /// The `operation_id` of its `#[utoipa::path]`.
    pub fn operation_id(self) -> &'static str {
        match self {
            Endpoint::Run => "run",
            Endpoint::CallFunction => "call_function",
            Endpoint::ListPlugins => "list_plugins",
            Endpoint::ShowPlugin => "show_plugin",
            Endpoint::ListVersions => "list_versions",
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::OpenApi => "openapi",
        }
    }

    /// Whether a request to this endpoint can be answered with `kind`. Every request passes
    /// the same screening first (a compressed body is 415, a server shutting down or out of
    /// connections answers 503 `overloaded`), so those two kinds can happen everywhere.
    pub fn can_fail_with(self, kind: FailureKind) -> bool {
        use Endpoint::*;
        use FailureKind as K;
        let call = matches!(self, Run | CallFunction);
        // Endpoints that look a plugin up by name.
        let by_name = call || matches!(self, ShowPlugin | ListVersions);
        // Endpoints that ask the store (on a thread of their own, within a deadline).
        let store = by_name || matches!(self, ListPlugins | Readyz);
        match kind {
            K::UnsupportedMediaType | K::Overloaded => true,
            // With tokens on (`--tokens-file`), everything but the probes wants one, and a
            // token may not allow the plugin, the listings or the metrics.
            K::Unauthorized | K::Forbidden => !matches!(self, Healthz | Readyz),
            K::InvalidJson | K::BodyTooLarge => self == Run,
            // A malformed query string, or a path segment that is not UTF-8, too.
            K::InvalidRequest => matches!(self, Run | CallFunction | ShowPlugin | ListVersions),
            K::InvalidPluginName | K::PluginNotFound => by_name,
            K::VersionNotFound | K::InvalidVersionRequirement => matches!(self, Run | CallFunction | ShowPlugin),
            // Reading a registry's blob: a call, or a look at one plugin (which reads it to
            // check its ABI).
            K::DigestMismatch | K::InvalidArtifact => call || self == ShowPlugin,
            // A version the trust policy refuses is refused wherever it would be loaded.
            K::SignatureMissing | K::SignatureInvalid | K::UntrustedSigner => call,
            // The operator's configuration of the plugin, given to it on every call.
            K::ConfigurationRefused | K::InvalidConfiguration => call,
            // `GET /plugins/{name}` shows a file it cannot load with `last_error` instead.
            K::PluginTooLarge => call,
            K::StoreUnavailable | K::StoreError => store,
            // A plugin failed once is refused without running again until its file changes.
            K::WrongAbiVersion
            | K::FunctionNotFound
            | K::InputTooLarge
            | K::BodyTimeout
            | K::AbiViolation
            | K::InvalidModule
            | K::PluginInstantiationFailed
            | K::MemoryLimit
            | K::InvalidArgument
            | K::PluginError
            | K::BufferFault
            | K::PluginTrapped
            | K::PluginCrashed
            | K::WorkerLost
            | K::PluginTimeout
            | K::PluginQuarantined => call,
            K::StreamTooLarge | K::StreamTimeout => self == CallFunction,
            K::NoWorkers => call || self == Readyz,
            // Answered by other methods on the call endpoints, which the document does not list
            // as operations (the path's description says so).
            K::MethodNotAllowed => false,
            K::Internal => store,
        }
    }

    fn of_operation_id(id: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|endpoint| endpoint.operation_id() == id)
    }
}

/// Whether a failure is the plugin's doing (its code, its traps, its size, its time) rather than
/// the caller's, the replica's or the host's. Of the 5xx answers, only these say nothing is
/// wrong with the host; the API tests allow no other 5xx.
pub fn is_plugin_fault(kind: FailureKind) -> bool {
    use FailureKind as K;
    match kind {
        K::PluginTooLarge
        | K::ConfigurationRefused
        | K::InvalidConfiguration
        | K::AbiViolation
        | K::InvalidModule
        | K::PluginInstantiationFailed
        | K::MemoryLimit
        | K::InvalidArgument
        | K::PluginError
        | K::BufferFault
        | K::PluginTrapped
        | K::PluginCrashed
        | K::PluginTimeout
        | K::PluginQuarantined => true,
        K::InvalidJson
        | K::Unauthorized
        | K::Forbidden
        | K::InvalidRequest
        | K::UnsupportedMediaType
        | K::BodyTooLarge
        | K::InvalidPluginName
        | K::MethodNotAllowed
        | K::Overloaded
        | K::PluginNotFound
        | K::VersionNotFound
        | K::InvalidVersionRequirement
        | K::DigestMismatch
        | K::InvalidArtifact
        | K::SignatureMissing
        | K::SignatureInvalid
        | K::UntrustedSigner
        | K::StoreUnavailable
        | K::StoreError
        | K::WrongAbiVersion
        | K::FunctionNotFound
        | K::InputTooLarge
        | K::StreamTooLarge
        | K::BodyTimeout
        | K::StreamTimeout
        | K::NoWorkers
        | K::WorkerLost
        | K::Internal => false,
    }
}

/// The document, built from the handlers' attributes and the failure table.
pub fn document() -> openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    for (path, item) in document.paths.paths.iter_mut() {
        let refused = FailureKind::MethodNotAllowed;
        let allowed = if item.post.is_some() { "POST" } else { "GET,HEAD" };
        item.description = Some(format!(
            "Any other method is answered {} `{}` (with `Allow: {allowed}`).",
            super::status(refused).as_u16(),
            refused.code()
        ));
        let operations = [&mut item.get, &mut item.post];
        for operation in operations.into_iter().flatten() {
            let id = operation.operation_id.as_deref().unwrap_or_default();
            let endpoint = Endpoint::of_operation_id(id)
                .unwrap_or_else(|| panic!("{path}: operation {id:?} has no `Endpoint` (api/openapi.rs)"));
            add_failures(operation, endpoint);
            raw_bodies_are_binary(operation);
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.headers.insert(REQUEST_ID.to_string(), request_id_header());
                }
            }
        }
    }
    document
}

/// The document as JSON text, made once.
pub fn document_json() -> &'static str {
    static JSON: LazyLock<String> =
        LazyLock::new(|| document().to_pretty_json().expect("the OpenAPI document serializes"));
    &JSON
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, body = Object, content_type = "application/json",
        description = "The OpenAPI 3.1 document of this API.")))]
pub(super) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}

/// Media types whose bodies are raw bytes (the function endpoint's input and output).
const RAW_MEDIA_TYPES: [&str; 2] = ["application/octet-stream", "application/x-ndjson"];

/// Describes raw bodies as binary strings (utoipa describes `Vec<u8>` as an array of numbers,
/// which is what it would be in JSON).
fn raw_bodies_are_binary(operation: &mut Operation) {
    let binary = || {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .build(),
        )
    };
    let binarize = |media_type: &String, content: &mut openapi::Content| {
        if RAW_MEDIA_TYPES.contains(&media_type.as_str()) {
            content.schema = Some(RefOr::T(binary()));
        }
    };
    for body in operation.request_body.iter_mut() {
        body.content.iter_mut().for_each(|(media_type, content)| binarize(media_type, content));
    }
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.content.iter_mut().for_each(|(media_type, content)| binarize(media_type, content));
        }
    }
}

/// One response per status, each listing the codes of that status the endpoint can answer.
fn add_failures(operation: &mut Operation, endpoint: Endpoint) {
    let mut by_status: BTreeMap<u16, Vec<FailureKind>> = BTreeMap::new();
    for &kind in FailureKind::ALL.iter().filter(|&&kind| endpoint.can_fail_with(kind)) {
        by_status.entry(super::status(kind).as_u16()).or_default().push(kind);
    }
    for (status, kinds) in by_status {
        let mut description = String::from("Failures with this status:");
        for kind in &kinds {
            description.push_str(&format!("\n- `{}`: {}", kind.code(), kind.summary()));
        }
        let codes: Vec<&str> = kinds.iter().map(|kind| kind.code()).collect();
        let code = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes));
        let narrowed =
            ObjectBuilder::new().property("error", ObjectBuilder::new().property("code", code).required("code"));
        let schema = AllOfBuilder::new().item(RefOr::Ref(openapi::Ref::from_schema_name("ErrorBody"))).item(narrowed);
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Schema::AllOf(schema.build()))).build());
        if kinds.iter().any(|kind| kind.is_transient()) {
            response = response.header(
                header::RETRY_AFTER.as_str(),
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                    .description(Some("Seconds to wait before retrying."))
                    .build(),
            );
        }
        operation.responses.responses.insert(status.to_string(), RefOr::T(response.build()));
    }
}

fn request_id_header() -> openapi::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("The request's id: the caller's own `x-request-id` (when short and plain) or a new one."))
        .build()
}

#[cfg(test)]
mod tests {
    use super::{super::PLUGIN_VERSION, *};

    #[test]
    fn every_operation_has_an_endpoint_and_every_endpoint_an_operation() {
        let document = document();
        let mut ids: Vec<&str> = document
            .paths
            .paths
            .values()
            .flat_map(|item| [&item.get, &item.post])
            .flatten()
            .filter_map(|operation| operation.operation_id.as_deref())
            .collect();
        ids.sort_unstable();
        let mut expected: Vec<&str> = Endpoint::ALL.iter().map(|e| e.operation_id()).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
    }

    /// Every code the host sends is documented on some operation, but `method_not_allowed`,
    /// which answers methods that are not operations (each path's description names it).
    #[test]
    fn every_failure_but_the_method_refusal_is_an_operation_s_answer() {
        for &kind in FailureKind::ALL {
            let documented = Endpoint::ALL.iter().any(|endpoint| endpoint.can_fail_with(kind));
            assert_eq!(documented, kind != FailureKind::MethodNotAllowed, "{kind:?}");
        }
        let json = document_json();
        for &kind in FailureKind::ALL {
            assert!(json.contains(&format!("\"{}\"", kind.code())) || json.contains(&format!("`{}`", kind.code())));
        }
    }

    /// The router's routes, as `app` spells them, are the document's paths.
    #[test]
    fn every_route_is_documented() {
        let source = include_str!("mod.rs");
        let mut routes: Vec<&str> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .collect();
        routes.sort_unstable();
        // `probes_only` serves `/healthz` too.
        routes.dedup();
        let document = document();
        let mut paths: Vec<&str> = document.paths.paths.keys().map(String::as_str).collect();
        paths.sort_unstable();
        assert_eq!(routes, paths);
    }

    #[test]
    fn the_call_endpoints_document_the_version_header_they_send() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        for path in ["/run", "/plugins/{name}/functions/{function}"] {
            let headers = &json["paths"][path]["post"]["responses"]["200"]["headers"];
            assert!(headers.get(PLUGIN_VERSION.as_str()).is_some(), "{path}: {headers}");
        }
    }

    #[test]
    fn the_name_patterns_are_the_code_s_rules() {
        let plugin = regex::Regex::new(PLUGIN_NAME_PATTERN).unwrap();
        let function = regex::Regex::new(FUNCTION_NAME_PATTERN).unwrap();
        let mut samples: Vec<String> = vec![String::new(), "é".into(), "aé".into(), "a\u{0}".into()];
        for c in (0u8..128).map(char::from) {
            samples.extend([c.to_string(), format!("a{c}"), format!("{c}a")]);
        }
        for len in [31, 32, 33, 63, 64, 65] {
            samples.extend(["a".repeat(len), format!("a{}", "_".repeat(len - 1))]);
        }
        for sample in &samples {
            assert_eq!(plugin.is_match(sample), PluginName::new(sample).is_ok(), "plugin name {sample:?}");
            assert_eq!(
                function.is_match(sample),
                plugin_sdk::is_valid_function_name(sample),
                "function name {sample:?}"
            );
        }
        // The attributes spell the same patterns (a literal is all they take).
        let source = include_str!("openapi.rs");
        assert!(source.matches(&format!("pattern = {PLUGIN_NAME_PATTERN:?}")).count() == 2);
        assert!(source.matches(&format!("pattern = {FUNCTION_NAME_PATTERN:?}")).count() == 1);
    }
}
