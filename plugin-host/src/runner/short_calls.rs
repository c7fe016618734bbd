//! Which plugins answer quickly enough to be called on the thread that received the request.
//!
//! Handing a call to a blocking thread and back costs two thread wake-ups, more than a warm
//! call of a small plugin itself. So a plugin whose recent calls all finished within
//! [`SHORT_CALL_BUDGET`] is called directly (see `PluginRunner::run_if_short`); any other call
//! goes through the blocking pool as before. Every guarantee holds either way: the deadline,
//! fresh state, crash containment and metrics are the runner's, not the thread's.
//!
//! What a plugin that turns slow costs: the one call that overran held an async thread for as
//! long as it ran (at most its deadline). It then goes back to the blocking pool until it has
//! paid [`OVERRUN_DEBT`] short calls for the overrun, so a plugin that alternates can hold an
//! async thread in at most one call out of `OVERRUN_DEBT + 1`. Durations are wall-clock: on a
//! busy machine a short call that was preempted counts as an overrun too (about one call in a
//! hundred or two on 2 loaded cores, measured), which a debt rather than a doubling penalty
//! absorbs: the plugin stays on the direct path.

use std::{num::NonZeroUsize, time::Duration};

use lru::LruCache;
use parking_lot::Mutex;

use crate::store::PluginName;

/// Longest a call may take and still count as short, by default (`--short-call-budget-us`;
/// zero sends every call through the blocking pool). A warm call costs 10-50 µs; the margin
/// is for preemption on a busy machine. An async thread held this long delays the requests
/// queued behind it by about as much as a scheduler time slice.
pub const SHORT_CALL_BUDGET: Duration = Duration::from_millis(1);

/// Calls a plugin must have made, all short, before it is first called directly.
const TRUST_AFTER: u32 = 16;

/// Short calls that pay for one overrun before the plugin is called directly again.
const OVERRUN_DEBT: u32 = 16;

/// The most debt a plugin can run up (a plugin that was slow for a long time and is fast now
/// is trusted again after this many short calls).
const MAX_DEBT: u32 = 64 * OVERRUN_DEBT;

/// Plugins whose call history is kept (the least recently called are forgotten first).
const PLUGINS_KEPT: usize = 1024;

/// Each plugin's recent call durations, summarised.
#[derive(Debug)]
pub struct ShortCalls {
    budget: Duration,
    plugins: Mutex<LruCache<PluginName, History>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct History {
    /// Calls seen (up to [`TRUST_AFTER`]).
    calls: u32,
    /// Short calls still owed for overruns.
    debt: u32,
}

impl History {
    fn trusted(self) -> bool {
        self.calls >= TRUST_AFTER && self.debt == 0
    }

    fn record(&mut self, short: bool) {
        self.calls = (self.calls + 1).min(TRUST_AFTER);
        self.debt = if short { self.debt.saturating_sub(1) } else { (self.debt + OVERRUN_DEBT).min(MAX_DEBT) };
    }
}

impl Default for ShortCalls {
    fn default() -> Self {
        ShortCalls::new(SHORT_CALL_BUDGET)
    }
}

impl ShortCalls {
    /// Calls of at most `budget` count as short; a zero budget trusts no plugin.
    pub fn new(budget: Duration) -> Self {
        ShortCalls { budget, plugins: Mutex::new(LruCache::new(NonZeroUsize::new(PLUGINS_KEPT).expect("non-zero"))) }
    }

    /// Whether `name`'s recent calls were all short.
    pub fn expect_short(&self, name: &PluginName) -> bool {
        !self.budget.is_zero() && self.plugins.lock().get(name).is_some_and(|h| h.trusted())
    }

    /// Notes how long a call of `name` took.
    pub fn record(&self, name: &PluginName, took: Duration) {
        let short = took <= self.budget;
        let mut plugins = self.plugins.lock();
        if let Some(history) = plugins.get_mut(name) {
            history.record(short);
        } else {
            let mut history = History::default();
            history.record(short);
            plugins.put(name.clone(), history);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_is_trusted_after_short_calls_and_pays_for_each_overrun() {
        let calls = ShortCalls::default();
        let name = PluginName::new("hello").unwrap();
        let (short, long) = (Duration::from_micros(20), SHORT_CALL_BUDGET * 2);
        assert!(!calls.expect_short(&name));
        for _ in 0..TRUST_AFTER {
            calls.record(&name, short);
        }
        assert!(calls.expect_short(&name));
        calls.record(&name, long);
        assert!(!calls.expect_short(&name), "one overrun sends it back to the blocking pool");
        for _ in 0..OVERRUN_DEBT - 1 {
            calls.record(&name, short);
        }
        assert!(!calls.expect_short(&name), "until it has paid for the overrun");
        calls.record(&name, short);
        assert!(calls.expect_short(&name));

        // A plugin that alternates overruns inline in at most one call out of OVERRUN_DEBT + 1.
        let mut direct_overruns = 0;
        for call in 0..10 * (OVERRUN_DEBT + 1) {
            let direct = calls.expect_short(&name);
            let took = if call % 2 == 0 { long } else { short };
            if direct && took == long {
                direct_overruns += 1;
            }
            calls.record(&name, took);
        }
        assert!(direct_overruns <= 10, "{direct_overruns}");
    }

    #[test]
    fn a_zero_budget_trusts_no_plugin() {
        let calls = ShortCalls::new(Duration::ZERO);
        let name = PluginName::new("hello").unwrap();
        for _ in 0..100 {
            calls.record(&name, Duration::ZERO);
        }
        assert!(!calls.expect_short(&name));
    }
}
