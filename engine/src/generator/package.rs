//! Model packages: a folder with `cuecast-model.yaml`, read in either version of the
//! model contract (`docs/model-contract.md`).
//!
//! - Contract 1 (no `contract` field): a TorchScript `model.pt` making one frame per
//!   step at the show's rate. Its manifest is read by [`super::torchscript`], unchanged.
//! - Contract 2 (`contract: 2`): what real-time video models are. A `runtime`
//!   (`python`: the model's own code in a worker process; `aoti` and `torchscript`: a
//!   compiled graph run in this process, see [`super::inprocess`]), a native `fps` the model is
//!   played at, chunks of `frames_per_step` frames, typed per-frame `inputs` (action
//!   axes, W3C keys, mouse, camera poses, a start image), how the prompt is passed, what
//!   a failed step does to the state, and what the model needs (`vram_gb`, `warmup_s`).
//!
//! Every field a package gets wrong is refused by its path (`inputs.keys[2]`), with
//! what was expected: a typo on show day is an error at load, not a silent default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    AudioFormat, Chunking, Fps, ImageInput, ModelInfo, ModelInputs, ParamSpec, PromptMode,
    VideoInput,
};
use crate::cue::{key_codes, ACTION_AXES};
use crate::EngineError;

pub const MANIFEST: &str = "cuecast-model.yaml";
/// The contract versions this cuecast reads.
pub const CONTRACTS: [u32; 2] = [1, 2];

/// The largest chunk a model may make in one step.
pub const MAX_FRAMES_PER_STEP: u32 = 64;
/// The most keys a model may take.
pub const MAX_MODEL_KEYS: usize = 64;
/// The largest `config` a manifest may hand its model, as JSON.
pub const MAX_CONFIG_BYTES: usize = 64 << 10;

/// A frame rate as a manifest writes it: `30`, `16`, or `30000/1001`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum FpsField {
    Number(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamField {
    name: String,
    default: f64,
    min: f64,
    max: f64,
    #[serde(default)]
    description: String,
}

/// `cuecast-model.yaml`, contract 2, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestV2 {
    #[allow(dead_code)]
    contract: u32,
    name: String,
    runtime: String,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    python: Option<String>,
    /// The in-process runtimes' state tensors, in the order their graphs take them.
    #[serde(default)]
    state: Option<Vec<String>>,
    width: u32,
    height: u32,
    fps: FpsField,
    #[serde(default = "one")]
    frames_per_step: u32,
    #[serde(default)]
    first_step_frames: Option<u32>,
    #[serde(default)]
    latency_frames: u32,
    #[serde(default)]
    inputs: InputsField,
    #[serde(default = "every_step")]
    prompt: String,
    #[serde(default)]
    state_rollback: Option<String>,
    #[serde(default)]
    save_state: Option<bool>,
    #[serde(default)]
    vram_gb: f64,
    #[serde(default)]
    memory_gb: f64,
    #[serde(default)]
    warmup_s: Option<f64>,
    #[serde(default)]
    step_timeout_s: Option<f64>,
    #[serde(default)]
    params: Vec<ParamField>,
    #[serde(default)]
    outputs: OutputsField,
    #[serde(default)]
    pitch_limit: Option<f64>,
    #[serde(default)]
    config: Option<serde_yaml::Mapping>,
    #[serde(default)]
    audio: AudioField,
}

/// `audio`: the sound a model makes with its frames (`out`) and takes for each step
/// (`in`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioField {
    #[serde(default)]
    out: Option<FormatField>,
    #[serde(default, rename = "in")]
    input: Option<FormatField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatField {
    rate: u32,
    #[serde(default = "one")]
    channels: u32,
}

/// The sample rates a model's sound may have.
pub const AUDIO_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputsField {
    #[serde(default)]
    axes: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    mouse: bool,
    #[serde(default)]
    camera_pose: bool,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    video: Option<VideoField>,
}

/// `inputs.video`: live video frames in, for video-to-video models.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoField {
    /// Frames a step takes (default: the frames a step makes).
    #[serde(default)]
    frames_per_step: Option<u32>,
    /// The size frames are given at (default: the model's).
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputsField {
    #[serde(default)]
    depth: bool,
}

fn one() -> u32 {
    1
}
fn every_step() -> String {
    "every_step".into()
}
/// What a failed step does to a model's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRollback {
    /// The state before the step is put back (the host saves the compact state first):
    /// a small state, as one-frame models keep.
    Copy,
    /// The state was changed in place and cannot be put back: the model starts over.
    None,
}

