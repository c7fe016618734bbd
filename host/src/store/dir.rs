//! Plugin files in one directory: the filesystem rules both stores share.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use super::{FileIdentity, PluginFile, PluginName, StoreError};

/// `<root>/<name>.wasm` files, where `root` is canonical. Anything that is not a regular file
/// inside the root (a symlink pointing outside, a directory, FIFO or device named like a
/// plugin, a file over the size limit) is refused without being read.
#[derive(Debug, Clone)]
pub(super) struct PluginDir<'a> {
    pub root: &'a Path,
    pub max_bytes: u64,
}

impl PluginDir<'_> {
    /// Runs on every call, so the common case (a plain file, no link) costs one `lstat`.
    pub fn stat(&self, name: &PluginName) -> Result<FileIdentity, StoreError> {
        let (path, meta) = self.locate(name)?;
        let meta = match meta {
            Some(meta) => meta,
            None => fs::metadata(&path).map_err(|e| io_error(name, e))?,
        };
        self.check_metadata(name, &meta)
    }

    pub fn load(&self, name: &PluginName) -> Result<PluginFile, StoreError> {
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

    pub fn list(&self) -> io::Result<Vec<PluginName>> {
        let mut names: Vec<PluginName> = fs::read_dir(self.root)?
            .filter_map(|entry| PluginName::from_file_name(&entry.ok()?.file_name().to_string_lossy()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The plugin's path, and its metadata when it is not a symbolic link.
    ///
    /// A validated name has no separators and the root is canonical, so `<root>/<name>.wasm`
    /// is directly inside the root unless it is a link; only a link is followed, and only if
    /// it leads to a file directly inside the root.
    fn locate(&self, name: &PluginName) -> Result<(PathBuf, Option<fs::Metadata>), StoreError> {
        let path = self.root.join(name.file_name());
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(name, e))?;
        if !meta.file_type().is_symlink() {
            return Ok((path, Some(meta)));
        }
        let real = path.canonicalize().map_err(|e| io_error(name, e))?;
        if real.parent() != Some(self.root) {
            return Err(StoreError::NotARegularFile(name.clone()));
        }
        Ok((real, None))
    }

    fn check_metadata(&self, name: &PluginName, meta: &fs::Metadata) -> Result<FileIdentity, StoreError> {
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
        })
    }
}

/// Reads to the end, but never more than `limit + 1` bytes, so a file that grows while being
/// read cannot make the host allocate without bound.
fn read_at_most(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn io_error(name: &PluginName, error: io::Error) -> StoreError {
    match error.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound(name.clone()),
        // A symbolic link that loops, or leads through a non-directory: a name, not a plugin.
        _ if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            StoreError::NotARegularFile(name.clone())
        }
        _ => StoreError::Io { context: format!("reading plugin `{name}`"), source: error },
    }
}
