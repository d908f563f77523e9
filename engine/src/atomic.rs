//! Files written whole or not at all, and still there after a power cut.
//!
//! A manifest, a ready file or a checkpoint that a reader finds half written is worse
//! than none: it is written to a temporary file beside its place (`tempfile`, so two
//! writers never share one), synced, renamed over the old one, and the folder is synced
//! too, because a rename lives in the folder and is not durable until the folder is.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The temporary files' names: `.NAME.XXXXXX.tmp`, hidden from listings and found again
/// by [`is_leftover`] when a process was killed between the write and the rename.
const SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut f = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(SUFFIX)
        .tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    f.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The folder `path` is in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether a file name is what [`write`] leaves behind when killed mid-write.
pub fn is_leftover(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(SUFFIX) && !name.contains(".tmp-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("take.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["take.json"]);
        // What a kill between write and rename would leave is recognised as such.
        assert!(is_leftover(".take.json.a1B2c3.tmp"));
        assert!(!is_leftover("take.json") && !is_leftover(".t1.tmp-4194305"));
    }

    #[test]
    fn a_write_into_a_missing_folder_fails_and_names_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/take.json");
        assert!(write(&path, b"x").is_err());
        assert!(!path.exists());
    }
}
