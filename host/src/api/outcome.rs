//! What every answer says about its request, recorded once, around the handlers: failures are
//! logged here (`ApiError`'s `IntoResponse` only builds the answer), and calls are counted here
//! for `/metrics`, labelled with the plugin their response names.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use plugin_host::{FailureKind, PluginName};

use super::{AppState, Caller, NO_CLIENT, error::Failure, status};

/// The plugin a call named, carried on its response: the label of its metrics (only if the
/// store had it, so that clients cannot create series by inventing names).
#[derive(Debug, Clone)]
pub struct CalledPlugin(pub PluginName);

/// On a stream's response: its outcome is recorded when the stream ends, not when its first
/// bytes go out.
#[derive(Debug, Clone, Copy)]
pub struct RecordedLater;

/// Logs the failure an answer carries, at the level its kind deserves.
pub async fn log_failures(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Failure { kind, message, debug: details }) = response.extensions().get::<Failure>() {
        let code = kind.code();
        if *kind == FailureKind::Overloaded {
            // A full or stopping server: load, not a fault; one ERROR per refused request
            // would turn a burst of traffic into a burst of logs.
            tracing::warn!(error = %message, code, "request refused for now");
        } else if status(*kind).is_server_error() {
            tracing::error!(error = %message, details = %details, code, "request failed");
        } else {
            tracing::debug!(error = %message, code, "request refused");
        }
    }
    response
}

/// Counts a call (`POST /run`, a function endpoint) by outcome and plugin, with its latency.
pub async fn count_calls(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The client's name comes from the file of tokens, never from the request (`auth`).
    let client = request.extensions().get::<Caller>().map_or(NO_CLIENT.into(), |caller| caller.label().to_owned());
    let response = next.run(request).await;
    let extensions = response.extensions();
    if extensions.get::<RecordedLater>().is_none() {
        let failure = extensions.get::<Failure>().map(|failure| failure.kind);
        let outcome = failure.map_or("ok", FailureKind::code);
        let found = failure.is_none_or(FailureKind::plugin_found);
        let plugin = extensions.get::<CalledPlugin>().filter(|_| found);
        state.metrics.observe_request(plugin.map(|p| p.0.as_str()), &client, outcome, started.elapsed());
    }
    response
}

/// `response`, labelled with the plugin its call named.
pub fn labelled(mut response: Response, plugin: PluginName) -> Response {
    response.extensions_mut().insert(CalledPlugin(plugin));
    response
}
