//! The one place that decides which version of a plugin a request gets, for every store.
//!
//! Stores list what they hold ([`PluginStore::versions`]); the resolver keeps each listing for
//! a short while (the store says how long: a directory is cheap to list, a registry is not),
//! picks a version with [`select`], and re-lists at once when the cached listing cannot answer
//! (a version published a moment ago, a plugin that just appeared) or when the runner reports
//! that a resolved version has gone ([`Resolver::forget`]). When a store cannot be listed
//! right now (a registry that is down), the last listing keeps answering (or, with none yet,
//! what the store holds without its source, [`PluginStore::held_versions`]), so versions
//! already held keep serving; a request that listing cannot answer is "unavailable", never
//! "no such version".
//!
//! What a slow or hung source costs (a registry, a FUSE mount; not a local directory):
//! - **nothing for held versions**: a listing past its time answers at once while a thread of
//!   its own lists again (so the first call after a quiet spell may still get the previous
//!   default; the calls after the refresh get the new one);
//! - **one request per listing at a time**: callers that need a listing being fetched wait for
//!   that fetch ([`Flights`]);
//! - **no retry per request**: a failed listing counts as checked, so the source is asked again
//!   a listing's time later, not by the next request.

use std::{
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use lru::LruCache;
use parking_lot::Mutex;

use super::{
    PluginName, PluginRef, PluginStore, StoreError,
    flight::Flights,
    version::{ConflictLog, Version, VersionRequirement, Versions, select},
};
use crate::logs;

/// Names whose listing is kept.
const CAPACITY: usize = 1024;

/// How old a listing must be before a request for an exact version it does not hold
/// (`=1.4.2`, perhaps published a moment ago) lists again: a flood of requests for a version
/// that does not exist lists at most this often per name.
const EXACT_PIN_MIN_REFRESH: Duration = Duration::from_millis(50);

/// Resolves `(name, requirement)` to one plugin file of a store. Shared by every request.
#[derive(Debug)]
pub struct Resolver {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn PluginStore>,
    /// How long a listing answers without asking the store again.
    ttl: Duration,
    /// How old a listing must be before a request it cannot answer lists again: bounds what a
    /// flood of requests for something that does not exist costs the store.
    min_refresh: Duration,
    listings: Mutex<LruCache<PluginName, Listing>>,
    /// Listings being fetched, shared by every caller that needs them.
    flights: Arc<Flights<PluginName, Result<Arc<Versions>, StoreError>>>,
    /// Versions the store listed but could not give (a tag whose manifest is gone), and since
    /// when: passed over by requests that do not pin them, for a listing's time.
    missing: Mutex<LruCache<PluginRef, Instant>>,
    /// Versions that differ only in build metadata, reported once per change.
    conflicts: ConflictLog,
    /// A store that cannot be listed is reported once per 10 s per plugin, not per request.
    outage_logged: logs::Throttle,
}

#[derive(Debug, Clone)]
struct Listing {
    /// When the store was last asked for it (successfully or not).
    checked: Instant,
    versions: Arc<Versions>,
    /// False for what a store holds without its source: a request it cannot answer asks the
    /// source again (and is "unavailable" if the source still cannot answer).
    from_source: bool,
}

impl Resolver {
    pub fn new(store: Arc<dyn PluginStore>) -> Self {
        let ttl = store.listing_ttl();
        let capacity = NonZeroUsize::new(CAPACITY).expect("non-zero");
        Resolver {
            shared: Arc::new(Shared {
                store,
                ttl,
                min_refresh: ttl / 10,
                listings: Mutex::new(LruCache::new(capacity)),
                flights: Arc::default(),
                missing: Mutex::new(LruCache::new(capacity)),
                conflicts: ConflictLog::default(),
                outage_logged: logs::Throttle::default(),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn PluginStore> {
        &self.shared.store
    }

    /// What the store holds under `name`: the cached listing while it is fresh.
    pub fn versions(&self, name: &PluginName) -> Result<Arc<Versions>, StoreError> {
        Ok(self.listing(name, false)?.versions)
    }

    /// The plugin file a request for `name` (with `requirement`, if any) runs:
    /// - with a requirement, the highest version that satisfies it (pre-releases only when the
    ///   requirement names one, as in Cargo);
    /// - without, the highest release version, or the unversioned plugin when there is no
    ///   release version.
    ///
    /// Versions reported [`missing`](Self::missing) are passed over unless pinned exactly.
    /// Nothing by that name is [`StoreError::NotFound`]; a name with versions none of which
    /// qualifies is [`StoreError::VersionNotFound`], listing them.
    pub fn resolve(
        &self,
        name: &PluginName,
        requirement: Option<&VersionRequirement>,
    ) -> Result<PluginRef, StoreError> {
        let listing = self.listing(name, false)?;
        let exact = requirement.and_then(VersionRequirement::exact);
        let pick = |listing: &Listing| {
            let skipped = |version: &Version| exact.is_none() && self.is_missing(name, version);
            pick(name, &listing.versions, requirement, skipped)
        };
        let age = listing.checked.elapsed();
        let min_refresh =
            if exact.is_some() { self.shared.min_refresh.min(EXACT_PIN_MIN_REFRESH) } else { self.shared.min_refresh };
        match pick(&listing) {
            Ok(found) => Ok(found),
            // Perhaps published since: list again, unless the listing is brand new.
            Err(_) if !listing.from_source || age >= min_refresh => pick(&self.listing(name, true)?),
            Err(error) => Err(error),
        }
    }

    /// Drops the listing of `name`: the runner found a resolved version gone.
    pub fn forget(&self, name: &PluginName) {
        self.shared.listings.lock().pop(name);
    }

    /// The store listed `plugin` but cannot give it (a registry tag whose manifest is gone):
    /// requests that do not pin it get the next version down for a listing's time.
    pub fn missing(&self, plugin: &PluginRef) {
        self.shared.missing.lock().put(plugin.clone(), Instant::now());
    }

    fn is_missing(&self, name: &PluginName, version: &Version) -> bool {
        let mut missing = self.shared.missing.lock();
        if missing.is_empty() {
            return false;
        }
        let plugin = PluginRef::versioned(name.clone(), version.clone());
        match missing.peek(&plugin) {
            Some(since) if since.elapsed() < self.shared.ttl => true,
            Some(_) => {
                missing.pop(&plugin);
                false
            }
            None => false,
        }
    }

    fn listing(&self, name: &PluginName, refresh: bool) -> Result<Listing, StoreError> {
        let shared = &self.shared;
        let cached = shared.listings.lock().get(name).cloned();
        if let Some(listing) = &cached
            && !refresh
        {
            let age = listing.checked.elapsed();
            if age < shared.ttl {
                return Ok(listing.clone());
            }
            // A store that may hang: answer from what it said last and list again aside.
            if !shared.store.answers_promptly() {
                let (background, name) = (Arc::clone(shared), name.clone());
                shared.flights.spawn(name.clone(), move || background.fetch(&name));
                return Ok(listing.clone());
            }
        }
        match shared.flights.run(name, || shared.fetch(name)) {
            Ok(versions) => Ok(Listing { checked: Instant::now(), versions, from_source: true }),
            // A refresh asks because the last listing could not answer: falling back to it
            // would answer "no such version" for what the store may well have.
            Err(error) if refresh || !error.kind().is_transient() => Err(error),
            // The store cannot answer now: what it said last is still the best answer (the
            // versions it named keep serving from whatever the store still holds of them).
            Err(error) => {
                if let Some(listing) = shared.listings.lock().get(name).cloned() {
                    return Ok(listing);
                }
                // Nothing listed yet (a restart): what the store holds without its source.
                let held = shared.store.held_versions(name);
                if held.is_empty() {
                    return Err(error);
                }
                if let Some(suppressed) = shared.outage_logged.allow(name) {
                    tracing::warn!(plugin = %name, %error, suppressed, "plugin store cannot list versions; using the versions it holds");
                }
                // Not kept: a listing from the source replaces it as soon as there is one.
                Ok(Listing { checked: Instant::now(), versions: Arc::new(held), from_source: false })
            }
        }
    }
}

impl Shared {
    /// Asks the store for `name`'s listing and keeps the answer. A failure moves the kept
    /// listing's clock: it answers for another listing's time before the store is asked again.
    fn fetch(&self, name: &PluginName) -> Result<Arc<Versions>, StoreError> {
        match self.store.versions(name) {
            Ok(versions) => {
                self.conflicts.note(name, &versions);
                let versions = Arc::new(versions);
                let listing = Listing { checked: Instant::now(), versions: Arc::clone(&versions), from_source: true };
                self.listings.lock().put(name.clone(), listing);
                Ok(versions)
            }
            Err(error) => {
                if error.kind().is_transient()
                    && let Some(listing) = self.listings.lock().get_mut(name)
                {
                    if let Some(suppressed) = self.outage_logged.allow(name) {
                        tracing::warn!(plugin = %name, %error, age = ?listing.checked.elapsed(), suppressed, "plugin store cannot list versions; using the last listing");
                    }
                    listing.checked = Instant::now();
                }
                Err(error)
            }
        }
    }
}

fn pick(
    name: &PluginName,
    versions: &Versions,
    requirement: Option<&VersionRequirement>,
    skipped: impl Fn(&Version) -> bool,
) -> Result<PluginRef, StoreError> {
    if versions.is_empty() {
        return Err(StoreError::NotFound(PluginRef::from(name)));
    }
    let candidates: Vec<Version>;
    let mut offered = &versions.versions;
    if versions.versions.iter().any(&skipped) {
        candidates = versions.versions.iter().filter(|v| !skipped(v)).cloned().collect();
        offered = &candidates;
    }
    if let Some(version) = select(offered, requirement) {
        return Ok(PluginRef::versioned(name.clone(), version.clone()));
    }
    if requirement.is_none() && versions.unversioned {
        return Ok(PluginRef::unversioned(name.clone()));
    }
    Err(StoreError::VersionNotFound {
        name: name.clone(),
        requirement: requirement.cloned(),
        available: versions.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::store::{FileIdentity, PluginFile, version::Version};

    /// A store whose listing the test sets, counting how often it is asked.
    #[derive(Debug)]
    struct Listed {
        versions: Mutex<Result<Versions, ()>>,
        listings: AtomicU32,
    }

    impl Default for Listed {
        fn default() -> Self {
            Listed { versions: Mutex::new(Ok(Versions::default())), listings: AtomicU32::new(0) }
        }
    }

    impl Listed {
        fn set(&self, unversioned: bool, versions: &[&str]) {
            let versions = versions.iter().map(|v| Version::parse(v).unwrap()).collect();
            *self.versions.lock() = Ok(Versions { unversioned, versions });
        }
    }

    impl PluginStore for Listed {
        fn stat(&self, plugin: &PluginRef) -> Result<FileIdentity, StoreError> {
            Err(StoreError::NotFound(plugin.clone()))
        }
        fn load(&self, plugin: &PluginRef) -> Result<PluginFile, StoreError> {
            Err(StoreError::NotFound(plugin.clone()))
        }
        fn list(&self) -> Result<Vec<PluginName>, StoreError> {
            Ok(Vec::new())
        }
        fn versions(&self, _: &PluginName) -> Result<Versions, StoreError> {
            self.listings.fetch_add(1, Ordering::Relaxed);
            self.versions.lock().clone().map_err(|()| StoreError::Unavailable { what: "down".into(), source: None })
        }
        fn listing_ttl(&self) -> Duration {
            Duration::from_secs(3600)
        }
        fn describe(&self) -> String {
            "test".into()
        }
    }

    fn resolver() -> (Resolver, Arc<Listed>) {
        let store = Arc::new(Listed::default());
        let mut resolver = Resolver::new(Arc::clone(&store) as Arc<dyn PluginStore>);
        Arc::get_mut(&mut resolver.shared).unwrap().min_refresh = Duration::ZERO;
        (resolver, store)
    }

    fn name() -> PluginName {
        PluginName::new("p").unwrap()
    }

    fn resolve(resolver: &Resolver, requirement: Option<&str>) -> Result<String, StoreError> {
        let requirement = requirement.map(|r| VersionRequirement::parse(r).unwrap());
        resolver.resolve(&name(), requirement.as_ref()).map(|found| found.to_string())
    }

    #[test]
    fn versions_win_over_the_unversioned_plugin_unless_none_is_a_release() {
        let (resolver, store) = resolver();
        store.set(true, &["1.0.0", "1.1.0"]);
        assert_eq!(resolve(&resolver, None).unwrap(), "p 1.1.0");
        resolver.forget(&name());
        store.set(true, &["2.0.0-rc.1"]);
        assert_eq!(resolve(&resolver, None).unwrap(), "p", "only a pre-release: the unversioned plugin");
        assert_eq!(resolve(&resolver, Some("=2.0.0-rc.1")).unwrap(), "p 2.0.0-rc.1");
        resolver.forget(&name());
        store.set(true, &[]);
        assert_eq!(resolve(&resolver, None).unwrap(), "p");
        let error = resolve(&resolver, Some("^1")).unwrap_err();
        let StoreError::VersionNotFound { available, .. } = &error else {
            panic!("a requirement never matches the unversioned plugin")
        };
        assert!(available.versions.is_empty() && available.unversioned);
        assert_eq!(error.to_string(), "no version of plugin `p` matches `^1` (available: unversioned)");
    }

    #[test]
    fn nothing_by_the_name_is_not_found_and_nothing_matching_lists_the_versions() {
        let (resolver, store) = resolver();
        store.set(false, &[]);
        assert!(matches!(resolve(&resolver, None), Err(StoreError::NotFound(_))));
        store.set(false, &["1.0.0", "2.0.0-beta.1"]);
        let error = resolve(&resolver, Some("^3")).unwrap_err();
        assert_eq!(error.to_string(), "no version of plugin `p` matches `^3` (available: 1.0.0, 2.0.0-beta.1)");
        store.set(false, &["2.0.0-beta.1"]);
        resolver.forget(&name());
        let error = resolve(&resolver, None).unwrap_err();
        assert_eq!(error.to_string(), "plugin `p` has no release version (available: 2.0.0-beta.1)");
    }

    #[test]
    fn a_listing_is_reused_and_refreshed_when_it_cannot_answer() {
        let (resolver, store) = resolver();
        store.set(false, &["1.0.0"]);
        for _ in 0..3 {
            assert_eq!(resolve(&resolver, Some("^1")).unwrap(), "p 1.0.0");
        }
        assert_eq!(store.listings.load(Ordering::Relaxed), 1, "listed once");
        // Published since the listing: a requirement only it satisfies lists again.
        store.set(false, &["1.0.0", "1.1.0"]);
        assert_eq!(resolve(&resolver, Some("^1")).unwrap(), "p 1.0.0", "still cached");
        assert_eq!(resolve(&resolver, Some("=1.1.0")).unwrap(), "p 1.1.0");
        assert_eq!(store.listings.load(Ordering::Relaxed), 2);
        assert_eq!(resolve(&resolver, Some("^1")).unwrap(), "p 1.1.0", "the new listing answers");
    }

    /// A log written into memory, to read what the resolver told the operator.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn warnings(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().clone()).unwrap();
            text.lines().filter(|line| line.contains("WARN")).map(str::to_string).collect()
        }
    }

    /// Two versions that differ only in build metadata: calls get the one with the lowest, a
    /// pin never moves to the other, and the operator is warned once per change, not once per
    /// listing.
    #[test]
    fn versions_differing_only_in_build_metadata_resolve_to_one_and_warn_once() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let (resolver, store) = resolver();
            store.set(false, &["2.3.3", "2.3.4"]);
            assert_eq!(resolve(&resolver, Some("=2.3.4")).unwrap(), "p 2.3.4");
            store.set(false, &["2.3.3", "2.3.4", "2.3.4+zzz"]);
            for _ in 0..3 {
                resolver.forget(&name());
                assert_eq!(resolve(&resolver, Some("=2.3.4")).unwrap(), "p 2.3.4", "the pin stays");
                assert_eq!(resolve(&resolver, None).unwrap(), "p 2.3.4");
            }
            let warnings = log.warnings();
            assert_eq!(warnings.len(), 1, "{warnings:#?}");
            assert!(warnings[0].contains("2.3.4+zzz (serving 2.3.4 instead)"), "{}", warnings[0]);
            // One more: a new warning, once.
            store.set(false, &["2.3.4", "2.3.4+aaa", "2.3.4+zzz"]);
            for _ in 0..3 {
                resolver.forget(&name());
                assert_eq!(resolve(&resolver, Some("^2")).unwrap(), "p 2.3.4");
            }
            assert_eq!(log.warnings().len(), 2, "{:#?}", log.warnings());
            // Resolved by the operator: no more warnings, and a conflict later is news again.
            store.set(false, &["2.3.4"]);
            resolver.forget(&name());
            resolve(&resolver, None).unwrap();
            store.set(false, &["2.3.4+a", "2.3.4+b"]);
            resolver.forget(&name());
            assert_eq!(resolve(&resolver, Some("=2.3.4")).unwrap(), "p 2.3.4+a");
            assert_eq!(log.warnings().len(), 3, "{:#?}", log.warnings());
        });
    }

    #[test]
    fn a_store_that_cannot_list_keeps_serving_the_last_listing() {
        let (resolver, store) = resolver();
        store.set(false, &["1.0.0"]);
        assert_eq!(resolve(&resolver, None).unwrap(), "p 1.0.0");
        *store.versions.lock() = Err(());
        assert_eq!(resolve(&resolver, Some("=1.0.0")).unwrap(), "p 1.0.0");
        // What it never listed cannot be resolved while it is down: unavailable, not "absent".
        let error = resolve(&resolver, Some("^2")).unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        resolver.forget(&name());
        assert!(matches!(resolve(&resolver, None), Err(StoreError::Unavailable { .. })));
    }
}
