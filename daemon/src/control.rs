//! The control service: every change a producer can make to a running show, as a typed
//! command with a typed answer and a typed error.
//!
//! The HTTP API, OSC (and whatever front door comes next) are adapters over it: each
//! reads its own transport into a [`Command`], runs it, and shows the answer or the
//! [`ControlError`] its own way (a status code and JSON, a logged warning). What a
//! command does — the checks, the event it tells, the log line — is written once, here,
//! so a take started from a button and one started from a script are the same take.
//!
//! Commands may wait on the model thread, GStreamer or the disk: run them off async
//! workers (the HTTP adapter uses `spawn_blocking`; the OSC listener has its own thread).

use cuecast_engine::take::{TakeManifest, TakeSummary};
use cuecast_engine::{Checkpoint, Cue, CueError, CueId, EngineError};

use crate::api::AppState;
use crate::config::{Output, RundownItem};
use crate::events::{Event, TakeState};
use crate::library::{CheckpointInfo, Job, Library, LibraryError};
use crate::outputs::{OutputError, OutputStatus};
use crate::rundown::{Rundown, RundownError, RundownView};

/// Something a producer asks of the show. `Done` is what it answers.
pub trait Command: Send + 'static {
    type Done: Send + 'static;
    fn run(self, show: &AppState) -> Result<Self::Done, ControlError>;
}

/// Why a command changed nothing, by kind: each front door maps the kind (never the
/// text) to its own way of saying it.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Cue(#[from] CueError),
    #[error("{0}")]
    Rundown(RundownError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A folder the command writes in could not be made.
    #[error("cannot create {path}: {message}")]
    Folder { path: String, message: String },
}

impl From<RundownError> for ControlError {
    fn from(e: RundownError) -> Self {
        match e {
            RundownError::Cue(e) => ControlError::Cue(e),
            e => ControlError::Rundown(e),
        }
    }
}

/// Cues for the show, applied all or nothing; answers their ids.
pub struct Cues(pub Vec<Cue>);

impl Command for Cues {
    type Done = Vec<CueId>;
    fn run(self, show: &AppState) -> Result<Vec<CueId>, ControlError> {
        Ok(show.show.inbox().submit(self.0, None)?)
    }
}

/// GO (`Step::Go`) or BACK through the rundown: fires the group and answers the
/// rundown as it now is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Go,
    Back,
}

impl Command for Step {
    type Done = RundownView;
    fn run(self, show: &AppState) -> Result<RundownView, ControlError> {
        let mut r = show.rundown.lock();
        let (fired, ids) = match self {
            Step::Go => r.go(show.show.inbox()),
            Step::Back => r.back(show.show.inbox()),
        }?;
        let view = r.view();
        show.events.send(Event::Rundown {
            fired: Some(fired),
            cues: Some(ids),
            rundown: view.clone(),
        });
        Ok(view)
    }
}

/// A new rundown in place of the old, its cues checked against the show first (a
/// refusal names the item: `[2].cues[0].name`).
pub struct LoadRundown(pub Vec<RundownItem>);

impl Command for LoadRundown {
    type Done = RundownView;
    fn run(self, show: &AppState) -> Result<RundownView, ControlError> {
        for (i, item) in self.0.iter().enumerate() {
            show.show
                .inbox()
                .check(&item.cues)
                .map_err(|e| e.within(&format!("[{i}].cues")))?;
        }
        let mut r = show.rundown.lock();
        *r = Rundown::new(self.0);
        let view = r.view();
        show.events.send(Event::Rundown {
            fired: None,
            cues: None,
            rundown: view.clone(),
        });
        Ok(view)
    }
}

/// Start recording a take (named, else `take-<UTC time>`).
pub struct StartTake {
    pub name: Option<String>,
}

impl Command for StartTake {
    type Done = TakeManifest;
    fn run(self, show: &AppState) -> Result<TakeManifest, ControlError> {
        let name = Library::new_name("take", self.name.as_deref())?;
        let dir = show.library.take_dir(&name)?;
        create_folder(&show.library.takes)?;
        let manifest = show.show.start_take(&dir, &name)?;
        // Its sound beside its frames: the program audio from now on.
        if let Some(audio) = &show.audio {
            if let Err(e) = audio.record(&dir.join(cuecast_engine::take::AUDIO_FILE)) {
                tracing::error!("take {:?} records no sound: {e}", manifest.name);
            }
        }
        tracing::info!("take {:?} recording → {}", manifest.name, dir.display());
        show.events.send(Event::Take {
            state: TakeState::Recording,
            take: manifest.name.clone(),
            start_frame: Some(manifest.start_frame),
            frames: None,
            error: None,
        });
        Ok(manifest)
    }
}

