//! The event stream: what happened in the show (cues applied, output states, config
//! reloads, warnings), fanned out to every `/api/v1/events` subscriber and the log.
//!
//! A bounded broadcast channel: a subscriber that falls behind loses the oldest events
//! (and is told how many), never slows the show down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::outputs::OutputState;

/// One thing that happened, as `/api/v1/events` sends it: `{"type": "<kind>", ...}`,
/// plus `seq` and `time_unix_ms`. [`schema`] is its JSON Schema in the OpenAPI document.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A cue took effect: on `frame`, first shown on `shown_frame`.
    CueApplied {
        id: u64,
        cue: Value,
        frame: u64,
        shown_frame: u64,
        latency_ms: f64,
    },
    /// The element's counters, once a second.
    Stats { stats: Value },
    /// An output changed state (and each retry); `error` is why it is not live.
    OutputState {
        output: String,
        state: OutputState,
        attempt: u32,
        error: Option<String>,
    },
    /// An output was removed.
    OutputRemoved { output: String },
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
    /// The rundown moved (`fired`: the item whose cues were sent) or was loaded.
    Rundown {
        #[serde(skip_serializing_if = "Option::is_none")]
        fired: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cues: Option<Vec<u64>>,
        rundown: Value,
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
    Export { job: Value },
    /// A python model's process went down (`restarting`, with how it ended) or is
    /// running again; `restarts` counts its restarts.
    Model {
        state: String,
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

/// A take's state in a [`Event::Take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// The JSON Schema of an event, written beside [`Event`] and held to it by the tests
/// (each kind's JSON fits, and the schema has exactly the kinds there are).
pub fn schema() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer", "minimum": 0});
    let opt = |t: &str| json!({"type": [t, "null"]});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let kind = |ty: &str, required: &[&str], props: Value| {
        let mut p = props;
        p["type"] = json!({"const": ty});
        p["seq"] = int.clone();
        p["time_unix_ms"] = int.clone();
        let mut req = vec!["type", "seq", "time_unix_ms"];
        req.extend_from_slice(required);
        json!({"type": "object", "title": ty, "required": req, "properties": p, "additionalProperties": false})
    };
    json!({"title": "Event", "oneOf": [
        kind("cue_applied", &["id", "cue", "frame", "shown_frame", "latency_ms"], json!({
            "id": int, "cue": {"$ref": "#/components/schemas/Cue"}, "frame": int, "shown_frame": int,
            "latency_ms": {"type": "number"}})),
        kind("stats", &["stats"], json!({"stats": {"type": "object"}})),
        kind("output_state", &["output", "state", "attempt", "error"], json!({
            "output": string, "state": {"enum": ["connecting", "live", "retrying", "failed", "stopped"]},
            "attempt": int, "error": opt("string")})),
        kind("output_removed", &["output"], json!({"output": string})),
        kind("config", &["ok"], json!({"ok": {"type": "boolean"}, "error": string,
            "changed": strings, "pending_restart": strings})),
        kind("rundown", &["rundown"], json!({"fired": {}, "cues": {"type": "array", "items": int},
            "rundown": {"$ref": "#/components/schemas/Rundown"}})),
        kind("take", &["state", "take"], json!({"state": {"enum": ["recording", "stopped"]},
            "take": string, "start_frame": int, "frames": int, "error": string})),
        kind("checkpoint", &[], json!({"saved": string, "frame": int, "restored": string})),
        kind("export", &["job"], json!({"job": {"$ref": "#/components/schemas/Job"}})),
        kind("model", &["state", "restarts"], json!({"state": {"enum": ["restarting", "running"]},
            "restarts": int, "reason": string})),
        kind("warning", &["message"], json!({"message": string})),
        kind("error", &["message"], json!({"message": string, "model_resets": int})),
    ]})
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
    use serde_json::json;

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
            Event::Stats { stats: json!({}) },
            Event::OutputState {
                output: "o".into(),
                state: OutputState::Live,
                attempt: 1,
                error: None,
            },
            Event::OutputRemoved { output: "o".into() },
            Event::Config {
                ok: false,
                error: Some("e".into()),
                changed: Some(vec![]),
                pending_restart: Some(vec![]),
            },
            Event::Rundown {
                fired: Some(json!(0)),
                cues: Some(vec![1]),
                rundown: json!({}),
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
            Event::Export { job: json!({}) },
            Event::Model {
                state: "restarting".into(),
                restarts: 1,
                reason: Some("its process was killed by signal 9 (SIGKILL)".into()),
            },
            Event::warning("w"),
            Event::Error {
                message: "e".into(),
                model_resets: Some(1),
            },
        ];
        let schema = schema();
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
