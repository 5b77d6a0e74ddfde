//! Durable directory operations. A new file, a rename or a removal is only durable once its
//! directory is fsynced, and a new directory only once its parent is: without that, a power
//! loss right after the first start can lose the whole `wal/` directory.
//!
//! Files only: this module never decides what to create or remove.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::failpoint;

/// Make the directory entries in `dir` durable (after creating, renaming or removing a file).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    failpoint::hit("dir.sync")?;
    File::open(dir)?.sync_all()
}

/// Create `dir` and any missing ancestors, fsyncing each new directory's parent so the
/// directories survive a power loss. A directory that exists already is left alone.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Made meanwhile by someone else: its creator syncs it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    failpoint::hit("dir.create")?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_accepts_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        sync_dir(&deep).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(create_dir_all(&file.join("sub")).is_err());
    }
}