impl StateRollback {
    /// As a manifest (and the worker protocol) names it.
    pub fn as_str(self) -> &'static str {
        match self {
            StateRollback::Copy => "copy",
            StateRollback::None => "none",
        }
    }
}

/// How the model's code is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The model's own Python, in a worker process: `entry` is `module:Class`, and
    /// `python` the interpreter the manifest names (relative to the package), if any.
    Python {
        entry: String,
        python: Option<PathBuf>,
    },
    /// An AOTInductor package (`model.pt2`, graphs `reset` and `step`), in process.
    Aoti,
    /// A TorchScript module (`model.pt`, methods `reset` and `step`), in process.
    TorchScript,
}

impl Runtime {
    /// As a manifest names it.
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Python { .. } => "python",
            Runtime::Aoti => "aoti",
            Runtime::TorchScript => "torchscript",
        }
    }

    /// The file an in-process runtime loads the model from.
    pub fn weights(&self) -> Option<&'static str> {
        match self {
            Runtime::Python { .. } => None,
            Runtime::Aoti => Some("model.pt2"),
            Runtime::TorchScript => Some("model.pt"),
        }
    }
}

/// The most state tensors an in-process model may keep.
pub const MAX_STATE_TENSORS: usize = 64;

/// A contract-2 package, checked.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub info: ModelInfo,
    pub runtime: Runtime,
    pub state_rollback: StateRollback,
    /// The model has compact `save_state` / `load_state` (checkpoints, restarts).
    pub save_state: bool,
    /// GPU memory it needs, checked against what is free before it loads.
    pub vram_gb: f64,
    /// Machine memory its processes need: checked before it loads, and (with a margin)
    /// the most they may hold while it runs. 0: not said (on the CPU, `vram_gb` is).
    pub memory_gb: f64,
    /// The longest its process may take to start, load and warm up.
    pub warmup: Duration,
    /// The longest one step may take before the worker is taken for hung.
    pub step_timeout: Duration,
    /// Handed to the model's constructor as it is.
    pub config: serde_json::Value,
    /// An in-process model's state tensors, by name, in the order its graphs take them.
    pub state: Vec<String>,
}

/// The contract a manifest is written to: 1 when it has no `contract` field.
pub fn contract_of(text: &str) -> Result<u32, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    match value.get("contract") {
        None => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n @ 1..=2) => Ok(n as u32),
            _ => Err(format!(
                "contract: this cuecast reads contracts 1 (no contract field) and 2, got {}",
                serde_yaml::to_string(v).unwrap_or_default().trim()
            )),
        },
    }
}

