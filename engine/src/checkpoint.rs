//! Checkpoints: everything needed to resume a scene at exactly the frame it was saved.
//!
//! A checkpoint is a folder with `checkpoint.json` (model id and hash, seed, camera,
//! prompt, params, the frame, software versions, and the whole world state: camera rig,
//! ramps, transitions) and `state.safetensors` (the backend's state tensors). The world
//! is stored as JSON with floats written shortest-exact, so it reads back bit for bit.
//!
//! Written atomically: into a hidden temporary folder beside the target, synced, then
//! renamed, so a checkpoint either exists whole or not at all.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::camera::Pose;
use crate::generator::Fps;
use crate::take::{FileError, ModelId, Software};
use crate::world::World;

pub const CHECKPOINT_FORMAT: &str = "cuecast-checkpoint/1";
const MANIFEST: &str = "checkpoint.json";
const STATE: &str = "state.safetensors";

/// `checkpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointManifest {
    pub format: String,
    pub model: ModelId,
    pub seed: u64,
    pub camera: Pose,
    pub prompt: String,
    pub params: BTreeMap<String, f64>,
    /// The last show frame made before saving (`None`: saved before the first).
    pub frame: Option<u64>,
    /// The same frame on the world's own clock.
    pub world_frame: Option<u64>,
    pub fps: Fps,
    pub width: usize,
    pub height: usize,
    pub created_utc: String,
    pub software: Software,
    /// Names of the tensors in `state.safetensors`.
    pub state_tensors: Vec<String>,
    pub world: World,
}

/// A checkpoint in memory: its manifest and the backend's state tensors (on the CPU).
#[derive(Debug)]
pub struct Checkpoint {
    pub manifest: CheckpointManifest,
    pub state: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Writes the checkpoint to the folder `dir`, which must not exist yet.
    pub fn save(&self, dir: &Path) -> Result<(), FileError> {
        if dir.exists() {
            return Err(FileError::exists(
                dir,
                "a checkpoint of this name exists already",
            ));
        }
        let tmp = crate::take::temporary_beside(dir)?;
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| FileError::io(&tmp, e))?;
        let written = self.write_into(&tmp).and_then(|()| {
            fs::rename(&tmp, dir)
                .and_then(|()| crate::files::sync_dir(crate::files::parent(dir)))
                .map_err(|e| FileError::io(dir, e))
        });
        if written.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        written
    }

    fn write_into(&self, dir: &Path) -> Result<(), FileError> {
        if !self.state.is_empty() {
            let path = dir.join(STATE);
            let named: Vec<(&str, &Tensor)> =
                self.state.iter().map(|(n, t)| (n.as_str(), t)).collect();
            Tensor::write_safetensors(&named, &path)
                .map_err(|e| FileError::new(&path, e.to_string()))?;
            sync(&path)?;
        }
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| FileError::new(&path, e.to_string()))?;
        fs::write(&path, text).map_err(|e| FileError::io(&path, e))?;
        sync(&path)
    }

    /// Reads a checkpoint folder; every error names the file at fault.
    pub fn load(dir: &Path) -> Result<Checkpoint, FileError> {
        if !dir.is_dir() {
            return Err(FileError::not_found(dir, "no such checkpoint folder"));
        }
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(|e| FileError::io(&path, e))?;
        let manifest: CheckpointManifest = serde_json::from_str(&text)
            .map_err(|e| FileError::new(&path, format!("not a checkpoint manifest: {e}")))?;
        if manifest.format != CHECKPOINT_FORMAT {
            return Err(FileError::new(
                &path,
                format!(
                    "format {:?}, expected {CHECKPOINT_FORMAT:?}",
                    manifest.format
                ),
            ));
        }
        let state = if manifest.state_tensors.is_empty() {
            Vec::new()
        } else {
            let path = dir.join(STATE);
            if !path.is_file() {
                return Err(FileError::new(&path, "missing"));
            }
            let state = Tensor::read_safetensors(&path)
                .map_err(|e| FileError::new(&path, format!("unreadable: {e}")))?;
            let mut names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
            let mut expected: Vec<&str> =
                manifest.state_tensors.iter().map(String::as_str).collect();
            names.sort_unstable();
            expected.sort_unstable();
            if names != expected {
                return Err(FileError::new(
                    &path,
                    format!("holds tensors {names:?}, the manifest lists {expected:?}"),
                ));
            }
            state
        };
        Ok(Checkpoint { manifest, state })
    }

    /// The state tensors in the order the manifest lists them, moved to `device`.
    pub fn state_on(&self, device: Device) -> Vec<(String, Tensor)> {
        self.manifest
            .state_tensors
            .iter()
            .filter_map(|name| {
                self.state
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(n, t)| (n.clone(), t.to_device(device)))
            })
            .collect()
    }
}

fn sync(path: &PathBuf) -> Result<(), FileError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| FileError::io(path, e))
}
