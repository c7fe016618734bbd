//! A directory of `<name>.wasm` files on a local filesystem.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use super::{FileIdentity, PluginFile, PluginName, PluginStore, StoreError};

/// Serves `<root>/<name>.wasm`. Refuses anything that is not a regular file inside the root
/// (a symlink pointing outside, a directory, FIFO or device named like a plugin, a file over
/// the size limit) without reading it.
#[derive(Debug)]
pub struct LocalPluginStore {
    /// Canonical, so that "inside the root" can be checked on canonical paths.
    root: PathBuf,
    max_bytes: u64,
}

impl LocalPluginStore {
    /// Fails if `root` is not an existing directory.
    pub fn new(root: impl AsRef<Path>, max_bytes: u64) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", root.display())));
        }
        Ok(LocalPluginStore { root, max_bytes })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The plugin's path after following links, if it stays inside the root.
    fn resolve(&self, name: &PluginName) -> Result<PathBuf, StoreError> {
        let path = self.root.join(name.file_name());
        let real = path.canonicalize().map_err(|e| io_error(name, e))?;
        if real.parent() != Some(self.root.as_path()) {
            return Err(StoreError::NotARegularFile(name.clone()));
        }
        Ok(real)
    }

    fn check_metadata(&self, name: &PluginName, meta: &fs::Metadata) -> Result<FileIdentity, StoreError> {
        if !meta.file_type().is_file() {
            return Err(StoreError::NotARegularFile(name.clone()));
        }
        if meta.len() > self.max_bytes {
            return Err(StoreError::TooLarge { name: name.clone(), size: meta.len(), limit: self.max_bytes });
        }
        Ok(identity(meta))
    }
}

impl PluginStore for LocalPluginStore {
    fn stat(&self, name: &PluginName) -> Result<FileIdentity, StoreError> {
        let path = self.resolve(name)?;
        let meta = fs::metadata(&path).map_err(|e| io_error(name, e))?;
        self.check_metadata(name, &meta)
    }

    fn load(&self, name: &PluginName) -> Result<PluginFile, StoreError> {
        let path = self.resolve(name)?;
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        // The type is then checked on the open descriptor, so a file swapped between the
        // checks above and this open cannot slip through.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| io_error(name, e))?;
        let meta = file.metadata().map_err(|e| io_error(name, e))?;
        let identity = self.check_metadata(name, &meta)?;
        let bytes = read_at_most(file, self.max_bytes).map_err(|e| io_error(name, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(StoreError::TooLarge { name: name.clone(), size: bytes.len() as u64, limit: self.max_bytes });
        }
        Ok(PluginFile { bytes, identity })
    }

    fn list(&self) -> Result<Vec<PluginName>, StoreError> {
        let entries = fs::read_dir(&self.root).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut names: Vec<PluginName> = entries
            .flatten()
            .filter_map(|entry| PluginName::from_file_name(&entry.file_name().to_string_lossy()))
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

/// Reads to the end, but never more than `limit + 1` bytes, so a file that grows while being
/// read cannot make the host allocate without bound.
fn read_at_most(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn identity(meta: &fs::Metadata) -> FileIdentity {
    FileIdentity {
        size: meta.len(),
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
        inode: meta.ino(),
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

fn io_error(name: &PluginName, error: io::Error) -> StoreError {
    match error.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound(name.clone()),
        _ => StoreError::Io { name: name.clone(), source: error },
    }
}
