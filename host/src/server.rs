//! Serving HTTP on a listener with the limits a server facing unknown clients needs.
//!
//! `axum::serve` keeps any connection open for as long as the client likes and accepts without
//! limit, so idle or half-sent connections could use up every file descriptor (then accepts
//! fail, workers cannot be respawned and plugins cannot be opened). Every phase a client
//! controls has a deadline here:
//! - **HTTP/1.1 only.** Serving HTTP/2 as well means reading a connection's first bytes to tell
//!   the protocols apart, and hyper's detection waits for them without a deadline (a
//!   connection that sends nothing, one byte or the HTTP/2 preface stayed open for good). No
//!   client of this API needs HTTP/2 (probes, curl, service meshes speak HTTP/1.1); an HTTP/2
//!   connection with prior knowledge is closed when its preface arrives.
//! - **Headers:** every request's headers must arrive within the idle timeout, counted from the
//!   connection's start or the end of the previous response (hyper's header-read timeout), so
//!   a connection idle between requests is closed after it too.
//! - **Bodies:** read by the handlers, within a minimum rate and an absolute cap (`api::body`).
//! - **Responses:** a write that makes no progress for the idle timeout (a client that stopped
//!   reading) ends the connection ([`WriteDeadline`]).
//!
//! At most `max_connections` are served. When they are all taken, a new connection makes room
//! by closing the oldest one that is between requests (never one in the middle of a request:
//! hyper's graceful close lets that one finish), so connections that only sit there can never
//! lock out new ones, probes included. Only when every connection is in the middle of a request
//! does a small reserve answer the probes (`/healthz` yes, `/readyz` no: this replica is full)
//! and refuse anything else with 503; beyond the reserve a connection is closed as soon as it is
//! accepted, which frees its descriptor at once. A failing `accept` (out of descriptors) backs
//! off briefly instead of spinning.
//!
//! Shutdown stops accepting, closes idle connections, lets requests in progress finish, and
//! answers 503 to those still running shortly before the grace period ends, so that every
//! client gets an answer and the process exits within the grace period.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use http_body_util::BodyExt;
use hyper::{
    body::Incoming,
    server::conn::http1,
    service::{Service, service_fn},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
};

use crate::{
    api::{self, AppState},
    descriptors::{Descriptors, FD_HEADROOM},
};

/// How connections are served. Every field documents its default.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time in-flight requests get to finish after shutdown begins; the process exits within
    /// it. Default: 10 s.
    pub grace: Duration,
    /// Longest a connection may take to send a request's headers (from its start, or from the
    /// end of the previous response), and longest a response write may make no progress.
    /// Default: 10 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Default: 4096.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { grace: Duration::from_secs(10), idle_timeout: Duration::from_secs(10), max_connections: 4096 }
    }
}

/// Connections beyond `max_connections` that are still answered, by the probes-only router,
/// when no served connection is between requests.
pub const PROBE_RESERVE: usize = 32;

/// Longest a new connection waits for the idle connection it displaces to close.
const MAKE_ROOM_WAIT: Duration = Duration::from_millis(100);

/// New connections that may wait at once for the connection they displace to close (each
/// holds a descriptor meanwhile). They wait in their own tasks, so that accepting goes on at
/// full speed: a slow accept loop lets the kernel's backlog overflow, and then probes' new
/// connections are dropped before the server ever sees them.
pub const MAKING_ROOM: usize = 32;

/// Part of the grace period kept for answering the requests still running (503) and closing
/// their connections: a quarter of it, at most this much.
const ANSWER_TIME: Duration = Duration::from_millis(500);

