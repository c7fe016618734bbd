//! `POST /plugins/{name}/functions/{function}`: an ABI v2 function called with the raw request
//! body as its input, answering with its raw output (`application/octet-stream`).
//!
//! A plain function gets the whole body at once, so the body may be at most the plugin's input
//! capacity (413 `input_too_large` beyond). A streaming function gets the body as it arrives,
//! cut into chunks of its input capacity, and its output goes back as it is produced
//! (chunked). With `Content-Type: application/x-ndjson` the chunks end at line ends, so the
//! plugin never sees part of a record (a line longer than the input capacity is 413).
//!
//! A stream's status is decided by its first output: an error before any output is an
//! ordinary JSON error answer; an error after output has gone out (the plugin failed in
//! mid-stream, or the stream broke a limit) can no longer change the status, so the response
//! is cut off without its final chunk, which every HTTP client reports as an incomplete body,
//! and the error is logged with the request id.
//!
//! Limits ([`StreamLimits`]): total bytes, total duration, and the longest the client may send
//! nothing. Each chunk the plugin is fed gets the whole call deadline.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension,
    body::{Body, Bytes},
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use plugin_host::{FailureKind, FunctionKind, PluginName, Stream, Target};

use super::{
    ApiError, AppState, Caller, VersionQuery,
    body::{content_length, drain, read_whole},
    outcome, requirement, with_version,
};

/// Limits on streams, with their defaults.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Most bytes a stream's request body may have. Default: 4 GiB.
    pub max_bytes: u64,
    /// Longest a stream may last, from its first byte to its last output. Default: 5 minutes.
    pub max_duration: Duration,
    /// Longest a client may send nothing in the middle of a stream. Default: 30 s.
    pub idle_timeout: Duration,
    /// Slowest a client may send a stream, in bytes per second, averaged over each
    /// `rate_window` of waiting for the client (time the plugin keeps the reader waiting does
    /// not count): a stream holds a worker, so a client that trickles must not keep it for
    /// minutes. 0 turns the check off. Default: 1024.
    pub min_rate: u64,
    /// The window `min_rate` is averaged over. Default: 10 s.
    pub rate_window: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_bytes: 4 << 30,
            max_duration: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
            min_rate: 1024,
            rate_window: Duration::from_secs(10),
        }
    }
}

/// The content type whose streams are cut at line ends.
const NDJSON: &str = "application/x-ndjson";

/// Chunks waiting between the body reader and the plugin, and outputs between the plugin and
/// the client: small, so a stream of any length holds a few chunks of memory at most.
const PIPELINE_DEPTH: usize = 2;

#[utoipa::path(
    post,
    path = "/plugins/{name}/functions/{function}",
    operation_id = "call_function",
    tag = "calls",
    params(super::openapi::FunctionPath, VersionQuery),
    request_body(description = "The input, raw. A plain function takes at most the plugin's input capacity; a \
        streaming function any length up to the stream limit, fed to it as it arrives (with \
        `application/x-ndjson`, in chunks that end at line ends).",
        content(
            (Vec<u8> = "application/octet-stream"),
            (Vec<u8> = "application/x-ndjson"),
        )),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream",
        headers(("x-plugin-version" = String, description = "The version that ran (absent for an unversioned plugin file)")),
        description = "The output, raw. A stream's output is sent as the plugin produces it; a stream that fails \
            after its output began is cut off before its final chunk (an incomplete body), since its status has \
            gone out."))
)]
pub(super) async fn call_function(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<VersionQuery>, QueryRejection>,
    // The whole request rather than a `HeaderMap` extractor, which would copy the headers.
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let started = Instant::now();
    let Ok(Path((plugin, function))) = path else {
        return ApiError::InvalidPath.into_response();
    };
    let Ok(Query(query)) = query else { return ApiError::InvalidRequest.into_response() };
    let name = match PluginName::new(&plugin) {
        Ok(name) => name,
        Err(invalid) => return ApiError::InvalidName(invalid).into_response(),
    };
    let caller = Caller::of(caller);
    let served = serve(&state, &caller, name.clone(), query.version.as_deref(), &function, headers, body, started);
    let response = match served.await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    outcome::labelled(response, name)
}

