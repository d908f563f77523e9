//! Program audio: the show's sound, mixed from its sources (the sound of an input: a
//! file, a camera's feed, an ALSA or PulseAudio device, a test tone) with a gain each,
//! into every output and take.
//!
//! Why mixed here, on a thread of cuecast's own, and not by GStreamer's `audiomixer`:
//! sources come and go with their inputs (a sender drops, a config edit adds one), each
//! runs on its own clock in its own pipeline, and a gain or a mute must land when its
//! cue does, ramped sample by sample. Each source's samples wait in a short ring (a
//! jitter buffer: mixing starts once 100 ms are there; never more than 400 ms: a source
//! whose clock runs fast loses its oldest samples, one that runs slow or stops is padded
//! with silence), and every 10 ms of the show's clock the mixer takes 10 ms from each,
//! applies its gain, measures its peak, sums them (clipped to full scale) and pushes the
//! result into the show pipeline's program audio (an appsrc, then a tee the encoders
//! take from), stamped from the count of samples made, so the sound never drifts from
//! the pictures' clock. With no source, the program is silence, as platforms require.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use gst::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::AudioMix;

/// The program's sample rate and channels (interleaved f32).
pub const RATE: u32 = 48_000;
pub const CHANNELS: usize = 2;
/// Frames (a sample per channel) mixed at a time: 10 ms.
const TICK: usize = RATE as usize / 100;
/// The most a source's ring holds, in frames (400 ms).
const RING_MAX: usize = RATE as usize * 2 / 5;
/// What a source's ring must hold before it is mixed (again), in frames (100 ms): what
/// a busy machine may hold up a source's thread without a gap in the sound.
const PREBUFFER: usize = RATE as usize / 10;
/// A level below this is shown as this, in dBFS.
const FLOOR_DB: f64 = -100.0;
/// The name the model's own sound has in the mix.
pub const MODEL: &str = "model";
/// The name of the show pipeline's program audio tee.
pub const TEE: &str = "program-audio";

/// A program audio source as status shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AudioSourceStatus {
    /// The input whose sound it is.
    pub name: String,
    /// The gain now (dB), and where a ramp is taking it.
    pub gain_db: f64,
    pub muted: bool,
    /// The peak of the last 100 ms after the gain, in dBFS (-100: silence).
    pub level_db: f64,
    /// Whether its input is sending sound now.
    pub receiving: bool,
    /// Times its sound ran out while mixed (a gap: its input late or gone).
    pub underruns: u64,
    /// Samples dropped because it sent faster than the show plays (its clock runs
    /// fast, or it came in a burst).
    pub overflows: u64,
}

struct Source {
    ring: VecDeque<f32>,
    /// For the model's own sound: chunks placed on the program's timeline (the first
    /// sample's index there), heard from their frame's time, not as they come.
    timed: Option<VecDeque<(u64, Vec<f32>)>>,
    /// Mixing this source (its ring filled once); false: waiting for the prebuffer.
    flowing: bool,
    gain_db: f64,
    muted: bool,
    /// Linear gain now, where it is going, the change per frame, and the frames left
    /// until it is there.
    gain: f32,
    target: f32,
    step: f32,
    ramp_left: u32,
    /// The peaks of the last ten ticks (100 ms).
    peaks: VecDeque<f32>,
    received_ticks: u32,
    underruns: u64,
    overflows: u64,
}

impl Source {
    fn new(mix: &AudioMix) -> Source {
        let target = linear(mix.gain_db, mix.muted);
        Source {
            ring: VecDeque::with_capacity(RING_MAX * CHANNELS),
            timed: mix.model.then(VecDeque::new),
            flowing: false,
            gain_db: mix.gain_db,
            muted: mix.muted,
            gain: target,
            target,
            step: 0.0,
            ramp_left: 0,
            peaks: VecDeque::new(),
            received_ticks: 0,
            underruns: 0,
            overflows: 0,
        }
    }

