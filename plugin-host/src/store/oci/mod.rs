//! Plugins in an OCI registry (Harbor, Zot, the CNCF distribution registry, cloud registries).
//!
//! A plugin version is the artifact `<registry>/<prefix>/<name>:<version>` in the CNCF Wasm
//! layout: a manifest whose config has media type `application/vnd.wasm.config.v0+json` and
//! whose one layer, `application/wasm`, is the module. Tags that are not semantic versions
//! (`latest`) are ignored with a warning; OCI tags cannot hold `+`, so build metadata is
//! written `_` in a tag (`1.0.0_build.5` is `1.0.0+build.5`), as Helm does. A registry holds
//! no unversioned plugins.
//!
//! What the store guarantees:
//! - **Digests are verified** before anything else sees the bytes: the layer's SHA-256 must be
//!   the digest its manifest names (and the manifest's the digest the registry gave for the
//!   tag). A mismatch is refused ([`StoreError::DigestMismatch`]) and logged, never run.
//! - **Blobs are cached on disk by digest** ([`cache`]), bounded by size, so restarts and other
//!   versions reuse them; the bytes are checked again whenever they are read.
//! - **A registry that is down, hangs or is slow costs versions already held nothing**: every
//!   registry request has a timeout; a tag resolved before keeps its digest (in memory, and on
//!   disk across restarts, per registry and prefix) and its blob serves from the cache; a tag
//!   record or catalog older than `refresh` answers at once and is asked again in the
//!   background; a manifest, blob or catalog is fetched once however many callers wait; after
//!   a failed request only one request at a time (a probe) reaches the registry until one
//!   succeeds, the others fail at once. What cannot be resolved without the registry is
//!   [`StoreError::Unavailable`] (503 with `Retry-After`), and [`PluginStore::degraded`] says
//!   so for `/readyz`.
//!
//! The [`PluginStore`] trait is blocking; the registry client is async. The store owns a small
//! tokio runtime (one worker thread) and waits on it with `block_on` from the caller's thread,
//! which is a blocking thread (the API runs store calls with `spawn_blocking`): the server's
//! async threads never wait on the registry.

mod cache;
mod credentials;
mod signature;

use std::{
    collections::HashMap,
    io,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol},
    errors::{DigestError, OciDistributionError, OciErrorCode},
    manifest::OciImageManifest,
    secrets::RegistryAuth,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

pub use credentials::Credentials;

use self::cache::{BlobCache, TagRecord};
use super::{
    ConfigFile, ConfigLocation, ConfigOrigin, FileIdentity, PluginFile, PluginName, PluginRef, PluginStore, StoreError,
    Versions,
    flight::Flights,
    trust::{Signature, TrustPolicy, Verdict},
    version::{Version, parse_version_exactly},
};
use crate::logs;

/// The manifest annotation holding a plugin version's configuration (JSON text), written by
/// `cargo xtask publish --config FILE`. A configuration in `--plugin-config-dir` wins over it.
pub const CONFIG_ANNOTATION: &str = "dev.wasm-plugin-host.config";

/// Media type of the config blob of a CNCF Wasm artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the one layer of a CNCF Wasm artifact: the module itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer type of the older `wasm-to-oci` layout, also accepted when pulling.
const LEGACY_WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Most manifests one `GET /plugins/{name}/versions` fetches (one registry request each) for
/// versions whose digest the store does not hold yet; the others are listed without a digest.
const MANIFESTS_PER_LISTING: usize = 32;
/// Verdicts kept in memory (about 300 bytes each).
const VERDICTS_KEPT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(16_384).expect("non-zero");
/// Manifest types asked for: an OCI image manifest (what every Wasm artifact tool writes).
const MANIFEST_MEDIA_TYPES: &[&str] = &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE];

/// How the OCI store works. Every field documents its default.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// `<registry-host[:port]>/<prefix>`; plugin `name` version `v` is `<prefix>/<name>:<v>`.
    /// No default.
    pub repository: String,
    /// Talk plain HTTP instead of HTTPS (a registry on localhost or inside a cluster).
    /// Default: false.
    pub insecure: bool,
    /// Default: anonymous.
    pub credentials: Credentials,
    /// Where verified blobs and tag records are kept (tag records in a folder per registry and
    /// prefix, so a shared folder never mixes them up). Default: a folder private to this user
    /// and this repository setting under the system's temporary directory,
    /// `plugin-host-<uid>/oci-<hash of the repository>`.
    pub cache_dir: PathBuf,
    /// Most bytes of blobs kept in `cache_dir`. Default: 512 MiB.
    pub cache_max_bytes: u64,
    /// Longest one registry request may take (connecting included); a blob gets four times
    /// as long. Default: 5 s.
    pub timeout: Duration,
    /// How long a tag listing, and a tag's digest, are trusted before the registry is asked
    /// again. Default: 10 s.
    pub refresh: Duration,
    /// Largest plugin accepted, in bytes (checked against the manifest before pulling).
    /// Default: 16 MiB.
    pub max_plugin_bytes: u64,
    /// Whose signatures a version needs before it is pulled and run (see `signature`).
    /// Default: none, every version runs.
    pub trust: Option<Arc<TrustPolicy>>,
}

