//! `cargo xtask keygen`: writes a new ECDSA P-256 key pair for signing plugins.
//!
//! The private key is unencrypted PKCS#8 PEM in a file only its owner can read (mode 0600,
//! never replacing an existing file); the public key is PEM SubjectPublicKeyInfo, the form a
//! trust policy names (and cosign's `--key` verification takes). See docs/signing.md.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use plugin_signature::PrivateKey;
use xshell::Shell;

use crate::step;

#[derive(Debug, clap::Args)]
pub struct Keygen {
    /// Where to write: `<OUT>.key` (private, mode 0600) and `<OUT>.pub` (public).
    #[arg(long, default_value = "plugin-signing")]
    out: PathBuf,
}

impl Keygen {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        let (private, public) = write_key_pair(&self.out)?;
        step(format!(
            "wrote the private key {} (keep it secret) and the public key {} (name it in a trust policy)",
            private.display(),
            public.display()
        ));
        Ok(())
    }
}

/// Writes `<out>.key` and `<out>.pub`; refuses to replace either.
pub fn write_key_pair(out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let private = out.with_extension("key");
    let public = out.with_extension("pub");
    if public.exists() {
        anyhow::bail!("{} exists: keygen never replaces a key", public.display());
    }
    let key = PrivateKey::generate();
    // Created with mode 0600 from the start: the key is never readable by others, not even
    // for a moment.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .with_context(|| format!("creating {} (keygen never replaces a key)", private.display()))?;
    file.write_all(key.to_pkcs8_pem().as_bytes())?;
    file.sync_all()?;
    fs::write(&public, key.public_key().to_pem()).with_context(|| format!("writing {}", public.display()))?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use plugin_signature::PublicKey;

    use super::*;

    #[test]
    fn writes_a_private_key_only_its_owner_reads_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("release");
        let (private, public) = write_key_pair(&out).unwrap();
        assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        let key = PrivateKey::from_pem(&fs::read_to_string(&private).unwrap()).unwrap();
        assert_eq!(PublicKey::from_pem(&fs::read_to_string(&public).unwrap()).unwrap(), key.public_key());
        let before = fs::read(&private).unwrap();
        assert!(write_key_pair(&out).is_err());
        assert_eq!(fs::read(&private).unwrap(), before, "the key was not replaced");
    }
}