impl Package {
    /// Reads and checks the contract-2 package in `dir`. Errors name the file and field.
    pub fn load(dir: &Path) -> Result<Package, EngineError> {
        let fail = |message: String| EngineError::Model {
            path: dir.to_owned(),
            message,
        };
        if !dir.is_dir() {
            return Err(fail("not a folder".into()));
        }
        let text = std::fs::read_to_string(dir.join(MANIFEST))
            .map_err(|e| fail(format!("{MANIFEST}: {e}")))?;
        if contract_of(&text).map_err(|m| fail(format!("{MANIFEST}: {m}")))? == 1 {
            return Err(fail(format!(
                "{MANIFEST}: a contract 1 package (TorchScript, no contract field): load it with the torchscript backend"
            )));
        }
        let mut package = Package::parse(&text).map_err(|m| fail(format!("{MANIFEST}: {m}")))?;
        package.dir = dir.to_owned();
        if let Some(weights) = package.runtime.weights() {
            // Streamed: a package's weights can be gigabytes.
            let mut hash = Sha256::new().chain_update(text.as_bytes());
            std::fs::File::open(dir.join(weights))
                .and_then(|mut f| std::io::copy(&mut f, &mut hash))
                .map_err(|e| {
                    fail(format!(
                        "{weights}: {e} (a {} package keeps its model there)",
                        package.runtime.name()
                    ))
                })?;
            package.info.hash = format!("sha256:{:x}", hash.finalize());
            return Ok(package);
        }
        if let Runtime::Python { entry, python } = &mut package.runtime {
            let module = entry.split(':').next().unwrap_or_default();
            let file = dir.join(format!("{}.py", module.replace('.', "/")));
            let folder = dir.join(module.replace('.', "/")).join("__init__.py");
            if !file.is_file() && !folder.is_file() {
                return Err(fail(format!(
                    "{MANIFEST}: entry: no {} in the package",
                    file.strip_prefix(dir).unwrap_or(&file).display()
                )));
            }
            if let Some(p) = python.as_mut() {
                if p.components().count() > 1 && p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        package.info.hash = code_hash(dir, &text);
        Ok(package)
    }

    /// Checks a contract-2 manifest's text (the folder is not looked at).
    pub fn parse(text: &str) -> Result<Package, String> {
        let de = serde_yaml::Deserializer::from_str(text);
        let m: ManifestV2 = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." || inner.starts_with(&path) {
                inner
            } else {
                format!("{path}: {inner}")
            }
        })?;
        contract_of(text)?;
        let bad = |field: &str, message: String| Err(format!("{field}: {message}"));
        let name = m.name.trim();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return bad("name", "must be 1 to 128 printable characters".into());
        }
        let runtime = match m.runtime.as_str() {
            "python" => {
                let entry = m
                    .entry
                    .clone()
                    .ok_or("entry: missing: the python runtime needs `entry: module:Class`")?;
                if !is_entry(&entry) {
                    return bad(
                        "entry",
                        format!("expected module:Class (such as model:MyModel), got {entry:?}"),
                    );
                }
                Runtime::Python {
                    entry,
                    python: m.python.as_ref().map(PathBuf::from),
                }
            }
            "aoti" => Runtime::Aoti,
            "torchscript" => Runtime::TorchScript,
            other => {
                return bad(
                    "runtime",
                    format!("expected python, aoti or torchscript, got {other:?}"),
                )
            }
        };
        let in_process = runtime.weights().is_some();
        if m.python.is_some() && in_process {
            return bad(
                "python",
                "only the python runtime has an interpreter".into(),
            );
        }
        if m.entry.is_some() && !matches!(runtime, Runtime::Python { .. }) {
            return bad("entry", "only the python runtime has an entry".into());
        }
        for (field, v) in [("width", m.width), ("height", m.height)] {
            if !(16..=8192).contains(&v) {
                return bad(field, format!("must be 16 to 8192 pixels, got {v}"));
            }
        }
        let fps = parse_fps(&m.fps)?;
        let first = m.first_step_frames.unwrap_or(m.frames_per_step);
        for (field, v, lo) in [
            ("frames_per_step", m.frames_per_step, 1),
            ("first_step_frames", first, 1),
            ("latency_frames", m.latency_frames, 0),
        ] {
            if !(lo..=MAX_FRAMES_PER_STEP).contains(&v) {
                return bad(
                    field,
                    format!("must be {lo} to {MAX_FRAMES_PER_STEP} frames, got {v}"),
                );
            }
        }
        let axes = unique(
            "inputs.axes",
            &m.inputs.axes,
            |a| ACTION_AXES.contains(&a),
            || format!("one of {}", ACTION_AXES.join(", ")),
        )?;
        let keys = unique(
            "inputs.keys",
            &m.inputs.keys,
            |k| key_codes().iter().any(|c| c == k),
            || "a W3C KeyboardEvent.code such as KeyW, ArrowUp, Space, ShiftLeft".into(),
        )?;
        if keys.len() > MAX_MODEL_KEYS {
            return bad(
                "inputs.keys",
                format!("at most {MAX_MODEL_KEYS} keys, got {}", keys.len()),
            );
        }
        let image = match m.inputs.image.as_deref() {
            None | Some("none") => ImageInput::None,
            Some("optional") => ImageInput::Optional,
            Some("required") => ImageInput::Required,
            Some(other) => {
                return bad(
                    "inputs.image",
                    format!("expected optional or required, got {other:?}"),
                )
            }
        };
        let video = match &m.inputs.video {
            None => None,
            Some(v) => {
                let frames = v.frames_per_step.unwrap_or(m.frames_per_step);
                if !(1..=MAX_FRAMES_PER_STEP).contains(&frames) {
                    return bad(
                        "inputs.video.frames_per_step",
                        format!("must be 1 to {MAX_FRAMES_PER_STEP} frames, got {frames}"),
                    );
                }
                let (width, height) = (v.width.unwrap_or(m.width), v.height.unwrap_or(m.height));
                for (field, v) in [("width", width), ("height", height)] {
                    if !(16..=4096).contains(&v) {
                        return bad(
                            &format!("inputs.video.{field}"),
                            format!("must be 16 to 4096 pixels, got {v}"),
                        );
                    }
                }
                if m.latency_frames == 0 {
                    return bad(
                        "latency_frames",
                        "a model with a video input must say how many of its frames after \
                         an input its output for that input is due, its step included: at \
                         least 1"
                            .into(),
                    );
                }
                Some(VideoInput {
                    frames,
                    width,
                    height,
                })
            }
        };
        let audio_format =
            |field: &str, f: &Option<FormatField>| -> Result<Option<AudioFormat>, String> {
                let Some(f) = f else { return Ok(None) };
                if !AUDIO_RATES.contains(&f.rate) {
                    return Err(format!(
                        "{field}.rate: one of {}, got {}",
                        AUDIO_RATES.map(|r| r.to_string()).join(", "),
                        f.rate
                    ));
                }
                if !(1..=2).contains(&f.channels) {
                    return Err(format!("{field}.channels: 1 or 2, got {}", f.channels));
                }
                if (u64::from(f.rate) * u64::from(fps.den)) % u64::from(fps.num) != 0 {
                    return Err(format!(
                        "{field}.rate: {} Hz is not a whole number of samples a frame at {}/{} fps",
                        f.rate, fps.num, fps.den
                    ));
                }
                Ok(Some(AudioFormat {
                    rate: f.rate,
                    channels: f.channels,
                }))
            };
        let audio_out = audio_format("audio.out", &m.audio.out)?;
        let audio_in = audio_format("audio.in", &m.audio.input)?;
        let Some(prompt) = PromptMode::from_manifest_name(&m.prompt) else {
            let names: Vec<&str> = PromptMode::MANIFEST_NAMES.iter().map(|(n, _)| *n).collect();
            return bad(
                "prompt",
                format!("expected {}, got {:?}", names.join(", "), m.prompt),
            );
        };
        let state_rollback = match m.state_rollback.as_deref().unwrap_or("none") {
            "copy" => StateRollback::Copy,
            "none" => StateRollback::None,
            other => {
                return bad(
                    "state_rollback",
                    format!("expected copy or none, got {other:?}"),
                )
            }
        };
        if state_rollback == StateRollback::Copy && m.save_state != Some(true) && !in_process {
            return bad(
                "state_rollback",
                "copy puts back the state save_state gives: it needs save_state: true".into(),
            );
        }
        for (name, gb) in [("vram_gb", m.vram_gb), ("memory_gb", m.memory_gb)] {
            if !(0.0..=4096.0).contains(&gb) {
                return bad(name, format!("must be 0 to 4096 GB, got {gb}"));
            }
        }
        let warmup_s = m.warmup_s.unwrap_or(120.0);
        if !(1.0..=3600.0).contains(&warmup_s) {
            return bad(
                "warmup_s",
                format!("must be 1 to 3600 seconds, got {warmup_s}"),
            );
        }
        let chunk_s = f64::from(m.frames_per_step.max(first)) / fps.as_f64();
        let step_timeout_s = m.step_timeout_s.unwrap_or((4.0 * chunk_s).max(5.0));
        if !(0.1..=600.0).contains(&step_timeout_s) {
            return bad(
                "step_timeout_s",
                format!("must be 0.1 to 600 seconds, got {step_timeout_s}"),
            );
        }
        let (state, state_rollback, save_state) = if in_process {
            in_process_fields(&m, runtime.name())?;
            // Its state is the tensors its graphs hand back: kept whole by cuecast, so a
            // failed step leaves it as it was, and it is its own compact state.
            (
                state_names(m.state.as_deref().unwrap_or_default())?,
                StateRollback::Copy,
                true,
            )
        } else {
            if m.state.is_some() {
                return bad(
                    "state",
                    "only the aoti and torchscript runtimes name their state tensors".into(),
                );
            }
            (Vec::new(), state_rollback, m.save_state.unwrap_or(false))
        };
        let config = match m.config {
            None => serde_json::Value::Object(Default::default()),
            Some(map) => {
                let v = serde_json::to_value(&map).map_err(|e| format!("config: {e}"))?;
                if v.to_string().len() > MAX_CONFIG_BYTES {
                    return bad(
                        "config",
                        format!("at most {} KB as JSON", MAX_CONFIG_BYTES >> 10),
                    );
                }
                v
            }
        };
        let info = ModelInfo {
            name: name.to_owned(),
            width: m.width,
            height: m.height,
            fps,
            any_size: false,
            actions: axes,
            params: params(&m.params)?,
            prompt,
            pitch_limit: m.pitch_limit.unwrap_or(89.0).clamp(0.0, 89.0),
            depth: m.outputs.depth,
            hash: String::new(),
            inputs: ModelInputs {
                keys,
                mouse: m.inputs.mouse,
                camera_pose: m.inputs.camera_pose,
                image,
                video,
                audio: audio_in,
            },
            chunking: Chunking {
                frames_per_step: m.frames_per_step,
                first_step_frames: first,
                latency_frames: m.latency_frames,
            },
            audio: audio_out,
        };
        Ok(Package {
            dir: PathBuf::new(),
            info,
            runtime,
            state_rollback,
            save_state,
            vram_gb: m.vram_gb,
            memory_gb: m.memory_gb,
            warmup: Duration::from_secs_f64(warmup_s),
            step_timeout: Duration::from_secs_f64(step_timeout_s),
            config,
            state,
        })
    }
}