#[expect(clippy::too_many_arguments, reason = "the parts of one request, taken apart once")]
async fn serve(
    state: &AppState,
    caller: &Caller,
    name: PluginName,
    version: Option<&str>,
    function: &str,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Response, ApiError> {
    caller.may_call(&name)?;
    if !plugin_sdk::is_valid_function_name(function) {
        return Err(ApiError::InvalidFunctionName);
    }
    let target = Target { name, requirement: requirement(version)? };
    let function = state.host.function(&target, function).await?;
    match function.kind() {
        FunctionKind::Call => {
            // A body that trickles in holds its bytes of the body budget, never a place among
            // the calls in flight: the call is admitted once its input is complete.
            let capacity = function.input_capacity();
            let input = read_whole(
                body,
                headers,
                capacity,
                || ApiError::InputTooLarge { capacity: capacity as u32 },
                &state.body_limits,
                &state.bodies,
            )
            .await?;
            let ran = function.call(input.bytes.to_vec()).await?;
            let response = ([(header::CONTENT_TYPE, "application/octet-stream")], ran.output).into_response();
            Ok(with_version(response, &ran.plugin))
        }
        FunctionKind::Stream => {
            let limit = state.stream_limits.max_bytes;
            if content_length(headers).is_some_and(|length| length > limit) {
                tokio::spawn(drain(body, state.stream_limits.idle_timeout));
                return Err(ApiError::StreamTooLarge { limit });
            }
            let lines = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(NDJSON)));
            let stream = function.open_stream().await?;
            let plugin = stream.plugin().clone();
            let client: Arc<str> = caller.label().into();
            let mut response = stream_response(state, client, stream, body, lines, started).await;
            // The stream counts itself when it ends (see `drive`).
            response.extensions_mut().insert(outcome::RecordedLater);
            Ok(with_version(response, &plugin))
        }
    }
}

/// What the body reader hands the plugin's thread.
enum Input {
    Chunk(Vec<u8>),
    /// The body ended: finish the stream.
    End,
    /// The body broke a limit: end the stream with this error.
    Failed(ApiError),
}

/// What the plugin's thread hands the response.
enum Output {
    Bytes(Bytes),
    Done,
    Failed(ApiError),
}

/// Wires the request body, the plugin and the response together (see the module
/// documentation) and answers once the stream's first output, or its end, is known.
/// The client's name goes to the metrics, with the plugin's, when the stream ends.
async fn stream_response(
    state: &AppState,
    client: Arc<str>,
    stream: Stream,
    body: Body,
    lines: bool,
    started: Instant,
) -> Response {
    let (input_tx, input_rx) = mpsc::channel(PIPELINE_DEPTH);
    let (output_tx, mut output_rx) = mpsc::channel(PIPELINE_DEPTH);
    let framer = Framer::new(stream.chunk_capacity(), lines);
    let deadline = tokio::time::Instant::from_std(started + state.stream_limits.max_duration);
    tokio::spawn(read_body(body, framer, input_tx, state.stream_limits, deadline));
    let metrics = Arc::clone(&state.metrics);
    let abandon = state.abandon.subscribe();
    let name = stream.plugin().name.clone();
    tokio::task::spawn_blocking(move || {
        let outcome = drive(stream, input_rx, &output_tx);
        metrics.observe_request(Some(name.as_str()), &client, outcome, started.elapsed());
    });
    match output_rx.recv().await {
        Some(Output::Failed(error)) => error.into_response(),
        None => ApiError::Internal("the stream's thread ended without an answer".into()).into_response(),
        Some(first) => {
            let state = (Some(first), output_rx, abandon);
            let body = futures_util::stream::unfold(state, |(next, mut rx, mut abandon)| async move {
                let item = match next {
                    Some(item) => item,
                    None => tokio::select! {
                        item = rx.recv() => item?,
                        // The server's grace period is ending: the status has gone out, so a
                        // cut-off body is the only way left to say the output is incomplete.
                        _ = abandon.wait_for(|abandoned| *abandoned) => Output::Failed(ApiError::ShuttingDown),
                    },
                };
                match item {
                    Output::Bytes(bytes) => Some((Ok(bytes), (None, rx, abandon))),
                    Output::Done => None,
                    Output::Failed(error) => {
                        let code = error.kind().code();
                        let message = "stream failed after its output began; cutting the response off";
                        if super::error::status(error.kind()).is_server_error()
                            && error.kind() != FailureKind::Overloaded
                        {
                            tracing::error!(%error, code, "{message}");
                        } else {
                            // The client's doing (a limit it broke, a broken body) or a
                            // shutdown: not a fault of this host.
                            tracing::warn!(%error, code, "{message}");
                        }
                        // hyper drops the connection as soon as a body fails, with whatever it
                        // holds unwritten: when the failure follows the first output at once,
                        // that is the status line itself, and the client would see no answer.
                        // Waiting one turn lets hyper flush what it has before the cut.
                        tokio::task::yield_now().await;
                        Some((Err(std::io::Error::other(error.to_string())), (None, rx, abandon)))
                    }
                }
            });
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(body))
                .into_response()
        }
    }
}

