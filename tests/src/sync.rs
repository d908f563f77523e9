//! Sound against picture in a media file, as a viewer would judge it: when the picture
//! turns white (a flash) and when a click starts, both on the file's own clock, read by
//! `ffprobe`/`ffmpeg` as any receiver would. The click model (`models/click`) makes a
//! flash and a click together; the tests and the benchmark check how far apart they
//! arrive in a recording or at an SRT receiver.

use std::path::Path;
use std::process::Command;

/// Flashes and click onsets in one file, in seconds of the file's timeline.
#[derive(Debug, Clone, Default)]
pub struct FlashesAndClicks {
    pub flashes: Vec<f64>,
    pub clicks: Vec<f64>,
    /// The first and last decoded picture's times: a receiver that joins a stream sees
    /// no picture until the next keyframe, but hears the sound from the start.
    pub pictures: (f64, f64),
}

/// A click is paired only where the pictures around it were decoded: its flash and the
/// frame before the flash (this far either side of the click).
const PICTURES_AROUND: f64 = 0.1;

impl FlashesAndClicks {
    /// Each click's offset from the flash nearest to it, seconds (positive: the click
    /// is heard after the flash is seen), with the click's time; clicks without decoded
    /// pictures around them are left out.
    pub fn offsets(&self) -> Vec<(f64, f64)> {
        let (first, last) = self.pictures;
        self.clicks
            .iter()
            .filter(|c| **c - PICTURES_AROUND >= first && **c + PICTURES_AROUND <= last)
            .filter_map(|c| {
                self.flashes
                    .iter()
                    .map(|w| c - w)
                    .min_by(|x, y| x.abs().total_cmp(&y.abs()))
                    .map(|o| (*c, o))
            })
            .collect()
    }
}

/// Reads the flashes (a frame whose mean luma crosses above 150 of 255) and clicks (the
/// first sample above 0.1 of full scale after 50 ms of quiet) in `path`. Every video
/// frame's own time stamp is used, so a dropped or repeated frame moves nothing; the
/// sound is laid on its time stamps (`aresample=async`), so a gap in it shows as an
/// offset rather than shifting every later click.
pub fn flashes_and_clicks(path: &Path) -> Result<FlashesAndClicks, String> {
    let times = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=best_effort_timestamp_time"])
        .args(["-of", "csv=p=0"])
        .arg(path))?;
    let times: Vec<f64> = String::from_utf8_lossy(&times)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let grey = decode(
        path,
        &[
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=8:8,format=gray",
            "-f",
            "rawvideo",
        ],
    )?;
    let means: Vec<f64> = grey
        .chunks_exact(64)
        .map(|f| f.iter().map(|&b| f64::from(b)).sum::<f64>() / 64.0)
        .collect();
    if means.len() != times.len() {
        return Err(format!(
            "{}: {} frames decoded but {} time stamps read",
            path.display(),
            means.len(),
            times.len()
        ));
    }
    let pictures = (
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(0.0),
    );
    let flashes = means
        .windows(2)
        .zip(&times[1..])
        .filter(|(w, _)| w[1] > 150.0 && w[0] <= 150.0)
        .map(|(_, t)| *t)
        .collect();

    let start = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path))?;
    // A transport stream lists its streams once per program too: the first line that reads.
    let a0: f64 = String::from_utf8_lossy(&start)
        .lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("{}: no audio start time", path.display()))?;
    let pcm = decode(
        path,
        &[
            "-map",
            "0:a:0",
            "-af",
            "aresample=async=1",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-f",
            "s16le",
        ],
    )?;
    let mut clicks = Vec::new();
    let mut quiet = 0usize;
    for (i, b) in pcm.chunks_exact(2).enumerate() {
        let loud = f64::from(i16::from_le_bytes([b[0], b[1]])).abs() / 32768.0 > 0.1;
        if loud && quiet >= 2400 {
            clicks.push(a0 + i as f64 / 48000.0);
        }
        quiet = if loud { 0 } else { quiet + 1 };
    }
    Ok(FlashesAndClicks {
        flashes,
        clicks,
        pictures,
    })
}

fn decode(path: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(args)
        .arg("-"))
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}
