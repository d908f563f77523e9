//! Takes, checkpoints and export bundles as the daemon keeps them: one folder each under
//! the config's `takes`, `checkpoints` and `exports` folders, named by the user.
//!
//! Names are checked ([`cuecast_engine::check_name`]) before they touch the file system,
//! so no name can reach outside its folder. Exports run on their own threads as jobs;
//! their progress goes to the event stream and `GET /api/v1/jobs/{id}`.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use cuecast_engine::take::utc_stamp;
use cuecast_engine::{check_name, Checkpoint, CheckpointManifest, Fps, Pose, Take};
use cuecast_exporters::{ExportOptions, Format};
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::Config;
use crate::events::{Event, Events};

/// An export running or done.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Job {
    pub id: u64,
    pub take: String,
    pub out: String,
    pub state: JobState,
    pub stage: String,
    pub done: u64,
    pub total: u64,
    pub error: Option<String>,
    pub files: Vec<String>,
    pub seconds: Option<f64>,
}

/// Where an export job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// A take as the API lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TakeInfo {
    pub name: String,
    pub frames: u64,
    /// Its files were finished (else it is being recorded or was cut short).
    pub complete: bool,
    /// It is the take being recorded now.
    pub recording: bool,
    pub width: usize,
    pub height: usize,
    pub fps: Fps,
    pub duration_s: f64,
    pub start_frame: u64,
    pub started_utc: String,
    pub stopped_utc: Option<String>,
    /// Show frames the disk could not keep up with.
    pub lost_frames: u64,
    pub markers: u64,
    pub model: String,
}

/// A checkpoint as the API lists it (and answers a new one).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckpointInfo {
    pub name: String,
    /// The last show frame made before it was saved (none: before the first).
    pub frame: Option<u64>,
    pub model: String,
    pub hash: String,
    pub prompt: String,
    pub seed: u64,
    pub camera: Pose,
    pub created_utc: String,
}

impl CheckpointInfo {
    pub fn new(name: String, m: &CheckpointManifest) -> Self {
        CheckpointInfo {
            name,
            frame: m.frame,
            model: m.model.name.clone(),
            hash: m.model.hash.clone(),
            prompt: m.prompt.clone(),
            seed: m.seed,
            camera: m.camera,
            created_utc: m.created_utc.clone(),
        }
    }
}

/// A folder of the takes or checkpoints folder: what it holds, or why it cannot be read.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Listed{T}")]
pub enum Listed<T> {
    Read(T),
    Unreadable { name: String, error: String },
}