/// The plugin's side of a stream, on a blocking thread: feeds it what the body reader sends,
/// passes its output on, and returns the request's outcome for the metrics.
fn drive(mut stream: Stream, mut input: mpsc::Receiver<Input>, output: &mpsc::Sender<Output>) -> &'static str {
    let fail = |error: ApiError| {
        let code = error.kind().code();
        let _ = output.blocking_send(Output::Failed(error));
        code
    };
    loop {
        match input.blocking_recv() {
            Some(Input::Chunk(chunk)) => match stream.feed(&chunk) {
                Ok(produced) => {
                    let sent = produced.is_empty() || output.blocking_send(Output::Bytes(produced.into())).is_ok();
                    if !sent {
                        // The client went away; dropping the stream abandons it.
                        return "client_gone";
                    }
                }
                Err(error) => return fail(error.into()),
            },
            Some(Input::End) => {
                return match stream.finish() {
                    Ok(produced) => {
                        if !produced.is_empty() {
                            let _ = output.blocking_send(Output::Bytes(produced.into()));
                        }
                        let _ = output.blocking_send(Output::Done);
                        "ok"
                    }
                    Err(error) => fail(error.into()),
                };
            }
            Some(Input::Failed(error)) => return fail(error),
            // The body reader stopped: the client disconnected mid-upload.
            None => return "client_gone",
        }
    }
}

