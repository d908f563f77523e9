//! Takes: what the generator made between start and stop, written while it happens.
//!
//! A take is a folder:
//!
//! | file | what |
//! |---|---|
//! | `take.json` | the manifest: model, size, rate, first frame, lost frames |
//! | `frames.jsonl` | one line per recorded frame: its show frame, world frame and camera |
//! | `rgb.raw` | the frames, RGBx 8-bit, top row first, one after another |
//! | `depth.raw` | depth per frame, f32 little-endian metres along the view axis |
//! | `cues.jsonl` | the cues applied during the take, with their frames |
//! | `start/` | the checkpoint the take starts from (what replay restores) |
//!
//! Why raw frames: the writer must never slow the show, and on a small machine any
//! compression (PNG, even fast deflate) costs as much CPU as a model step. Raw frames
//! cost a copy into the page cache; the exporters make PNG, EXR and ProRes afterwards.
//! Frames go to a writer thread through a bounded queue; when the disk cannot keep up the
//! frame is dropped from the take (never from the show) and listed in `lost_frames`.
//!
//! Why it survives a crash: each frame's pixels are written before its line in
//! `frames.jsonl`, and each line is flushed as it is written. A reader trusts the lines
//! whose pixels are in the files and ignores a torn last line, so a take cut short by a
//! kill is still a take (its manifest then has no `stopped_utc`).

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::camera::Pose;
use crate::cue::{At, Cue, CueKind};
use crate::frame::Frame;
use crate::generator::Fps;
use crate::schedule::AppliedCue;

pub const TAKE_FORMAT: &str = "cuecast-take/1";

/// Frames waiting for the disk before new ones are dropped from the take: about a
/// second at 30 fps.
const QUEUE_FRAMES: usize = 32;

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

/// Which model made something, and how to load it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelId {
    pub name: String,
    pub hash: String,
    pub backend: String,
    /// The model package's folder, for backends that load one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PathBuf>,
}

/// The software that made a take or checkpoint (replays are exact on the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Software {
    pub cuecast: String,
    pub tch: String,
    pub device: String,
}

impl Software {
    pub fn current(device: &str) -> Self {
        Software {
            cuecast: env!("CARGO_PKG_VERSION").to_owned(),
            tch: "0.24".to_owned(),
            device: device.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

/// `take.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeManifest {
    pub format: String,
    pub name: String,
    pub model: ModelId,
    /// The frames' size.
    pub width: usize,
    pub height: usize,
    /// The depth maps' size (a model's native size can differ from the frames');
    /// `None` when the model makes no depth (or no frame was recorded yet).
    pub depth: Option<Size>,
    pub fps: Fps,
    /// The show frame the take starts at.
    pub start_frame: u64,
    pub started_utc: String,
    /// `None` while recording, or when the take was cut short.
    pub stopped_utc: Option<String>,
    /// Frames recorded (set at stop).
    pub frames: Option<u64>,
    /// Show frames the disk could not keep up with: not in the take.
    pub lost_frames: Vec<u64>,
    pub software: Software,
    /// The checkpoint folder (inside the take) replays start from.
    pub start_checkpoint: String,
    /// Why the take ended before it was stopped (the disk was full...), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

/// One line of `frames.jsonl`: the `index`th frame in `rgb.raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub index: u64,
    /// The show frame (its presentation time is `frame / fps` from the show's start).
    pub frame: u64,
    /// The frame of the world's own clock (differs from `frame` after a restore).
    pub world_frame: u64,
    #[serde(flatten)]
    pub pose: Pose,
    /// The world was frozen: the previous picture again.
    #[serde(default)]
    pub held: bool,
    /// The detail it was drawn at (below 1 while steps ran late; see
    /// [`crate::detail`]); written only when below 1.
    #[serde(default = "full_detail", skip_serializing_if = "is_full_detail")]
    pub detail: f32,
    /// The model was started over before this frame (its steps kept failing, or its
    /// state outgrew the limit); a replay does the same here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// A checkpoint was restored live just before this frame: its copy in the take
    /// (`restores/FRAME`), which a replay restores here too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
}

fn full_detail() -> f32 {
    1.0
}

fn is_full_detail(d: &f32) -> bool {
    *d >= 1.0
}

/// A cue applied during a take, as `cues.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CueRecord {
    pub id: u64,
    pub cue: Cue,
    /// The show frame it took effect on.
    pub frame: u64,
    pub shown_frame: u64,
    pub arrived_unix_ms: u64,
    pub latency_ms: f64,
}

impl CueRecord {
    fn of(a: &AppliedCue) -> Self {
        CueRecord {
            id: a.id,
            cue: a.cue.clone(),
            frame: a.frame,
            shown_frame: a.shown_frame,
            arrived_unix_ms: a.arrived_unix_ms,
            latency_ms: a.latency_ms,
        }
    }