impl<T> Listed<T> {
    fn unreadable(name: String, e: impl std::fmt::Display) -> Self {
        Listed::Unreadable {
            name,
            error: e.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Library {
    pub takes: PathBuf,
    pub checkpoints: PathBuf,
    pub exports: PathBuf,
    jobs: Arc<Mutex<Vec<Job>>>,
    next_job: Arc<AtomicU64>,
}

/// Why a library call was refused.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Format(String),
}

impl Library {
    pub fn new(config: &Config) -> Library {
        Library {
            takes: config.takes.clone(),
            checkpoints: config.checkpoints.clone(),
            exports: config.exports.clone(),
            jobs: Arc::default(),
            next_job: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A name for something new: the one given (checked), or `<kind>-<UTC time>`.
    pub fn new_name(kind: &str, given: Option<&str>) -> Result<String, LibraryError> {
        match given {
            Some(n) => {
                check_name(n).map_err(LibraryError::Name)?;
                Ok(n.to_owned())
            }
            None => Ok(format!("{kind}-{}", utc_stamp(SystemTime::now()))),
        }
    }

    pub fn take_dir(&self, name: &str) -> Result<PathBuf, LibraryError> {
        check_name(name).map_err(LibraryError::Name)?;
        Ok(self.takes.join(name))
    }

    pub fn checkpoint_dir(&self, name: &str) -> Result<PathBuf, LibraryError> {
        check_name(name).map_err(LibraryError::Name)?;
        Ok(self.checkpoints.join(name))
    }

    /// Every take: what it holds, or why it cannot be read.
    pub fn list_takes(&self) -> Vec<Listed<TakeInfo>> {
        folders(&self.takes)
            .into_iter()
            .map(|(name, dir)| match Take::open(&dir) {
                Ok(t) => {
                    let m = &t.manifest;
                    Listed::Read(TakeInfo {
                        frames: t.frames.len() as u64,
                        complete: t.complete,
                        recording: false,
                        width: m.width,
                        height: m.height,
                        fps: m.fps,
                        duration_s: t.duration_frames() as f64 / m.fps.as_f64(),
                        start_frame: m.start_frame,
                        started_utc: m.started_utc.clone(),
                        stopped_utc: m.stopped_utc.clone(),
                        lost_frames: m.lost_frames.len() as u64,
                        markers: t.markers().len() as u64,
                        model: m.model.name.clone(),
                        name,
                    })
                }
                Err(e) => Listed::unreadable(name, e),
            })
            .collect()
    }

    pub fn list_checkpoints(&self) -> Vec<Listed<CheckpointInfo>> {
        folders(&self.checkpoints)
            .into_iter()
            .map(|(name, dir)| match Checkpoint::load(&dir) {
                Ok(c) => Listed::Read(CheckpointInfo::new(name, &c.manifest)),
                Err(e) => Listed::unreadable(name, e),
            })
            .collect()
    }

    /// Starts exporting take `take` into the exports folder (`<take>-export`).
    pub fn start_export(
        &self,
        take: &str,
        formats: Option<&str>,
        force: bool,
        events: &Events,
    ) -> Result<Job, LibraryError> {
        let dir = self.take_dir(take)?;
        if !dir.is_dir() {
            return Err(LibraryError::NotFound(format!("no take {take:?}")));
        }
        let formats = match formats {
            Some(list) => {
                Format::parse_list(list).map_err(|e| LibraryError::Format(e.to_string()))?
            }
            None => Format::all(),
        };
        let opened = Take::open(&dir).map_err(|e| LibraryError::Invalid(e.to_string()))?;
        let out = self.exports.join(format!("{take}-export"));
        if out.exists() && !force {
            return Err(LibraryError::Exists(format!(
                "{} exists: export with force to replace it",
                out.display()
            )));
        }
        if self
            .jobs
            .lock()
            .iter()
            .any(|j| j.state == JobState::Running && j.out == out.display().to_string())
        {
            return Err(LibraryError::Exists(format!(
                "{take:?} is being exported already"
            )));
        }
        let job = Job {
            id: self.next_job.fetch_add(1, Ordering::Relaxed),
            take: take.to_owned(),
            out: crate::user_path(&out),
            state: JobState::Running,
            stage: "starting".into(),
            done: 0,
            total: 0,
            error: None,
            files: Vec::new(),
            seconds: None,
        };
        self.jobs.lock().push(job.clone());
        let (jobs, events, id) = (self.jobs.clone(), events.clone(), job.id);
        let update = move |f: &mut dyn FnMut(&mut Job)| {
            let mut all = jobs.lock();
            if let Some(j) = all.iter_mut().find(|j| j.id == id) {
                f(j);
                events.send(Event::Export { job: j.clone() });
            }
        };
        std::thread::Builder::new()
            .name("cuecast-export".into())
            .spawn(move || {
                std::fs::create_dir_all(out.parent().unwrap_or(Path::new("."))).ok();
                let options = ExportOptions { formats, force };
                let mut last = (String::new(), 0u64);
                let result = cuecast_exporters::export(&opened, &out, &options, &mut |p| {
                    // Tell the world when the stage changes and every 5 %.
                    let step = (p.total / 20).max(1);
                    if p.stage != last.0 || p.done >= last.1 + step || p.done == p.total {
                        last = (p.stage.to_string(), p.done);
                        update(&mut |j| {
                            j.stage = p.stage.to_string();
                            j.done = p.done;
                            j.total = p.total;
                        });
                    }
                });
                update(&mut |j| match &result {
                    Ok(summary) => {
                        j.state = JobState::Done;
                        j.stage = "done".into();
                        j.files = summary.files.clone();
                        j.seconds = Some(summary.seconds);
                    }
                    Err(e) => {
                        j.state = JobState::Failed;
                        j.error = Some(e.to_string());
                    }
                });
                match result {
                    Ok(_) => tracing::info!("export complete: {}", out.display()),
                    Err(e) => tracing::error!("export of {} failed: {e}", out.display()),
                }
            })
            .map_err(|e| LibraryError::Invalid(format!("cannot start the export: {e}")))?;
        Ok(job)
    }

    pub fn job(&self, id: u64) -> Option<Job> {
        self.jobs.lock().iter().find(|j| j.id == id).cloned()
    }
}

/// The sub-folders of `dir` that are not hidden (temporary checkpoint folders are).
fn folders(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect();
    out.sort();
    out
}