    fn retarget(&mut self, ramp_s: f64) {
        self.target = linear(self.gain_db, self.muted);
        let frames = (ramp_s * f64::from(RATE)).round().max(0.0) as u32;
        if frames == 0 {
            self.gain = self.target;
            self.ramp_left = 0;
        } else {
            self.step = (self.target - self.gain) / frames as f32;
            self.ramp_left = frames;
        }
    }

    /// Adds this source's tick starting at sample `at` of the program into `mix`.
    fn mix_into_at(&mut self, mix: &mut [f32], at: u64) {
        let Some(timed) = self.timed.as_mut() else {
            return self.mix_into(mix);
        };
        let end = at + (mix.len() / CHANNELS) as u64;
        // What ended before this tick is too late to be heard.
        while timed
            .front()
            .is_some_and(|(start, s)| start + (s.len() / CHANNELS) as u64 <= at)
        {
            timed.pop_front();
        }
        let mut peak = 0f32;
        for (start, samples) in timed.iter() {
            if *start >= end {
                break;
            }
            let from = at.max(*start);
            for i in from..end.min(start + (samples.len() / CHANNELS) as u64) {
                for c in 0..CHANNELS {
                    let v = samples[(i - start) as usize * CHANNELS + c] * self.gain;
                    peak = peak.max(v.abs());
                    mix[(i - at) as usize * CHANNELS + c] += v;
                }
            }
        }
        // The gain's ramp moves on with the program's time.
        for _ in 0..mix.len() / CHANNELS {
            self.ramp_one_frame();
        }
        self.end_tick(peak);
    }

    /// One frame further along the gain's ramp, if one is under way.
    fn ramp_one_frame(&mut self) {
        if self.ramp_left > 0 {
            self.ramp_left -= 1;
            self.gain = if self.ramp_left == 0 {
                self.target
            } else {
                self.gain + self.step
            };
        }
    }

    /// A tick mixed: its peak kept for the meter.
    fn end_tick(&mut self, peak: f32) {
        if self.peaks.len() == 10 {
            self.peaks.pop_front();
        }
        self.peaks.push_back(peak);
        self.received_ticks = self.received_ticks.saturating_sub(1);
    }

    /// Adds this source's next tick into `mix`, gain applied.
    fn mix_into(&mut self, mix: &mut [f32]) {
        let available = self.ring.len() / CHANNELS;
        if !self.flowing && available >= PREBUFFER {
            self.flowing = true;
        }
        let mut peak = 0f32;
        for frame in mix.chunks_exact_mut(CHANNELS) {
            self.ramp_one_frame();
            if !self.flowing {
                continue;
            }
            if self.ring.len() < CHANNELS {
                // Ran dry: silence until it has a prebuffer again.
                self.flowing = false;
                self.underruns += 1;
                continue;
            }
            for s in frame.iter_mut() {
                let v = self.ring.pop_front().unwrap_or(0.0) * self.gain;
                peak = peak.max(v.abs());
                *s += v;
            }
        }
        self.end_tick(peak);
    }

    fn status(&self, name: &str) -> AudioSourceStatus {
        let peak = self.peaks.iter().copied().fold(0f32, f32::max);
        AudioSourceStatus {
            name: name.to_owned(),
            gain_db: self.gain_db,
            muted: self.muted,
            level_db: db(peak),
            receiving: self.received_ticks > 0,
            underruns: self.underruns,
            overflows: self.overflows,
        }
    }
}

fn linear(gain_db: f64, muted: bool) -> f32 {
    if muted {
        0.0
    } else {
        10f64.powf(gain_db / 20.0) as f32
    }
}

fn db(peak: f32) -> f64 {
    if peak <= 0.0 {
        FLOOR_DB
    } else {
        (20.0 * f64::from(peak).log10()).max(FLOOR_DB)
    }
}

