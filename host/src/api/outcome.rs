//! What every answer says about its request, recorded once, around the handlers: failures are
//! logged here (`ApiError`'s `IntoResponse` only builds the answer), and calls are counted here
//! for `/metrics`, labelled with the plugin their response names.

use std::time::Instant;

use axum::{
    extract::Request,
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use plugin_host::{FailureKind, PluginName};

use super::{ApiError, AppState, Caller, NO_CLIENT, error::Failure, status};

/// The plugin a call named, carried on its response: the label of its metrics (only if the
/// store had it, so that clients cannot create series by inventing names).
#[derive(Debug, Clone)]
pub struct CalledPlugin(pub PluginName);

/// On a stream's response: its outcome is recorded when the stream ends, not when its first
/// bytes go out.
#[derive(Debug, Clone, Copy)]
pub struct RecordedLater;

/// Logs the failure an answer carries, at the level its kind deserves, and counts calls
/// (`POST /run`, a function endpoint) by outcome, plugin and client, with their latency; and
/// answers 503 to a request still running when the server gives up on it at the end of its
/// grace period (see [`AppState::abandon`]: dropping the handler abandons its call, which a
/// blocking thread may still finish). Part of the one layer around every route.
pub async fn record(state: &AppState, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path();
    let call = request.method() == Method::POST && (path == "/run" || path.contains("/functions/"));
    // A handler whose call runs on this thread (a short in-process call) answers on its first
    // poll; only one that has to wait (a worker's answer, a blocking thread, a body still
    // arriving) watches for the end of the grace period, which costs a subscription and a
    // waker's registration.
    let mut handler = std::pin::pin!(next.run(request));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(handler.as_mut().poll(cx))).await;
    let response = match first {
        std::task::Poll::Ready(response) => response,
        std::task::Poll::Pending => {
            let mut abandon = state.abandon.subscribe();
            tokio::select! {
                response = handler => response,
                _ = abandon.wait_for(|abandoned| *abandoned) => ApiError::ShuttingDown.into_response(),
            }
        }
    };
    let extensions = response.extensions();
    // The client's name comes from the file of tokens, never from the request: the token check
    // (`auth`, inside this layer) puts it on the answer.
    let client = extensions.get::<Caller>().map_or(NO_CLIENT, Caller::label);
    let failure = extensions.get::<Failure>();
    if let Some(Failure { kind, message, debug: details }) = failure {
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
    // A call answers with the plugin it named or with a failure; anything else (a path no
    // route has) is not a call. A stream counts itself when it ends.
    let named = extensions.get::<CalledPlugin>();
    if call && (named.is_some() || failure.is_some()) && extensions.get::<RecordedLater>().is_none() {
        let kind = failure.map(|failure| failure.kind);
        let outcome = kind.map_or("ok", FailureKind::code);
        let found = kind.is_none_or(FailureKind::plugin_found);
        let plugin = named.filter(|_| found).map(|named| named.0.as_str());
        state.metrics.observe_request(plugin, client, outcome, started.elapsed());
    }
    response
}

/// `response`, labelled with the plugin its call named.
pub fn labelled(mut response: Response, plugin: PluginName) -> Response {
    response.extensions_mut().insert(CalledPlugin(plugin));
    response
}
