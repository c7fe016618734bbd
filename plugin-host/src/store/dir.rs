//! Plugin files in one directory: the filesystem rules both file stores share.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use plugin_signature::{DETACHED_SUFFIX, DetachedSignature, sha256_digest};

use super::{
    FileIdentity, PluginFile, PluginName, PluginRef, SignatureIdentity, StoreError, Versions,
    trust::{Refusal, Signature, TrustPolicy, Verdict},
    version::{version_file_name, version_from_file_name},
};
use crate::logs;

/// `<root>/<name>.wasm` files (unversioned plugins) and `<root>/<name>/<version>.wasm` files
/// (versions), where `root` is canonical. Anything that is not a regular file directly inside
/// the root or a plugin's version folder (a symlink pointing elsewhere, a directory, FIFO or
/// device named like a plugin, a version folder that is itself a link, a file over the size
/// limit) is refused without being read.
#[derive(Debug, Clone)]
pub(super) struct PluginDir<'a> {
    pub root: &'a Path,
    pub max_bytes: u64,
    /// What was warned about already: each stray entry once per identity, not per listing.
    pub warned: &'a logs::Once,
    /// With a trust policy, every plugin file needs a detached signature beside it
    /// (`<file>.sig`, see `plugin_signature::DetachedSignature`) that the policy accepts.
    pub trust: Option<&'a TrustPolicy>,
}

/// Largest detached signature read (they are about 500 bytes).
const MAX_SIGNATURE_BYTES: u64 = 64 << 10;