/// Serves until `shutdown` completes, then lets in-flight requests finish for up to
/// `options.grace`, answering 503 to those that cannot.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> anyhow::Result<()> {
    let host = state.host.clone();
    let abandon = Arc::clone(&state.abandon);
    let app = api::app(state.clone());
    let overflow_app = api::probes_only(state);
    let slots = Slots {
        connections: Arc::new(Semaphore::new(options.max_connections)),
        making_room: Arc::new(Semaphore::new(MAKING_ROOM)),
        reserve: Arc::new(Semaphore::new(PROBE_RESERVE)),
        open: Arc::new(OpenConnections::default()),
    };
    // Every connection holds a receiver: `true` asks it to close once its request is done, and
    // the sender sees every receiver gone once every connection has ended.
    let (drain, draining) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.idle_timeout);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: try again shortly rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admission) = slots.admit() else {
            // Closed at once: its descriptor is free again, and the client sees the refusal.
            drop(stream);
            continue;
        };
        let (slots, app, overflow_app, http, draining) =
            (slots.clone(), app.clone(), overflow_app.clone(), http.clone(), draining.clone());
        let idle_timeout = options.idle_timeout;
        tokio::spawn(async move {
            let admitted = match admission {
                Admission::Slot(permit) => Some((app, permit, Some(slots.open.register()))),
                Admission::AfterRoom(_waiting) => {
                    let room = tokio::time::timeout(MAKE_ROOM_WAIT, Arc::clone(&slots.connections).acquire_owned());
                    match room.await {
                        Ok(Ok(permit)) => Some((app, permit, Some(slots.open.register()))),
                        _ => Arc::clone(&slots.reserve)
                            .try_acquire_owned()
                            .ok()
                            .map(|permit| (overflow_app, permit, None)),
                    }
                }
                Admission::Reserve(permit) => Some((overflow_app, permit, None)),
            };
            let Some((router, permit, tracked)) = admitted else { return };
            let connection = ServedConnection { http, router, idle_timeout, _permit: permit, tracked, draining };
            connection.serve(stream).await;
        });
    }
    drop((listener, draining));
    host.close();
    tracing::info!(grace_secs = options.grace.as_secs_f64(), "shutting down; draining in-flight requests");
    drain.send_replace(true);
    let answer_time = (options.grace / 4).min(ANSWER_TIME);
    let drained = tokio::time::timeout(options.grace - answer_time, drain.closed()).await.is_ok();
    if !drained {
        // Answer what is still running while there is time to send the answer.
        abandon.send_replace(true);
        if tokio::time::timeout(answer_time, drain.closed()).await.is_err() {
            tracing::warn!("grace period over; closing the connections still open");
        } else {
            tracing::info!("grace period nearly over; requests still running were answered 503");
        }
    }
    Ok(())
}

/// The places a new connection can take (see the module documentation).
#[derive(Debug, Clone)]
struct Slots {
    connections: Arc<Semaphore>,
    making_room: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    open: Arc<OpenConnections>,
}

/// Where a new connection goes.
enum Admission {
    /// A free regular slot.
    Slot(OwnedSemaphorePermit),
    /// The slot an idle connection, asked to close, is about to give back.
    AfterRoom(OwnedSemaphorePermit),
    /// The probes-only reserve.
    Reserve(OwnedSemaphorePermit),
}

impl Slots {
    /// Decides at once, without waiting; `None`: close the connection.
    fn admit(&self) -> Option<Admission> {
        if let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() {
            return Some(Admission::Slot(permit));
        }
        if let Ok(waiting) = Arc::clone(&self.making_room).try_acquire_owned()
            && self.open.close_oldest_idle()
        {
            return Some(Admission::AfterRoom(waiting));
        }
        Arc::clone(&self.reserve).try_acquire_owned().ok().map(Admission::Reserve)
    }
}

/// One accepted connection and what it needs to be served.
struct ServedConnection {
    http: http1::Builder,
    router: Router,
    idle_timeout: Duration,
    _permit: OwnedSemaphorePermit,
    tracked: Option<Registration>,
    draining: watch::Receiver<bool>,
}

impl ServedConnection {
    async fn serve(mut self, stream: TcpStream) {
        let io = TokioIo::new(WriteDeadline::new(stream, self.idle_timeout));
        let router = TowerToHyperService::new(self.router);
        let connection = self.tracked.as_ref().map(|registration| Arc::clone(&registration.connection));
        // Marks the connection busy from the moment a request's headers are in until its
        // response body is dropped (sent, or abandoned), so that making room never picks it.
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let busy = connection.as_ref().map(Busy::new);
            let response = router.call(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| {
                    body.map_frame(move |frame| {
                        let _busy = &busy;
                        frame
                    })
                }))
            }
        });
        let connection = self.http.serve_connection(io, service);
        tokio::pin!(connection);
        let displaced = async {
            match &self.tracked {
                Some(registration) => registration.connection.close.notified().await,
                None => std::future::pending().await,
            }
        };
        // A connection's end (closed, timed out, reset) is its own business.
        tokio::select! {
            _ = connection.as_mut() => return,
            () = displaced => {}
            _ = self.draining.wait_for(|draining| *draining) => {}
        }
        // Between requests (nothing received, or only part of a request's headers), the
        // connection is closed at once: hyper's graceful close would wait for the rest of the
        // headers. Requests only start while `connection` is polled, here in this task, so none
        // can start between this check and the close.
        let between_requests =
            self.tracked.as_ref().is_some_and(|registration| registration.connection.busy.load(Ordering::Acquire) == 0);
        if between_requests {
            return;
        }
        // Closes the connection once the request in progress has its response.
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// The served connections, oldest first, for making room when all are taken.
#[derive(Debug, Default)]
struct OpenConnections {
    next_id: AtomicU64,
    by_age: Mutex<BTreeMap<u64, Arc<TrackedConnection>>>,
}