/// Stop the take being recorded; answers once its files are complete.
pub struct StopTake;

impl Command for StopTake {
    type Done = TakeSummary;
    fn run(self, show: &AppState) -> Result<TakeSummary, ControlError> {
        let summary = show.show.stop_take()?;
        if let Some(audio) = &show.audio {
            audio.stop_recording();
        }
        tracing::info!(
            "take {:?} complete: {} frames ({} lost) in {}",
            summary.name,
            summary.frames,
            summary.lost_frames.len(),
            summary.dir.display()
        );
        show.events.send(Event::Take {
            state: TakeState::Stopped,
            take: summary.name.clone(),
            start_frame: None,
            frames: Some(summary.frames),
            error: None,
        });
        Ok(summary)
    }
}

/// Save a checkpoint of the show now (named, else `checkpoint-<UTC time>`).
pub struct SaveCheckpoint {
    pub name: Option<String>,
}

impl Command for SaveCheckpoint {
    type Done = CheckpointInfo;
    fn run(self, show: &AppState) -> Result<CheckpointInfo, ControlError> {
        let name = Library::new_name("checkpoint", self.name.as_deref())?;
        let dir = show.library.checkpoint_dir(&name)?;
        create_folder(&show.library.checkpoints)?;
        let m = show.show.save_checkpoint(&dir)?;
        tracing::info!("checkpoint {name:?} saved → {}", dir.display());
        show.events.send(Event::Checkpoint {
            saved: Some(name.clone()),
            frame: m.frame,
            restored: None,
        });
        Ok(CheckpointInfo::new(name, &m))
    }
}

/// Resume the scene from a checkpoint (of the same model).
pub struct RestoreCheckpoint {
    pub name: String,
}

impl Command for RestoreCheckpoint {
    type Done = ();
    fn run(self, show: &AppState) -> Result<(), ControlError> {
        let dir = show.library.checkpoint_dir(&self.name)?;
        if !dir.is_dir() {
            return Err(LibraryError::NotFound(format!("no checkpoint {:?}", self.name)).into());
        }
        let checkpoint = Checkpoint::load(&dir).map_err(EngineError::from)?;
        show.show.restore(checkpoint)?;
        tracing::info!("checkpoint {:?} restored", self.name);
        show.events.send(Event::Checkpoint {
            saved: None,
            frame: None,
            restored: Some(self.name),
        });
        Ok(())
    }
}

/// Export a take as a job (`formats`: a comma-separated list, else all).
pub struct Export {
    pub take: String,
    pub formats: Option<String>,
    pub force: bool,
}

impl Command for Export {
    type Done = Job;
    fn run(self, show: &AppState) -> Result<Job, ControlError> {
        Ok(show.library.start_export(
            &self.take,
            self.formats.as_deref(),
            self.force,
            &show.events,
        )?)
    }
}

/// Add an output (checked and resolved as the config's are); it starts at once.
pub struct AddOutput(pub Output);

impl Command for AddOutput {
    type Done = OutputStatus;
    fn run(self, show: &AppState) -> Result<OutputStatus, ControlError> {
        let name = self.0.name.clone();
        show.outputs.add(self.0)?;
        one_output(show, &name)
    }
}

/// Start (or restart) an output by name.
pub struct StartOutput(pub String);

impl Command for StartOutput {
    type Done = OutputStatus;
    fn run(self, show: &AppState) -> Result<OutputStatus, ControlError> {
        show.outputs.start_output(&self.0)?;
        one_output(show, &self.0)
    }
}

/// Stop an output by name.
pub struct StopOutput(pub String);

impl Command for StopOutput {
    type Done = OutputStatus;
    fn run(self, show: &AppState) -> Result<OutputStatus, ControlError> {
        show.outputs.stop_output(&self.0)?;
        one_output(show, &self.0)
    }
}

/// Remove an output by name.
pub struct RemoveOutput(pub String);

impl Command for RemoveOutput {
    type Done = ();
    fn run(self, show: &AppState) -> Result<(), ControlError> {
        Ok(show.outputs.remove(&self.0)?)
    }
}

fn one_output(show: &AppState, name: &str) -> Result<OutputStatus, ControlError> {
    show.outputs
        .list()
        .into_iter()
        .find(|o| o.name == name)
        .ok_or_else(|| OutputError::Unknown(name.to_owned()).into())
}

pub(crate) fn create_folder(dir: &std::path::Path) -> Result<(), ControlError> {
    std::fs::create_dir_all(dir).map_err(|e| ControlError::Folder {
        path: crate::user_path(dir),
        message: e.to_string(),
    })
}