/// Reads the request body as it arrives and sends it on in chunks, within the stream's limits.
async fn read_body(
    mut body: Body,
    mut framer: Framer,
    chunks: mpsc::Sender<Input>,
    limits: StreamLimits,
    deadline: tokio::time::Instant,
) {
    let mut total: u64 = 0;
    let mut ended = false;
    let mut rate = FeedRate::new(limits);
    let outcome: Result<(), ApiError> = async {
        loop {
            let asked = tokio::time::Instant::now();
            let wait = asked + limits.idle_timeout;
            let window_ends = asked + rate.left_in_window();
            let frame = tokio::time::timeout_at(wait.min(deadline).min(window_ends), body.frame()).await;
            rate.waited(asked.elapsed(), frame.as_ref().ok().and_then(|f| f.as_ref()?.as_ref().ok()?.data_ref()))?;
            let frame = match frame {
                // The rate window ended (and the client kept up): wait on.
                Err(_) if window_ends < wait.min(deadline) => continue,
                Err(_) if wait < deadline => return Err(ApiError::StreamIdle { idle: limits.idle_timeout }),
                Err(_) => return Err(ApiError::StreamTooLong { limit: limits.max_duration }),
                Ok(None) => break,
                // A broken body (a malformed or cut-short chunked encoding, a reset connection):
                // the client's fault, answered 400 in case it still listens.
                Ok(Some(Err(_))) => {
                    ended = true;
                    return Err(ApiError::BodyBroken);
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            total += data.len() as u64;
            if total > limits.max_bytes {
                return Err(ApiError::StreamTooLarge { limit: limits.max_bytes });
            }
            for chunk in framer.push(&data)? {
                send(&chunks, Input::Chunk(chunk), deadline, limits).await?;
            }
        }
        ended = true;
        for chunk in framer.finish()? {
            send(&chunks, Input::Chunk(chunk), deadline, limits).await?;
        }
        send(&chunks, Input::End, deadline, limits).await
    }
    .await;
    if let Err(error) = outcome
        && !matches!(error, ApiError::ClientGone)
    {
        let _ = chunks.send(Input::Failed(error)).await;
    }
    if !ended {
        drain(body, limits.idle_timeout).await;
    }
}

/// The minimum feed rate of a stream ([`StreamLimits::min_rate`]): what the client sent in the
/// current window, and how long the reader has waited for it.
#[derive(Debug)]
struct FeedRate {
    min_rate: u64,
    window: Duration,
    waited: Duration,
    bytes: u64,
}

impl FeedRate {
    fn new(limits: StreamLimits) -> Self {
        FeedRate { min_rate: limits.min_rate, window: limits.rate_window, waited: Duration::ZERO, bytes: 0 }
    }

    /// How long the reader may wait for the client before the window is judged.
    fn left_in_window(&self) -> Duration {
        // Off: a year, which the stream's own deadline always ends first.
        if self.min_rate == 0 { Duration::from_secs(365 * 86_400) } else { self.window.saturating_sub(self.waited) }
    }

    /// The reader waited `waited` for the client, which sent `data`; a window that is over is
    /// judged: too few bytes in it end the stream (408 `stream_timeout`).
    fn waited(&mut self, waited: Duration, data: Option<&Bytes>) -> Result<(), ApiError> {
        if self.min_rate == 0 {
            return Ok(());
        }
        self.waited += waited;
        self.bytes += data.map_or(0, |data| data.len() as u64);
        if self.waited < self.window {
            return Ok(());
        }
        let needed = (self.min_rate as f64 * self.window.as_secs_f64()) as u64;
        if self.bytes < needed {
            return Err(ApiError::StreamTooSlow { min_rate: self.min_rate, window: self.window });
        }
        (self.waited, self.bytes) = (Duration::ZERO, 0);
        Ok(())
    }
}

/// Hands a chunk to the plugin's thread, waiting (backpressure) at most until the deadline.
async fn send(
    chunks: &mpsc::Sender<Input>,
    input: Input,
    deadline: tokio::time::Instant,
    limits: StreamLimits,
) -> Result<(), ApiError> {
    match tokio::time::timeout_at(deadline, chunks.send(input)).await {
        Ok(Ok(())) => Ok(()),
        // The plugin's thread stopped (the stream failed): nothing more to send.
        Ok(Err(_)) => Err(ApiError::ClientGone),
        Err(_) => Err(ApiError::StreamTooLong { limit: limits.max_duration }),
    }
}

/// Cuts a body into the chunks a stream is fed: as full as the input capacity allows, and, for
/// NDJSON, ending at line ends.
#[derive(Debug)]
pub(super) struct Framer {
    capacity: usize,
    lines: bool,
    pending: Vec<u8>,
}

impl Framer {
    pub(super) fn new(capacity: usize, lines: bool) -> Self {
        Framer { capacity: capacity.max(1), lines, pending: Vec::new() }
    }

    /// Takes the next bytes of the body; returns the chunks now complete.
    pub(super) fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, ApiError> {
        self.pending.extend_from_slice(data);
        let mut chunks = Vec::new();
        while self.pending.len() >= self.capacity {
            chunks.push(self.cut()?);
        }
        Ok(chunks)
    }

    /// The body ended: the rest, as chunks (a last line needs no newline).
    pub(super) fn finish(mut self) -> Result<Vec<Vec<u8>>, ApiError> {
        let mut chunks = Vec::new();
        while self.pending.len() > self.capacity {
            chunks.push(self.cut()?);
        }
        if !self.pending.is_empty() {
            chunks.push(std::mem::take(&mut self.pending));
        }
        Ok(chunks)
    }

    /// The next chunk from `pending`, which holds more than a chunk.
    fn cut(&mut self) -> Result<Vec<u8>, ApiError> {
        let end = if self.lines {
            let window = &self.pending[..self.capacity];
            match window.iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None => return Err(ApiError::LineTooLong { capacity: self.capacity }),
            }
        } else {
            self.capacity
        };
        let rest = self.pending.split_off(end);
        Ok(std::mem::replace(&mut self.pending, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(capacity: usize, lines: bool, pieces: &[&[u8]]) -> Result<Vec<Vec<u8>>, ApiError> {
        let mut framer = Framer::new(capacity, lines);
        let mut chunks = Vec::new();
        for piece in pieces {
            chunks.extend(framer.push(piece)?);
        }
        chunks.extend(framer.finish()?);
        Ok(chunks)
    }

    #[test]
    fn bytes_are_cut_into_full_chunks() {
        let chunks = frame(4, false, &[b"ab", b"cdefghij", b"k"]).unwrap();
        assert_eq!(chunks, [b"abcd".to_vec(), b"efgh".to_vec(), b"ijk".to_vec()]);
        assert!(frame(4, false, &[]).unwrap().is_empty());
    }

    #[test]
    fn ndjson_chunks_end_at_line_ends() {
        let chunks = frame(8, true, &[b"{\"a\"", b":1}\n{\"b\":2}\n", b"{}\n{}"]).unwrap();
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(chunk.len() <= 8 && chunk.ends_with(b"\n"), "{chunk:?}");
        }
        assert_eq!(chunks.concat(), b"{\"a\":1}\n{\"b\":2}\n{}\n{}");
        assert_eq!(chunks, [b"{\"a\":1}\n".to_vec(), b"{\"b\":2}\n".to_vec(), b"{}\n{}".to_vec()]);
    }

    #[test]
    fn a_stream_is_judged_by_what_it_sent_per_window_of_waiting_for_it() {
        let limits = StreamLimits { min_rate: 10, rate_window: Duration::from_secs(1), ..StreamLimits::default() };
        let mut rate = FeedRate::new(limits);
        let bytes = |n: usize| Bytes::from(vec![0u8; n]);
        // 12 bytes in the first second of waiting: fast enough; the next window starts afresh.
        rate.waited(Duration::from_millis(500), Some(&bytes(3))).unwrap();
        assert_eq!(rate.left_in_window(), Duration::from_millis(500));
        rate.waited(Duration::from_millis(500), Some(&bytes(9))).unwrap();
        assert_eq!(rate.left_in_window(), Duration::from_secs(1));
        // Time spent feeding the plugin is not waiting for the client, so it is never passed
        // in; 5 bytes in the next second of waiting are too few.
        rate.waited(Duration::from_millis(600), Some(&bytes(4))).unwrap();
        let too_slow = rate.waited(Duration::from_millis(400), Some(&bytes(1)));
        assert!(matches!(too_slow, Err(ApiError::StreamTooSlow { min_rate: 10, .. })), "{too_slow:?}");
        // Off: never judged.
        let mut off = FeedRate::new(StreamLimits { min_rate: 0, ..limits });
        off.waited(Duration::from_secs(3600), None).unwrap();
    }

    #[test]
    fn an_ndjson_line_longer_than_a_chunk_is_refused() {
        assert!(matches!(frame(4, true, &[b"12345\n"]), Err(ApiError::LineTooLong { capacity: 4 })));
        assert!(matches!(frame(4, true, &[b"12\n", b"45678"]), Err(ApiError::LineTooLong { capacity: 4 })));
    }
}
