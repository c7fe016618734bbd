//! The OCI store's disk cache: verified blobs by digest, and what each tag pointed to.
//!
//! Layout under the cache folder (private to the host's user):
//! - `blobs/sha256/<hex>`: a wasm layer, written only after its SHA-256 was checked, and
//!   checked again whenever it is read (a corrupted disk is a cache miss, never a plugin).
//!   Content-addressed, so hosts of different registries may share them safely;
//! - `repositories/<sha256 of registry/prefix>/<name>/<version>.json`: the manifest digest,
//!   layer digest and size a tag resolved to, so that after a restart with the registry down
//!   the versions already held still serve. Which digest a name and version mean depends on
//!   the registry and prefix, so each has a folder of its own (its `repository` file names it):
//!   a host never lists or serves a tag another registry or prefix resolved;
//! - `verdicts/<sha256 of registry/prefix>/<name>/sha256-<hex>.json`: a trust policy's verdict that lets the
//!   manifest `sha256:<hex>` run, with the policy's fingerprint, so that after a restart with
//!   the registry down the verified versions still serve (a verdict of another policy is not
//!   reused; refusals are not kept).
//!
//! The blobs are bounded: after each write, the least recently used blobs (by modification
//! time, which a read refreshes) are removed until the total is under the limit. Tag records
//! are a few hundred bytes each and stay; one whose blob was removed is pulled again.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::store::{PluginName, Version, trust::Verdict};

/// Where a tag pointed when it was last resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct TagRecord {
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// Hex SHA-256 of the wasm layer.
    pub layer_sha256: String,
    pub size: u64,
    /// The plugin's configuration, from the manifest's [`CONFIG_ANNOTATION`](super::CONFIG_ANNOTATION)
    /// (`cargo xtask publish --config FILE`). Kept with the record, in this private folder, so a
    /// held version keeps its configuration through an outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// A trust verdict on a manifest as kept on disk, with the policy that gave it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct VerdictRecord {
    /// The policy's fingerprint: a verdict of another policy is not reused.
    policy: String,
    verdict: Verdict,
}

#[derive(Debug)]
pub(super) struct BlobCache {
    dir: PathBuf,
    /// The tag records of this store's registry and prefix.
    tags: PathBuf,
    /// The trust verdicts on this registry and prefix's manifests.
    verdicts: PathBuf,
    max_bytes: u64,
    /// Serialises writes and eviction (reads need no lock: files appear by rename).
    writing: Mutex<()>,
}

impl BlobCache {
    /// Creates the folders (mode 0700) if needed. `repository` is the canonical
    /// `registry/prefix` whose tag records this cache keeps.
    pub fn new(dir: PathBuf, max_bytes: u64, repository: &str) -> io::Result<Self> {
        let tags = dir.join("repositories").join(hex::encode(Sha256::digest(repository)));
        let verdicts = dir.join("verdicts").join(hex::encode(Sha256::digest(repository)));
        for folder in [&dir.join("blobs/sha256"), &tags] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
        }
        // For whoever looks into the folder; never read back.
        let label = tags.join("repository");
        if !label.exists() {
            fs::write(&label, format!("{repository}\n"))?;
        }
        // The folder may have existed already; what is in it will be run, so others must not
        // be able to write there.
        let meta = fs::metadata(&dir)?;
        if meta.permissions().mode() & 0o022 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(BlobCache { dir, tags, verdicts, max_bytes, writing: Mutex::new(()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(sha256)
    }

    /// The blob with this hex SHA-256, if it is held and still has that digest.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(sha256);
        let bytes = fs::read(&path).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            tracing::warn!(path = %path.display(), "cached blob does not match its digest; removing it");
            let _ = fs::remove_file(&path);
            return None;
        }
        // Recently used blobs are evicted last.
        let _ = fs::File::open(&path).and_then(|file| file.set_modified(SystemTime::now()));
        Some(bytes)
    }

