//! What a show says about its model, defined once: a show preset reads it (serde), the
//! daemon compares it whole when the config changes and hands it to the element in one
//! typed call, the element's properties read into it for `gst-launch-1.0` users, and the
//! engine starts from it. Every check of a value is here, so each front door refuses the
//! same values with the same words, naming the field and what it allows.

use crate::generator::package::{Package, MANIFEST};
use crate::EngineError;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{FailurePolicy, Fallback};
use super::MAX_MODEL_THREADS;
use crate::device::DeviceSpec;
use crate::worker::sandbox::ModelFolder;

/// The model a show runs and how it runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    pub backend: Backend,
    /// The model package folder (torchscript, python).
    pub model: Option<PathBuf>,
    pub device: DeviceSpec,
    pub seed: u64,
    pub prompt: String,
    /// libtorch's threads for the model (`None`: [`super::default_model_threads`]).
    pub model_threads: Option<u32>,
    /// What happens when steps keep failing.
    pub on_failure: FailurePolicy,
    /// The most the model's state may hold, in MB (2^20 bytes); beyond it the model is
    /// reset.
    pub state_limit_mb: Option<f64>,
    /// The interpreter a `python` model runs in (else its manifest's, else
    /// `CUECAST_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
    /// What the show draws while a chunked model's process is down.
    pub fallback: Fallback,
    /// The image the model starts from (a file in the media folder).
    pub image: Option<String>,
    /// The longest wait between restarts of a model's process, in seconds (`None`:
    /// 10). The first restart is at once, then 0.5, 1, 2, 4, 8 s.
    pub restart_max_s: Option<f64>,
    /// A chunked model slower than the show: show frames between two of its frames mix
    /// them instead of repeating the first.
    pub frame_blend: bool,
    /// Environment variables a python model's process gets beside the ones every model
    /// gets (`worker::PASSED_ENV`): none of the show's secrets reach it unless named.
    pub model_env: Vec<String>,
    /// A python model may reach the network; off, its sandbox has none.
    pub model_network: bool,
    /// Folders beyond its package a python model may read (weights), or write (`:rw`).
    pub model_folders: Vec<ModelFolder>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            backend: Backend::Procedural,
            model: None,
            device: DeviceSpec::Auto,
            seed: 0,
            prompt: DEFAULT_PROMPT.into(),
            model_threads: None,
            on_failure: FailurePolicy::default(),
            state_limit_mb: None,
            python: None,
            fallback: Fallback::Hold,
            image: None,
            restart_max_s: None,
            frame_blend: false,
            model_env: Vec::new(),
            model_network: false,
            model_folders: Vec::new(),
        }
    }
}

/// The prompt a show starts from when it names none.
pub const DEFAULT_PROMPT: &str = "rolling green hills";
/// The most folders a show may give its model.
pub const MAX_MODEL_FOLDERS: usize = 64;

/// A value refused: the field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub field: String,
    pub message: String,
}

