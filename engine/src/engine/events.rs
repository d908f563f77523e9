//! What the engine tells as it happens, typed: a cue applied, the model started over, a
//! python model's process down and up again, a take that ended by itself. Subscribers
//! (the daemon's event stream, the element's bus messages for `gst-launch-1.0` users)
//! each get every event on a queue of their own, with no JSON in between.
//!
//! The model thread never waits for a subscriber: a queue that is full drops the event
//! (counted, and said in the log once a second at most), one whose receiver is gone is
//! forgotten.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use parking_lot::Mutex;

use super::TakeEnded;
use crate::schedule::AppliedCue;

/// Events a subscriber may fall behind by before events are dropped for it.
pub const QUEUE: usize = 4096;

/// Something that happened in the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A cue took effect, and was first shown on `shown_frame`.
    CueApplied(Arc<AppliedCue>),
    /// The model was started over by the failure policy or its state's limit (not by a
    /// cue): the `resets`th time, and why.
    ModelReset { resets: u64, why: String },
    /// A python model's process went down (`restarts`: how many times, this one
    /// included) and is being started again.
    ProcessDown { restarts: u64, reason: String },
    /// It runs again, resumed from its saved state or reset.
    ProcessUp { restarts: u64, resumed: bool },
    /// A take ended by itself (its files could not be written).
    TakeEnded(TakeEnded),
}

/// Where events go: every subscriber's queue.
#[derive(Clone, Default)]
pub struct Subscribers {
    queues: Arc<Mutex<Vec<SyncSender<EngineEvent>>>>,
    dropped: Arc<AtomicU64>,
}

impl Subscribers {
    /// A queue of every event from now on (until the engine stops).
    pub fn subscribe(&self) -> Receiver<EngineEvent> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        self.queues.lock().push(tx);
        rx
    }

    /// Tells every subscriber, never waiting for one.
    pub fn emit(&self, event: EngineEvent) {
        let mut queues = self.queues.lock();
        queues.retain(|q| match q.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!("{n} engine events dropped: a subscriber is not reading");
                }
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Events dropped because a subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_event_and_a_gone_one_is_forgotten() {
        let s = Subscribers::default();
        let (a, b) = (s.subscribe(), s.subscribe());
        let e = EngineEvent::ModelReset {
            resets: 1,
            why: "x".into(),
        };
        s.emit(e.clone());
        assert_eq!(
            (a.try_recv().ok(), b.try_recv().ok()),
            (Some(e.clone()), Some(e.clone()))
        );
        drop(b);
        s.emit(e.clone());
        assert_eq!(s.queues.lock().len(), 1);
        for _ in 0..QUEUE + 10 {
            s.emit(e.clone());
        }
        assert_eq!(s.dropped(), 11, "a full queue drops, never waits");
        drop(a);
    }
}