    /// Keeps a blob whose digest the caller has verified, then evicts down to the limit.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> io::Result<()> {
        let _writing = self.writing.lock();
        let folder = self.dir.join("blobs/sha256");
        let mut file = tempfile::NamedTempFile::with_prefix_in(".partial-", &folder)?;
        io::Write::write_all(&mut file, bytes)?;
        file.as_file().sync_all()?;
        file.persist(self.blob_path(sha256)).map_err(|error| error.error)?;
        self.evict(sha256)
    }

    /// Removes the least recently used blobs (never `keep`) until the total is under the limit.
    fn evict(&self, keep: &str) -> io::Result<()> {
        let mut blobs = Vec::new();
        let mut total = 0;
        for entry in fs::read_dir(self.dir.join("blobs/sha256"))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            total += meta.len();
            blobs.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), entry.path()));
        }
        blobs.sort();
        for (_, size, path) in blobs {
            if total <= self.max_bytes {
                break;
            }
            if path.file_name().is_some_and(|name| name == keep) {
                continue;
            }
            tracing::info!(path = %path.display(), "evicting a cached plugin blob (cache over its size limit)");
            fs::remove_file(&path)?;
            total -= size;
        }
        Ok(())
    }

    fn tag_path(&self, name: &PluginName, version: &Version) -> PathBuf {
        self.tags.join(name.as_str()).join(format!("{version}.json"))
    }

    pub fn tag(&self, name: &PluginName, version: &Version) -> Option<TagRecord> {
        let text = fs::read_to_string(self.tag_path(name, version)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn put_tag(&self, name: &PluginName, version: &Version, record: &TagRecord) -> io::Result<()> {
        let path = self.tag_path(name, version);
        let folder = path.parent().expect("a tag record is inside a folder");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
        let mut file = tempfile::NamedTempFile::with_prefix_in(".partial-", folder)?;
        serde_json::to_writer(&mut file, record)?;
        file.persist(path).map_err(|error| error.error)?;
        Ok(())
    }

    pub fn forget_tag(&self, name: &PluginName, version: &Version) {
        let _ = fs::remove_file(self.tag_path(name, version));
    }

    /// Per name as well as digest: the same manifest pushed under two names is signed (or not)
    /// for each name apart.
    fn verdict_path(&self, name: &PluginName, manifest_digest: &str) -> PathBuf {
        self.verdicts.join(name.as_str()).join(format!("{}.json", manifest_digest.replace(':', "-")))
    }

    /// The verdict kept for this manifest, if one was kept under the same trust policy.
    pub fn verdict(&self, name: &PluginName, manifest_digest: &str, policy: &str) -> Option<Verdict> {
        let text = fs::read_to_string(self.verdict_path(name, manifest_digest)).ok()?;
        let kept: VerdictRecord = serde_json::from_str(&text).ok()?;
        (kept.policy == policy).then_some(kept.verdict)
    }

    /// Keeps a verdict (the store keeps only those that let a version run: a refusal is asked
    /// again, since a signature may be pushed later).
    pub fn put_verdict(
        &self,
        name: &PluginName,
        manifest_digest: &str,
        policy: &str,
        verdict: &Verdict,
    ) -> io::Result<()> {
        let path = self.verdict_path(name, manifest_digest);
        let folder = path.parent().expect("a verdict is inside a folder");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
        let mut file = tempfile::NamedTempFile::with_prefix_in(".partial-", folder)?;
        serde_json::to_writer(&mut file, &VerdictRecord { policy: policy.to_string(), verdict: verdict.clone() })?;
        file.persist(path).map_err(|error| error.error)?;
        Ok(())
    }

    /// The versions of `name` with a tag record.
    pub fn tagged_versions(&self, name: &PluginName) -> Vec<Version> {
        let Ok(entries) = fs::read_dir(self.tags.join(name.as_str())) else {
            return Vec::new();
        };
        let mut versions: Vec<Version> = entries
            .filter_map(|entry| {
                let file_name = entry.ok()?.file_name();
                crate::store::version::parse_version_exactly(file_name.to_str()?.strip_suffix(".json")?)
            })
            .collect();
        versions.sort();
        versions
    }

    /// Every name with a tag record (of this registry and prefix).
    pub fn tagged_names(&self) -> Vec<PluginName> {
        let Ok(entries) = fs::read_dir(&self.tags) else {
            return Vec::new();
        };
        let mut names: Vec<PluginName> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                // The `repository` label is a file; every name is a folder.
                entry.file_type().ok()?.is_dir().then_some(())?;
                PluginName::new(entry.file_name().to_str()?).ok()
            })
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn keeps_verified_blobs_within_the_limit_evicting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().join("cache"), 2500, "localhost/p").unwrap();
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000]).collect();
        cache.put(&sha(&blobs[0]), &blobs[0]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&sha(&blobs[1]), &blobs[1]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Reading the first makes the second the least recently used.
        assert_eq!(cache.get(&sha(&blobs[0])).as_deref(), Some(&blobs[0][..]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&sha(&blobs[2]), &blobs[2]).unwrap();
        assert!(cache.get(&sha(&blobs[0])).is_some());
        assert!(cache.get(&sha(&blobs[1])).is_none(), "evicted");
        assert!(cache.get(&sha(&blobs[2])).is_some());
    }

    #[test]
    fn a_corrupted_blob_is_a_miss_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().to_path_buf(), 1 << 20, "localhost/p").unwrap();
        let blob = b"plugin".to_vec();
        cache.put(&sha(&blob), &blob).unwrap();
        fs::write(cache.blob_path(&sha(&blob)), b"tampered").unwrap();
        assert_eq!(cache.get(&sha(&blob)), None);
        assert!(!cache.blob_path(&sha(&blob)).exists());
    }

    #[test]
    fn keeps_verdicts_per_name_digest_and_policy() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().to_path_buf(), 1 << 20, "127.0.0.1:5000/plugins").unwrap();
        let (hello, world) = (PluginName::new("hello").unwrap(), PluginName::new("world").unwrap());
        let verified = Verdict::Verified { signers: vec!["sha256:0123456789abcdef".into()] };
        cache.put_verdict(&hello, "sha256:aa", "policy-1", &verified).unwrap();
        assert_eq!(cache.verdict(&hello, "sha256:aa", "policy-1"), Some(verified));
        assert_eq!(cache.verdict(&hello, "sha256:aa", "policy-2"), None, "another policy");
        assert_eq!(cache.verdict(&world, "sha256:aa", "policy-1"), None, "the same manifest under another name");
        assert_eq!(cache.verdict(&hello, "sha256:bb", "policy-1"), None);
        assert!(cache.tagged_names().is_empty(), "verdicts are not tag records");
    }

    #[test]
    fn remembers_tags_per_registry_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().to_path_buf(), 1 << 20, "127.0.0.1:5000/plugins").unwrap();
        let name = PluginName::new("hello").unwrap();
        let record =
            TagRecord { manifest_digest: "sha256:aa".into(), layer_sha256: "bb".into(), size: 3, config: None };
        cache.put_tag(&name, &Version::new(1, 2, 0), &record).unwrap();
        cache.put_tag(&name, &Version::new(1, 10, 0), &record).unwrap();
        assert_eq!(cache.tag(&name, &Version::new(1, 2, 0)), Some(record));
        assert_eq!(cache.tagged_versions(&name), [Version::new(1, 2, 0), Version::new(1, 10, 0)]);
        assert_eq!(cache.tagged_names(), std::slice::from_ref(&name));
        cache.forget_tag(&name, &Version::new(1, 2, 0));
        assert_eq!(cache.tagged_versions(&name), [Version::new(1, 10, 0)]);

        // Another prefix, or another registry, in the same folder sees none of it.
        for other in ["127.0.0.1:5000/team", "127.0.0.1:5001/plugins"] {
            let other = BlobCache::new(dir.path().to_path_buf(), 1 << 20, other).unwrap();
            assert_eq!(other.tag(&name, &Version::new(1, 10, 0)), None);
            assert!(other.tagged_versions(&name).is_empty());
            assert!(other.tagged_names().is_empty());
        }
    }
}