impl OciSettings {
    /// The registry host (`host[:port]`) of a repository (`host[:port]/prefix`), or why the
    /// repository is not one: for finding its credentials before the settings exist.
    pub fn registry_of(repository: &str) -> Result<String, String> {
        split_repository(repository).map(|(registry, _)| registry)
    }

    pub const DEFAULT_CACHE_MAX_BYTES: u64 = 512 << 20;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(10);

    pub fn new(repository: impl Into<String>) -> Self {
        let repository = repository.into();
        OciSettings {
            cache_dir: Self::default_cache_dir(&repository),
            repository,
            insecure: false,
            credentials: Credentials::Anonymous,
            cache_max_bytes: Self::DEFAULT_CACHE_MAX_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
            refresh: Self::DEFAULT_REFRESH,
            max_plugin_bytes: 16 << 20,
            trust: None,
        }
    }
}

impl OciSettings {
    /// `plugin-host-<uid>/oci-<16 hex digits of the canonical repository's SHA-256>` under the
    /// system's temporary directory: two hosts of one user with different registries or
    /// prefixes never share a default cache folder.
    pub fn default_cache_dir(repository: &str) -> PathBuf {
        let user = rustix::process::getuid().as_raw();
        let canonical = match split_repository(repository) {
            Ok((registry, prefix)) => canonical_repository(&registry, &prefix),
            // Refused when the store is made; any folder will do until then.
            Err(_) => repository.to_string(),
        };
        let hash = hex::encode(&Sha256::digest(&canonical)[..8]);
        std::env::temp_dir().join(format!("plugin-host-{user}")).join(format!("oci-{hash}"))
    }
}

/// The one spelling of a registry and prefix that keys the cache: registry host names are
/// case-insensitive, repository paths are lowercase already.
pub fn canonical_repository(registry: &str, prefix: &str) -> String {
    format!("{}/{prefix}", registry.to_ascii_lowercase())
}

/// `<registry>/<prefix>` split in its two parts.
pub fn split_repository(repository: &str) -> Result<(String, String), String> {
    let (registry, prefix) = repository.split_once('/').unwrap_or((repository, ""));
    let prefix = prefix.trim_matches('/');
    if registry.is_empty() || !registry.contains(['.', ':']) && registry != "localhost" {
        return Err(format!(
            "`{repository}` does not start with a registry host (`host:port/prefix`, `registry.example.com/prefix`)"
        ));
    }
    let valid_path = prefix.split('/').all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    });
    if !prefix.is_empty() && !valid_path {
        return Err(format!(
            "`{prefix}` is not a valid repository path (lowercase letters, digits, `.`, `_`, `-`, `/`)"
        ));
    }
    Ok((registry.to_string(), prefix.to_string()))
}

/// A plugin version's tag: the version, with `+` written `_`.
pub fn tag_of(version: &Version) -> String {
    version.to_string().replace('+', "_")
}

/// Whether `tag` is one cosign writes beside a manifest (`sha256-<hex>.sig`, `.att`, `.sbom`):
/// not a version, and nothing to warn about.
fn is_cosign_tag(tag: &str) -> bool {
    let Some((digest, suffix)) = tag.strip_prefix("sha256-").and_then(|rest| rest.split_once('.')) else {
        return false;
    };
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) && ["sig", "att", "sbom"].contains(&suffix)
}

/// The version a tag names, if it names one exactly.
pub fn version_of_tag(tag: &str) -> Option<Version> {
    parse_version_exactly(&tag.replacen('_', "+", 1))
}

/// Plugins from an OCI registry. See the module documentation.
pub struct OciPluginStore {
    inner: Arc<Inner>,
}

