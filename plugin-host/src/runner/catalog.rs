//! Each plugin's current version: what every runner keeps between calls.

use std::{
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

use lru::LruCache;
use parking_lot::Mutex;
use plugin_sdk::AbiLimits;

use super::{
    AbiStatus, PluginStatus, RunError, VersionStatus,
    configuration::{self, Configuration, Configurations},
    content_hash, sha256,
};
use crate::{
    failure::FailureKind,
    logs,
    observe::Observer,
    store::{
        self, ConfigOverride, FileIdentity, PluginName, PluginRef, PluginStore, Resolver, StoreError,
        VersionRequirement, Versions,
    },
};

/// Most listed versions one resolution passes over because the store cannot give them.
const MAX_MISSING_PER_RESOLVE: usize = 4;

/// How long `GET /plugins/{name}/versions` may spend asking the store about versions it does
/// not hold (within the listings' deadline of 0.9 s, so that the answer is never cut off).
const VERSIONS_LOOKUP_BUDGET: Duration = Duration::from_millis(500);

/// Default number of plugins whose current version is kept.
pub const DEFAULT_CACHE_CAPACITY: usize = 256;

/// Keeps, per plugin name, the loaded form `M` of the file's current version (a compiled
/// module in-process, checked bytes for worker processes).
///
/// Hot swap: every call first asks the store for the file's identity (a `stat`, no read), or,
/// with a recheck period ([`with_recheck`](Self::with_recheck)), only the first call after the
/// period has passed since the store was last asked: a replaced file then runs from the first
/// call that starts at least that long after the replacement, and the calls before it cost no
/// system call. If
/// the file changed, it is read, hashed and, unless the content is the same, loaded again; new
/// calls get the new version while calls already running finish on the one they started with
/// (`M` is shared, typically an `Arc`). If a changed file fails to load (for example it is half
/// written), the previous version keeps serving and the failure is logged and kept for
/// `GET /plugins`; a plugin with no good version returns the failure, remembered: the same file
/// is not read and checked again on every request, only once it changes. A transient failure
/// (no worker free to load it, say) is not a verdict on the file: it is not kept, and the next
/// call tries to load the file again.
///
/// Listings (`GET /plugins`, `/readyz`, `GET /plugins/{name}/versions`) cost one `stat` per
/// file: what a file's content says (its hash, the ABI check's verdict) is kept per file
/// identity (size, mtime, inode, ctime) and recomputed only when the file changes. Hashes are
/// kept apart from verdicts and for many more files ([`DIGESTS_CAPACITY`]), so that listing a
/// plugin with thousands of versions neither re-reads them on every call nor pushes the
/// verdicts of the plugins being served out of their cache.
#[derive(Debug)]
pub struct Catalog<M> {
    store: Arc<dyn PluginStore>,
    /// Which version of a plugin a request gets (see [`Resolver`]).
    resolver: Resolver,
    observer: Arc<dyn Observer>,
    /// Least recently used plugins are forgotten first; each entry has its own lock, so a slow
    /// load of one plugin never delays calls to another.
    /// One slot per plugin file: each version of a plugin has its own (a call pinned to 1.2 and
    /// one pinned to 2.0 never evict each other's compiled module).
    slots: Mutex<LruCache<PluginRef, Arc<Mutex<Slot<M>>>>>,
    /// What `GET /plugins` checks files against: the limits plugins are loaded with.
    abi_limits: AbiLimits,
    /// What each file's content says, by file identity, for listings.
    facts: Mutex<LruCache<PluginRef, (FileIdentity, FileFacts)>>,
    /// Each file's SHA-256, by file identity, for versions listings.
    digests: Mutex<LruCache<PluginRef, (FileIdentity, [u8; 32])>>,
    /// The last versions listing of each name (see [`versions`](Self::versions)); each entry's
    /// lock is held while its listing is made, so concurrent listings of one name make it once.
    answers: Mutex<LruCache<PluginName, Arc<Mutex<Option<VersionsAnswer>>>>>,
    /// A version that fails to load while the previous one serves is reported once per 10 s
    /// per plugin file (a transient failure is retried, and would be reported, on every call).
    failures_logged: logs::Throttle,
    /// Each plugin file's configuration (see `configuration`).
    configs: Configurations,
    /// How long a file found unchanged is trusted without asking the store again (see
    /// [`crate::Settings::hot_swap_recheck`]); zero: every call asks.
    recheck: Duration,
}

/// Files whose SHA-256 is kept for versions listings: a listing of more versions than this
/// reads and hashes the rest on every call. About 200 bytes each.
pub const DIGESTS_CAPACITY: usize = 65_536;

/// A versions listing as it was answered: from which listing of the store, and when.
#[derive(Debug)]
struct VersionsAnswer {
    listing: Arc<Versions>,
    made: Instant,
    versions: Vec<VersionStatus>,
}

/// Longest a versions listing is answered again without looking at its files: as long as the
/// listing of names itself is trusted, at most 1 s.
const VERSIONS_ANSWER_AGE: Duration = Duration::from_secs(1);

/// What a plugin file's bytes say, kept while the file is unchanged.
#[derive(Debug, Clone)]
struct FileFacts {
    sha256: String,
    abi: AbiStatus,
}

#[derive(Debug)]
struct Slot<M> {
    /// The file version last examined, successfully or with a permanent failure.
    seen: Option<FileIdentity>,
    /// The last version that loaded successfully.
    current: Option<Version<M>>,
    /// Why the file version in `seen` failed to load, if it did.
    last_error: Option<Arc<RunError>>,
    /// When the store was last asked and the file was `seen` (the moment before asking); kept
    /// only with a recheck period.
    checked: Option<Instant>,
}

impl<M> Default for Slot<M> {
    fn default() -> Self {
        Slot { seen: None, current: None, last_error: None, checked: None }
    }
}

#[derive(Debug)]
struct Version<M> {
    content_hash: Arc<str>,
    module: M,
}

/// A plugin version's loaded form and its content's hex SHA-256 (what ran, for the caller).
#[derive(Debug, Clone)]
pub struct Loaded<M> {
    pub module: M,
    pub sha256: Arc<str>,
}

impl<M: Clone> Version<M> {
    fn loaded(&self) -> Loaded<M> {
        Loaded { module: self.module.clone(), sha256: Arc::clone(&self.content_hash) }
    }
}

impl<M: Clone> Catalog<M> {
    pub fn new(
        store: Arc<dyn PluginStore>,
        observer: Arc<dyn Observer>,
        capacity: usize,
        abi_limits: AbiLimits,
    ) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        let facts = Mutex::new(LruCache::new(capacity.saturating_mul(NonZeroUsize::new(4).expect("non-zero"))));
        let resolver = Resolver::new(Arc::clone(&store));
        let digests = Mutex::new(LruCache::new(NonZeroUsize::new(DIGESTS_CAPACITY).expect("non-zero")));
        let configs = Configurations::new(Arc::clone(&observer));
        Catalog {
            store,
            resolver,
            observer,
            slots: Mutex::new(LruCache::new(capacity)),
            abi_limits,
            facts,
            digests,
            answers: Mutex::new(LruCache::new(capacity)),
            failures_logged: logs::Throttle::default(),
            configs,
            recheck: Duration::ZERO,
        }
    }

    /// Trusts a file found unchanged for `recheck` without asking the store again (see
    /// [`crate::Settings::hot_swap_recheck`]).
    pub fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck;
        self
    }

    /// What `slot` answers without asking the store: its file was found unchanged less than
    /// `recheck` ago. `None` when the store must be asked.
    fn trusted(&self, slot: &Slot<M>) -> Option<Result<Loaded<M>, RunError>> {
        if slot.checked?.elapsed() >= self.recheck {
            return None;
        }
        let answer = match (&slot.current, &slot.last_error) {
            (Some(current), _) => Ok(current.loaded()),
            (None, Some(failure)) => Err(RunError::Remembered(Arc::clone(failure))),
            (None, None) => return None,
        };
        self.observer.plugin_lookup(true);
        Some(answer)
    }

    /// Looks for configuration files in `dir` before the store (`--plugin-config-dir`).
    pub fn with_config_override(mut self, dir: ConfigOverride) -> Self {
        self.configs = self.configs.with_override(dir);
        self
    }

    /// The configuration a call of `plugin` gets, for a version with this interface: none,
    /// without a lookup, for a plugin that declares no configuration buffer (v1 included), so
    /// such plugins run exactly as before. Fails with the remembered refusal when the serving
    /// version's `init` refused this very configuration.
    pub fn configuration(
        &self,
        plugin: &PluginRef,
        layout: Option<&plugin_sdk::V2Layout>,
    ) -> Result<Option<Arc<Configuration>>, RunError> {
        let Some(buffer) = layout.and_then(|layout| layout.config) else { return Ok(None) };
        let configuration = self.configs.current(self.store.as_ref(), plugin, buffer.config_room())?;
        if let Some(configuration) = &configuration
            && let Some(hash) = self.serving_hash(plugin)
            && self.configs.refused(plugin, &hash, configuration)
        {
            return Err(configuration::refusal());
        }
        Ok(configuration)
    }

    /// `result` of a call made with `configuration`; a refusal by `init` is remembered, and
    /// answered without running the plugin until the configuration or the plugin changes.
    pub fn after_call<T>(
        &self,
        plugin: &PluginRef,
        configuration: Option<&Configuration>,
        result: Result<T, RunError>,
    ) -> Result<T, RunError> {
        match (&result, configuration) {
            (Err(error), Some(configuration)) if error.kind() == FailureKind::ConfigurationRefused => {
                if let Some(hash) = self.serving_hash(plugin) {
                    self.configs.remember_refusal(plugin, &hash, configuration);
                }
                Err(configuration::refusal())
            }
            _ => result,
        }
    }

    /// The content hash of the version of `plugin` that serves now.
    fn serving_hash(&self, plugin: &PluginRef) -> Option<String> {
        let slot = self.slots.lock().peek(plugin).cloned()?;
        let slot = slot.lock();
        slot.current.as_ref().map(|current| current.content_hash.to_string())
    }

    /// The plugin file a request for `name` with `requirement` runs (see [`Resolver::resolve`]).
    ///
    /// A store that may list a version it cannot give (a registry tag whose manifest is gone)
    /// is asked whether the chosen one exists; if not, a request that does not pin it exactly
    /// gets the next version down instead of a 404.
    pub fn resolve(&self, name: &PluginName, requirement: Option<&VersionRequirement>) -> Result<PluginRef, RunError> {
        let mut plugin = self.resolver.resolve(name, requirement)?;
        if self.store.answers_promptly() || requirement.and_then(VersionRequirement::exact).is_some() {
            return Ok(plugin);
        }
        for _ in 0..MAX_MISSING_PER_RESOLVE {
            match self.store.stat(&plugin) {
                Err(StoreError::NotFound(_)) if plugin.version.is_some() => {
                    tracing::warn!(%plugin, "the store lists this version but does not have it; using the next one");
                    self.resolver.missing(&plugin);
                    plugin = self.resolver.resolve(name, requirement)?;
                }
                _ => break,
            }
        }
        Ok(plugin)
    }

    /// Every version of `name` (and its unversioned file, first, if there is one) with its
    /// content's SHA-256. A registry names the digest itself (from what the store holds, else
    /// asked for a bounded number of versions within [`VERSIONS_LOOKUP_BUDGET`]: the others
    /// are listed without one); a file is read and hashed once per file identity, so a listing
    /// costs a `stat` per version once the hashes are known. The answer is made once for
    /// everyone asking at the same time, and given again while the store's listing of names is
    /// the same one and at most [`VERSIONS_ANSWER_AGE`] old: a plugin with thousands of
    /// versions costs thousands of `stat`s a second at most, not per request.
    pub fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError> {
        let listing = self.resolver.versions(name)?;
        let entry = Arc::clone(self.answers.lock().get_or_insert(name.clone(), Default::default));
        let mut answer = entry.lock();
        let age = self.store.listing_ttl().min(VERSIONS_ANSWER_AGE);
        if let Some(answer) = answer.as_ref()
            && Arc::ptr_eq(&answer.listing, &listing)
            && answer.made.elapsed() < age
        {
            return Ok(answer.versions.clone());
        }
        let made = Instant::now();
        let versions = self.versions_of(name, &listing)?;
        *answer = Some(VersionsAnswer { listing, made, versions: versions.clone() });
        Ok(versions)
    }

    fn versions_of(&self, name: &PluginName, listing: &Versions) -> Result<Vec<VersionStatus>, RunError> {
        if listing.is_empty() {
            return Err(StoreError::NotFound(PluginRef::from(name)).into());
        }
        let default = self.resolve(name, None).ok();
        let conflicts = listing.conflicts();
        let give_up = Instant::now() + VERSIONS_LOOKUP_BUDGET;
        let mut lookups_left = self.store.lookups_per_listing();
        let mut plugins: Vec<PluginRef> = Vec::new();
        if listing.unversioned {
            plugins.push(PluginRef::unversioned(name.clone()));
        }
        plugins.extend(listing.versions.iter().map(|v| PluginRef::versioned(name.clone(), v.clone())));
        let mut versions = Vec::with_capacity(plugins.len());
        for plugin in plugins {
            // `None`: not looked up (the budget is spent), listed without a digest.
            let identity = match self.store.held_identity(&plugin) {
                Some(identity) => Some(Ok(identity)),
                None => match &mut lookups_left {
                    None => Some(self.store.stat(&plugin)),
                    Some(left) if *left > 0 && Instant::now() < give_up => {
                        *left -= 1;
                        Some(self.store.stat(&plugin))
                    }
                    Some(_) => None,
                },
            };
            // A verdict is looked up (a registry request or two) only within the same budget.
            let lookup = identity.is_some() && Instant::now() < give_up;
            let sha256 = match identity {
                None => None,
                Some(Ok(FileIdentity { digest: Some(digest), .. })) => Some(hex::encode(digest)),
                Some(Ok(identity)) => self.digest_of(&plugin, identity).ok().map(hex::encode),
                // Gone since the listing, or not a plugin file: not a version.
                Some(Err(StoreError::NotFound(_) | StoreError::NotARegularFile(_))) => continue,
                Some(Err(error @ StoreError::Unavailable { .. })) => return Err(error.into()),
                Some(Err(_)) => None,
            };
            let default = default.as_ref() == Some(&plugin);
            let shadowed_by = conflicts
                .iter()
                .find(|(shadowed, _)| plugin.version.as_ref() == Some(*shadowed))
                .map(|(_, served)| (*served).clone());
            let signature = self.store.verdict(&plugin, lookup);
            versions.push(VersionStatus { version: plugin.version, sha256, default, shadowed_by, signature });
        }
        Ok(versions)
    }

    /// Why the store serves in a degraded way, if it does.
    pub fn degraded(&self) -> Option<String> {
        self.store.degraded()
    }

    pub fn store(&self) -> &dyn PluginStore {
        self.store.as_ref()
    }

    /// The file a request for `name` (and `requirement`) runs and its loaded form, if both are
    /// known and the file has not changed, without waiting; an error when the store cannot answer
    /// at once, the version or the file is not known yet, the file changed or failed to load, or
    /// a load of it is in progress; the error holds the resolution if it was made, so that
    /// [`current`](Self::current), on a thread that may block, does the rest without resolving
    /// again.
    pub fn current_if_loaded(
        &self,
        name: &PluginName,
        requirement: Option<&VersionRequirement>,
    ) -> Result<(PluginRef, Loaded<M>), Option<PluginRef>> {
        if !self.store.answers_promptly() {
            return Err(None);
        }
        let plugin = self.resolve(name, requirement).map_err(|_| None)?;
        // From here on the resolution is made: a caller that must go the long way reuses it.
        match self.loaded_now(&plugin) {
            Some(loaded) => Ok((plugin, loaded)),
            None => Err(Some(plugin)),
        }
    }

    /// The loaded form of `plugin`'s file if it is known and the file has not changed, without
    /// waiting (see [`current_if_loaded`](Self::current_if_loaded)).
    pub fn loaded_now(&self, plugin: &PluginRef) -> Option<Loaded<M>> {
        if !self.store.answers_promptly() {
            return None;
        }
        if !self.recheck.is_zero()
            && let Some(slot) = self.slots.lock().get(plugin).cloned()
            && let Some(Ok(loaded)) = slot.try_lock().and_then(|slot| self.trusted(&slot))
        {
            return Some(loaded);
        }
        // Kept only with a recheck period: without one, no clock read on the hot path.
        let looked = (!self.recheck.is_zero()).then(Instant::now);
        let identity = self.store.stat(plugin).ok()?;
        let slot = Arc::clone(self.slots.lock().get(plugin)?);
        let mut slot = slot.try_lock()?;
        let loaded = slot.current.as_ref().filter(|_| slot.seen == Some(identity))?.loaded();
        slot.checked = looked;
        self.observer.plugin_lookup(true);
        Some(loaded)
    }

    /// The loaded form of `plugin`'s file as it is now, loading it with
    /// `load(bytes, content_hash)` if the file changed.
    pub fn current(
        &self,
        plugin: &PluginRef,
        load: impl FnOnce(&[u8], &str) -> Result<M, RunError>,
    ) -> Result<Loaded<M>, RunError> {
        if !self.recheck.is_zero()
            && let Some(slot) = self.slots.lock().get(plugin).cloned()
            && let Some(answer) = self.trusted(&slot.lock())
        {
            return answer;
        }
        // Stat first: a name the store does not have must not take (and evict) a slot.
        // Kept only with a recheck period: without one, no clock read on the hot path.
        let looked = (!self.recheck.is_zero()).then(Instant::now);
        let identity = match self.store.stat(plugin) {
            Ok(identity) => identity,
            Err(error @ StoreError::NotFound(_)) => {
                // A resolved version that has gone: the next request resolves afresh.
                self.resolver.forget(&plugin.name);
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        let slot = Arc::clone(self.slots.lock().get_or_insert(plugin.clone(), Default::default));
        let mut slot = slot.lock();
        if slot.seen == Some(identity) {
            slot.checked = looked;
            if let Some(current) = &slot.current {
                self.observer.plugin_lookup(true);
                return Ok(current.loaded());
            }
            if let Some(failure) = &slot.last_error {
                // This very file failed before, for a reason that does not pass by itself.
                self.observer.plugin_lookup(true);
                return Err(RunError::Remembered(Arc::clone(failure)));
            }
        }
        self.observer.plugin_lookup(false);
        let file = self.store.load(plugin)?;
        let content_hash = content_hash(&file.bytes);
        if let Some(current) = slot.current.as_ref().filter(|c| *c.content_hash == content_hash) {
            // Touched or copied over with the same content: nothing to load again.
            let loaded = current.loaded();
            slot.seen = Some(file.identity);
            slot.checked = looked;
            slot.last_error = None;
            return Ok(loaded);
        }
        match load(&file.bytes, &content_hash) {
            Ok(module) => {
                tracing::info!(%plugin, hash = &content_hash[..12], "loaded plugin version");
                self.observer.plugin_loaded(plugin, Ok(()));
                let version = Version { content_hash: content_hash.into(), module };
                let loaded = version.loaded();
                slot.seen = Some(file.identity);
                slot.checked = looked;
                slot.current = Some(version);
                slot.last_error = None;
                Ok(loaded)
            }
            Err(error) => {
                let transient = error.kind().is_transient();
                if !transient {
                    self.observer.plugin_loaded(plugin, Err(error.kind()));
                }
                let error = if transient {
                    error
                } else {
                    // The verdict on this file version: not tried again until the file changes.
                    let failure = Arc::new(error);
                    slot.seen = Some(file.identity);
                    slot.checked = looked;
                    slot.last_error = Some(Arc::clone(&failure));
                    RunError::Remembered(failure)
                };
                match &slot.current {
                    Some(previous) => {
                        if let Some(suppressed) = self.failures_logged.allow(&(plugin, transient)) {
                            tracing::warn!(%plugin, %error, transient, suppressed, "new plugin version failed to load; still serving the previous one");
                        }
                        Ok(previous.loaded())
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// What the store holds under `name` now, and how loading it went. A file the store has
    /// but cannot give (too large, unreadable) is described rather than refused; only a name
    /// the store does not have, and a store that cannot answer, are errors.
    pub fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError> {
        let name = &plugin.name;
        let facts = match self.facts_of(plugin) {
            Ok(facts) => facts,
            Err(error @ (StoreError::TooLarge { .. } | StoreError::Io { .. } | StoreError::Untrusted { .. })) => {
                let size = match &error {
                    StoreError::TooLarge { size, .. } => Some(*size),
                    _ => None,
                };
                return Ok(PluginStatus {
                    name: name.clone(),
                    version: plugin.version.clone(),
                    size,
                    modified_unix: None,
                    sha256: None,
                    abi: None,
                    loaded: false,
                    last_error: Some(error.to_string()),
                    quarantine: None,
                    conflicts: self.conflicts_of(plugin),
                    signature: self.store.verdict(plugin, false),
                    config: None,
                });
            }
            Err(error) => return Err(error.into()),
        };
        let (identity, facts) = facts;
        let slot = self.slots.lock().peek(plugin).cloned();
        let (loaded, last_error) = match slot {
            Some(slot) => {
                let slot = slot.lock();
                let loaded = slot.current.as_ref().is_some_and(|c| *c.content_hash == facts.sha256);
                let failed_now = slot.seen == Some(identity);
                (loaded, slot.last_error.as_ref().filter(|_| failed_now).map(ToString::to_string))
            }
            None => (false, None),
        };
        let room = facts.abi.v2.as_ref().and_then(|layout| layout.config).map_or(0, |buffer| buffer.config_room());
        let config = self.configs.status(self.store.as_ref(), plugin, room, Some(&facts.sha256))?;
        Ok(PluginStatus {
            name: name.clone(),
            version: plugin.version.clone(),
            size: Some(identity.size),
            modified_unix: identity.modified.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
            sha256: Some(facts.sha256),
            abi: Some(facts.abi),
            loaded,
            last_error,
            quarantine: None,
            conflicts: self.conflicts_of(plugin),
            signature: self.store.verdict(plugin, false),
            config,
        })
    }

    /// The versions never served because `plugin` is, differing from it only in build
    /// metadata (from the resolver's listing; none if the store cannot be listed now).
    fn conflicts_of(&self, plugin: &PluginRef) -> Vec<store::Version> {
        let Some(version) = &plugin.version else { return Vec::new() };
        let Ok(listing) = self.resolver.versions(&plugin.name) else { return Vec::new() };
        listing
            .conflicts()
            .into_iter()
            .filter(|(_, served)| *served == version)
            .map(|(shadowed, _)| shadowed.clone())
            .collect()
    }

    /// The file's identity and what its content says: from the cache while the file is
    /// unchanged (one `stat`), else read, hashed and checked once.
    fn facts_of(&self, plugin: &PluginRef) -> Result<(FileIdentity, FileFacts), StoreError> {
        let identity = self.store.stat(plugin)?;
        if let Some((seen, facts)) = self.facts.lock().get(plugin)
            && *seen == identity
        {
            return Ok((identity, facts.clone()));
        }
        let file = self.store.load(plugin)?;
        let digest = sha256(&file.bytes);
        let facts = FileFacts { sha256: hex::encode(digest), abi: AbiStatus::of(&file.bytes, &self.abi_limits) };
        self.facts.lock().put(plugin.clone(), (file.identity, facts.clone()));
        self.digests.lock().put(plugin.clone(), (file.identity, digest));
        Ok((file.identity, facts))
    }

    /// The SHA-256 of the file whose identity is `identity` now: from the cache while the file
    /// is unchanged, else read and hashed (no ABI check: a versions listing does not show it).
    fn digest_of(&self, plugin: &PluginRef, identity: FileIdentity) -> Result<[u8; 32], StoreError> {
        if let Some((seen, digest)) = self.digests.lock().get(plugin)
            && *seen == identity
        {
            return Ok(*digest);
        }
        let file = self.store.load(plugin)?;
        let digest = sha256(&file.bytes);
        self.digests.lock().put(plugin.clone(), (file.identity, digest));
        Ok(digest)
    }

    /// Every plugin in the store, sorted by name, each as a request without a version
    /// requirement gets it (its highest release, or its unversioned file).
    pub fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        let mut plugins = Vec::new();
        for name in self.store.list()? {
            match self.resolve(&name, None).and_then(|plugin| self.inspect(&plugin)) {
                Ok(status) => plugins.push(status),
                // A store that says it serves what it holds (a registry that is down) lists
                // what it can serve; plugins it cannot resolve without its source are left out.
                Err(RunError::Store(StoreError::Unavailable { .. })) if self.store.degraded().is_some() => {}
                // The store itself failed: the listing would be wrong, not just shorter.
                Err(error @ RunError::Store(StoreError::Unavailable { .. })) => return Err(error),
                // Removed since it was listed, or not a plugin file (a folder, a FIFO): not part
                // of the listing. Files it cannot read are listed by `inspect` with the error.
                Err(_) => {}
            }
        }
        Ok(plugins)
    }
}
