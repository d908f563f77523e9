//! Why an export failed; every error names the file, folder or input at fault.

use std::path::{Path, PathBuf};

use cuecast_engine::FileError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A format name that is not one of [`crate::Format::all`].
    #[error("unknown export format {name:?}: expected one of {known}")]
    UnknownFormat { name: String, known: String },
    #[error("no export format given: expected one or more of {known}")]
    NoFormats { known: String },
    /// The output folder is there already and `force` was not given.
    #[error("{}: exists already; export with force to replace it", path.display())]
    Exists { path: PathBuf },
    /// The take cannot be exported as asked (no frames, no depth, …).
    #[error("take {}: {message}", path.display())]
    Take { path: PathBuf, message: String },
    /// A take file cannot be read.
    #[error(transparent)]
    TakeFile(#[from] FileError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be encoded (PNG, EXR, ProRes).
    #[error("{}: {message}", path.display())]
    Encode { path: PathBuf, message: String },
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn encode(path: &Path, message: impl std::fmt::Display) -> Self {
        ExportError::Encode {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ExportError::UnknownFormat { .. } | ExportError::NoFormats { .. } => None,
            ExportError::Exists { path }
            | ExportError::Take { path, .. }
            | ExportError::Io { path, .. }
            | ExportError::Encode { path, .. } => Some(path),
            ExportError::TakeFile(e) => Some(&e.path),
        }
    }
}