/// The store's state, shared with the threads that refresh what it holds in the background.
struct Inner {
    settings: OciSettings,
    registry: String,
    prefix: String,
    client: Client,
    auth: RegistryAuth,
    /// Drives the registry client; `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    cache: BlobCache,
    /// Tags resolved since start-up, and when the registry was last asked about each.
    tags: Mutex<HashMap<TagKey, (TagRecord, Instant)>>,
    /// Manifests being fetched, blobs being pulled, the catalog being listed: one request each
    /// however many callers need it.
    tag_flights: Arc<Flights<TagKey, Result<TagRecord, RegistryFailure>>>,
    blob_flights: Flights<String, Result<Arc<Vec<u8>>, StoreError>>,
    catalog_flights: Arc<Flights<(), Result<Vec<PluginName>, RegistryFailure>>>,
    /// The registry's catalog under the prefix, and when it was last asked for it.
    catalog: Mutex<Option<(Vec<PluginName>, Instant)>>,
    /// Set while the registry cannot be reached (the circuit is open): since when, and why.
    outage: Mutex<Option<(SystemTime, String)>>,
    /// Tags that are not versions, warned about once each (they are listed on every refresh).
    logged: logs::Once,
    /// A cache folder that cannot be written is reported once per 10 s per kind of error.
    cache_failures_logged: logs::Throttle,
    /// While the circuit is open, only one request at a time goes to the registry (a probe);
    /// the others fail at once.
    probing: AtomicBool,
    /// Trust verdicts by reference and manifest digest, and when each was made (the least
    /// recently used forgotten first: a forgotten allowing verdict is read back from disk).
    verdicts: Mutex<lru::LruCache<SignedKey, (Verdict, Instant)>>,
    /// Signature artifacts being fetched: one request however many callers wait.
    verdict_flights: Flights<SignedKey, Result<Arc<Vec<Signature>>, RegistryFailure>>,
}

/// A signed reference (`<registry>/<repository>`) and manifest digest.
type SignedKey = (String, String);

type TagKey = (PluginName, Version);

impl std::fmt::Debug for OciPluginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciPluginStore").field("repository", &self.inner.settings.repository).finish_non_exhaustive()
    }
}

/// Dropping a runtime waits for its threads, which an async context forbids; the store may
/// well be dropped in one (a test's server state), so its runtime is let go in the background.
impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lets the probe slot go when a probe ends, however it ends.
struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How a registry request failed, as far as the store cares.
#[derive(Debug, Clone)]
enum RegistryFailure {
    /// The registry did not answer in time, could not be reached, or answered 5xx/429:
    /// asking again later may work.
    Unreachable(String),
    /// It answered that the repository, tag or blob does not exist.
    NotFound,
    /// The content did not match its digest.
    DigestMismatch { expected: String, actual: String },
    /// The manifest is not a Wasm plugin artifact (not JSON, several layers, ...).
    InvalidArtifact(String),
    /// Anything else: credentials refused, ...
    Refused(String),
}

impl RegistryFailure {
    fn classify(error: OciDistributionError) -> Self {
        use OciDistributionError as E;
        let not_found = |code: &OciErrorCode| {
            matches!(
                code,
                OciErrorCode::NameUnknown
                    | OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound
            )
        };
        match error {
            E::RequestError(error) => RegistryFailure::Unreachable(error.to_string()),
            E::ServerError { code: 404, .. } => RegistryFailure::NotFound,
            E::ServerError { code, ref message, .. } if code >= 500 || code == 429 => {
                RegistryFailure::Unreachable(format!("HTTP {code}: {message}"))
            }
            E::RegistryError { ref envelope, .. } if envelope.errors.iter().any(|e| not_found(&e.code)) => {
                RegistryFailure::NotFound
            }
            E::RegistryError { ref envelope, .. }
                if envelope.errors.iter().any(|e| e.code == OciErrorCode::Toomanyrequests) =>
            {
                RegistryFailure::Unreachable(error.to_string())
            }
            E::ImageManifestNotFoundError(_) => RegistryFailure::NotFound,
            E::DigestError(DigestError::VerificationError { expected, actual }) => {
                RegistryFailure::DigestMismatch { expected, actual }
            }
            // A streamed blob reports its digest check as an I/O error of the stream.
            E::IoError(ref io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<DigestError>()) {
                Some(DigestError::VerificationError { expected, actual }) => {
                    RegistryFailure::DigestMismatch { expected: expected.clone(), actual: actual.clone() }
                }
                _ => RegistryFailure::Unreachable(error.to_string()),
            },
            other => RegistryFailure::Refused(other.to_string()),
        }
    }
}

impl OciPluginStore {
    /// Fails on settings that cannot work (a repository without a registry host, a cache
    /// folder that cannot be created); an unreachable registry is not an error here.
    pub fn new(settings: OciSettings) -> io::Result<Self> {
        Ok(OciPluginStore { inner: Arc::new(Inner::new(settings)?) })
    }
}

