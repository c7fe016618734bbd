//! Which plugins answer quickly enough to be called on the thread that received the request.
//!
//! Handing a call to a blocking thread and back costs two thread wake-ups, more than a warm
//! call of a small plugin itself. So a plugin whose recent calls all finished within
//! [`SHORT_CALL_BUDGET`] is called directly (see `PluginRunner::run_if_short`); any other call
//! goes through the blocking pool as before. Every guarantee holds either way: the deadline,
//! fresh state, crash containment and metrics are the runner's, not the thread's.
//!
//! What a plugin that turns slow costs: the one call that overran held an async thread for as
//! long as it ran (at most its deadline). It then goes back to the blocking pool, and must
//! finish twice as many short calls in a row as the last time (up to [`MAX_TRUST_AFTER`])
//! before it is trusted again, so a plugin that alternates cannot hold async threads often.
//! Durations are wall-clock: on a busy machine a short call that was preempted counts as an
//! overrun too, which the budget's margin and the bounded penalty keep rare and cheap.

use std::{num::NonZeroUsize, time::Duration};

use lru::LruCache;
use parking_lot::Mutex;

use crate::store::PluginName;

/// Longest a call may take and still count as short, by default (`--short-call-budget-us`;
/// zero sends every call through the blocking pool). A warm call costs 10-50 µs; the margin
/// is for preemption on a busy machine. An async thread held this long delays the requests
/// queued behind it by about as much as a scheduler time slice.
pub const SHORT_CALL_BUDGET: Duration = Duration::from_millis(1);

/// Short calls in a row before a plugin is first called directly; doubled after each overrun.
const TRUST_AFTER: u32 = 16;

/// The most short calls in a row an overrunning plugin must show to be trusted again.
const MAX_TRUST_AFTER: u32 = TRUST_AFTER << 8;

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
    /// Short calls in a row.
    streak: u32,
    /// Calls that ran past the budget, ever (while the plugin is remembered).
    overruns: u32,
}

impl History {
    fn trusted(self) -> bool {
        self.streak >= (TRUST_AFTER << self.overruns.min(8)).min(MAX_TRUST_AFTER)
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
        let mut plugins = self.plugins.lock();
        if let Some(history) = plugins.get_mut(name) {
            if took <= self.budget {
                history.streak = history.streak.saturating_add(1);
            } else {
                *history = History { streak: 0, overruns: history.overruns.saturating_add(1) };
            }
        } else {
            let short = took <= self.budget;
            plugins.put(name.clone(), History { streak: u32::from(short), overruns: u32::from(!short) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_is_trusted_after_short_calls_and_less_after_each_overrun() {
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
        for _ in 0..TRUST_AFTER {
            calls.record(&name, short);
        }
        assert!(!calls.expect_short(&name), "after an overrun it needs twice as many short calls");
        for _ in 0..TRUST_AFTER {
            calls.record(&name, short);
        }
        assert!(calls.expect_short(&name));
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