/// What the in-process runtimes cannot take, refused by field: their graphs take tensors
/// only (no text, no live media), each of a fixed shape.
fn in_process_fields(m: &ManifestV2, runtime: &str) -> Result<(), String> {
    let refuse = |field: &str, why: &str| Err(format!("{field}: {why} (runtime: {runtime})"));
    if m.state.is_none() {
        return refuse(
            "state",
            "missing: name the state tensors reset returns and step takes and returns, in order",
        );
    }
    if m.prompt != "none" {
        return refuse(
            "prompt",
            "a compiled graph takes tensors, not text: prompt: none (a text model runs in the python runtime)",
        );
    }
    if m.inputs.image.as_deref() == Some("optional") {
        return refuse(
            "inputs.image",
            "a graph's inputs are fixed: none or required",
        );
    }
    if m.inputs.video.is_some() {
        return refuse("inputs.video", "live video in runs in the python runtime");
    }
    if m.audio.out.is_some() || m.audio.input.is_some() {
        return refuse("audio", "sound runs in the python runtime");
    }
    if m.config.is_some() {
        return refuse(
            "config",
            "a compiled graph has no constructor to hand it to",
        );
    }
    // The state is cuecast's to keep whole: both are what the runtime does anyway.
    for (field, given) in [
        ("state_rollback", m.state_rollback.is_some()),
        ("save_state", m.save_state.is_some()),
    ] {
        if given {
            return refuse(
                field,
                "implied: the state is the tensors the graphs hand back, kept whole (leave it out)",
            );
        }
    }
    Ok(())
}

