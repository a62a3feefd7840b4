//! The data directory holds the SQLite store and the secrets key: only the
//! engine's user may read it. New files are private through the process's
//! umask; a directory made by an earlier version (or by hand) is tightened
//! at start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Files and directories the engine creates from now on are its user's
/// alone (SQLite's `-wal` and `-shm` files, the secrets key, sandboxes'
/// working directories).
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Makes the data directory `0700` and everything in it `0600` (its
/// directories `0700`) where others had any access, logging each change. Symbolic links are left
/// alone. A directory that does not exist yet is made later, privately.
pub fn tighten(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => tighten_tree(dir, &meta),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

fn tighten_tree(dir: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    set_mode(dir, meta, DIR_MODE)?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            tighten_tree(&path, &meta)?;
        } else if meta.is_file() {
            set_mode(&path, &meta, FILE_MODE)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, meta: &std::fs::Metadata, mode: u32) -> anyhow::Result<()> {
    let was = meta.permissions().mode() & 0o7777;
    if was & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making {} private", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{was:o}"),
        now = format!("{mode:o}"),
        "the data directory was readable by others: tightened"
    );
    Ok(())
}
