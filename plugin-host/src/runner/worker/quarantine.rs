//! Quarantine: a plugin that keeps crashing worker processes is refused for a while, with
//! exponential backoff, so that one bad plugin cannot keep the pool busy restarting workers.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::{observe::Observer, runner::QuarantineStatus, store::PluginName};

/// When a plugin is quarantined and for how long. Every field documents its default (see
/// [`WorkerSettings`](super::WorkerSettings), which carries them).
#[derive(Debug, Clone, Copy)]
pub(super) struct QuarantinePolicy {
    /// Crashes in a row after which a plugin is quarantined.
    pub after: u32,
    /// First quarantine; each further crash doubles it.
    pub base: Duration,
    /// Longest quarantine.
    pub max: Duration,
}

/// Crashes in a row per plugin, and which plugins are quarantined until when.
#[derive(Debug)]
pub(super) struct Quarantine {
    policy: QuarantinePolicy,
    observer: Arc<dyn Observer>,
    crashes: Mutex<HashMap<PluginName, CrashRecord>>,
}

#[derive(Debug, Default)]
struct CrashRecord {
    consecutive: u32,
    quarantined_until: Option<Instant>,
}

impl Quarantine {
    pub fn new(policy: QuarantinePolicy, observer: Arc<dyn Observer>) -> Self {
        Quarantine { policy, observer, crashes: Mutex::new(HashMap::new()) }
    }

    /// Set while `name` is refused, with how long is left.
    pub fn status(&self, name: &PluginName) -> Option<QuarantineStatus> {
        let crashes = self.crashes.lock();
        let record = crashes.get(name)?;
        let Some(remaining) = record.quarantined_until?.checked_duration_since(Instant::now()) else {
            self.observer.quarantine_changed(name, false);
            return None;
        };
        Some(QuarantineStatus {
            consecutive_crashes: record.consecutive,
            retry_after_secs: remaining.as_secs_f64().ceil() as u64,
        })
    }

    /// Counts a call whose worker failed. Only the plugin's crashes count towards quarantine: a
    /// call past its deadline costs a worker restart, but a slow input is not a reason to
    /// refuse the plugin to everybody, and an outside kill is nobody's fault.
    pub fn record_failure(&self, name: &PluginName, failure: &super::WorkerFailure) {
        self.record(name, failure.kind() == crate::failure::FailureKind::PluginCrashed);
    }

    /// Counts a call's outcome: a crash adds to the plugin's crashes in a row (and may start a
    /// quarantine); anything else ends the run of crashes.
    pub fn record(&self, name: &PluginName, crashed: bool) {
        let mut crashes = self.crashes.lock();
        if !crashed {
            if crashes.remove(name).is_some_and(|r| r.quarantined_until.is_some()) {
                self.observer.quarantine_changed(name, false);
            }
            return;
        }
        self.observer.worker_died(name);
        let record = crashes.entry(name.clone()).or_default();
        record.consecutive += 1;
        let policy = self.policy;
        if record.consecutive >= policy.after {
            let doublings = (record.consecutive - policy.after).min(20);
            let backoff = (policy.base * 2u32.pow(doublings)).min(policy.max);
            record.quarantined_until = Some(Instant::now() + backoff);
            self.observer.quarantine_changed(name, true);
            tracing::warn!(plugin = %name, crashes = record.consecutive, ?backoff, "plugin quarantined for crashing workers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_in_a_row_quarantine_with_doubling_backoff_and_a_success_ends_it() {
        let policy = QuarantinePolicy { after: 2, base: Duration::from_secs(10), max: Duration::from_secs(25) };
        let quarantine = Quarantine::new(policy, Arc::new(crate::observe::NoObserver));
        let name = PluginName::new("flaky").unwrap();
        quarantine.record(&name, true);
        assert!(quarantine.status(&name).is_none(), "one crash is not yet a pattern");
        quarantine.record(&name, true);
        let first = quarantine.status(&name).expect("quarantined after two");
        assert_eq!((first.consecutive_crashes, first.retry_after_secs), (2, 10));
        quarantine.record(&name, true);
        assert_eq!(quarantine.status(&name).unwrap().retry_after_secs, 20, "doubled");
        quarantine.record(&name, true);
        assert_eq!(quarantine.status(&name).unwrap().retry_after_secs, 25, "capped");
        quarantine.record(&name, false);
        assert!(quarantine.status(&name).is_none());
    }
}
