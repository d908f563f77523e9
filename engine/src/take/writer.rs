//! The take writer: a thread fed through a bounded queue by the model thread, so that
//! the disk never slows the show (see the module above for the files and why).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::SystemTime;

use parking_lot::Mutex;

use super::*;
use crate::frame::Frame;

/// Frames waiting for the disk before new ones are dropped from the take: about a
/// second at 30 fps.
const QUEUE_FRAMES: usize = 32;

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
            .and_then(|()| crate::files::sync_dir(crate::files::parent(dir)))
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
        Item::Frame {
            mut record,
            rgb,
            depth,
        } => {
            // Takes keep RGBx whatever the show's layout (a worker model's frames are
            // RGB): the copy is made here, on the writer's thread, not on air; so is the
            // frame's hash (SHA-256 runs at about 1.5 GB/s with the CPU's SHA
            // instructions: 2-3 ms a 1280x720 frame).
            let rgb = rgb.laid_out(crate::frame::Pixels::Rgbx);
            record.hash = Some(frame_hash(&rgb));
            files
                .rgb
                .write_all(&rgb)
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
            files.lens[0] += rgb.len() as u64;
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
