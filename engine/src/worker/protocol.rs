//! The worker protocol's framing: a 4-byte little-endian length, then that many bytes of
//! UTF-8 JSON. Written by hand because it is eight lines on each side and the Python
//! end must need nothing beyond the standard library.
//!
//! What the worker sends is read as a [`Reply`] and checked like any input from outside:
//! the process runs a model's code, which may write anything on its socket. A message
//! that is not a reply of the protocol, or carries a number out of its range, is a
//! broken worker (killed and started again), never a panic or a wrong figure.

use std::io::{self, Read, Write};

use serde::Deserialize;
use serde_json::Value;

/// The longest error message kept from a worker, in bytes (the log's line limit).
pub const MAX_ERROR: usize = super::process::MAX_LINE;
/// The longest traceback kept, in bytes.
const MAX_TRACEBACK: usize = 16 << 10;
/// The longest a step or its write may say it took, in milliseconds (an hour).
const MAX_MS: f64 = 3_600_000.0;

/// A message from the worker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The heartbeat.
    Alive,
    /// The first message: the protocol it speaks.
    Hello { protocol: u64 },
    /// The model loaded.
    Loaded,
    /// A request done; the fields of the request's kind.
    Done(Done),
    /// A request failed: the model's error (or the contract it broke).
    Error {
        #[serde(default)]
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    },
}

/// What a finished request tells.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Done {
    /// A step: frames written, and whether depth was.
    #[serde(default)]
    pub frames: Option<u64>,
    #[serde(default)]
    pub depth: Option<bool>,
    /// A step: milliseconds in the model's `step`, and writing its frames.
    #[serde(default)]
    pub step_ms: Option<f64>,
    #[serde(default)]
    pub write_ms: Option<f64>,
    /// A saved state: its size.
    #[serde(default)]
    pub bytes: Option<u64>,
}

impl Reply {
    /// Reads a message as a reply, checking every number; the error says what was wrong.
    pub fn from_value(v: Value) -> Result<Reply, String> {
        let mut r: Reply = serde_json::from_value(v).map_err(|e| {
            let mut e = e.to_string();
            truncate(&mut e, 200);
            format!("it sent a message that is not a reply of the protocol: {e}")
        })?;
        match &mut r {
            Reply::Done(d) => {
                for (name, v) in [("step_ms", d.step_ms), ("write_ms", d.write_ms)] {
                    if v.is_some_and(|ms| !(0.0..=MAX_MS).contains(&ms)) {
                        return Err(format!(
                            "it said {name} was {:e}, outside 0 to {MAX_MS}",
                            v.unwrap_or_default()
                        ));
                    }
                }
            }
            Reply::Error { message, traceback } => {
                truncate(message, MAX_ERROR);
                if let Some(t) = traceback {
                    truncate(t, MAX_TRACEBACK);
                }
            }
            _ => {}
        }
        Ok(r)
    }
}

/// Cuts `s` to at most `max` bytes, on a character boundary, marking the cut.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
}

/// The largest message either side may send. Requests carry a chunk's inputs (a few
/// hundred numbers a frame), never frames.
pub const MAX_MESSAGE: usize = 16 << 20;
/// The protocol version the worker must speak.
pub const PROTOCOL: u64 = 1;

pub fn write(w: &mut impl Write, message: &Value) -> io::Result<()> {
    let data = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(4 + data.len());
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(&data);
    w.write_all(&framed)
}

pub fn read(r: &mut impl Read) -> io::Result<Value> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head)?;
    let n = u32::from_le_bytes(head) as usize;
    if n > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {n} bytes, over the {MAX_MESSAGE} allowed"),
        ));
    }
    let mut data = vec![0u8; n];
    r.read_exact(&mut data)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_are_checked_like_any_input() {
        let done = Reply::from_value(json!({"op": "done", "id": 4, "frames": 3, "step_ms": 2.5}));
        assert_eq!(
            done.unwrap(),
            Reply::Done(Done {
                frames: Some(3),
                step_ms: Some(2.5),
                ..Done::default()
            })
        );
        for bad in [
            json!({"op": "done", "step_ms": 1e308}),
            json!({"op": "done", "write_ms": -1.0}),
            json!({"op": "done", "frames": -3}),
            json!({"op": "done", "frames": "many"}),
            json!({"op": "chunk"}),
            json!({"no": "op"}),
            json!([1, 2]),
        ] {
            assert!(Reply::from_value(bad.clone()).is_err(), "{bad}");
        }
        let long = "x".repeat(5_000_000);
        let Ok(Reply::Error { message, .. }) =
            Reply::from_value(json!({"op": "error", "message": long}))
        else {
            panic!("an error reply");
        };
        assert!(message.len() <= MAX_ERROR + 4, "{}", message.len());
    }

    #[test]
    fn messages_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write(&mut buf, &json!({"op": "step", "id": 3})).unwrap();
        assert_eq!(
            read(&mut buf.as_slice()).unwrap(),
            json!({"op": "step", "id": 3})
        );
        let mut huge = ((MAX_MESSAGE + 1) as u32).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let e = read(&mut huge.as_slice()).unwrap_err();
        assert!(e.to_string().contains("over"), "{e}");
        let e = read(&mut [2u8, 0, 0, 0, b'{'].as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