    /// The cue, timed to the frame it took effect on (what a replay submits).
    pub fn replayable(&self) -> Cue {
        Cue {
            at: Some(At::Frame(self.frame)),
            ..self.cue.clone()
        }
    }
}

/// A marker cue in a take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    pub label: String,
    /// The show frame.
    pub frame: u64,
    /// Frames from the take's start.
    pub offset: u64,
    /// Seconds from the take's start.
    pub time_s: f64,
}

/// What a finished take holds.
#[derive(Debug, Clone, Serialize)]
pub struct TakeSummary {
    pub name: String,
    pub dir: PathBuf,
    pub frames: u64,
    pub lost_frames: Vec<u64>,
    pub start_frame: u64,
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

/// Writes `value` as JSON to `path` whole or not at all (see [`crate::atomic`]).
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), FileError> {
    let mut text =
        serde_json::to_vec_pretty(value).map_err(|e| FileError::new(path, e.to_string()))?;
    text.push(b'\n');
    crate::atomic::write(path, &text).map_err(|e| FileError::io(path, e))
}

enum Item {
    Frame {
        record: FrameRecord,
        rgb: Frame,
        depth: Option<(Size, Vec<f32>)>,
    },
    Cues(Vec<CueRecord>),
}

/// Records a take on its own thread. Created and fed by the model thread.
pub struct TakeWriter {
    /// Bounded: when the disk is behind, a frame is dropped from the take, never waited for.
    tx: Option<mpsc::SyncSender<Item>>,
    thread: Option<JoinHandle<Result<u64, FileError>>>,
    /// Cues the full queue could not take yet; they go before the next item.
    pending_cues: Vec<CueRecord>,
    lost: Vec<u64>,
    manifest: Arc<Mutex<TakeManifest>>,
    failure: Arc<Mutex<Failure>>,
    dir: PathBuf,
    next_index: u64,
}