struct Shared {
    sources: Mutex<BTreeMap<String, Source>>,
    /// The program's first tick's running time: where the model's sound is placed from.
    start: Mutex<Option<gst::ClockTime>>,
    /// The program's sound for a model that takes it (the model's own sound left out).
    sound_in: Mutex<Option<cuecast_engine::sound::SoundIn>>,
    appsrc: gst_app::AppSrc,
    pipeline: gst::Pipeline,
    /// The take being recorded: its sound goes into a WAV file beside its frames.
    take: Mutex<Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>>,
    stop: AtomicBool,
}

/// The show's program audio. Clone it freely.
#[derive(Clone)]
pub struct ProgramAudio {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl ProgramAudio {
    /// Adds the program audio to the show pipeline (an appsrc, then the tee encoders
    /// take from) with `mix`'s sources, and starts mixing once the pipeline plays.
    pub fn build(pipeline: &gst::Pipeline, mix: &[AudioMix]) -> Result<ProgramAudio, String> {
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", RATE as i32)
            .field("channels", CHANNELS as i32)
            .field("layout", "interleaved")
            .build();
        let appsrc = gst_app::AppSrc::builder()
            .name("program-audio-src")
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(false)
            .block(false)
            .build();
        let tee = gst::ElementFactory::make("tee")
            .name(TEE)
            .property("allow-not-linked", true)
            .build()
            .map_err(|e| e.to_string())?;
        // The program audio runs with no encoder at all, as the pictures do.
        let idle = gst::parse::bin_from_description(
            "queue leaky=downstream max-size-buffers=4 ! fakesink sync=false async=false",
            true,
        )
        .map_err(|e| e.to_string())?;
        pipeline
            .add_many([appsrc.upcast_ref(), &tee, idle.upcast_ref()])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([appsrc.upcast_ref(), &tee, idle.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let sources = mix
            .iter()
            .map(|m| (m.input.clone(), Source::new(m)))
            .collect();
        Ok(ProgramAudio {
            shared: Arc::new(Shared {
                sources: Mutex::new(sources),
                start: Mutex::new(None),
                sound_in: Mutex::new(None),
                appsrc,
                pipeline: pipeline.clone(),
                take: Mutex::new(None),
                stop: AtomicBool::new(false),
            }),
            thread: Arc::default(),
        })
    }

    /// Starts the mixer (the pipeline is playing: its clock runs).
    pub fn start(&self) -> Result<(), String> {
        let shared = self.shared.clone();
        let t = std::thread::Builder::new()
            .name("cuecast-audio".into())
            .spawn(move || mix_loop(&shared))
            .map_err(|e| e.to_string())?;
        *self.thread.lock() = Some(t);
        Ok(())
    }

    /// The names of the sources, which `audio` cues name.
    pub fn names(&self) -> Vec<String> {
        self.shared.sources.lock().keys().cloned().collect()
    }

    /// Whether `input`'s sound is in the mix.
    pub fn takes(&self, input: &str) -> bool {
        self.shared.sources.lock().contains_key(input)
    }

    /// Interleaved stereo 48 kHz samples from `input`.
    pub fn push(&self, input: &str, samples: &[f32]) {
        let mut sources = self.shared.sources.lock();
        let Some(s) = sources.get_mut(input) else {
            return;
        };
        s.ring.extend(samples.iter().copied());
        let over = s.ring.len().saturating_sub(RING_MAX * CHANNELS);
        if over > 0 {
            s.overflows += (over / CHANNELS) as u64;
            s.ring.drain(..over - over % CHANNELS);
        }
        s.received_ticks = 20;
    }

    /// The model's own sound for a frame stamped `pts` (running time), heard from then.
    pub fn push_model(&self, pts: gst::ClockTime, sound: &cuecast_engine::engine::Sound) {
        let Some(start) = *self.shared.start.lock() else {
            return;
        };
        let samples = cuecast_engine::sound::convert(
            &sound.samples,
            sound.format,
            cuecast_engine::sound::SHOW,
        );
        let at = samples_in(pts.saturating_sub(start));
        let mut sources = self.shared.sources.lock();
        let Some(timed) = sources.get_mut(MODEL).and_then(|s| {
            s.received_ticks = 20;
            s.timed.as_mut()
        }) else {
            return;
        };
        timed.push_back((at, samples));
        // Bounded: never more than two seconds ahead.
        while timed.len() > 240 {
            timed.pop_front();
        }
    }

    /// Gives the program's sound to a model that takes it, from now on.
    pub fn feed(&self, sound_in: Option<cuecast_engine::sound::SoundIn>) {
        *self.shared.sound_in.lock() = sound_in;
    }

    /// An `audio` cue: the source's gain and mute from now, ramped over `ramp_s`.
    pub fn cue(&self, source: &str, gain_db: Option<f64>, mute: Option<bool>, ramp_s: f64) {
        let mut sources = self.shared.sources.lock();
        let Some(s) = sources.get_mut(source) else {
            return;
        };
        if let Some(g) = gain_db {
            s.gain_db = g;
        }
        if let Some(m) = mute {
            s.muted = m;
        }
        s.retarget(ramp_s);
    }

    /// The mix as a config edit says: sources added and removed; a source kept keeps
    /// what cues made of its gain unless the edit changed its own.
    pub fn set_mix(&self, old: &[AudioMix], mix: &[AudioMix]) {
        let mut sources = self.shared.sources.lock();
        sources.retain(|name, _| mix.iter().any(|m| &m.input == name));
        for m in mix {
            match sources.get_mut(&m.input) {
                Some(s) if !old.contains(m) => {
                    (s.gain_db, s.muted) = (m.gain_db, m.muted);
                    s.retarget(0.0);
                }
                Some(_) => {}
                None => {
                    sources.insert(m.input.clone(), Source::new(m));
                }
            }
        }
    }

    pub fn status(&self) -> Vec<AudioSourceStatus> {
        self.shared
            .sources
            .lock()
            .iter()
            .map(|(n, s)| s.status(n))
            .collect()
    }

    /// Records the program into `path` (a take's `audio.wav`) from the next 10 ms on.
    pub fn record(&self, path: &Path) -> Result<(), String> {
        let spec = hound::WavSpec {
            channels: CHANNELS as u16,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let w = hound::WavWriter::create(path, spec).map_err(|e| e.to_string())?;
        *self.shared.take.lock() = Some(w);
        Ok(())
    }

    /// Ends the take's sound file; returns the seconds it holds.
    pub fn stop_recording(&self) -> Option<f64> {
        let w = self.shared.take.lock().take()?;
        let seconds = f64::from(w.duration()) / f64::from(RATE);
        match w.finalize() {
            Ok(()) => Some(seconds),
            Err(e) => {
                tracing::error!("the take's sound could not be finished: {e}");
                None
            }
        }
    }

    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.stop_recording();
    }
}

/// The program's samples in `t` (in 128 bits: a show may run for weeks).
fn samples_in(t: gst::ClockTime) -> u64 {
    (u128::from(t.nseconds()) * u128::from(RATE) / 1_000_000_000) as u64
}

/// The running time of `pipeline` now, once it plays.
fn running_time(pipeline: &gst::Pipeline) -> Option<gst::ClockTime> {
    let clock = pipeline.clock()?;
    let base = pipeline.base_time()?;
    clock.time().checked_sub(base)
}

fn mix_loop(shared: &Shared) {
    let tick = gst::ClockTime::from_nseconds(1_000_000_000 / 100);
    let mut start = None;
    let mut made: u64 = 0;
    let mut mix = vec![0f32; TICK * CHANNELS];
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(now) = running_time(&shared.pipeline) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let t0 = *start.get_or_insert_with(|| {
            *shared.start.lock() = Some(now);
            now
        });
        let pts = t0
            + gst::ClockTime::from_nseconds(
                (u128::from(made) * 1_000_000_000 / u128::from(RATE)) as u64,
            );
        // A tick is made once its 10 ms have passed, as a capture card gives them.
        let due = pts + tick;
        if now < due {
            std::thread::sleep(
                Duration::from_nanos((due - now).nseconds()).min(Duration::from_millis(10)),
            );
            continue;
        }
        // Far behind (a stalled machine): skip ahead rather than burst.
        if now > due + gst::ClockTime::from_mseconds(200) {
            made = samples_in(now - t0) / TICK as u64 * TICK as u64;
            continue;
        }
        mix.fill(0.0);
        {
            let mut sources = shared.sources.lock();
            for (name, source) in sources.iter_mut() {
                if name != MODEL {
                    source.mix_into(&mut mix);
                }
            }
            // A model that takes sound hears the program without its own.
            if let Some(s) = shared.sound_in.lock().as_ref() {
                s.push(&mix);
            }
            if let Some(model) = sources.get_mut(MODEL) {
                model.mix_into_at(&mut mix, made);
            }
        }
        for s in &mut mix {
            *s = s.clamp(-1.0, 1.0);
        }
        if let Some(w) = shared.take.lock().as_mut() {
            for s in &mix {
                if w.write_sample((s * f32::from(i16::MAX)) as i16).is_err() {
                    break;
                }
            }
        }
        let bytes: Vec<u8> = mix.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buffer.get_mut().expect("a new buffer");
            b.set_pts(pts);
            b.set_duration(tick);
        }
        // Nothing waits unboundedly: a program audio nobody takes (a stalled branch)
        // loses ticks instead of queueing them.
        if shared.appsrc.current_level_bytes() < (RING_MAX * CHANNELS * 4) as u64 {
            let _ = shared.appsrc.push_buffer(buffer);
        }
        made += TICK as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(gain_db: f64, muted: bool) -> AudioMix {
        AudioMix {
            input: "a".into(),
            model: false,
            gain_db,
            muted,
        }
    }

    fn tick(s: &mut Source) -> Vec<f32> {
        let mut out = vec![0f32; TICK * CHANNELS];
        s.mix_into(&mut out);
        out
    }

    #[test]
    fn a_source_is_mixed_at_its_gain_after_its_prebuffer_and_silent_when_dry() {
        let mut s = Source::new(&mix(-6.0, false));
        s.ring.extend(std::iter::repeat_n(0.5f32, TICK * CHANNELS));
        assert!(tick(&mut s).iter().all(|v| *v == 0.0), "waits for 100 ms");
        s.ring
            .extend(std::iter::repeat_n(0.5f32, 10 * TICK * CHANNELS));
        let out = tick(&mut s);
        assert!((out[0] - 0.5 * 0.501).abs() < 1e-3, "{}", out[0]);
        assert!((s.status("a").level_db - (-12.0)).abs() < 0.1);
        for _ in 0..10 {
            tick(&mut s);
        }
        assert!(tick(&mut s).iter().all(|v| *v == 0.0), "dry: silence");
    }

    #[test]
    fn a_mute_ramps_to_silence_over_its_time_and_at_once_without_one() {
        let mut s = Source::new(&mix(0.0, false));
        s.flowing = true;
        s.ring
            .extend(std::iter::repeat_n(1.0f32, 10 * TICK * CHANNELS));
        s.muted = true;
        s.retarget(0.02);
        let first = tick(&mut s);
        assert!(
            first[0] > 0.9 && first[TICK * CHANNELS - 1] < 0.6,
            "halfway after 10 ms"
        );
        let second = tick(&mut s);
        assert_eq!(second[TICK * CHANNELS - 1], 0.0);
        s.muted = false;
        s.retarget(0.0);
        assert_eq!(tick(&mut s)[0], 1.0);
    }
}
