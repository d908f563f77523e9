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
use cuecast_engine::{check_name, Checkpoint, Take};
use cuecast_exporters::{ExportOptions, Format};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::events::{Event, Events};

/// An export running or done.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub take: String,
    pub out: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub stage: String,
    pub done: u64,
    pub total: u64,
    pub error: Option<String>,
    pub files: Vec<String>,
    pub seconds: Option<f64>,
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
    pub fn list_takes(&self) -> Vec<Value> {
        folders(&self.takes)
            .into_iter()
            .map(|(name, dir)| match Take::open(&dir) {
                Ok(t) => {
                    let m = &t.manifest;
                    json!({
                        "name": name, "frames": t.frames.len(), "complete": t.complete,
                        "width": m.width, "height": m.height, "fps": m.fps,
                        "duration_s": t.duration_frames() as f64 / m.fps.as_f64(),
                        "start_frame": m.start_frame, "started_utc": m.started_utc,
                        "stopped_utc": m.stopped_utc, "lost_frames": m.lost_frames.len(),
                        "markers": t.markers().len(), "model": m.model.name,
                    })
                }
                Err(e) => json!({"name": name, "error": e.to_string()}),
            })
            .collect()
    }

    pub fn list_checkpoints(&self) -> Vec<Value> {
        folders(&self.checkpoints)
            .into_iter()
            .map(|(name, dir)| match Checkpoint::load(&dir) {
                Ok(c) => {
                    let m = &c.manifest;
                    json!({
                        "name": name, "frame": m.frame, "model": m.model.name,
                        "hash": m.model.hash, "prompt": m.prompt, "seed": m.seed,
                        "camera": m.camera, "created_utc": m.created_utc,
                    })
                }
                Err(e) => json!({"name": name, "error": e.to_string()}),
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
            .any(|j| j.state == "running" && j.out == out.display().to_string())
        {
            return Err(LibraryError::Exists(format!(
                "{take:?} is being exported already"
            )));
        }
        let job = Job {
            id: self.next_job.fetch_add(1, Ordering::Relaxed),
            take: take.to_owned(),
            out: crate::user_path(&out),
            state: "running",
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
                events.send(Event::Export { job: json!(j) });
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
                        j.state = "done";
                        j.stage = "done".into();
                        j.files = summary.files.clone();
                        j.seconds = Some(summary.seconds);
                    }
                    Err(e) => {
                        j.state = "failed";
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