impl TakeWriter {
    /// Creates the take folder `dir` (which must not exist yet) with its manifest and
    /// starts the writer thread. `prepare` runs once the folder exists and before the
    /// manifest is written (the model thread saves the start checkpoint there).
    ///
    /// The folder is built under a temporary name beside `dir` and renamed into place
    /// once the take can start, so a take that fails to start, or a process killed while
    /// starting one, never leaves a folder that burns the name.
    pub fn create(
        dir: &Path,
        manifest: TakeManifest,
        prepare: impl FnOnce(&Path) -> Result<(), FileError>,
    ) -> Result<TakeWriter, FileError> {
        if dir.exists() {
            return Err(FileError::exists(dir, "a take of this name exists already"));
        }
        let tmp = temporary_beside(dir)?;
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| FileError::io(&tmp, e))?;
        Self::start_in(&tmp, dir, manifest, prepare).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp);
        })
    }

    fn start_in(
        tmp: &Path,
        dir: &Path,
        manifest: TakeManifest,
        prepare: impl FnOnce(&Path) -> Result<(), FileError>,
    ) -> Result<TakeWriter, FileError> {
        prepare(tmp)?;
        write_json_atomic(&tmp.join("take.json"), &manifest)?;
        let open = |name: &str| {
            let p = tmp.join(name);
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&p)
                .map_err(|e| FileError::io(&p, e))
        };
        let files = Files {
            rgb: open("rgb.raw")?,
            depth: open("depth.raw")?,
            frames: open("frames.jsonl")?,
            cues: open("cues.jsonl")?,
            dir: dir.to_owned(),
            lens: [0; 4],
        };
        // The open files follow the folder.
        fs::rename(tmp, dir)
            .and_then(|()| crate::atomic::sync_dir(crate::atomic::parent(dir)))
            .map_err(|e| FileError::io(dir, e))?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_FRAMES);
        let manifest = Arc::new(Mutex::new(manifest));
        let failure = Arc::new(Mutex::new(Failure::default()));
        let thread = {
            let (manifest, failure) = (manifest.clone(), failure.clone());
            std::thread::Builder::new()
                .name("cuecast-take".into())
                .spawn(move || write_take(files, rx, &manifest, &failure))
                .map_err(|e| FileError::io(dir, e))?
        };
        Ok(TakeWriter {
            tx: Some(tx),
            thread: Some(thread),
            pending_cues: Vec::new(),
            lost: Vec::new(),
            manifest,
            failure,
            dir: dir.to_owned(),
            next_index: 0,
        })
    }

    pub fn name(&self) -> String {
        self.manifest.lock().name.clone()
    }

    /// Why the writer stopped by itself, if it did: the take must end now.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().message.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hands a frame to the writer; never blocks. When the writer is behind, the frame
    /// is left out of the take and listed as lost. The writer numbers it (`index`).
    pub fn frame(&mut self, mut record: FrameRecord, rgb: &Frame, depth: Option<(Size, Vec<f32>)>) {
        let size = {
            let m = self.manifest.lock();
            (m.width, m.height)
        };
        self.send_pending_cues();
        if (rgb.width(), rgb.height()) != size || !self.pending_cues.is_empty() {
            self.lost.push(record.frame);
            return;
        }
        record.index = self.next_index;
        let frame = record.frame;
        let item = Item::Frame {
            record,
            rgb: rgb.clone(),
            depth,
        };
        let sent = match &self.tx {
            Some(tx) => tx.try_send(item).is_ok(),
            None => false,
        };
        if sent {
            self.next_index += 1;
        } else {
            self.lost.push(frame);
        }
    }

    /// Records applied cues (never dropped: they are what a replay needs). When the
    /// queue is full they wait here, ahead of the next frames, instead of blocking.
    pub fn cues(&mut self, applied: &[AppliedCue]) {
        self.pending_cues.extend(applied.iter().map(CueRecord::of));
        self.send_pending_cues();
    }

    fn send_pending_cues(&mut self) {
        if self.pending_cues.is_empty() {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let cues = std::mem::take(&mut self.pending_cues);
        match tx.try_send(Item::Cues(cues)) {
            Ok(()) | Err(mpsc::TrySendError::Disconnected(_)) => {}
            Err(mpsc::TrySendError::Full(Item::Cues(cues))) => self.pending_cues = cues,
            Err(mpsc::TrySendError::Full(_)) => unreachable!("only cues are sent here"),
        }
    }

    /// Waits for the writer, syncs the files and completes the manifest.
    pub fn finish(mut self) -> Result<TakeSummary, FileError> {
        if let Some(tx) = self.tx.take() {
            // The writer is draining the queue: this waits for one free place at most.
            let cues = std::mem::take(&mut self.pending_cues);
            if !cues.is_empty() {
                let _ = tx.send(Item::Cues(cues));
            }
        }
        let written = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r?,
            _ => return Err(FileError::new(&self.dir, "the take writer failed")),
        };
        let mut m = self.manifest.lock().clone();
        m.frames = Some(written);
        m.lost_frames = std::mem::take(&mut self.lost);
        let mut failure = self.failure.lock();
        m.lost_frames.append(&mut failure.dropped);
        m.stop_reason = failure.message.take();
        m.stopped_utc = Some(utc_iso(SystemTime::now()));
        write_json_atomic(&self.dir.join("take.json"), &m)?;
        Ok(TakeSummary {
            name: m.name,
            dir: self.dir.clone(),
            frames: written,
            lost_frames: m.lost_frames,
            start_frame: m.start_frame,
        })
    }
}