#[derive(Debug, Default)]
struct TrackedConnection {
    /// Requests in progress (headers in, response not yet sent).
    busy: AtomicUsize,
    /// Already asked to close.
    closing: AtomicBool,
    close: Notify,
}

impl OpenConnections {
    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(TrackedConnection::default());
        self.by_age.lock().insert(id, Arc::clone(&connection));
        Registration { open: Arc::clone(self), id, connection }
    }

    /// Asks the oldest connection that is between requests to close; false if there is none.
    fn close_oldest_idle(&self) -> bool {
        let by_age = self.by_age.lock();
        let idle = by_age.values().find(|connection| {
            connection.busy.load(Ordering::Acquire) == 0 && !connection.closing.swap(true, Ordering::AcqRel)
        });
        idle.inspect(|connection| connection.close.notify_one()).is_some()
    }
}

/// A connection's place in [`OpenConnections`], given up when the connection ends.
#[derive(Debug)]
struct Registration {
    open: Arc<OpenConnections>,
    id: u64,
    connection: Arc<TrackedConnection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.open.by_age.lock().remove(&self.id);
    }
}

/// A request in progress on a tracked connection.
#[derive(Debug)]
struct Busy(Arc<TrackedConnection>);

impl Busy {
    fn new(connection: &Arc<TrackedConnection>) -> Self {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(connection))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream whose writes fail once they have made no progress for `limit`: a client that
/// stops reading its response (or a stream's output) cannot hold the connection, and the
/// worker behind a stream, for longer than that.
#[derive(Debug)]
pub struct WriteDeadline {
    stream: TcpStream,
    limit: Duration,
    /// Running while a write waits for the client; reset whenever a write makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    pub fn new(stream: TcpStream, limit: Duration) -> Self {
        WriteDeadline { stream, limit, stalled: None }
    }

    /// After a write that could not proceed: an error once the stall has lasted `limit`.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response for the idle timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.progress(cx, polled)
    }
}

/// Checks at start-up that the process may open enough files for every connection it will
/// serve, its workers' sockets (two each) and [`FD_HEADROOM`] on top of what it has open now,
/// raising its soft limit up to the hard one if that helps. Returns the limit in force.
pub fn ensure_descriptor_headroom(max_connections: usize, workers: usize) -> Result<u64, String> {
    let open_now = Descriptors::now().open;
    let needed =
        open_now + 2 * workers as u64 + max_connections as u64 + (PROBE_RESERVE + MAKING_ROOM) as u64 + FD_HEADROOM;
    let limit = rlimit::increase_nofile_limit(needed).map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if limit < needed {
        return Err(format!(
            "--max-connections {max_connections} needs about {needed} open files, but this process may open only \
             {limit} (RLIMIT_NOFILE); lower --max-connections or raise the limit (ulimit -n)"
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_by_closing_the_oldest_connection_between_requests() {
        let open = Arc::new(OpenConnections::default());
        let (first, second, third) = (open.register(), open.register(), open.register());
        let _busy = Busy::new(&first.connection);
        assert!(open.close_oldest_idle());
        assert!(second.connection.closing.load(Ordering::Relaxed), "the oldest idle one, not the busy one");
        assert!(open.close_oldest_idle());
        assert!(third.connection.closing.load(Ordering::Relaxed));
        assert!(!open.close_oldest_idle(), "each is asked once; the busy one never");
        drop((second, third));
        assert_eq!(open.by_age.lock().len(), 1);
    }
}
