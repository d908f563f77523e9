//! The worker protocol's framing: a 4-byte little-endian length, then that many bytes of
//! UTF-8 JSON. Written by hand because it is eight lines on each side and the Python
//! end must need nothing beyond the standard library.
//!
//! The messages are types: cuecast sends a [`Request`] and reads what the worker sends
//! as a [`Reply`], checked like any input from outside (the process runs a model's code,
//! which may write anything on its socket). A message that is not a reply of the
//! protocol, or carries a number out of its range, is a broken worker (killed and
//! started again), never a panic or a wrong figure. `python/protocol.golden.json` holds
//! one message of each kind, which this module's tests and the Python worker's read
//! alike, so the two ends cannot drift apart.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest error message kept from a worker, in bytes (the log's line limit).
pub const MAX_ERROR: usize = super::process::MAX_LINE;
/// The longest traceback kept, in bytes.
const MAX_TRACEBACK: usize = 16 << 10;
/// The longest a step or its write may say it took, in milliseconds (an hour).
const MAX_MS: f64 = 3_600_000.0;

/// A message from cuecast to the worker.
// A request is made, written and dropped one at a time: its size is never multiplied.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Import the model and make it (the first request, once).
    Load(Load),
    /// Start over: `reset(seed, prompt, image)`; the image, if any, is in shared memory.
    Reset {
        seed: u64,
        prompt: String,
        image: Option<ImageAt>,
    },
    /// `set_prompt(text, transition_s)`, for models that take prompts that way.
    SetPrompt { text: String, transition_s: f64 },
    /// Make a chunk of `frames` frames into shared memory at `out`, from the input
    /// video at `video` (for a model that takes one).
    Step {
        id: u64,
        frames: usize,
        inputs: StepInputs,
        out: Out,
        #[serde(skip_serializing_if = "Option::is_none")]
        video: Option<VideoAt>,
        /// The program's sound for the step's span, for a model that takes it.
        #[serde(skip_serializing_if = "Option::is_none")]
        audio: Option<SoundAt>,
    },
    /// Write the compact state to `path` (as the worker sees it), at most
    /// `state_limit_bytes`.
    SaveState {
        path: PathBuf,
        state_limit_bytes: u64,
    },
    /// Read the compact state from `path`.
    LoadState { path: PathBuf },
    /// End: nothing more will be asked.
    Quit,
}

/// What `load` says: the package, its entry, and how to run it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    pub package: PathBuf,
    pub entry: String,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// `every_step`, `set_prompt` or `none`: the manifest's names.
    pub prompt: &'static str,
    /// `copy` or `none`.
    pub state_rollback: &'static str,
    pub save_state: bool,
    pub state_limit_bytes: u64,
    pub vram_gb: f64,
    pub threads: usize,
    pub config: Value,
    pub shm: ShmAt,
}

/// The shared memory: an open descriptor of the worker's, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShmAt {
    pub fd: i32,
    pub bytes: usize,
}

/// Where the start image lies in shared memory (RGB u8, row-major).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageAt {
    pub offset: usize,
    pub width: usize,
    pub height: usize,
}

/// Where a step's input video lies in shared memory: `frames` RGB u8 frames of
/// `width` x `height`, oldest first, one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VideoAt {
    pub offset: usize,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
}

/// Where a step's frames go in shared memory: RGB at `rgb`, depth (when the model
/// makes it) at `depth`, its sound (when it makes sound) at `audio`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Out {
    pub rgb: usize,
    pub depth: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<SoundAt>,
}

/// Sound in shared memory: `samples` x `channels` interleaved float32 at `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SoundAt {
    pub offset: usize,
    pub samples: usize,
    pub channels: usize,
    pub rate: u32,
}

/// A step's inputs, a row per frame, as `step` receives them; only those the model
/// takes are sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepInputs {
    pub frame: Vec<u64>,
    pub time_s: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axes: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mouse: Option<Vec<[f32; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<[f32; 3]>>,
    /// World-to-camera, row-major 4x4, flat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_pose: Option<Vec<[f32; 16]>>,
    /// Row-major 3x3, flat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intrinsics: Option<Vec<[f32; 9]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Vec<f32>>>,
    /// `every_step` prompts: the text, the one before it, and how far each frame is
    /// from the one to the other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_previous: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_mix: Option<Vec<f32>>,
}

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