impl Drop for TakeWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Files {
    rgb: File,
    depth: File,
    frames: File,
    cues: File,
    dir: PathBuf,
    /// The lengths of rgb, depth, frames and cues up to their last complete record.
    lens: [u64; 4],
}

/// Why a take's writer stopped before it was asked to (a full disk, a failing drive),
/// and the show frames handed to it after that, which are not in the take.
#[derive(Debug, Default)]
struct Failure {
    message: Option<String>,
    dropped: Vec<u64>,
}

fn write_take(
    mut files: Files,
    rx: mpsc::Receiver<Item>,
    manifest: &Mutex<TakeManifest>,
    failure: &Mutex<Failure>,
) -> Result<u64, FileError> {
    let mut written = 0u64;
    let mut depth_size: Option<Size> = None;
    while let Ok(item) = rx.recv() {
        match write_item(&mut files, item, manifest, &mut depth_size) {
            Ok(frame) => written += u64::from(frame),
            Err(e) => {
                // The take ends here: the model thread sees the failure at its next frame
                // and finishes it; what is still on its way is listed as lost. The files
                // go back to their last complete record, which also frees the room the
                // manifest needs on a full disk.
                for (f, len) in [
                    (&files.rgb, files.lens[0]),
                    (&files.depth, files.lens[1]),
                    (&files.frames, files.lens[2]),
                    (&files.cues, files.lens[3]),
                ] {
                    let _ = f.set_len(len);
                }
                // The file's name, not its path: this reaches status and events.
                let file = e.path.file_name().unwrap_or_default().to_string_lossy();
                failure.lock().message = Some(format!("{file}: {}", e.message));
                for item in rx.iter() {
                    if let Item::Frame { record, .. } = item {
                        failure.lock().dropped.push(record.frame);
                    }
                }
                sync_all(&files).ok();
                return Ok(written);
            }
        }
    }
    sync_all(&files)?;
    Ok(written)
}

fn sync_all(files: &Files) -> Result<(), FileError> {
    for (f, name) in [
        (&files.rgb, "rgb.raw"),
        (&files.depth, "depth.raw"),
        (&files.frames, "frames.jsonl"),
        (&files.cues, "cues.jsonl"),
    ] {
        f.sync_all()
            .map_err(|e| FileError::io(&files.dir.join(name), e))?;
    }
    Ok(())
}

