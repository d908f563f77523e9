//! The event stream: what happened in the show (cues applied, output states, config
//! reloads, warnings), fanned out to every `/api/v1/events` subscriber and the log.
//!
//! A bounded broadcast channel: a subscriber that falls behind loses the oldest events
//! (and is told how many), never slows the show down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::broadcast;

/// How many events a slow subscriber may lag behind before losing some.
const BACKLOG: usize = 1024;

/// Where events are sent. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Arc<Value>>,
    seq: Arc<AtomicU64>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(BACKLOG).0,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Events {
    /// Sends an event (a JSON object with a `type`); `seq` and `time_unix_ms` are added.
    pub fn send(&self, mut event: Value) {
        if let Value::Object(map) = &mut event {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            map.insert("seq".into(), seq.into());
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            map.insert("time_unix_ms".into(), ms.into());
        }
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribers_get_numbered_events() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.send(json!({"type": "warning", "message": "a"}));
        events.send(json!({"type": "warning", "message": "b"}));
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(1), Some(2)));
        assert_eq!(b["message"], "b");
    }
}