/// An in-process model's state tensor names: 1 to [`MAX_STATE_TENSORS`], each an
/// identifier, each once.
fn state_names(names: &[String]) -> Result<Vec<String>, String> {
    if names.is_empty() || names.len() > MAX_STATE_TENSORS {
        return Err(format!(
            "state: 1 to {MAX_STATE_TENSORS} tensor names, got {}",
            names.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        let ok = n.len() <= 64
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!(
                "state[{i}]: {n:?} is not a name (letters, digits and _, at most 64)"
            ));
        }
        if !seen.insert(n) {
            return Err(format!("state[{i}]: {n:?} is listed twice"));
        }
    }
    Ok(names.to_vec())
}

/// `module:Class`, each part a dotted Python identifier.
fn is_entry(entry: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|p| {
                p.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    matches!(entry.split_once(':'), Some((m, c)) if ident(m) && ident(c) && !c.contains('.'))
}

/// The names in `list`, each allowed by `known` and listed once.
fn unique(
    field: &str,
    list: &[String],
    known: impl Fn(&str) -> bool,
    expected: impl Fn() -> String,
) -> Result<Vec<String>, String> {
    let mut seen = BTreeSet::new();
    for (i, name) in list.iter().enumerate() {
        if !known(name) {
            return Err(format!(
                "{field}[{i}]: unknown {name:?} (expected {})",
                expected()
            ));
        }
        if !seen.insert(name) {
            return Err(format!("{field}[{i}]: {name:?} is listed twice"));
        }
    }
    Ok(list.to_vec())
}

/// The params a manifest lists, checked: min <= default <= max, each name once.
pub(crate) fn params(fields: &[ParamField]) -> Result<Vec<ParamSpec>, String> {
    let mut params: Vec<ParamSpec> = Vec::new();
    for p in fields {
        let ordered =
            p.min.is_finite() && p.max.is_finite() && p.min <= p.default && p.default <= p.max;
        if !ordered {
            return Err(format!(
                "params.{}: needs min <= default <= max, got {} <= {} <= {}",
                p.name, p.min, p.default, p.max
            ));
        }
        if params.iter().any(|q| q.name == p.name) {
            return Err(format!("params.{}: listed twice", p.name));
        }
        params.push(ParamSpec {
            name: p.name.clone(),
            default: p.default,
            min: p.min,
            max: p.max,
            description: p.description.clone(),
        });
    }
    Ok(params)
}

pub(crate) fn parse_fps(f: &FpsField) -> Result<Fps, String> {
    let bad = |s: String| format!("fps: expected a rate such as 30 or 30000/1001, got {s}");
    let fps = match f {
        FpsField::Number(v) if v.fract() == 0.0 && *v >= 1.0 && *v <= 240.0 => {
            Fps::new(*v as u32, 1)
        }
        FpsField::Number(v) => return Err(bad(v.to_string())),
        FpsField::Text(s) => {
            let (n, d) = s.split_once('/').unwrap_or((s, "1"));
            let (n, d): (u32, u32) = (
                n.trim().parse().map_err(|_| bad(s.clone()))?,
                d.trim().parse().map_err(|_| bad(s.clone()))?,
            );
            if d == 0 || n == 0 || n / d > 240 {
                return Err(bad(s.clone()));
            }
            Fps::new(n, d)
        }
    };
    Ok(fps)
}

/// What identifies a Python package's model for checkpoints: its manifest and its
/// Python sources (weights it downloads or names in `config` are the model's to
/// version). Links are followed, as Python's imports follow them (a folder once, so a
/// loop ends). Bounded, so a package beside a large tree cannot stall a start: at most
/// 1000 files and 64 MiB of them are read, each file's size checked before it is read;
/// a file past the budget counts by its size and time instead of its bytes.
fn code_hash(dir: &Path, manifest: &str) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(std::fs::canonicalize(&d).unwrap_or_else(|_| d.clone())) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "__pycache__" || name.ends_with("venv") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() && seen.len() + stack.len() < 256 {
                stack.push(path);
            } else if meta.is_file() && name.ends_with(".py") && files.len() < 1000 {
                files.push((path, meta));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new().chain_update(manifest.as_bytes());
    let mut budget: u64 = 64 << 20;
    for (f, meta) in files {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        h.update(rel.as_bytes());
        h.update(meta.len().to_le_bytes());
        let read = (meta.len() <= budget)
            .then(|| {
                let mut bytes = Vec::with_capacity(meta.len() as usize);
                std::fs::File::open(&f)
                    .and_then(|file| {
                        std::io::Read::read_to_end(
                            &mut std::io::Read::take(file, budget),
                            &mut bytes,
                        )
                    })
                    .ok()
                    .map(|_| bytes)
            })
            .flatten();
        match read {
            Some(bytes) => {
                budget -= bytes.len() as u64;
                h.update(&bytes);
            }
            None => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.update(modified.to_le_bytes());
            }
        }
    }
    format!("sha256:{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_hash_follows_links_and_reads_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(pkg.join("model.py"), "import helper\n").unwrap();
        std::fs::write(elsewhere.join("helper.py"), "X = 1\n").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("helper.py"), pkg.join("helper.py")).unwrap();
        // A folder that links to itself ends.
        std::os::unix::fs::symlink(&pkg, pkg.join("again")).unwrap();
        let before = code_hash(&pkg, "m");
        std::fs::write(elsewhere.join("helper.py"), "X = 2\n").unwrap();
        let after = code_hash(&pkg, "m");
        assert_ne!(before, after, "the linked file's code is the model's too");
        assert_eq!(after, code_hash(&pkg, "m"));
    }

    const BASE: &str = "contract: 2\nname: kv\nruntime: python\nentry: model:Kv\nwidth: 256\nheight: 144\nfps: 16\n";

    fn parse(extra: &str) -> Result<Package, String> {
        Package::parse(&format!("{BASE}{extra}"))
    }

    #[test]
    fn sound_in_and_out_is_read_and_checked() {
        let p = parse("audio: {out: {rate: 48000, channels: 2}, in: {rate: 16000}}\n").unwrap();
        assert_eq!(
            p.info.audio,
            Some(AudioFormat {
                rate: 48000,
                channels: 2
            })
        );
        let input = p.info.inputs.audio.unwrap();
        assert_eq!((input.rate, input.channels), (16000, 1));
        assert_eq!(input.per_frame(p.info.fps), 1000);
        for (extra, field) in [
            ("audio: {out: {rate: 44000}}\n", "audio.out.rate: one of"),
            (
                "audio: {in: {rate: 16000, channels: 6}}\n",
                "audio.in.channels: 1 or 2",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.starts_with(field), "{extra}: {e}");
        }
        let ntsc = BASE.replace("fps: 16", "fps: 30000/1001");
        let e = Package::parse(&format!("{ntsc}audio: {{out: {{rate: 48000}}}}\n")).unwrap_err();
        assert!(
            e.starts_with("audio.out.rate: 48000 Hz is not a whole number"),
            "{e}"
        );
    }

    #[test]
    fn a_video_input_is_read_and_checked() {
        let p = parse("latency_frames: 2\ninputs: {video: {frames_per_step: 4, width: 512}}\n")
            .unwrap();
        assert_eq!(
            p.info.inputs.video,
            Some(VideoInput {
                frames: 4,
                width: 512,
                height: 144
            })
        );
        let p = parse("frames_per_step: 3\nlatency_frames: 1\ninputs: {video: {}}\n").unwrap();
        assert_eq!(p.info.inputs.video.map(|v| v.frames), Some(3));
        for (extra, field) in [
            (
                "inputs: {video: {}}\n",
                "latency_frames: a model with a video input",
            ),
            (
                "latency_frames: 1\ninputs: {video: {frames_per_step: 0}}\n",
                "inputs.video.frames_per_step: must be 1 to 64",
            ),
            (
                "latency_frames: 1\ninputs: {video: {height: 8}}\n",
                "inputs.video.height: must be 16 to 4096",
            ),
            (
                "latency_frames: 1\ninputs: {video: {fps: 30}}\n",
                "inputs.video.fps: inputs.video: unknown field `fps`",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.starts_with(field), "{extra}: {e}");
        }
    }

    #[test]
    fn reads_every_field() {
        let p = parse(
            "frames_per_step: 4\nfirst_step_frames: 3\nlatency_frames: 2\n\
             inputs: {axes: [forward, yaw], keys: [KeyW, KeyA], mouse: true, camera_pose: true, image: required}\n\
             prompt: set_prompt\nstate_rollback: copy\nsave_state: true\nvram_gb: 2.5\nwarmup_s: 30\n\
             step_timeout_s: 2\nparams: [{name: grain, default: 0.2, min: 0, max: 1}]\n\
             outputs: {depth: true}\nconfig: {layers: 2, name: x}\npython: venv/bin/python\n",
        )
        .unwrap();
        let i = &p.info;
        assert_eq!((i.width, i.height, i.fps), (256, 144, Fps::new(16, 1)));
        assert_eq!(
            i.chunking,
            Chunking {
                frames_per_step: 4,
                first_step_frames: 3,
                latency_frames: 2
            }
        );
        assert_eq!(i.actions, ["forward", "yaw"]);
        assert_eq!(i.inputs.keys, ["KeyW", "KeyA"]);
        assert!(i.inputs.mouse && i.inputs.camera_pose && i.depth);
        assert_eq!(i.inputs.image, ImageInput::Required);
        assert_eq!(i.prompt, PromptMode::SetPrompt);
        assert_eq!(p.state_rollback, StateRollback::Copy);
        assert!(p.save_state);
        assert_eq!(p.vram_gb, 2.5);
        assert_eq!(p.warmup, Duration::from_secs(30));
        assert_eq!(p.step_timeout, Duration::from_secs(2));
        assert_eq!(p.config["layers"], 2);
        assert_eq!(
            p.runtime,
            Runtime::Python {
                entry: "model:Kv".into(),
                python: Some("venv/bin/python".into())
            }
        );
    }

    #[test]
    fn defaults_are_a_one_frame_model_with_no_inputs() {
        let p = parse("").unwrap();
        assert_eq!(p.info.chunking, Chunking::ONE);
        assert_eq!(p.info.inputs, ModelInputs::default());
        assert_eq!(p.info.prompt, PromptMode::Text);
        assert_eq!(p.state_rollback, StateRollback::None);
        assert_eq!(p.step_timeout, Duration::from_secs(5));
    }

    /// Every new field, wrong, is refused by its name.
    #[test]
    fn every_field_wrong_is_refused_by_name() {
        for (extra, field) in [
            ("frames_per_step: 0\n", "frames_per_step"),
            ("frames_per_step: 65\n", "frames_per_step"),
            ("frames_per_step: four\n", "frames_per_step"),
            ("first_step_frames: 0\n", "first_step_frames"),
            ("latency_frames: 99\n", "latency_frames"),
            ("latency_frames: -1\n", "latency_frames"),
            ("inputs: {axes: [jump]}\n", "inputs.axes[0]"),
            ("inputs: {axes: [yaw, yaw]}\n", "inputs.axes[1]"),
            ("inputs: {keys: [w]}\n", "inputs.keys[0]"),
            ("inputs: {keys: KeyW}\n", "inputs.keys"),
            ("inputs: {mouse: yes please}\n", "inputs.mouse"),
            ("inputs: {camera_pose: 3}\n", "inputs.camera_pose"),
            ("inputs: {image: always}\n", "inputs.image"),
            ("inputs: {joystick: true}\n", "joystick"),
            ("prompt: text\n", "prompt"),
            ("state_rollback: undo\n", "state_rollback"),
            ("state_rollback: copy\n", "state_rollback"),
            ("save_state: maybe\n", "save_state"),
            ("vram_gb: -1\n", "vram_gb"),
            ("vram_gb: lots\n", "vram_gb"),
            ("memory_gb: -2\n", "memory_gb"),
            ("warmup_s: 0\n", "warmup_s"),
            ("step_timeout_s: 0\n", "step_timeout_s"),
            ("config: [1, 2]\n", "config"),
            ("outputs: {depth: true, normals: true}\n", "normals"),
            ("framez_per_step: 4\n", "framez_per_step"),
        ] {
            let e = parse(extra)
                .err()
                .unwrap_or_else(|| panic!("{extra} accepted"));
            assert!(e.contains(field), "{extra:?}: {e}");
        }
        for (text, field) in [
            (BASE.replace("runtime: python", "runtime: onnx"), "runtime"),
            (
                BASE.replace("runtime: python", "runtime: torchscript"),
                "entry",
            ),
            (BASE.replace("entry: model:Kv\n", ""), "entry"),
            (BASE.replace("model:Kv", "model.py"), "entry"),
            (BASE.replace("model:Kv", "model:Kv:x"), "entry"),
            (BASE.replace("fps: 16", "fps: 0"), "fps"),
            (BASE.replace("width: 256", "width: 8"), "width"),
            (BASE.replace("contract: 2", "contract: 3"), "contract"),
        ] {
            let e = Package::parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(e.contains(field), "{text:?}: {e}");
        }
    }

    #[test]
    fn contract_one_is_a_manifest_without_the_field() {
        assert_eq!(contract_of("name: x\nwidth: 64\n").unwrap(), 1);
        assert_eq!(contract_of(BASE).unwrap(), 2);
        assert!(contract_of("contract: 9\n")
            .unwrap_err()
            .contains("contract"));
        assert!(contract_of("contract: two\n")
            .unwrap_err()
            .contains("contract"));
    }

    #[test]
    fn a_missing_entry_module_is_named() {
        let dir = std::env::temp_dir().join(format!("cuecast-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST), BASE).unwrap();
        let e = Package::load(&dir).unwrap_err().to_string();
        assert!(e.contains("entry") && e.contains("model.py"), "{e}");
        std::fs::write(dir.join("model.py"), "class Kv: pass\n").unwrap();
        let p = Package::load(&dir).unwrap();
        assert!(p.info.hash.starts_with("sha256:"));
        std::fs::write(dir.join("model.py"), "class Kv: pass  # changed\n").unwrap();
        assert_ne!(
            Package::load(&dir).unwrap().info.hash,
            p.info.hash,
            "code is hashed"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn in_process_packages_name_their_state_and_take_tensors_only() {
        let base = "contract: 2\nname: t\nruntime: aoti\nwidth: 64\nheight: 32\nfps: 10\n\
                    prompt: none\nstate: [latent, t]\ninputs: {keys: [KeyW]}\n";
        let p = Package::parse(base).unwrap();
        assert_eq!(p.runtime, Runtime::Aoti);
        assert_eq!(p.state, ["latent", "t"]);
        assert_eq!(p.state_rollback, StateRollback::Copy);
        let ts = Package::parse(&base.replace("aoti", "torchscript")).unwrap();
        assert_eq!(ts.runtime.weights(), Some("model.pt"));
        for (text, field) in [
            (base.replace("state: [latent, t]\n", ""), "state"),
            (base.replace("[latent, t]", "[latent, latent]"), "state[1]"),
            (base.replace("[latent, t]", "[\"a b\"]"), "state[0]"),
            (base.replace("[latent, t]", "[]"), "state"),
            (base.replace("prompt: none", "prompt: every_step"), "prompt"),
            (format!("{base}python: venv/bin/python\n"), "python"),
            (
                base.replace("{keys: [KeyW]}", "{image: optional}"),
                "inputs.image",
            ),
            (
                base.replace("{keys: [KeyW]}", "{video: {}}\nlatency_frames: 1"),
                "inputs.video",
            ),
            (format!("{base}audio: {{out: {{rate: 16000}}}}\n"), "audio"),
            (format!("{base}config: {{a: 1}}\n"), "config"),
            (format!("{base}state_rollback: copy\n"), "state_rollback"),
            (format!("{base}save_state: true\n"), "save_state"),
            (
                base.replace("runtime: aoti", "runtime: python\nentry: m:M"),
                "state",
            ),
        ] {
            let e = Package::parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(e.starts_with(field), "{text:?}: {e}");
        }
    }
}