impl SettingError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SettingError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ModelSettings {
    /// Checks every value that has a range; the error names the field.
    pub fn check(&self) -> Result<(), SettingError> {
        let max_threads = MAX_MODEL_THREADS as u32;
        if let Some(n) = self
            .model_threads
            .filter(|n| !(1..=max_threads).contains(n))
        {
            return Err(SettingError::new(
                "model_threads",
                format!("{n} is not a thread count from 1 to {max_threads}"),
            ));
        }
        if !(1..=1_000_000).contains(&self.on_failure.after) {
            return Err(SettingError::new(
                "on_failure.after",
                format!(
                    "{} is not a count of failed steps from 1 to 1000000",
                    self.on_failure.after
                ),
            ));
        }
        match self.state_limit_mb {
            Some(mb) if mb <= 0.0 => {
                return Err(SettingError::new(
                    "state_limit_mb",
                    format!("{mb} MB leaves no room for any state; leave it out for no limit"),
                ))
            }
            Some(mb) if !mb.is_finite() || mb > 1e9 => {
                return Err(SettingError::new(
                    "state_limit_mb",
                    format!("{mb} is not a number of MB up to 1000000000"),
                ))
            }
            _ => {}
        }
        if let Some(s) = self.restart_max_s.filter(|s| !(0.0..=3600.0).contains(s)) {
            return Err(SettingError::new(
                "restart_max_s",
                format!("{s} is not a number of seconds from 0 to 3600"),
            ));
        }
        if let Some(name) = self
            .image
            .as_deref()
            .filter(|n| !crate::cue::is_image_name(n))
        {
            return Err(SettingError::new(
                "image",
                format!("{name:?} is not the name of a .png or .jpg file in the media folder"),
            ));
        }
        for (i, name) in self.model_env.iter().enumerate() {
            if !is_env_name(name) {
                return Err(SettingError::new(
                    format!("model_env[{i}]"),
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        if self.model_folders.len() > MAX_MODEL_FOLDERS {
            return Err(SettingError::new(
                "model_folders",
                format!(
                    "at most {MAX_MODEL_FOLDERS} folders, got {}",
                    self.model_folders.len()
                ),
            ));
        }
        if matches!(self.backend, Backend::Python | Backend::Aoti) && self.model.is_none() {
            return Err(SettingError::new(
                "model",
                format!("the {} backend needs model: <package folder>", self.backend),
            ));
        }
        Ok(())
    }

    /// The contract 2 package this backend runs, read and checked, or `None` for a
    /// backend that makes one frame at a time (procedural, pattern, a contract 1
    /// TorchScript package). The package's runtime must be the backend's.
    pub fn package(&self) -> Result<Option<Package>, EngineError> {
        let Some(dir) = self.model.as_deref() else {
            return Ok(None);
        };
        let wants = match self.backend {
            Backend::Python => "python",
            Backend::Aoti => "aoti",
            Backend::TorchScript => {
                let dir = crate::generator::torchscript::package_dir(dir);
                let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap_or_default();
                if crate::generator::package::contract_of(&text) != Ok(2) {
                    return Ok(None);
                }
                "torchscript"
            }
            _ => return Ok(None),
        };
        let package = Package::load(dir)?;
        let runtime = package.runtime.name();
        if runtime != wants {
            return Err(EngineError::Model {
                path: dir.to_owned(),
                message: format!(
                    "{MANIFEST}: runtime: {runtime}: load it with backend {runtime} (not {})",
                    self.backend
                ),
            });
        }
        Ok(Some(package))
    }

    /// The state limit in bytes.
    pub fn state_limit_bytes(&self) -> Option<u64> {
        self.state_limit_mb.map(|mb| (mb * 1_048_576.0) as u64)
    }
}

/// `NAME`: letters, digits and `_`, not starting with a digit (what a shell exports), at
/// most 128 characters.
pub fn is_env_name(n: &str) -> bool {
    n.len() <= 128
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What makes the frames: the built-in runtimes, or a backend a program registered
/// (`generator::register_backend`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// The procedural world: no weights.
    #[default]
    Procedural,
    /// A contract 1 TorchScript package, in process.
    TorchScript,
    /// A model's own Python code in a worker process.
    Python,
    /// A contract 2 AOTInductor package (`model.pt2`), in process.
    Aoti,
    /// A test pattern.
    Pattern,
    /// A backend registered by name.
    Registered(String),
}

impl Backend {
    pub fn name(&self) -> &str {
        match self {
            Backend::Procedural => "procedural",
            Backend::TorchScript => "torchscript",
            Backend::Python => "python",
            Backend::Aoti => "aoti",
            Backend::Pattern => "pattern",
            Backend::Registered(n) => n,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// A built-in runtime, or a backend registered in this process.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "procedural" => Backend::Procedural,
            "torchscript" => Backend::TorchScript,
            "python" => Backend::Python,
            "aoti" => Backend::Aoti,
            "pattern" => Backend::Pattern,
            other => {
                let known = crate::generator::backend_names();
                if !known.iter().any(|k| k == other) {
                    return Err(format!(
                        "unknown backend {other:?}: expected one of {}",
                        known.join(", ")
                    ));
                }
                Backend::Registered(other.to_owned())
            }
        })
    }
}

impl Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrong_value_is_refused_by_its_field() {
        let ok = ModelSettings::default();
        ok.check().unwrap();
        let cases: Vec<(ModelSettings, &str)> = vec![
            (
                ModelSettings {
                    model_threads: Some(0),
                    ..ok.clone()
                },
                "model_threads",
            ),
            (
                ModelSettings {
                    state_limit_mb: Some(0.0),
                    ..ok.clone()
                },
                "state_limit_mb",
            ),
            (
                ModelSettings {
                    restart_max_s: Some(-1.0),
                    ..ok.clone()
                },
                "restart_max_s",
            ),
            (
                ModelSettings {
                    image: Some("../x.png".into()),
                    ..ok.clone()
                },
                "image",
            ),
            (
                ModelSettings {
                    model_env: vec!["A".into(), "1BAD".into()],
                    ..ok.clone()
                },
                "model_env[1]",
            ),
            (
                ModelSettings {
                    backend: Backend::Python,
                    ..ok.clone()
                },
                "model",
            ),
        ];
        for (s, field) in cases {
            assert_eq!(s.check().unwrap_err().field, field, "{s:?}");
        }
        assert!("nope"
            .parse::<Backend>()
            .unwrap_err()
            .contains("expected one of"));
        assert_eq!("python".parse::<Backend>(), Ok(Backend::Python));
    }

    #[test]
    fn settings_read_from_yaml_as_a_show_writes_them() {
        let s: ModelSettings = serde_yaml::from_str(
            "backend: python\nmodel: /m\ndevice: cuda:1\nfallback: still:a.png\non_failure: {after: 5, action: hold}\nmodel_folders: [\"/w:rw\"]\n",
        )
        .unwrap();
        assert_eq!(s.backend, Backend::Python);
        assert_eq!(s.device, DeviceSpec::Cuda(1));
        assert_eq!(s.fallback, Fallback::Still("a.png".into()));
        assert!(s.model_folders[0].writable);
        let e = serde_yaml::from_str::<ModelSettings>("backend: nope\n").unwrap_err();
        assert!(e.to_string().contains("expected one of"), "{e}");
    }
}
