//! Secret volumes as kubelet makes them: the host's bearer tokens file, with a client of the
//! smoke test's own, in a folder bind-mounted read-only where the Deployment mounts the Secret.
//!
//! kubelet writes a Secret's files into a timestamped folder, points the symlink `..data` at
//! it, and gives each file a symlink through `..data`; an update writes a new folder and
//! renames a new `..data` over the old one. The smoke test does the same, so the host is shown
//! to read a real Secret mount's layout and to see an update without a restart.

use std::{
    fs,
    io::Read,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// A folder laid out as a Secret volume, with one file.
#[derive(Debug)]
pub(super) struct SecretFolder {
    root: PathBuf,
    file: String,
    generation: u32,
}

impl SecretFolder {
    /// A new folder at `root` (which must not exist) holding `file` with `contents`.
    pub(super) fn new(root: PathBuf, file: &str, contents: &str) -> anyhow::Result<Self> {
        fs::create_dir_all(&root)?;
        let mut folder = SecretFolder { root, file: file.to_owned(), generation: 0 };
        folder.update(contents)?;
        symlink(format!("..data/{file}"), folder.root.join(file))?;
        Ok(folder)
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Replaces the file's contents as kubelet does: a new folder, `..data` renamed over.
    pub(super) fn update(&mut self, contents: &str) -> anyhow::Result<()> {
        let old = format!("..generation_{}", self.generation);
        self.generation += 1;
        let new = format!("..generation_{}", self.generation);
        fs::create_dir(self.root.join(&new))?;
        fs::write(self.root.join(&new).join(&self.file), contents)?;
        symlink(&new, self.root.join("..data_tmp"))?;
        fs::rename(self.root.join("..data_tmp"), self.root.join("..data"))?;
        if self.generation > 1 {
            fs::remove_dir_all(self.root.join(old))?;
        }
        Ok(())
    }
}

/// A new bearer token: 32 random bytes from the kernel, in hex.
pub(super) fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A tokens file (the README's format) whose one client, `rootfs-smoke`, may do everything.
pub(super) fn tokens_file(token: &str) -> String {
    let hash: String = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({"clients": [{
        "name": "rootfs-smoke", "token_sha256": hash, "plugins": ["*"], "listings": true, "metrics": true,
    }]})
    .to_string()
}
