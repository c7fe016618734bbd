//! Serving HTTP on a listener with the limits a server facing unknown clients needs.
//!
//! `axum::serve` keeps any connection open for as long as the client likes and accepts without
//! limit, so idle or half-sent connections could use up every file descriptor (then accepts
//! fail, workers cannot be respawned and plugins cannot be opened). Here:
//! - every connection must send a request's headers within the idle timeout, also between
//!   requests on a kept-alive connection (hyper's header-read timeout), or it is closed;
//! - at most `max_connections` are served; beyond that a small reserve of connections is
//!   answered by a router that serves the probes (`/healthz`, `/readyz`) and refuses anything
//!   else with 503 (so Kubernetes still sees the truth), and beyond the reserve a connection is
//!   closed as soon as it is accepted, which frees its descriptor at once;
//! - a failing `accept` (out of descriptors) backs off briefly instead of spinning;
//! - shutdown stops accepting, refuses calls that have not started, and gives the others the
//!   grace period.

use std::{future::Future, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::api::{self, AppState};

/// How connections are served. Every field documents its default.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time in-flight requests get to finish after shutdown begins. Default: 10 s.
    pub grace: Duration,
    /// Longest a connection may take to send a request's headers, and stay idle between
    /// requests. Default: 10 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Default: 4096.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { grace: Duration::from_secs(10), idle_timeout: Duration::from_secs(10), max_connections: 4096 }
    }
}

/// Connections beyond `max_connections` that are still answered, by the probes-only router.
pub const PROBE_RESERVE: usize = 32;

/// File descriptors kept free for what the server must always be able to do (accept a probe,
/// restart a worker, open a plugin file): fewer free than this makes `/readyz` say not ready,
/// and start-up refuses a connection limit that would leave fewer.
pub const FD_HEADROOM: u64 = 64;

/// Serves until `shutdown` completes, then lets in-flight requests finish for up to
/// `options.grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> anyhow::Result<()> {
    let stopping = Arc::clone(&state.stopping);
    let app = api::app(state.clone());
    let overflow_app = api::probes_only(state);
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.idle_timeout);
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
        let (router, permit) = if let Ok(permit) = Arc::clone(&connections).try_acquire_owned() {
            (app.clone(), permit)
        } else if let Ok(permit) = Arc::clone(&reserve).try_acquire_owned() {
            (overflow_app.clone(), permit)
        } else {
            // Closed at once: its descriptor is free again, and the client sees the refusal.
            drop(stream);
            continue;
        };
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(router)).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            // A connection's end (closed, timed out, reset) is its own business.
            let _ = connection.await;
        });
    }
    drop(listener);
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(grace_secs = options.grace.as_secs(), "shutting down; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!("grace period over; dropping the requests still in flight");
        }
    }
    Ok(())
}

/// This process's open file descriptors against its limit.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Descriptors {
    pub open: u64,
    pub limit: u64,
}

impl Descriptors {
    /// Now, from `/proc/self/fd` and `RLIMIT_NOFILE`'s soft limit (unlimited if unknown).
    pub fn now() -> Self {
        let open = std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count() as u64);
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft);
        Descriptors { open, limit }
    }

    /// Whether at least [`FD_HEADROOM`] descriptors are free.
    pub fn have_headroom(self) -> bool {
        self.open.saturating_add(FD_HEADROOM) <= self.limit
    }
}

/// Checks at start-up that the process may open enough files for every connection it will
/// serve, its workers' sockets (two each) and [`FD_HEADROOM`] on top of what it has open now,
/// raising its soft limit up to the hard one if that helps. Returns the limit in force.
pub fn ensure_descriptor_headroom(max_connections: usize, workers: usize) -> Result<u64, String> {
    let open_now = Descriptors::now().open;
    let needed = open_now + 2 * workers as u64 + max_connections as u64 + PROBE_RESERVE as u64 + FD_HEADROOM;
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
    fn readiness_needs_the_descriptor_headroom() {
        assert!(Descriptors { open: 100, limit: 164 }.have_headroom());
        assert!(!Descriptors { open: 101, limit: 164 }.have_headroom());
        assert!(Descriptors::now().have_headroom(), "{:?}", Descriptors::now());
    }
}