impl PluginDir<'_> {
    /// Runs on every call, so the common case (a plain file, no link) costs one `lstat`.
    pub fn stat(&self, name: &PluginRef) -> Result<FileIdentity, StoreError> {
        let (path, meta) = self.locate(name)?;
        let meta = match meta {
            Some(meta) => meta,
            None => fs::metadata(&path).map_err(|e| io_error(name, e))?,
        };
        let mut identity = self.check_metadata(name, &meta)?;
        if self.trust.is_some() {
            identity.signature = self.signature_identity(name)?;
        }
        Ok(identity)
    }

    /// The file, once the trust policy (if any) accepts its detached signature: a refused file
    /// is [`StoreError::Untrusted`] and its bytes go no further.
    pub fn load(&self, name: &PluginRef) -> Result<PluginFile, StoreError> {
        let mut file = self.load_unchecked(name)?;
        if let Some(trust) = self.trust {
            let (verdict, signature) = self.judge(trust, name, &file.bytes)?;
            // The identity of the very signature file judged, so that one replaced meanwhile is
            // judged again on the next call.
            file.identity.signature = signature;
            if let Verdict::Refused { code, message } = verdict {
                if self.warned.first(&(name, file.identity.inode, file.identity.changed, file.identity.signature)) {
                    tracing::warn!(plugin = %name, code = code.kind().code(), why = %message, "plugin file refused by the trust policy");
                }
                return Err(StoreError::Untrusted { plugin: name.clone(), refusal: code, why: message });
            }
        }
        Ok(file)
    }

    /// The trust policy's verdict on the file as it is now (`None` without a policy).
    pub fn verdict(&self, name: &PluginRef) -> Result<Option<Verdict>, StoreError> {
        let Some(trust) = self.trust else { return Ok(None) };
        let file = self.load_unchecked(name)?;
        self.judge(trust, name, &file.bytes).map(|(verdict, _)| Some(verdict))
    }

    /// `<file>.wasm.sig`: the detached signature's path (never followed if it is a link).
    fn signature_path(&self, plugin: &PluginRef) -> PathBuf {
        let mut path = self.file_path(plugin);
        path.as_mut_os_string().push(DETACHED_SUFFIX);
        path
    }

    /// `<root>/<name>.wasm` or `<root>/<name>/<version>.wasm`. Every call's hot-swap check
    /// makes it, so an unversioned plugin's path takes one allocation.
    fn file_path(&self, plugin: &PluginRef) -> PathBuf {
        let name = plugin.name.as_str();
        let mut path = PathBuf::with_capacity(self.root.as_os_str().len() + name.len() + 8);
        path.push(self.root);
        path.push(name);
        match &plugin.version {
            Some(version) => path.push(version_file_name(version)),
            None => path.as_mut_os_string().push(".wasm"),
        }
        path
    }

    /// What identifies the detached signature (so that a signature added, replaced or removed
    /// beside an unchanged file is a new version to judge); `None` when there is none.
    fn signature_identity(&self, plugin: &PluginRef) -> Result<Option<SignatureIdentity>, StoreError> {
        match fs::symlink_metadata(self.signature_path(plugin)) {
            Ok(meta) => Ok(Some((meta.ino(), meta.ctime(), meta.ctime_nsec()))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(plugin, error)),
        }
    }

    /// The policy's verdict on `bytes` as plugin `plugin`, with the signature beside it, and
    /// that signature file's identity.
    fn judge(
        &self,
        trust: &TrustPolicy,
        plugin: &PluginRef,
        bytes: &[u8],
    ) -> Result<(Verdict, Option<SignatureIdentity>), StoreError> {
        let reference = plugin.name.as_str();
        if trust.allows_unsigned(reference) {
            return Ok((Verdict::UnsignedAllowed, self.signature_identity(plugin)?));
        }
        let unreadable = |why: String| {
            let message = format!("its detached signature {why}");
            Verdict::Refused { code: Refusal::SignatureInvalid, message }
        };
        // A FUSE mount's outage is the store's (retried, then 503), not the signature's.
        let outage =
            |error: &io::Error| matches!(error.raw_os_error(), Some(libc::ENOTCONN | libc::EIO | libc::ESTALE));
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(self.signature_path(plugin));
        let file = match opened {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok((trust.judge(reference, &sha256_digest(bytes), &[]), None));
            }
            Err(error) if outage(&error) => return Err(io_error(plugin, error)),
            // A link (`ELOOP` under `O_NOFOLLOW`), a file it may not read, ...: never followed.
            Err(error) => return Ok((unreadable(format!("cannot be opened ({})", error.kind())), None)),
        };
        let meta = file.metadata().map_err(|e| io_error(plugin, e))?;
        let identity = Some((meta.ino(), meta.ctime(), meta.ctime_nsec()));
        if !meta.is_file() {
            return Ok((unreadable("is not a regular file".to_string()), identity));
        }
        let text = match read_at_most(file, MAX_SIGNATURE_BYTES) {
            Ok(text) => text,
            Err(error) if outage(&error) => return Err(io_error(plugin, error)),
            Err(error) => return Ok((unreadable(format!("cannot be read ({})", error.kind())), identity)),
        };
        let signatures: Vec<Signature> = match DetachedSignature::parse(&text).and_then(|detached| detached.entries()) {
            Ok(entries) => entries.into_iter().map(|(payload, signature)| Signature { payload, signature }).collect(),
            Err(error) => return Ok((unreadable(format!("is unreadable: {error}")), identity)),
        };
        Ok((trust.judge(reference, &sha256_digest(bytes), &signatures), identity))
    }

    fn load_unchecked(&self, name: &PluginRef) -> Result<PluginFile, StoreError> {
        let (path, not_a_link) = self.locate(name)?;
        // Refuse what is not a plugin before opening it (a socket cannot even be opened), so
        // that `load` answers exactly as `stat` does.
        if let Some(meta) = &not_a_link {
            self.check_metadata(name, meta)?;
        }
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        // O_NOFOLLOW when the name was not a link: if it became one since, the open fails
        // rather than following it. The type is then checked on the open descriptor, so a file
        // swapped between the checks above and this open cannot slip through.
        let flags = libc::O_NONBLOCK | if not_a_link.is_some() { libc::O_NOFOLLOW } else { 0 };
        let file = OpenOptions::new().read(true).custom_flags(flags).open(&path).map_err(|e| io_error(name, e))?;
        let meta = file.metadata().map_err(|e| io_error(name, e))?;
        let identity = self.check_metadata(name, &meta)?;
        let bytes = read_at_most(file, self.max_bytes).map_err(|e| io_error(name, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(StoreError::TooLarge { name: name.clone(), size: bytes.len() as u64, limit: self.max_bytes });
        }
        Ok(PluginFile { bytes, identity })
    }

    /// Every name with an unversioned plugin file or a version folder, sorted.
    pub fn list(&self) -> io::Result<Vec<PluginName>> {
        let mut names: Vec<PluginName> = fs::read_dir(self.root)?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let file_name = entry.file_name();
                let file_name = file_name.to_string_lossy();
                match PluginName::from_file_name(&file_name) {
                    Some(name) => Some(name),
                    None => PluginName::new(&file_name).ok().filter(|_| entry.file_type().is_ok_and(|t| t.is_dir())),
                }
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The unversioned plugin (if `<name>.wasm` is there at all) and the versions in
    /// `<name>/`. A file there whose name is not `<version>.wasm` is ignored with a warning; a
    /// version folder that is a link is ignored entirely (its files could be anywhere).
    pub fn versions(&self, name: &PluginName) -> io::Result<Versions> {
        let unversioned = match fs::symlink_metadata(self.root.join(name.file_name())) {
            Ok(_) => true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => return Err(error),
        };
        let folder = self.root.join(name.as_str());
        let mut versions = Vec::new();
        match fs::symlink_metadata(&folder) {
            Ok(meta) if meta.is_dir() => {
                for entry in fs::read_dir(&folder)? {
                    let entry = entry?;
                    let file_name = entry.file_name();
                    let file_name = file_name.to_string_lossy();
                    match version_from_file_name(&file_name) {
                        Some(version) => versions.push(version),
                        // Temporary files of an atomic write are expected; anything else is
                        // probably a mistake worth telling the operator about, once per file
                        // and change (listings run on every miss; a warning each time made
                        // 132,000 lines in 5 s).
                        None if file_name.starts_with('.') => {}
                        // Detached signatures (`<version>.wasm.sig`) belong beside their files.
                        None if file_name
                            .strip_suffix(DETACHED_SUFFIX)
                            .is_some_and(|file| version_from_file_name(file).is_some()) => {}
                        // Configuration files live beside the versions they configure.
                        None if super::config::is_config_file_name(&file_name) => {}
                        None => {
                            let identity = entry.metadata().ok().map(|m| (m.ino(), m.len(), m.ctime(), m.ctime_nsec()));
                            if self.warned.first(&(&folder, &*file_name, identity)) {
                                tracing::warn!(plugin = %name, file = %file_name, "ignoring a file in the plugin's version folder: its name is not `<semver>.wasm`");
                            }
                        }
                    }
                }
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                if self.warned.first(&(&folder, meta.ino(), meta.ctime(), meta.ctime_nsec())) {
                    tracing::warn!(plugin = %name, "ignoring the plugin's version folder: it is a symbolic link");
                }
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        versions.sort();
        Ok(Versions { unversioned, versions })
    }

    /// The plugin's path, and its metadata when it is not a symbolic link.
    ///
    /// A validated name and a version have no separators and the root is canonical, so
    /// `<root>/<name>.wasm` is directly inside the root and `<root>/<name>/<version>.wasm`
    /// directly inside the version folder unless it is a link; only a link is followed, and
    /// only if it leads to a file directly inside the same folder. The version folder itself
    /// must be a real directory, not a link.
    fn locate(&self, plugin: &PluginRef) -> Result<(PathBuf, Option<fs::Metadata>), StoreError> {
        let path = self.file_path(plugin);
        let folder = path.parent().expect("a plugin's file is inside a folder");
        if plugin.version.is_some() {
            let meta = fs::symlink_metadata(folder).map_err(|e| io_error(plugin, e))?;
            if !meta.is_dir() {
                return Err(StoreError::NotFound(plugin.clone()));
            }
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(plugin, e))?;
        if !meta.file_type().is_symlink() {
            return Ok((path, Some(meta)));
        }
        let real = path.canonicalize().map_err(|e| io_error(plugin, e))?;
        if real.parent() != Some(folder) {
            return Err(StoreError::NotARegularFile(plugin.clone()));
        }
        Ok((real, None))
    }

    fn check_metadata(&self, name: &PluginRef, meta: &fs::Metadata) -> Result<FileIdentity, StoreError> {
        if !meta.file_type().is_file() {
            return Err(StoreError::NotARegularFile(name.clone()));
        }
        if meta.len() > self.max_bytes {
            return Err(StoreError::TooLarge { name: name.clone(), size: meta.len(), limit: self.max_bytes });
        }
        Ok(FileIdentity {
            size: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            inode: meta.ino(),
            changed: (meta.ctime(), meta.ctime_nsec()),
            digest: None,
            signature: None,
        })
    }
}

/// Reads to the end, but never more than `limit + 1` bytes, so a file that grows while being
/// read cannot make the host allocate without bound.
/// Reads at most one byte more than `limit`, so that the caller can tell a file over the
/// limit from one exactly at it (saturating: a limit of `u64::MAX` reads everything).
fn read_at_most(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn io_error(name: &PluginRef, error: io::Error) -> StoreError {
    match error.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound(name.clone()),
        // A symbolic link that loops, or leads through a non-directory: a name, not a plugin.
        _ if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            StoreError::NotARegularFile(name.clone())
        }
        _ => StoreError::Io { context: format!("reading plugin `{name}`"), source: error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_at_most_a_limit_reads_one_byte_past_it_and_never_overflows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_at_most(File::open(&path).unwrap(), 4).unwrap(), b"01234");
        assert_eq!(read_at_most(File::open(&path).unwrap(), u64::MAX).unwrap(), b"0123456789");
    }
}