impl Inner {
    /// Fails on settings that cannot work (a repository without a registry host, a cache
    /// folder that cannot be created); an unreachable registry is not an error here.
    fn new(settings: OciSettings) -> io::Result<Self> {
        let (registry, prefix) = split_repository(&settings.repository).map_err(io::Error::other)?;
        let config = ClientConfig {
            protocol: if settings.insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(settings.timeout),
            read_timeout: Some(settings.timeout),
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("oci-registry")
            .enable_all()
            .build()?;
        let cache = BlobCache::new(
            settings.cache_dir.clone(),
            settings.cache_max_bytes,
            &canonical_repository(&registry, &prefix),
        )?;
        Ok(Inner {
            auth: settings.credentials.to_registry_auth(),
            client: Client::new(config),
            registry,
            prefix,
            runtime: Some(runtime),
            cache,
            tags: Mutex::new(HashMap::new()),
            tag_flights: Arc::default(),
            blob_flights: Flights::default(),
            catalog_flights: Arc::default(),
            catalog: Mutex::new(None),
            outage: Mutex::new(None),
            logged: logs::Once::default(),
            cache_failures_logged: logs::Throttle::default(),
            probing: AtomicBool::new(false),
            verdicts: Mutex::new(lru::LruCache::new(VERDICTS_KEPT)),
            verdict_flights: Flights::default(),
            settings,
        })
    }

    fn repository_of(&self, name: &PluginName) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) }
    }

    fn reference(&self, name: &PluginName, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repository_of(name), tag.to_string())
    }

    /// Runs one registry request on the store's runtime, within `timeout`, and keeps track of
    /// whether the registry answers. While it does not (the circuit is open), one request at a
    /// time is let through to find out whether it is back; the others fail at once, so that
    /// nobody queues behind a registry that hangs.
    fn request<T>(
        &self,
        timeout: Duration,
        request: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryFailure> {
        let _probe = match self.outage.lock().as_ref() {
            None => None,
            Some((_, why)) => {
                if self.probing.swap(true, Ordering::AcqRel) {
                    return Err(RegistryFailure::Unreachable(format!("{why}; asked again once the registry answers")));
                }
                Some(Probe(&self.probing))
            }
        };
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
        // The timer is made inside the runtime: it needs the runtime's time driver.
        let result = match runtime.block_on(async { tokio::time::timeout(timeout, request).await }) {
            Ok(result) => result.map_err(RegistryFailure::classify),
            Err(_) => Err(RegistryFailure::Unreachable(format!("no answer within {timeout:?}"))),
        };
        let mut outage = self.outage.lock();
        match &result {
            Err(RegistryFailure::Unreachable(why)) => {
                if outage.is_none() {
                    tracing::warn!(registry = %self.registry, error = %why, "plugin registry unreachable; serving the versions held");
                }
                *outage = Some((outage.as_ref().map_or_else(SystemTime::now, |(since, _)| *since), why.clone()));
            }
            _ => {
                if outage.take().is_some() {
                    tracing::info!(registry = %self.registry, "plugin registry reachable again");
                }
            }
        }
        result
    }

    /// A reference naming only the registry (for the catalog, which is registry-wide).
    fn registry_reference(&self) -> Reference {
        Reference::with_tag(self.registry.clone(), "catalog".to_string(), "latest".to_string())
    }

    fn unavailable(&self, why: String) -> StoreError {
        StoreError::Unavailable {
            what: format!("registry {} ({why})", self.registry),
            source: Some(io::Error::new(io::ErrorKind::TimedOut, why)),
        }
    }

    fn store_error(&self, plugin: &PluginRef, failure: RegistryFailure) -> StoreError {
        match failure {
            RegistryFailure::Unreachable(why) => self.unavailable(why),
            RegistryFailure::NotFound => StoreError::NotFound(plugin.clone()),
            RegistryFailure::DigestMismatch { expected, actual } => {
                tracing::error!(plugin = %plugin, registry = %self.registry, %expected, %actual, "registry content does not match its digest; refused");
                StoreError::DigestMismatch { plugin: plugin.clone(), expected, actual }
            }
            RegistryFailure::InvalidArtifact(why) => {
                tracing::warn!(plugin = %plugin, registry = %self.registry, %why, "the registry's artifact is not a Wasm plugin");
                StoreError::InvalidArtifact { plugin: plugin.clone(), why }
            }
            RegistryFailure::Refused(why) => StoreError::Io {
                context: format!("registry {} refused plugin `{plugin}`", self.registry),
                source: io::Error::other(why),
            },
        }
    }

    /// Where `name`'s `version` points: from memory while the registry was asked within
    /// `refresh`; from memory at once, asking again in the background, when it is older; else
    /// from the registry (one request however many callers wait), falling back to what it said
    /// before a restart (the disk) when it cannot answer, or at once while it cannot.
    fn tag_record(self: &Arc<Self>, name: &PluginName, version: &Version) -> Result<TagRecord, StoreError> {
        let key = (name.clone(), version.clone());
        let known = self.tags.lock().get(&key).cloned();
        if let Some((record, checked)) = known {
            if checked.elapsed() >= self.settings.refresh {
                let (inner, key) = (Arc::clone(self), key.clone());
                self.tag_flights.spawn(key.clone(), move || inner.refresh_tag(&key));
            }
            return Ok(record);
        }
        let plugin = PluginRef::versioned(name.clone(), version.clone());
        let from_disk = || self.cache.tag(name, version);
        if self.outage.lock().is_some()
            && let Some(record) = from_disk()
        {
            return Ok(record);
        }
        match self.tag_flights.run(&key, || self.refresh_tag(&key)) {
            Ok(record) => Ok(record),
            Err(RegistryFailure::Unreachable(why)) => {
                let held = self.tags.lock().get(&key).map(|(record, _)| record.clone()).or_else(from_disk);
                held.ok_or_else(|| self.store_error(&plugin, RegistryFailure::Unreachable(why)))
            }
            Err(RegistryFailure::NotFound) => Err(StoreError::NotFound(plugin)),
            Err(failure) => Err(self.store_error(&plugin, failure)),
        }
    }

    /// Asks the registry where a tag points and keeps the answer. A registry that cannot
    /// answer moves the held record's clock: it is asked again `refresh` later, not by the next
    /// call.
    fn refresh_tag(&self, key: &TagKey) -> Result<TagRecord, RegistryFailure> {
        let (name, version) = key;
        let answer = self.fetch_tag(name, version);
        match &answer {
            Ok(record) => {
                if let Err(error) = self.cache.put_tag(name, version, record)
                    && self.cache_failures_logged.allow(&error.kind()).is_some()
                {
                    tracing::warn!(plugin = %name, %version, %error, "could not record the tag in the cache folder");
                }
                self.tags.lock().insert(key.clone(), (record.clone(), Instant::now()));
            }
            Err(RegistryFailure::Unreachable(why)) => {
                if let Some((_, checked)) = self.tags.lock().get_mut(key) {
                    tracing::debug!(plugin = %name, %version, error = %why, "registry unreachable; serving the digest it gave before");
                    *checked = Instant::now();
                }
            }
            Err(RegistryFailure::NotFound) => {
                self.tags.lock().remove(key);
                self.cache.forget_tag(name, version);
            }
            Err(_) => {}
        }
        answer
    }

    /// The manifest of `name:version`, checked to be a Wasm artifact.
    fn fetch_tag(&self, name: &PluginName, version: &Version) -> Result<TagRecord, RegistryFailure> {
        let reference = self.reference(name, &tag_of(version));
        let (raw, digest) = self.request(
            self.settings.timeout,
            self.client.pull_manifest_raw(&reference, &self.auth, MANIFEST_MEDIA_TYPES),
        )?;
        // The client checks this too; the store does not rely on it.
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
        if digest.starts_with("sha256:") && actual != digest {
            return Err(RegistryFailure::DigestMismatch { expected: digest, actual });
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw).map_err(|error| {
            RegistryFailure::InvalidArtifact(format!("the manifest is not an OCI image manifest: {error}"))
        })?;
        let [layer] = manifest.layers.as_slice() else {
            return Err(RegistryFailure::InvalidArtifact(format!(
                "a Wasm artifact has exactly one layer; this manifest has {}",
                manifest.layers.len()
            )));
        };
        if layer.media_type != WASM_LAYER_MEDIA_TYPE && layer.media_type != LEGACY_WASM_LAYER_MEDIA_TYPE {
            return Err(RegistryFailure::InvalidArtifact(format!(
                "the layer's media type is `{}`, not `{WASM_LAYER_MEDIA_TYPE}`",
                layer.media_type
            )));
        }
        let layer_sha256 = layer
            .digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
            .ok_or_else(|| RegistryFailure::InvalidArtifact(format!("unsupported layer digest `{}`", layer.digest)))?;
        Ok(TagRecord {
            manifest_digest: actual,
            layer_sha256: layer_sha256.to_string(),
            size: u64::try_from(layer.size).unwrap_or(u64::MAX),
            config: manifest.annotations.as_ref().and_then(|annotations| annotations.get(CONFIG_ANNOTATION)).cloned(),
        })
    }

    /// The layer's bytes: from the disk cache, else pulled (one pull however many callers
    /// wait; bounded by the manifest's size and the plugin size limit) and verified against the
    /// digest before anything else sees them.
    fn blob(&self, plugin: &PluginRef, record: &TagRecord) -> Result<Vec<u8>, StoreError> {
        if let Some(bytes) = self.cache.get(&record.layer_sha256) {
            return Ok(bytes);
        }
        let pulled = self.blob_flights.run(&record.layer_sha256, || self.pull_blob(plugin, record).map(Arc::new))?;
        Ok(pulled.to_vec())
    }

    fn pull_blob(&self, plugin: &PluginRef, record: &TagRecord) -> Result<Vec<u8>, StoreError> {
        let limit = self.settings.max_plugin_bytes;
        if record.size > limit {
            return Err(StoreError::TooLarge { name: plugin.clone(), size: record.size, limit });
        }
        let name = &plugin.name;
        let reference =
            self.reference(name, &tag_of(plugin.version.as_ref().expect("a registry plugin has a version")));
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.to_string(),
            digest: format!("sha256:{}", record.layer_sha256),
            size: i64::try_from(record.size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let pull = async {
            let mut stream = self.client.pull_blob_stream(&reference, &descriptor).await?;
            let mut bytes = Vec::with_capacity(record.size as usize);
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk?);
                // More than the manifest promised: it cannot match the digest, stop reading.
                if bytes.len() as u64 > record.size {
                    break;
                }
            }
            Ok(bytes)
        };
        let bytes =
            self.request(self.settings.timeout * 4, pull).map_err(|failure| self.store_error(plugin, failure))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != record.layer_sha256 {
            let failure = RegistryFailure::DigestMismatch {
                expected: format!("sha256:{}", record.layer_sha256),
                actual: format!("sha256:{actual}"),
            };
            return Err(self.store_error(plugin, failure));
        }
        if let Err(error) = self.cache.put(&record.layer_sha256, &bytes)
            && self.cache_failures_logged.allow(&error.kind()).is_some()
        {
            tracing::warn!(plugin = %plugin, %error, cache = %self.cache.dir().display(), "could not keep the plugin in the cache folder");
        }
        Ok(bytes)
    }

    fn identity(record: &TagRecord) -> FileIdentity {
        let mut digest = [0u8; 32];
        // A record's digest was checked to be 64 hex digits when it was made; one read back
        // from a damaged cache file identifies nothing and is all zeroes.
        let _ = hex::decode_to_slice(&record.layer_sha256, &mut digest);
        FileIdentity {
            size: record.size,
            modified: UNIX_EPOCH,
            inode: 0,
            changed: (0, 0),
            digest: Some(digest),
            signature: None,
        }
    }

    fn versioned(plugin: &PluginRef) -> Result<&Version, StoreError> {
        // A registry holds versions only: an unversioned name is not there.
        plugin.version.as_ref().ok_or_else(|| StoreError::NotFound(plugin.clone()))
    }

    /// Whether the registry is reachable: used by `/readyz` through [`PluginStore::degraded`].
    fn outage(&self) -> Option<String> {
        self.outage.lock().as_ref().map(|(since, why)| {
            let seconds = since.elapsed().unwrap_or_default().as_secs();
            format!("registry {} unreachable for {seconds} s ({why}); serving the versions already held", self.registry)
        })
    }
}

