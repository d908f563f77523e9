//! What the chunk pacing needs of a model that makes its frames off the model thread:
//! asked for a chunk, it answers later, on the model thread's queue, with a
//! [`WorkerEvent`]. The python worker is one ([`Worker`]); a runtime that steps an
//! in-process model on a thread of its own would be another, paced the same way.

use super::*;
use crate::worker::{ProcessHandle, StepMedia};

/// A model that makes chunks off the model thread (see the module doc).
///
/// What the model is (its size, rate, chunking, inputs) is its package's, which the
/// pacing holds beside it.
pub(crate) trait ChunkModel: Send {
    /// Asks for a chunk of `frames.len()` frames, from `media` (the live video and
    /// program sound for this step, for a model that takes them), written into frames
    /// from `pool`; the answer is a [`WorkerEvent::Chunk`] with the id returned here.
    fn step(&self, frames: Vec<FrameInput>, media: StepMedia, pool: FramePool) -> u64;

    /// Starts the model over from `seed`, `prompt` and the image, if any.
    fn reset(&self, seed: u64, prompt: &str, image: Option<Arc<RgbImage>>);

    /// A new prompt, for models that take it outside their steps.
    fn set_prompt(&self, text: &str, transition_s: f64);

    /// The model's compact state, for a checkpoint (after the chunk in flight).
    fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError>;

    /// Puts a saved compact state back (a checkpoint restored).
    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError>;

    /// Bytes its last saved state holds.
    fn saved_state_bytes(&self) -> u64;

    /// Times it was started again after dying or hanging.
    fn restarts(&self) -> u64;

    /// Its process, read from any thread, where it runs in one.
    fn process(&self) -> Option<ProcessHandle>;
}

impl ChunkModel for Worker {
    fn step(&self, frames: Vec<FrameInput>, media: StepMedia, pool: FramePool) -> u64 {
        Worker::step(self, frames, media, pool)
    }

    fn reset(&self, seed: u64, prompt: &str, image: Option<Arc<RgbImage>>) {
        Worker::reset(self, seed, prompt, image)
    }

    fn set_prompt(&self, text: &str, transition_s: f64) {
        Worker::set_prompt(self, text, transition_s)
    }

    fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Worker::save_state(self)
    }

    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError> {
        Worker::load_state(self, state)
    }

    fn saved_state_bytes(&self) -> u64 {
        self.status().saved_state_bytes
    }

    fn restarts(&self) -> u64 {
        self.status().restarts
    }

    fn process(&self) -> Option<ProcessHandle> {
        Some(self.process_handle())
    }
}