pub fn write(w: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
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

    /// The golden messages, which the Python worker's test reads too.
    fn golden() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/protocol.golden.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// One request of each kind, as cuecast makes them.
    fn requests() -> Vec<Request> {
        vec![
            Request::Load(Load {
                package: "/models/kv".into(),
                entry: "model:Kv".into(),
                device: "cpu".into(),
                width: 64,
                height: 36,
                fps: 16.0,
                prompt: "every_step",
                state_rollback: "copy",
                save_state: true,
                state_limit_bytes: 256_000_000,
                vram_gb: 0.5,
                threads: 1,
                config: json!({"layers": 2}),
                shm: ShmAt {
                    fd: 5,
                    bytes: 41_536,
                },
            }),
            Request::Reset {
                seed: 7,
                prompt: "a quiet valley".into(),
                image: Some(ImageAt {
                    offset: 27_648,
                    width: 64,
                    height: 36,
                }),
            },
            Request::SetPrompt {
                text: "snow".into(),
                transition_s: 1.5,
            },
            Request::Step {
                id: 3,
                frames: 2,
                inputs: StepInputs {
                    frame: vec![8, 9],
                    time_s: vec![0.5, 0.5625],
                    axes: Some(vec![vec![1.0], vec![0.5]]),
                    keys: Some(vec![vec![1.0, 0.0], vec![0.0, 0.0]]),
                    mouse: Some(vec![[3.0, -2.0], [0.0, 0.0]]),
                    buttons: Some(vec![[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
                    camera_pose: Some(vec![
                        [
                            1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.
                        ];
                        2
                    ]),
                    intrinsics: Some(vec![[50., 0., 32., 0., 50., 18., 0., 0., 1.]; 2]),
                    params: Some(vec![vec![0.25], vec![0.25]]),
                    prompt: Some("snow".into()),
                    prompt_previous: Some(None),
                    prompt_mix: Some(vec![0.5, 1.0]),
                },
                out: Out {
                    rgb: 0,
                    depth: None,
                    audio: Some(SoundAt {
                        offset: 39_616,
                        samples: 400,
                        channels: 1,
                        rate: 16_000,
                    }),
                },
                audio: Some(SoundAt {
                    offset: 38_016,
                    samples: 400,
                    channels: 1,
                    rate: 16_000,
                }),
                video: Some(VideoAt {
                    offset: 34_560,
                    frames: 2,
                    width: 32,
                    height: 18,
                }),
            },
            Request::SaveState {
                path: "/run/cuecast/checkpoint.safetensors".into(),
                state_limit_bytes: 256_000_000,
            },
            Request::LoadState {
                path: "/run/cuecast/load.safetensors".into(),
            },
            Request::Quit,
        ]
    }

    #[test]
    fn requests_are_written_as_the_golden_messages_say() {
        let golden = golden();
        let want = golden["requests"].as_array().unwrap();
        let made: Vec<Value> = requests()
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert_eq!(made.len(), want.len());
        for (m, w) in made.iter().zip(want) {
            assert_eq!(m, w);
        }
    }

    #[test]
    fn the_golden_replies_read_as_replies() {
        let golden = golden();
        let replies: Vec<Reply> = golden["replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Reply::from_value(v.clone()).unwrap())
            .collect();
        assert_eq!(replies[0], Reply::Hello { protocol: PROTOCOL });
        assert!(replies.contains(&Reply::Alive));
        assert!(replies.contains(&Reply::Loaded));
        assert!(replies.iter().any(|r| matches!(
            r,
            Reply::Done(Done {
                frames: Some(2),
                step_ms: Some(_),
                ..
            })
        )));
        assert!(replies
            .iter()
            .any(|r| matches!(r, Reply::Error { message, .. } if !message.is_empty())));
    }

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
