//! Sound a model makes or takes: its format converted to and from the show's (linear
//! resampling and channel mixing, a chunk at a time), and the program's sound waiting
//! for a model that takes it.
//!
//! Why hand-rolled: the conversions are between a handful of fixed rates (8 to 48 kHz)
//! on a chunk of a few thousand samples, where linear interpolation is enough for a
//! voice that drives a face or a click that marks a frame; a resampling crate's filters
//! would cost a dependency for quality the uses here cannot hear. (A model whose own
//! sound is music should make it at 48 kHz, which is passed through untouched.)

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::generator::AudioFormat;

/// The show's sound: 48 kHz stereo, interleaved float.
pub const SHOW: AudioFormat = AudioFormat {
    rate: 48_000,
    channels: 2,
};

/// `samples` (interleaved, in `from`) in `to`: channels mixed (mono to both, stereo
/// averaged to mono) and the rate converted by linear interpolation.
pub fn convert(samples: &[f32], from: AudioFormat, to: AudioFormat) -> Vec<f32> {
    let (fc, tc) = (from.channels.max(1) as usize, to.channels.max(1) as usize);
    let frames = samples.len() / fc;
    let at = |i: usize, c: usize| -> f32 {
        let frame = &samples[i * fc..i * fc + fc];
        match (fc, tc) {
            (a, b) if a == b => frame[c],
            (1, _) => frame[0],
            _ => frame.iter().sum::<f32>() / fc as f32,
        }
    };
    if frames == 0 {
        return Vec::new();
    }
    if from.rate == to.rate {
        return (0..frames)
            .flat_map(|i| (0..tc).map(move |c| (i, c)))
            .map(|(i, c)| at(i, c))
            .collect();
    }
    let out_frames = (frames as u64 * u64::from(to.rate) / u64::from(from.rate)) as usize;
    let step = f64::from(from.rate) / f64::from(to.rate);
    let mut out = Vec::with_capacity(out_frames * tc);
    for j in 0..out_frames {
        let x = j as f64 * step;
        let i = (x as usize).min(frames - 1);
        let next = (i + 1).min(frames - 1);
        let t = (x - i as f64) as f32;
        for c in 0..tc {
            out.push(at(i, c) * (1.0 - t) + at(next, c) * t);
        }
    }
    out
}

/// The program's sound waiting for a model that takes it, in the model's format: the
/// newest, never more than two steps' worth (older sound is dropped: a voice-driven
/// model answers the voice as it is now, never a backlog of it).
#[derive(Clone)]
pub struct SoundIn {
    format: AudioFormat,
    keep: usize,
    ring: Arc<Mutex<VecDeque<f32>>>,
}

impl SoundIn {
    /// For a model taking `format`, `step_samples` (per channel) a step.
    pub fn new(format: AudioFormat, step_samples: usize) -> SoundIn {
        let keep = 2 * step_samples.max(1) * format.channels as usize;
        SoundIn {
            format,
            keep,
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(keep))),
        }
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The show's sound (48 kHz stereo), as it is made.
    pub fn push(&self, show: &[f32]) {
        let samples = convert(show, SHOW, self.format);
        let mut ring = self.ring.lock();
        ring.extend(samples);
        let over = ring.len().saturating_sub(self.keep);
        ring.drain(..over);
    }

    /// The newest `samples` (per channel), silence before what came.
    pub fn take(&self, samples: usize) -> Vec<f32> {
        let n = samples * self.format.channels as usize;
        let ring = self.ring.lock();
        let have = ring.len().min(n);
        let mut out = vec![0.0; n - have];
        out.extend(ring.iter().skip(ring.len() - have));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONO16: AudioFormat = AudioFormat {
        rate: 16_000,
        channels: 1,
    };

    #[test]
    fn conversion_keeps_the_level_and_the_length() {
        let stereo: Vec<f32> = (0..4800).flat_map(|i| [i as f32 / 4800.0; 2]).collect();
        let mono = convert(&stereo, SHOW, MONO16);
        assert_eq!(mono.len(), 1600);
        assert!((mono[800] - 0.5).abs() < 0.01, "{}", mono[800]);
        let back = convert(&mono, MONO16, SHOW);
        assert_eq!(back.len(), 4800 * 2);
        assert!((back[4800] - 0.5).abs() < 0.01);
        assert_eq!(convert(&stereo, SHOW, SHOW), stereo);
    }

    #[test]
    fn a_step_gets_the_newest_sound_and_silence_before_it() {
        let s = SoundIn::new(MONO16, 160);
        assert_eq!(s.take(160), vec![0.0; 160]);
        s.push(&[0.5; 96]); // 48 stereo frames at 48 kHz: 16 at 16 kHz
        let got = s.take(160);
        assert_eq!(got[..144], [0.0; 144]);
        assert!(got[144..].iter().all(|v| (v - 0.5).abs() < 1e-6));
        s.push(&vec![0.25; 48_000 * 2]);
        assert_eq!(
            s.take(160),
            vec![0.25; 160],
            "never more than two steps wait"
        );
        assert_eq!(s.ring.lock().len(), 320);
    }
}
