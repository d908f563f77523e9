//! Replay: a take made again, offline, from its start checkpoint and cue log.
//!
//! The engine is deterministic: the world advances by whole frames, cues apply on frame
//! boundaries, and a model's output depends only on its inputs and state. So restoring
//! the start checkpoint, submitting the logged cues at the frames they took effect on,
//! and rendering the frames the take recorded (only those: a stateful model must step
//! exactly as often as it did live) gives the same frames on the same software and
//! hardware. Nothing waits for a clock, so it runs as fast as the model can.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::device::DeviceSpec;
use crate::engine::{Engine, EngineConfig, Picture};
use crate::take::Take;
use crate::EngineError;

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Render at another size than the take's (a preview or a final render).
    pub size: Option<(usize, usize)>,
    pub device: DeviceSpec,
    /// Final quality: every frame at the model's full quality, where live it may have
    /// drawn some at less (the procedural world's adaptive detail), instead of exactly
    /// as live.
    pub final_quality: bool,
}

/// What a replay made.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub frames: u64,
    pub seconds: f64,
    /// Frames made per second of wall-clock time.
    pub fps: f64,
    /// Whether every frame equals the take's, byte for byte (`None` at another size, or
    /// at final quality, which is not meant to be the same).
    pub identical: Option<bool>,
    /// The show frames that differ from the take's (at the take's size).
    pub differing: Vec<u64>,
    pub failed_steps: u64,
}

/// Replays `take` into a new take at `out` (a folder that must not exist).
/// `progress(done, total)` is called after every frame.
pub fn replay(
    take: &Take,
    out: &Path,
    options: &ReplayOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, EngineError> {
    let m = &take.manifest;
    if m.model.backend == "python" || m.model.backend == "aoti" {
        // A chunked model's chunks were cut where the show's timing cut them; making
        // the same frames again needs those cuts recorded, which takes do not yet do.
        return Err(EngineError::Config {
            what: "replay".into(),
            message: format!(
                "take {:?} was made by a chunked model ({}), whose takes cannot be replayed yet",
                m.name, m.model.backend
            ),
        });
    }
    let checkpoint = Checkpoint::load(&take.start_checkpoint())?;
    // The log's cues were checked when the take was opened.
    let cues: Vec<_> = take.cues.iter().map(|c| c.replayable()).collect();
    let backend = m
        .model
        .backend
        .parse()
        .map_err(|message| EngineError::Config {
            what: "backend".into(),
            message,
        })?;
    let config = EngineConfig {
        settings: crate::engine::ModelSettings {
            backend,
            model: m.model.package.clone(),
            device: options.device,
            seed: checkpoint.manifest.seed,
            prompt: checkpoint.manifest.prompt.clone(),
            // Only the resets the take recorded, where it recorded them.
            on_failure: crate::engine::FailurePolicy {
                after: u32::MAX,
                action: crate::engine::FailureAction::Hold,
            },
            ..Default::default()
        },
        scenes: checkpoint.manifest.world.scenes().to_vec(),
        camera: Some(checkpoint.manifest.camera),
        adaptive_detail: false,
        media: None,
        live: false,
    };
    let (engine, frames) = Engine::start_with_channel(config)?;
    let (width, height) = options.size.unwrap_or((m.width, m.height));
    engine.set_output(width, height, m.fps);
    let show = engine.handle();
    show.restore_for_replay(checkpoint)?;
    if !cues.is_empty() {
        engine.inbox().submit(cues, None)?;
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replay".into());
    show.start_take(out, &name)?;
    let started = Instant::now();
    let total = take.frames.len() as u64;
    let mut failed_steps = 0;
    for (done, record) in take.frames.iter().enumerate() {
        if let Some(rel) = &record.restored {
            // Restored live before this frame: the take's copy, at the same point.
            show.restore(Checkpoint::load(&take.dir.join(rel))?)?;
        }
        let detail = if options.final_quality {
            1.0
        } else {
            record.detail
        };
        engine.render_at(record.frame, detail, record.reset)?;
        let rendered = frames
            .recv()
            .map_err(|_| EngineError::Stopped("the model thread has stopped".into()))?;
        if let Picture::Failed(e) = &rendered.picture {
            failed_steps += 1;
            tracing::warn!("replay: frame {}: {e}", record.frame);
        }
        progress(done as u64 + 1, total);
    }
    let seconds = started.elapsed().as_secs_f64();
    let made = show.stop_take()?;
    drop(engine);
    let (identical, differing) = if (width, height) == (m.width, m.height) {
        let again = Take::open(out)?;
        let mut differing = Vec::new();
        for (k, record) in take.frames.iter().enumerate() {
            let made = again.frames.get(k).filter(|r| r.frame == record.frame);
            let same = match (made, &record.hash) {
                // Both hashed (every take since hashes were recorded): the hashes.
                (Some(r), Some(hash)) if r.hash.is_some() => r.hash.as_ref() == Some(hash),
                (Some(_), _) => again.rgb(k)? == take.rgb(k)?,
                (None, _) => false,
            };
            if !same {
                differing.push(record.frame);
            }
        }
        let identical = (!options.final_quality).then_some(differing.is_empty());
        (identical, differing)
    } else {
        (None, Vec::new())
    };
    Ok(ReplaySummary {
        frames: made.frames,
        seconds,
        fps: made.frames as f64 / seconds.max(1e-9),
        identical,
        differing,
        failed_steps,
    })
}
