//! The event stream: what happened in the show (cues applied, output states, config
//! reloads, warnings), fanned out to every `/api/v1/events` subscriber and the log.
//!
//! A bounded broadcast channel: a subscriber that falls behind loses the oldest events
//! (and is told how many), never slows the show down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::library::Job;
use crate::outputs::OutputState;
use crate::rundown::RundownView;

/// One thing that happened, as `/api/v1/events` sends it: `{"type": "<kind>", ...}`,
/// plus the `seq` and `time_unix_ms` every event carries.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A cue took effect: on `frame`, first shown on `shown_frame`.
    CueApplied {
        id: u64,
        #[schemars(schema_with = "cuecast_engine::schema::cue_ref")]
        cue: Value,
        frame: u64,
        shown_frame: u64,
        latency_ms: f64,
    },
    /// The element's counters, once a second.
    Stats { stats: LiveStats },
    /// An output changed state (and each retry); `error` is why it is not live.
    OutputState {
        output: String,
        state: OutputState,
        attempt: u32,
        error: Option<String>,
    },
    /// An output was removed.
    OutputRemoved { output: String },
    /// An input changed state (and each retry); `error` is why it is not live, naming
    /// the input and the field.
    InputState {
        input: String,
        state: crate::inputs::InputState,
        attempt: u32,
        error: Option<String>,
    },
    /// A config edit was applied (`ok`, with what changed) or refused (`error`).
    Config {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        changed: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pending_restart: Option<Vec<String>>,
    },
    /// The rundown moved (`fired`: the index of the item whose cues were sent) or was
    /// loaded.
    Rundown {
        #[serde(skip_serializing_if = "Option::is_none")]
        fired: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cues: Option<Vec<u64>>,
        rundown: RundownView,
    },
    /// A take started or stopped; `error` is why it ended by itself.
    Take {
        state: TakeState,
        take: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_frame: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        frames: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A checkpoint was saved or restored.
    Checkpoint {
        #[serde(skip_serializing_if = "Option::is_none")]
        saved: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        frame: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        restored: Option<String>,
    },
    /// An export job moved on.
    Export { job: Job },
    /// A python model's process went down (`restarting`, with how it ended) or is
    /// running again; `restarts` counts its restarts.
    Model {
        state: ModelState,
        restarts: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Something a producer should know; the show goes on.
    Warning { message: String },
    /// Something failed; the show goes on where it can. `model_resets` counts the model's
    /// starts over, on the event that tells of one.
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_resets: Option<u64>,
    },
}

/// A python model's process in an [`Event::Model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    Restarting,
    Running,
}

/// The element's counters of the last second, as its `cuecast-stats` bus message
/// tells them: in status (`live`) and in each [`Event::Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct LiveStats {
    /// Frames the element has pushed.
    pub frames: u64,
    /// Frames the model made (the rest repeated the last one).
    pub rendered: u64,
    pub repeated: u64,
    /// Model steps that failed.
    pub failed: u64,
    /// Frames pushed in the last second.
    pub fps: f64,
    pub repeated_last_second: u64,
    pub step_ms_mean: f64,
    pub step_ms_max: f64,
}

/// A take's state in a [`Event::Take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TakeState {
    Recording,
    Stopped,
}

impl Event {
    pub fn warning(message: impl Into<String>) -> Self {
        Event::Warning {
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Event::Error {
            message: message.into(),
            model_resets: None,
        }
    }
}

/// The JSON Schema of an event as it is sent: [`Event`]'s derived schema with the
/// `seq` and `time_unix_ms` that [`Events::send`] adds to every kind.
pub fn schema(generator: &mut schemars::SchemaGenerator) -> Value {
    let mut schema = Event::json_schema(generator).to_value();
    let stamp = json!({"type": "integer", "format": "uint64", "minimum": 0});
    for kind in schema["oneOf"].as_array_mut().into_iter().flatten() {
        kind["properties"]["seq"] = stamp.clone();
        kind["properties"]["time_unix_ms"] = stamp.clone();
        if let Some(required) = kind["required"].as_array_mut() {
            required.extend([json!("seq"), json!("time_unix_ms")]);
        }
    }
    schema
}

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
    /// Sends an event; `seq` and `time_unix_ms` are added.
    pub fn send(&self, event: Event) {
        self.send_value(serde_json::to_value(event).expect("events always serialize"));
    }

    fn send_value(&self, mut event: Value) {
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
    use crate::library::JobState;

    #[test]
    fn subscribers_get_numbered_events() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.send(Event::warning("a"));
        events.send(Event::warning("b"));
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(1), Some(2)));
        assert_eq!(b["message"], "b");
    }

    /// The schema lists exactly the kinds of event there are, each with the fields its
    /// JSON has (the end-to-end tests check real events against it whole).
    #[test]
    fn the_schema_has_every_kind_and_field() {
        let every = [
            Event::CueApplied {
                id: 1,
                cue: json!({}),
                frame: 2,
                shown_frame: 3,
                latency_ms: 4.0,
            },
            Event::Stats {
                stats: LiveStats::default(),
            },
            Event::OutputState {
                output: "o".into(),
                state: OutputState::Live,
                attempt: 1,
                error: None,
            },
            Event::OutputRemoved { output: "o".into() },
            Event::InputState {
                input: "i".into(),
                state: crate::inputs::InputState::Retrying,
                attempt: 1,
                error: Some("e".into()),
            },
            Event::Config {
                ok: false,
                error: Some("e".into()),
                changed: Some(vec![]),
                pending_restart: Some(vec![]),
            },
            Event::Rundown {
                fired: Some(0),
                cues: Some(vec![1]),
                rundown: RundownView {
                    items: vec![],
                    current: None,
                    next: None,
                },
            },
            Event::Take {
                state: TakeState::Stopped,
                take: "t".into(),
                start_frame: Some(1),
                frames: Some(2),
                error: Some("e".into()),
            },
            Event::Checkpoint {
                saved: Some("c".into()),
                frame: Some(1),
                restored: Some("c".into()),
            },
            Event::Export {
                job: Job {
                    id: 1,
                    take: "t".into(),
                    out: "o".into(),
                    state: JobState::Failed,
                    stage: "s".into(),
                    done: 1,
                    total: 2,
                    error: Some("e".into()),
                    files: vec![],
                    seconds: Some(1.0),
                },
            },
            Event::Model {
                state: ModelState::Restarting,
                restarts: 1,
                reason: Some("its process was killed by signal 9 (SIGKILL)".into()),
            },
            Event::warning("w"),
            Event::Error {
                message: "e".into(),
                model_resets: Some(1),
            },
        ];
        let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let schema = schema(&mut g);
        let kinds = schema["oneOf"].as_array().unwrap();
        assert_eq!(kinds.len(), every.len());
        for e in every {
            let v = serde_json::to_value(&e).unwrap();
            let ty = v["type"].as_str().unwrap();
            let k = kinds
                .iter()
                .find(|k| k["properties"]["type"]["const"] == ty)
                .unwrap_or_else(|| panic!("no schema for {ty}"));
            for field in v.as_object().unwrap().keys() {
                assert!(
                    k["properties"].get(field).is_some(),
                    "{ty}.{field} is not in the schema"
                );
            }
            for r in k["required"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                assert!(
                    v.get(r).is_some() || ["seq", "time_unix_ms"].contains(&r),
                    "{ty} has no {r}"
                );
            }
        }
    }
}
