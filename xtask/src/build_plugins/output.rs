//! A plugin's output file in the folder the host serves: written under a temporary name next to
//! it, moved into place only once it passed its check, and removed when the plugin fails.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::Context;

/// A file being written next to its final name. It is removed if it is never persisted, so a
/// failed compile leaves no debris in a folder a server reads.
#[derive(Debug)]
pub(super) struct PartialFile {
    path: PathBuf,
    persisted: bool,
}

impl PartialFile {
    /// A name for the new version of `output`, in `output`'s folder (created if need be), so
    /// that moving it into place is one atomic rename.
    pub(super) fn next_to(output: &Path) -> anyhow::Result<Self> {
        let folder = output.parent().context("an output path always has a folder")?;
        fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
        // Unique per process and per call, since tests build the same plugins concurrently. The
        // leading dot and the suffix keep servers that look for `*.wasm` from picking it up.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = output.file_name().unwrap_or_default().to_string_lossy();
        let path = output.with_file_name(format!(".{name}.{}-{unique}.partial", std::process::id()));
        Ok(Self { path, persisted: false })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn persist(mut self, output: &Path) -> anyhow::Result<()> {
        fs::rename(&self.path, output).with_context(|| format!("cannot move {} into place", output.display()))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.persisted {
            // The file may never have been created; either way there is nothing left to do.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes an older build of a plugin that has just failed its check, if there is one: the host
/// serves this folder, and the next run must not call that output up to date.
pub(super) fn remove_stale(output: &Path) -> io::Result<()> {
    match fs::remove_file(output) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, time::SystemTime};

    use crate::test_support::{Harness, scratch_plugin};

    #[test]
    fn an_example_that_breaks_the_abi_fails_and_leaves_the_served_folder() {
        let harness = Harness::new();
        // As an example, the float fixture must fail: examples may break no rule at all.
        let source = harness.float_fixture_with("");
        let (_dir, plugin) = scratch_plugin("float/float.c", &source);
        // An older, good build of the plugin is being served.
        let served = harness.out.path().join("float.wasm");
        fs::write(&served, b"an older build").unwrap();
        fs::File::options().write(true).open(&served).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();

        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("the plugin breaks the ABI"), "{err}");
        assert!(err.contains("error[float-instruction]"), "{err}");
        assert!(!served.exists(), "a failing plugin is not left in the served folder");
        let leftovers = fs::read_dir(harness.out.path()).unwrap().count();
        assert_eq!(leftovers, 0, "no partial file is left behind either");
    }
}
