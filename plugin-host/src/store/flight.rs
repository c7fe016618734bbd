//! Single flight: callers that need the same thing from a slow source at the same time share
//! one fetch, so a burst of requests costs the source one request, not one per caller.

use std::{collections::HashMap, hash::Hash, sync::Arc};

use parking_lot::{Condvar, Mutex};

/// The fetches in progress, by key; each caller of a key that is being fetched waits for that
/// fetch's result instead of starting its own.
#[derive(Debug)]
pub(crate) struct Flights<K, T> {
    running: Mutex<HashMap<K, Arc<Flight<T>>>>,
}

#[derive(Debug)]
struct Flight<T> {
    /// `None` until the fetch ends; stays `None` if the fetch panicked.
    result: Mutex<Option<T>>,
    ended: Mutex<bool>,
    done: Condvar,
}

impl<K, T> Default for Flights<K, T> {
    fn default() -> Self {
        Flights { running: Mutex::new(HashMap::new()) }
    }
}

/// Ends a flight when dropped (also when the fetch panics): waiters wake up and the key is
/// free for the next fetch.
struct Landing<'a, K: Hash + Eq, T> {
    flights: &'a Flights<K, T>,
    key: &'a K,
    flight: Arc<Flight<T>>,
}

impl<K: Hash + Eq, T> Drop for Landing<'_, K, T> {
    fn drop(&mut self) {
        self.flights.running.lock().remove(self.key);
        *self.flight.ended.lock() = true;
        self.flight.done.notify_all();
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Flights<K, T> {
    /// `fetch()`'s result, shared: if a fetch of `key` is already running, waits for it and
    /// returns a clone of its result instead of fetching again. (A waiter whose leader
    /// panicked fetches by itself.)
    pub fn run(&self, key: &K, fetch: impl FnOnce() -> T) -> T {
        let (flight, leader) = {
            let mut running = self.running.lock();
            match running.get(key) {
                Some(flight) => (Arc::clone(flight), false),
                None => {
                    let flight =
                        Arc::new(Flight { result: Mutex::new(None), ended: Mutex::new(false), done: Condvar::new() });
                    running.insert(key.clone(), Arc::clone(&flight));
                    (flight, true)
                }
            }
        };
        if leader {
            let landing = Landing { flights: self, key, flight: Arc::clone(&flight) };
            let result = fetch();
            *flight.result.lock() = Some(result.clone());
            drop(landing);
            return result;
        }
        let mut ended = flight.ended.lock();
        while !*ended {
            flight.done.wait(&mut ended);
        }
        drop(ended);
        let shared = flight.result.lock().clone();
        shared.unwrap_or_else(fetch)
    }

    /// Whether a fetch of `key` is running.
    pub fn is_running(&self, key: &K) -> bool {
        self.running.lock().contains_key(key)
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static, T: Clone + Send + 'static> Flights<K, T> {
    /// Starts `fetch` on a thread of its own unless a fetch of `key` is running: a refresh
    /// nobody waits for (its effects are what `fetch` stores).
    pub fn spawn(self: &Arc<Self>, key: K, fetch: impl FnOnce() -> T + Send + 'static) {
        if self.is_running(&key) {
            return;
        }
        let flights = Arc::clone(self);
        let started = std::thread::Builder::new().name("store-refresh".into()).spawn(move || {
            flights.run(&key, fetch);
        });
        if let Err(error) = started {
            // Out of threads: the next caller refreshes in the foreground instead.
            tracing::warn!(%error, "could not start a background refresh");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Duration,
    };

    use super::*;

    #[test]
    fn concurrent_callers_share_one_fetch_and_its_result() {
        let flights = Flights::<&str, u32>::default();
        let fetches = AtomicU32::new(0);
        let results: Vec<u32> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        flights.run(&"key", || {
                            std::thread::sleep(Duration::from_millis(100));
                            fetches.fetch_add(1, Ordering::SeqCst) + 41
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for eight callers");
        assert!(results.iter().all(|&r| r == 41), "{results:?}");
        // Once it has landed, the next caller fetches again.
        assert_eq!(flights.run(&"key", || 7), 7);
    }

    #[test]
    fn a_panicking_fetch_frees_its_key() {
        let flights = Flights::<u8, u8>::default();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flights.run(&1, || panic!("boom"))));
        assert!(panicked.is_err());
        assert!(!flights.is_running(&1));
        assert_eq!(flights.run(&1, || 2), 2);
    }
}
