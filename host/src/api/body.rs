//! Reading a whole request body (`POST /run`, a plain v2 function) within its limits: its size
//! (a `Content-Length` over the limit is refused before a byte is read), its time (a minimum
//! average rate after a grace period, and an absolute cap), and the server's memory budget for
//! bodies being received, which is taken as bytes arrive, so a client that trickles holds only
//! what it has sent.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, header},
};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Limits on whole request bodies, with their defaults.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Slack before the minimum rate applies: a body may start this late, or pause this long
    /// early on. Default: 10 s (the connections' idle timeout, `--idle-timeout-secs`).
    pub grace: Duration,
    /// Least average rate, in bytes per second, a body must keep after the grace period: a body
    /// of N bytes has `grace + N / min_rate` to arrive. 0 turns the rule off. Default: 16 KiB/s.
    pub min_rate: u64,
    /// Longest any body may take, whatever its rate. Default: 60 s.
    pub max_duration: Duration,
    /// Most bytes of request bodies the server holds at once while they arrive and until their
    /// call ends (503 `overloaded` beyond). Default: 256 MiB.
    pub buffer_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            grace: Duration::from_secs(10),
            min_rate: 16 << 10,
            max_duration: Duration::from_secs(60),
            buffer_bytes: 256 << 20,
        }
    }
}

impl BodyLimits {
    /// How long a body may have taken when `received` bytes of it are in.
    fn allowance(&self, received: usize) -> Duration {
        let by_rate = match self.min_rate {
            0 => self.max_duration,
            rate => self.grace.saturating_add(Duration::from_secs_f64(received as f64 / rate as f64)),
        };
        by_rate.min(self.max_duration)
    }
}

/// A body read whole, with its share of the memory budget (given back when it is dropped).
#[derive(Debug)]
pub(crate) struct WholeBody {
    pub bytes: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

/// The request's `Content-Length`, if it has a valid one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a whole body of at most `limit` bytes; `too_large` is the answer to a longer one, given
/// before reading when `Content-Length` says so, and otherwise as soon as the body passes the
/// limit (what is left of it is drained in the background while the answer goes out).
pub(crate) async fn read_whole(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
    too_large: impl Fn() -> ApiError,
    limits: &BodyLimits,
    budget: &Arc<Semaphore>,
) -> Result<WholeBody, ApiError> {
    if content_length(headers).is_some_and(|length| length > limit as u64) {
        // A client that sends its body without waiting (no `Expect: 100-continue`) would lose
        // the answer to a reset if the connection closed with its body unread.
        tokio::spawn(drain(body, limits.grace));
        return Err(too_large());
    }
    let started = tokio::time::Instant::now();
    let mut bytes = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    loop {
        let frame = match tokio::time::timeout_at(started + limits.allowance(bytes.len()), body.frame()).await {
            Err(_) => return Err(ApiError::BodyTimeout),
            Ok(None) => return Ok(WholeBody { bytes, _budget: held }),
            // A broken body (a malformed or cut-short chunked encoding, a connection reset).
            Ok(Some(Err(_))) => return Err(ApiError::BodyBroken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            tokio::spawn(drain(body, limits.grace));
            return Err(too_large());
        }
        let share = u32::try_from(data.len()).map_err(|_| too_large())?;
        let permit = Arc::clone(budget).try_acquire_many_owned(share).map_err(|_| ApiError::Overloaded)?;
        match &mut held {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        bytes.extend_from_slice(&data);
    }
}

/// How much of a body the answer no longer needs is still read, and for how long at most (see
/// [`drain`]).
const DRAIN_BYTES: usize = 8 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what is left of a request body that was refused or is no longer needed
/// (a stream that failed, an input over the capacity), within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`]. A server that closes a connection with unread data makes the kernel reset
/// it, and a client still sending can then lose the answer it was about to read; reading a
/// little more lets the connection close cleanly (or even stay open).
pub(crate) async fn drain(mut body: Body, idle: Duration) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME.min(idle);
    let mut drained = 0;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        drained += frame.data_ref().map_or(0, Bytes::len);
        if drained > DRAIN_BYTES {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_has_the_grace_period_plus_its_size_at_the_minimum_rate_up_to_the_cap() {
        let limits = BodyLimits {
            grace: Duration::from_secs(2),
            min_rate: 1000,
            max_duration: Duration::from_secs(10),
            ..BodyLimits::default()
        };
        assert_eq!(limits.allowance(0), Duration::from_secs(2));
        assert_eq!(limits.allowance(3000), Duration::from_secs(5));
        assert_eq!(limits.allowance(1 << 20), Duration::from_secs(10));
        assert_eq!(BodyLimits { min_rate: 0, ..limits }.allowance(0), Duration::from_secs(10));
    }
}
