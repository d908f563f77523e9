//! Reading a take: the manifest checked, the frames whose pixels are really in the
//! files, the cue log, and each frame's pixels and depth on demand.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::*;
use crate::cue::CueKind;

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
