//! Bounds on log volume: a warning that requests can trigger is written once per cause (a file
//! and its identity, a registry tag) or at most once per interval per cause, never once per
//! request, so no request pattern turns the log into an amplifier.
//!
//! Causes are remembered by a 64-bit hash in a bounded, least-recently-used set: memory stays
//! fixed however many causes there are, and a cause forgotten (pushed out by many others) is
//! at worst warned about once more.

use std::{
    hash::{Hash, Hasher},
    num::NonZeroUsize,
    time::{Duration, Instant},
};

use lru::LruCache;
use parking_lot::Mutex;

/// Causes remembered by default: far more than a store holds odd files or tags, and small
/// (about 64 KiB).
pub const DEFAULT_CAUSES: usize = 4096;

fn key(cause: &impl Hash) -> u64 {
    // `DefaultHasher::new` has fixed keys: the same cause hashes alike for the process's life.
    let mut hasher = std::hash::DefaultHasher::new();
    cause.hash(&mut hasher);
    hasher.finish()
}

/// Says yes the first time it sees a cause: for warnings about something that stays as it is
/// until somebody changes it (a stray file in a version folder: include its identity in the
/// cause, so a changed file is warned about again).
#[derive(Debug)]
pub struct Once {
    seen: Mutex<LruCache<u64, ()>>,
}

impl Default for Once {
    fn default() -> Self {
        Once::new(DEFAULT_CAUSES)
    }
}

impl Once {
    pub fn new(capacity: usize) -> Self {
        Once { seen: Mutex::new(LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))) }
    }

    /// Whether `cause` is new (then it is remembered).
    pub fn first(&self, cause: &impl Hash) -> bool {
        self.seen.lock().put(key(cause), ()).is_none()
    }
}

/// Says yes to a cause at most once per interval, and how many times it said no in between:
/// for warnings about a condition that lasts (a store that cannot be listed, a cache folder
/// that cannot be written), which should show up in the log while it lasts, but not per request.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// Per cause: when it was last allowed, and how often it was refused since.
    last: Mutex<LruCache<u64, (Instant, u64)>>,
}

impl Default for Throttle {
    /// Once per 10 s per cause.
    fn default() -> Self {
        Throttle::new(Duration::from_secs(10), DEFAULT_CAUSES)
    }
}

impl Throttle {
    pub fn new(interval: Duration, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Throttle { interval, last: Mutex::new(LruCache::new(capacity)) }
    }

    /// `Some(suppressed)` when a line about `cause` may be written now (`suppressed`: lines
    /// refused since the last one, to be written along with it); `None` otherwise.
    pub fn allow(&self, cause: &impl Hash) -> Option<u64> {
        let mut last = self.last.lock();
        let now = Instant::now();
        match last.get_mut(&key(cause)) {
            Some((allowed, suppressed)) if now.duration_since(*allowed) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((allowed, suppressed)) => {
                *allowed = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                last.put(key(cause), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_says_yes_once_per_cause_and_stays_bounded() {
        let once = Once::new(4);
        assert!(once.first(&("a", 1)));
        assert!(!once.first(&("a", 1)));
        assert!(once.first(&("a", 2)), "a changed identity is a new cause");
        for i in 0..100 {
            once.first(&i);
        }
        assert_eq!(once.seen.lock().len(), 4);
    }

    #[test]
    fn throttle_allows_one_line_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_millis(50), 16);
        assert_eq!(throttle.allow(&"x"), Some(0));
        assert_eq!(throttle.allow(&"x"), None);
        assert_eq!(throttle.allow(&"x"), None);
        assert_eq!(throttle.allow(&"y"), Some(0), "causes are throttled separately");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.allow(&"x"), Some(2));
        assert_eq!(throttle.allow(&"x"), None);
    }
}