impl Inner {
    /// The registry's catalog under the prefix: from memory while asked within `refresh`, from
    /// memory at once (asking again in the background) when older, else asked now.
    fn catalog(self: &Arc<Self>) -> Result<Vec<PluginName>, RegistryFailure> {
        let known = self.catalog.lock().clone();
        if let Some((names, checked)) = known {
            if checked.elapsed() >= self.settings.refresh {
                let inner = Arc::clone(self);
                self.catalog_flights.spawn((), move || inner.refresh_catalog());
            }
            return Ok(names);
        }
        self.catalog_flights.run(&(), || self.refresh_catalog())
    }

    fn refresh_catalog(&self) -> Result<Vec<PluginName>, RegistryFailure> {
        let reference = self.registry_reference();
        match self.request(self.settings.timeout, self.client.catalog(&reference, &self.auth, None, None)) {
            Ok(catalog) => {
                let under_prefix = |repository: &str| match self.prefix.as_str() {
                    "" => Some(repository.to_string()),
                    prefix => repository.strip_prefix(prefix)?.strip_prefix('/').map(str::to_string),
                };
                let mut names: Vec<PluginName> = catalog
                    .repositories
                    .iter()
                    .filter_map(|repository| PluginName::new(&under_prefix(repository)?).ok())
                    .collect();
                names.sort();
                *self.catalog.lock() = Some((names.clone(), Instant::now()));
                Ok(names)
            }
            Err(failure) => {
                if let Some((_, checked)) = self.catalog.lock().as_mut() {
                    *checked = Instant::now();
                }
                Err(failure)
            }
        }
    }
}