/// Writes one item; whether it was a frame.
fn write_item(
    files: &mut Files,
    item: Item,
    manifest: &Mutex<TakeManifest>,
    depth_size: &mut Option<Size>,
) -> Result<bool, FileError> {
    let dir = files.dir.clone();
    let path = |name: &str| dir.join(name);
    match item {
        Item::Frame { record, rgb, depth } => {
            files
                .rgb
                .write_all(rgb.data())
                .map_err(|e| FileError::io(&path("rgb.raw"), e))?;
            let mut depth_bytes = 0;
            if let Some((size, values)) = depth {
                if depth_size.is_none() {
                    *depth_size = Some(size);
                    let mut m = manifest.lock();
                    m.depth = Some(size);
                    write_json_atomic(&path("take.json"), &*m)?;
                }
                if *depth_size == Some(size) {
                    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    files
                        .depth
                        .write_all(&bytes)
                        .map_err(|e| FileError::io(&path("depth.raw"), e))?;
                    depth_bytes = bytes.len() as u64;
                }
            }
            let mut line = serde_json::to_vec(&record).expect("a frame record serialises");
            line.push(b'\n');
            files
                .frames
                .write_all(&line)
                .map_err(|e| FileError::io(&path("frames.jsonl"), e))?;
            files.lens[0] += rgb.data().len() as u64;
            files.lens[1] += depth_bytes;
            files.lens[2] += line.len() as u64;
            Ok(true)
        }
        Item::Cues(cues) => {
            let mut text = Vec::new();
            for c in cues {
                serde_json::to_writer(&mut text, &c).expect("a cue record serialises");
                text.push(b'\n');
            }
            files
                .cues
                .write_all(&text)
                .map_err(|e| FileError::io(&path("cues.jsonl"), e))?;
            files.lens[3] += text.len() as u64;
            Ok(false)
        }
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
                if crate::atomic::is_leftover(&inner_name) && fs::remove_file(inner.path()).is_ok()
                {
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

/// A take opened for reading (export, replay, listing).
#[derive(Debug, Clone)]
pub struct Take {
    pub dir: PathBuf,
    pub manifest: TakeManifest,
    /// The frames whose pixels are in the files, in recording order.
    pub frames: Vec<FrameRecord>,
    pub cues: Vec<CueRecord>,
    /// False when the take was cut short (no stop was recorded).
    pub complete: bool,
}

impl Take {
    /// Opens and checks a take folder; every error names the file at fault.
    pub fn open(dir: &Path) -> Result<Take, FileError> {
        if !dir.is_dir() {
            return Err(FileError::not_found(dir, "no such take folder"));
        }
        let manifest_path = dir.join("take.json");
        let text =
            fs::read_to_string(&manifest_path).map_err(|e| FileError::io(&manifest_path, e))?;
        let manifest: TakeManifest = serde_json::from_str(&text)
            .map_err(|e| FileError::new(&manifest_path, format!("not a take manifest: {e}")))?;
        if manifest.format != TAKE_FORMAT {
            return Err(FileError::new(
                &manifest_path,
                format!("format {:?}, expected {TAKE_FORMAT:?}", manifest.format),
            ));
        }
        if manifest.width == 0 || manifest.height == 0 {
            return Err(FileError::new(&manifest_path, "the frame size is zero"));
        }
        let frames_path = dir.join("frames.jsonl");
        let mut frames: Vec<FrameRecord> = read_lines(&frames_path)?;
        let frame_bytes = (manifest.width * manifest.height * 4) as u64;
        let rgb_path = dir.join("rgb.raw");
        let rgb_len = file_len(&rgb_path)?;
        let in_rgb = rgb_len / frame_bytes;
        let mut usable = (frames.len() as u64).min(in_rgb);
        if let Some(d) = manifest.depth {
            let depth_path = dir.join("depth.raw");
            let depth_len = file_len(&depth_path)?;
            usable = usable.min(depth_len / (d.width * d.height * 4) as u64);
        }
        for (i, f) in frames.iter().enumerate() {
            if f.index != i as u64 {
                return Err(FileError::new(
                    &frames_path,
                    format!("line {} has index {}, expected {i}", i + 1, f.index),
                ));
            }
        }
        let complete = manifest.stopped_utc.is_some();
        if complete {
            let expected = manifest.frames.unwrap_or(0);
            if (frames.len() as u64) < expected || usable < expected {
                return Err(FileError::new(
                    if in_rgb < expected {
                        &rgb_path
                    } else {
                        &frames_path
                    },
                    format!(
                        "truncated: the manifest lists {expected} frames, {} are readable",
                        usable.min(frames.len() as u64)
                    ),
                ));
            }
        }
        frames.truncate(usable as usize);
        let cues = read_lines(&dir.join("cues.jsonl"))?;
        Ok(Take {
            dir: dir.to_owned(),
            manifest,
            frames,
            cues,
            complete,
        })
    }

    pub fn fps(&self) -> Fps {
        self.manifest.fps
    }

    /// Frames on the take's timeline: from its first to its last show frame. Frames the
    /// show skipped or the disk lost are inside it, held (see [`Take::timeline`]).
    pub fn duration_frames(&self) -> u64 {
        match (self.frames.first(), self.frames.last()) {
            (Some(a), Some(b)) => b.frame - a.frame + 1,
            _ => 0,
        }
    }

    /// For each frame of the timeline, the index of the recorded frame that was on air
    /// (the latest one at or before it).
    pub fn timeline(&self) -> Vec<usize> {
        let Some(first) = self.frames.first().map(|f| f.frame) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.duration_frames() as usize);
        let mut k = 0;
        for t in 0..self.duration_frames() {
            while k + 1 < self.frames.len() && self.frames[k + 1].frame <= first + t {
                k += 1;
            }
            out.push(k);
        }
        out
    }

    /// The `index`th recorded frame, RGBx.
    pub fn rgb(&self, index: usize) -> Result<Vec<u8>, FileError> {
        let n = self.manifest.width * self.manifest.height * 4;
        read_at(&self.dir.join("rgb.raw"), (index * n) as u64, n)
    }

    /// The `index`th depth map, metres, row-major, with its size.
    pub fn depth(&self, index: usize) -> Result<Option<(Size, Vec<f32>)>, FileError> {
        let Some(size) = self.manifest.depth else {
            return Ok(None);
        };
        let n = size.width * size.height * 4;
        let bytes = read_at(&self.dir.join("depth.raw"), (index * n) as u64, n)?;
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Some((size, values)))
    }

    /// The take's marker cues.
    pub fn markers(&self) -> Vec<Marker> {
        let start = self
            .frames
            .first()
            .map_or(self.manifest.start_frame, |f| f.frame);
        let fps = self.fps().as_f64();
        self.cues
            .iter()
            .filter_map(|c| {
                let CueKind::Marker { label } = &c.cue.kind else {
                    return None;
                };
                let offset = c.frame.saturating_sub(start);
                Some(Marker {
                    label: label.clone(),
                    frame: c.frame,
                    offset,
                    time_s: offset as f64 / fps,
                })
            })
            .collect()
    }

    pub fn start_checkpoint(&self) -> PathBuf {
        self.dir.join(&self.manifest.start_checkpoint)
    }
}

fn file_len(path: &Path) -> Result<u64, FileError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| FileError::io(path, e))
}

fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, FileError> {
    let mut f = File::open(path).map_err(|e| FileError::io(path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| FileError::io(path, e))?;
    let mut buf = vec![0; len];
    f.read_exact(&mut buf)
        .map_err(|e| FileError::new(path, format!("truncated at byte {offset}: {e}")))?;
    Ok(buf)
}

/// JSON lines; a torn last line (a take cut short mid-write) is ignored, any other bad
/// line is an error naming it.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, FileError> {
    let f = File::open(path).map_err(|e| FileError::io(path, e))?;
    let mut lines: VecDeque<(usize, String)> = VecDeque::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| FileError::io(path, e))?;
        if !line.trim().is_empty() {
            lines.push_back((i + 1, line));
        }
    }
    let n = lines.len();
    let mut out = Vec::with_capacity(n);
    for (k, (number, line)) in lines.into_iter().enumerate() {
        match serde_json::from_str(&line) {
            Ok(v) => out.push(v),
            Err(_) if k + 1 == n => break,
            Err(e) => {
                return Err(FileError::new(path, format!("line {number}: {e}")));
            }
        }
    }
    Ok(out)
}

/// `2026-11-21T16:30:00Z`.
pub fn utc_iso(t: SystemTime) -> String {
    let t = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `20261121-163000`: a UTC time that sorts and fits in a file name.
pub fn utc_stamp(t: SystemTime) -> String {
    let t = utc(t);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
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
