//! A plugin's output file in the folder the host serves: written under a temporary name next to
//! it, moved into place only once it passed its check, and removed when the plugin fails.

use std::{fs, io, os::unix::fs::PermissionsExt, path::Path};

use anyhow::Context;
use tempfile::NamedTempFile;

/// A new, empty file for the next build of `output`, in `output`'s folder (created if need be)
/// so that [`persist`] is one atomic rename. Dropped without being persisted, it is removed, so a
/// failed build leaves no debris in a folder a server reads. Whoever writes it may replace the
/// file at its path (the linker does), as long as the returned value still owns that path.
pub(super) fn partial_file(output: &Path) -> anyhow::Result<NamedTempFile> {
    let folder = output.parent().context("an output path always has a folder")?;
    fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    // The leading dot and the suffix keep servers that look for `*.wasm` from picking it up; the
    // random part keeps builds of the same plugin apart (tests run them concurrently).
    let prefix = format!(".{}.", output.file_name().unwrap_or_default().to_string_lossy());
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".partial")
        // tempfile makes files only their owner may read; an output is for the server to read,
        // so it gets what any new file gets (0o666 less the umask).
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(folder)
        .with_context(|| format!("cannot create a temporary file in {}", folder.display()))
}

/// Moves a partial file whose content passed its check into place, replacing an older build.
pub(super) fn persist(partial: NamedTempFile, output: &Path) -> anyhow::Result<()> {
    // A failed rename hands the file back in the error; dropping it here removes it.
    partial
        .persist(output)
        .map_err(|err| err.error)
        .with_context(|| format!("cannot move {} into place", output.display()))?;
    Ok(())
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
