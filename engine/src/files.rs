//! Files cuecast writes for keeps (takes, checkpoints, manifests, the ready file) and
//! the rules they share: one error type that names the file and says what kind of trouble
//! it is; writes that are whole or absent, and still there after a power cut; names that
//! cannot leave their folder; the temporary folders a killed process leaves, found and
//! removed; UTC stamps for names and manifests.
//!
//! Atomic writes: a manifest, a ready file or a checkpoint that a reader finds half
//! written is worse than none. It is written to a temporary file beside its place
//! (`tempfile`, so two writers never share one), synced, renamed over the old one, and
//! the folder is synced too, because a rename lives in the folder and is not durable
//! until the folder is.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// Why a take or checkpoint cannot be written or read; `path` is the file at fault and
/// `kind` what went wrong, for callers that answer differently (an HTTP status).
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub kind: FileErrorKind,
    pub message: String,
}

/// What kind of trouble a [`FileError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileErrorKind {
    /// Something of that name exists already.
    Exists,
    /// There is no such take or checkpoint.
    NotFound,
    /// It is there but not what it should be (a bad manifest, a cut file).
    Invalid,
    /// The file system refused (full disk, permissions).
    Io,
}

impl FileError {
    /// A file that is there but is not what it should be.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        FileError {
            path: path.to_owned(),
            kind: FileErrorKind::Invalid,
            message: message.into(),
        }
    }

    pub fn exists(path: &Path, message: impl Into<String>) -> Self {
        FileError {
            kind: FileErrorKind::Exists,
            ..FileError::new(path, message)
        }
    }

    pub fn not_found(path: &Path, message: impl Into<String>) -> Self {
        FileError {
            kind: FileErrorKind::NotFound,
            ..FileError::new(path, message)
        }
    }

    pub fn io(path: &Path, e: std::io::Error) -> Self {
        FileError {
            kind: FileErrorKind::Io,
            ..FileError::new(path, e.to_string())
        }
    }
}

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

/// Writes `value` as JSON to `path` whole or not at all (see [`write`]).
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), FileError> {
    let mut text =
        serde_json::to_vec_pretty(value).map_err(|e| FileError::new(path, e.to_string()))?;
    text.push(b'\n');
    write(path, &text).map_err(|e| FileError::io(path, e))
}

/// A take name: letters, digits, `.`, `_`, `-`, not starting with `.`; so it can never
/// leave the folder it is made in.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1-100 letters, digits, '.', '_' or '-', not starting with '.'"
        ))
    }
}

/// `.NAME.tmp-PID` beside `dir`: where a take or checkpoint is built before it is
/// renamed into place (a leading dot keeps it out of listings).
pub fn temporary_beside(dir: &Path) -> Result<PathBuf, FileError> {
    let name = dir
        .file_name()
        .ok_or_else(|| FileError::new(dir, "not a folder name"))?
        .to_string_lossy();
    Ok(dir.with_file_name(format!(".{name}.tmp-{}", std::process::id())))
}

/// Removes what a killed cuecast left of its own temporary folders in `folder`
/// (`.NAME.tmp-PID` whose process is gone); returns their names.
pub fn remove_leftovers(folder: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(folder) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // A manifest write cut between its temporary file and the rename leaves the
        // temporary beside the last complete manifest.
        if e.path().is_dir() && !name.starts_with('.') {
            for inner in fs::read_dir(e.path()).into_iter().flatten().flatten() {
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if is_leftover(&inner_name) && fs::remove_file(inner.path()).is_ok() {
                    removed.push(format!("{name}/{inner_name}"));
                }
            }
        }
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && fs::remove_dir_all(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// `2026-11-21T16:30:00Z`.
pub fn utc_iso(t: SystemTime) -> String {
    let [y, mo, d, h, mi, s] = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261121-163000`: a UTC time that sorts and fits in a file name.
pub fn utc_stamp(t: SystemTime) -> String {
    let [y, mo, d, h, mi, s] = utc_fields(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Year, month, day, hour, minute, second.
fn utc_fields(t: SystemTime) -> [i32; 6] {
    let t = utc(t);
    [
        t.year(),
        i32::from(u8::from(t.month())),
        i32::from(t.day()),
        i32::from(t.hour()),
        i32::from(t.minute()),
        i32::from(t.second()),
    ]
}

/// A clock before 1970 (a machine without RTC) reads as the epoch, not a panic.
fn utc(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t.max(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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

    #[test]
    fn utc_stamps_are_civil_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_stamp(t), "20261118-110640");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2000-02-29 12:34:56 UTC
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_827_696)),
            "20000229-123456"
        );
    }

    #[test]
    fn iso_times_are_the_same_instant() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_iso(t), "2026-11-18T11:06:40Z");
    }
}

#[cfg(test)]
mod leftover_tests {
    use super::*;

    #[test]
    fn leftovers_of_dead_processes_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("cuecast-leftovers-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // A pid that cannot be running (above the kernel's pid_max).
        let dead = dir.join(".t1.tmp-4194305");
        let ours = temporary_beside(&dir.join("t2")).unwrap();
        for d in [&dead, &ours, &dir.join("t3"), &dir.join(".hidden")] {
            fs::create_dir_all(d).unwrap();
        }
        // t3's manifest was being rewritten when the process died.
        fs::write(dir.join("t3/take.json"), "{}").unwrap();
        fs::write(dir.join("t3/.take.json.Xy12ab.tmp"), "{\"fo").unwrap();
        let mut removed = remove_leftovers(&dir);
        removed.sort();
        assert_eq!(removed, [".t1.tmp-4194305", "t3/.take.json.Xy12ab.tmp"]);
        assert!(
            !dead.exists()
                && ours.exists()
                && dir.join("t3/take.json").exists()
                && !dir.join("t3/.take.json.Xy12ab.tmp").exists()
                && dir.join(".hidden").exists()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