/// Where a registry plugin's configuration is: its manifest's annotation.
fn config_location(plugin: &PluginRef, config: &str) -> ConfigLocation {
    let digest: [u8; 32] = Sha256::digest(config.as_bytes()).into();
    ConfigLocation {
        origin: ConfigOrigin { source: "registry", file: format!("{plugin} annotation {CONFIG_ANNOTATION}") },
        identity: FileIdentity {
            size: config.len() as u64,
            modified: UNIX_EPOCH,
            inode: 0,
            changed: (0, 0),
            digest: Some(digest),
            signature: None,
        },
    }
}

impl PluginStore for OciPluginStore {
    fn stat(&self, plugin: &PluginRef) -> Result<FileIdentity, StoreError> {
        let version = Inner::versioned(plugin)?;
        Ok(Inner::identity(&self.inner.tag_record(&plugin.name, version)?))
    }

    fn load(&self, plugin: &PluginRef) -> Result<PluginFile, StoreError> {
        let version = Inner::versioned(plugin)?;
        let record = self.inner.tag_record(&plugin.name, version)?;
        // Before a byte is pulled, so a refused version is never cached, checked or compiled.
        self.inner.check_trust(plugin, &record)?;
        let bytes = self.inner.blob(plugin, &record)?;
        Ok(PluginFile { bytes, identity: Inner::identity(&record) })
    }

