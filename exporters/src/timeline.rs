//! The take as every exported file counts it: one frame per frame of the show between
//! the take's first and last frame, numbered from [`FIRST_FRAME`].
//!
//! A take can skip show frames (the show caught up) or lose them (the disk fell
//! behind); what was on air then was the previous picture, so those timeline frames
//! repeat it, pose included. Exported frames are numbered from 1 in every tool (file
//! names, USD time codes, Blender frames); times in seconds start at 0 on frame 1.

use cuecast_engine::take::Marker;
use cuecast_engine::{Fps, Pose, Take};

use crate::convert::unwrap_degrees;
use crate::ExportError;

/// The number of the take's first frame in every exported file.
pub const FIRST_FRAME: u64 = 1;

pub(crate) struct Timeline {
    pub fps: Fps,
    pub width: usize,
    pub height: usize,
    /// For each timeline frame, the index of the recorded frame on air.
    pub on_air: Vec<usize>,
    /// For each timeline frame, the camera on air, yaw made continuous.
    pub poses: Vec<Pose>,
    pub markers: Vec<Marker>,
}

impl Timeline {
    pub fn of(take: &Take) -> Result<Timeline, ExportError> {
        let on_air = take.timeline();
        if on_air.is_empty() {
            return Err(ExportError::Take {
                path: take.dir.clone(),
                message: "it has no frames to export".into(),
            });
        }
        let mut poses: Vec<Pose> = on_air.iter().map(|&k| take.frames[k].pose).collect();
        let mut yaws: Vec<f64> = poses.iter().map(|p| p.yaw).collect();
        unwrap_degrees(&mut yaws);
        for (p, yaw) in poses.iter_mut().zip(yaws) {
            p.yaw = yaw;
        }
        Ok(Timeline {
            fps: take.fps(),
            width: take.manifest.width,
            height: take.manifest.height,
            on_air,
            poses,
            markers: take.markers(),
        })
    }

    pub fn len(&self) -> usize {
        self.on_air.len()
    }

    /// The exported number of timeline frame `k` (0-based).
    pub fn number(&self, k: usize) -> u64 {
        FIRST_FRAME + k as u64
    }

    pub fn last_number(&self) -> u64 {
        self.number(self.len() - 1)
    }

    /// Seconds from the take's first frame to the start of timeline frame `k`.
    pub fn time_s(&self, k: u64) -> f64 {
        k as f64 * f64::from(self.fps.den) / f64::from(self.fps.num)
    }

    pub fn duration_s(&self) -> f64 {
        self.time_s(self.len() as u64)
    }

    /// Digits in frame numbers of file names: four, or more for very long takes, so
    /// that every name of a sequence has the same length.
    pub fn digits(&self) -> usize {
        self.last_number().to_string().len().max(4)
    }

    /// `rgb.0001.png` for timeline frame 0.
    pub fn file_name(&self, stem: &str, k: usize, ext: &str) -> String {
        format!("{stem}.{:0w$}.{ext}", self.number(k), w = self.digits())
    }

    /// `rgb.####.png`: the sequence as tools that read patterns write it.
    pub fn pattern(&self, stem: &str, ext: &str) -> String {
        format!("{stem}.{}.{ext}", "#".repeat(self.digits()))
    }

    pub fn aspect(&self) -> f64 {
        self.width as f64 / self.height as f64
    }
}
