//! One worker's folders: what the model and cuecast share (its socket, state files, the
//! worker script, its `/tmp`), private to cuecast's user (and the model's), on tmpfs
//! where there is one, and removed with the worker.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// One worker's folders, on tmpfs (`/dev/shm`) where there is one, all 0700: `model`
/// (what the model's process may open: socket, state files, the worker script), `tmp`
/// (its `/tmp`), and the folder itself, where cuecast keeps the state files it reads
/// and writes, out of the model's reach.
pub(super) struct RuntimeDir {
    root: tempfile::TempDir,
    pub(super) model: PathBuf,
    pub(super) tmp: PathBuf,
    /// The user the model runs as, when not cuecast's: its folders are that user's.
    uid: Option<u32>,
}

impl RuntimeDir {
    pub(super) fn new(uid: Option<u32>) -> std::io::Result<RuntimeDir> {
        let root = runtime_dir()?;
        let sub = |name: &str| -> std::io::Result<PathBuf> {
            let p = root.path().join(name);
            std::fs::DirBuilder::new().mode(0o700).create(&p)?;
            if let Some(uid) = uid {
                std::os::unix::fs::chown(&p, Some(uid), Some(uid))?;
            }
            Ok(p)
        };
        let (model, tmp) = (sub("model")?, sub("tmp")?);
        Ok(RuntimeDir {
            root,
            model,
            tmp,
            uid,
        })
    }

    /// Gives a file cuecast made in the model's folder to the model's user.
    pub(super) fn hand(&self, path: &Path) -> std::io::Result<()> {
        match self.uid {
            Some(uid) => std::os::unix::fs::chown(path, Some(uid), Some(uid)),
            None => Ok(()),
        }
    }

    /// cuecast's own folder (the model cannot reach it).
    pub(super) fn private(&self) -> &Path {
        self.root.path()
    }
}

/// A private folder for one worker: on tmpfs (`/dev/shm`) where there is one, 0700.
/// Folders left by a cuecast that was killed are removed first.
fn runtime_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("cuecast-worker-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only asks whether the process exists (ESRCH: it
            // does not; EPERM: it does, another user's).
            let gone = pid.is_some_and(|p| {
                let r = unsafe { libc::kill(p, 0) };
                r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            });
            if gone {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("cuecast-worker-{}-", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(base)
}