    /// The configuration annotation of the tag's manifest, identified by its SHA-256: a push
    /// that changes it changes the identity.
    fn stat_config(&self, plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        let Some(version) = &plugin.version else { return Ok(None) };
        let record = self.inner.tag_record(&plugin.name, version)?;
        Ok(record.config.as_deref().map(|config| config_location(plugin, config)))
    }

    fn load_config(&self, plugin: &PluginRef, max_bytes: u64) -> Result<Option<ConfigFile>, StoreError> {
        let Some(version) = &plugin.version else { return Ok(None) };
        let record = self.inner.tag_record(&plugin.name, version)?;
        Ok(record.config.as_deref().map(|config| {
            let bytes = config.as_bytes();
            let kept = bytes.len().min(usize::try_from(max_bytes.saturating_add(1)).unwrap_or(usize::MAX));
            ConfigFile { location: config_location(plugin, config), bytes: bytes[..kept].to_vec() }
        }))
    }

    /// The registry's catalog (`/v2/_catalog`) under the prefix; while the registry cannot be
    /// reached, the plugins this host holds tag records of (they are what it can serve).
    /// Registries that do not offer the catalog list the held ones too.
    fn list(&self) -> Result<Vec<PluginName>, StoreError> {
        let inner = &self.inner;
        let held = || inner.cache.tagged_names();
        if inner.outage.lock().is_some() {
            return Ok(held());
        }
        match inner.catalog() {
            Ok(names) => Ok(names),
            Err(RegistryFailure::Unreachable(why)) => {
                let held = held();
                if held.is_empty() {
                    return Err(inner.unavailable(why));
                }
                tracing::debug!(error = %why, "registry unreachable; listing the plugins held in the cache");
                Ok(held)
            }
            Err(failure) => {
                tracing::debug!(?failure, "the registry does not offer its catalog; listing the plugins held");
                Ok(held())
            }
        }
    }

    fn versions(&self, name: &PluginName) -> Result<Versions, StoreError> {
        let inner = &self.inner;
        let reference = inner.reference(name, "latest");
        match inner.request(inner.settings.timeout, inner.client.list_tags(&reference, &inner.auth, None, None)) {
            Ok(listing) => {
                let mut versions = Vec::new();
                for tag in &listing.tags {
                    match version_of_tag(tag) {
                        Some(version) => versions.push(version),
                        // Signatures, attestations and SBOMs cosign keeps beside the versions.
                        None if is_cosign_tag(tag) => {}
                        // Once per tag: tags are listed on every refresh and every miss.
                        None if self.inner.logged.first(&(name, tag)) => {
                            tracing::warn!(plugin = %name, tag, "ignoring a tag that is not a semantic version")
                        }
                        None => {}
                    }
                }
                versions.sort();
                Ok(Versions { unversioned: false, versions })
            }
            Err(RegistryFailure::NotFound) => Ok(Versions::default()),
            Err(failure) => Err(inner.store_error(&PluginRef::from(name), failure)),
        }
    }

    /// The versions with a tag record in the cache folder: after a restart with the registry
    /// down, what was pulled before still serves.
    fn held_versions(&self, name: &PluginName) -> Versions {
        Versions { unversioned: false, versions: self.inner.cache.tagged_versions(name) }
    }

    fn held_identity(&self, plugin: &PluginRef) -> Option<FileIdentity> {
        let version = plugin.version.as_ref()?;
        let key = (plugin.name.clone(), version.clone());
        let in_memory = self.inner.tags.lock().get(&key).map(|(record, _)| record.clone());
        let record = in_memory.or_else(|| self.inner.cache.tag(&plugin.name, version))?;
        Some(Inner::identity(&record))
    }

    fn lookups_per_listing(&self) -> Option<usize> {
        Some(MANIFESTS_PER_LISTING)
    }

    fn verdict(&self, plugin: &PluginRef, lookup: bool) -> Option<Verdict> {
        self.inner.settings.trust.as_ref()?;
        let version = plugin.version.as_ref()?;
        let key = (plugin.name.clone(), version.clone());
        let in_memory = self.inner.tags.lock().get(&key).map(|(record, _)| record.clone());
        let Some(record) = in_memory.or_else(|| self.inner.cache.tag(&plugin.name, version)) else {
            return Some(Verdict::Unchecked);
        };
        Some(self.inner.verdict(&plugin.name, &record, lookup).unwrap_or(Verdict::Unchecked))
    }

    fn listing_ttl(&self) -> Duration {
        self.inner.settings.refresh
    }

    fn degraded(&self) -> Option<String> {
        self.inner.outage()
    }

    fn describe(&self) -> String {
        let inner = &self.inner;
        let scheme = if inner.settings.insecure { "http" } else { "https" };
        format!("OCI registry {scheme}://{}/{}", inner.registry, inner.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_repository_setting() {
        assert_eq!(split_repository("127.0.0.1:5000/plugins").unwrap(), ("127.0.0.1:5000".into(), "plugins".into()));
        assert_eq!(split_repository("localhost/a/b/").unwrap(), ("localhost".into(), "a/b".into()));
        assert_eq!(split_repository("registry.example.com").unwrap(), ("registry.example.com".into(), String::new()));
        assert!(split_repository("plugins/hello").is_err(), "no registry host");
        assert!(split_repository("127.0.0.1:5000/Plugins").is_err(), "upper case");
        assert!(split_repository("127.0.0.1:5000/a//b").is_err());
    }

    #[test]
    fn the_default_cache_folder_is_private_to_the_repository_setting() {
        let dir = |repository: &str| OciSettings::new(repository).cache_dir;
        assert_eq!(dir("127.0.0.1:5000/plugins"), dir("127.0.0.1:5000/plugins/"));
        assert_eq!(dir("Registry.Example.com/plugins"), dir("registry.example.com/plugins"));
        assert_ne!(dir("127.0.0.1:5000/plugins"), dir("127.0.0.1:5001/plugins"));
        assert_ne!(dir("127.0.0.1:5000/plugins"), dir("127.0.0.1:5000/team"));
        assert!(dir("127.0.0.1:5000/plugins").starts_with(std::env::temp_dir()));
    }

    #[test]
    fn maps_versions_to_tags_and_back() {
        let version = Version::parse("1.2.3-rc.1+build.5").unwrap();
        assert_eq!(tag_of(&version), "1.2.3-rc.1_build.5");
        assert_eq!(version_of_tag("1.2.3-rc.1_build.5"), Some(version));
        assert_eq!(version_of_tag("1.2.3"), Some(Version::new(1, 2, 3)));
        for tag in ["latest", "v1.2.3", "1.2", "1.2.3_", "sha256-abc"] {
            assert_eq!(version_of_tag(tag), None, "{tag}");
        }
        let signature = format!("sha256-{}.sig", "ab".repeat(32));
        assert!(is_cosign_tag(&signature) && version_of_tag(&signature).is_none());
        assert!(!is_cosign_tag("sha256-abc.sig") && !is_cosign_tag("latest"));
    }
}
