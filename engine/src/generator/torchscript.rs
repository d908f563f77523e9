//! `torchscript`: bring your own model, as a package folder.
//!
//! ```text
//! my-model/
//!   cuecast-model.yaml   what the model is: size, rate, actions, params, prompt, outputs
//!   model.pt             TorchScript with two methods:
//!                          reset(seed: int, prompt: str) -> Dict[str, Tensor]
//!                          step(state: Dict[str, Tensor], action: Tensor, params: Tensor,
//!                               prompt: str) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]
//! ```
//!
//! `docs/model-contract.md` is the full contract. Everything a package gets wrong is
//! caught as early as possible with the file and field named: the manifest and the
//! methods at load, the output shapes and types on the warm-up steps at load, NaNs and
//! exceptions at run time as a failed step (the engine repeats the previous frame and
//! counts it; the model's state stays as it was before the failed step).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tch::{CModule, Device, IValue, Kind, Tensor};

use super::{
    first_line, write_image, BackendConfig, FrameInput, Generator, Image, ModelInfo, PromptMode,
    PromptState, StepError,
};
use crate::cue::ACTION_AXES;
use crate::EngineError;

pub use super::package::MANIFEST;
use super::package::{parse_fps, FpsField, ParamField};
pub const WEIGHTS: &str = "model.pt";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// `1`, or left out.
    #[serde(default)]
    #[allow(dead_code)]
    contract: Option<u32>,
    name: String,
    width: u32,
    height: u32,
    /// `30`, `25`, or a fraction such as `30000/1001`.
    fps: FpsField,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    params: Vec<ParamField>,
    #[serde(default = "default_prompt")]
    prompt: String,
    #[serde(default)]
    outputs: Outputs,
    #[serde(default)]
    pitch_limit: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outputs {
    #[serde(default = "yes")]
    depth: bool,
}

fn default_prompt() -> String {
    "text".into()
}

fn yes() -> bool {
    true
}

pub struct TorchScript {
    info: ModelInfo,
    module: CModule,
    device: Device,
    /// Indices into the engine's action axes, in the order the model takes them.
    action_axes: Vec<usize>,
    state: Vec<(String, Tensor)>,
    depth: Option<Tensor>,
}

impl TorchScript {
    pub fn create(config: &BackendConfig) -> Result<Box<dyn Generator>, EngineError> {
        let dir = config.model.as_deref().ok_or_else(|| EngineError::Config {
            what: "model".into(),
            message: "the torchscript backend needs a model package folder".into(),
        })?;
        Ok(Box::new(Self::load(
            dir,
            config.device,
            config.seed,
            &config.prompt,
        )?))
    }

    /// Loads and checks a package; runs `reset` once.
    pub fn load(
        dir: &Path,
        device: Device,
        seed: u64,
        prompt: &str,
    ) -> Result<TorchScript, EngineError> {
        let fail = |message: String| EngineError::Model {
            path: dir.to_owned(),
            message,
        };
        if !dir.is_dir() {
            return Err(fail("not a folder".into()));
        }
        let manifest_path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| fail(format!("{MANIFEST}: {e}")))?;
        match super::package::contract_of(&text).map_err(|m| fail(format!("{MANIFEST}: {m}")))? {
            1 => {}
            _ => {
                let runtime = super::package::Package::parse(&text)
                    .map(|p| p.runtime)
                    .map_err(|m| fail(format!("{MANIFEST}: {m}")))?;
                return Err(fail(match runtime {
                    super::package::Runtime::Python { .. } => format!(
                        "{MANIFEST}: runtime: this package runs as python: load it with the python backend"
                    ),
                    super::package::Runtime::TorchScript | super::package::Runtime::Aoti => {
                        format!(
                            "{MANIFEST}: a contract 2 package: the engine runs it chunk by chunk, not as a frame generator"
                        )
                    }
                }));
            }
        }
        let manifest: Manifest =
            serde_yaml::from_str(&text).map_err(|e| fail(format!("{MANIFEST}: {e}")))?;
        let info_without_hash =
            model_info(&manifest).map_err(|m| fail(format!("{MANIFEST}: {m}")))?;
        let weights = dir.join(WEIGHTS);
        let bytes = std::fs::read(&weights).map_err(|e| fail(format!("{WEIGHTS}: {e}")))?;
        let hash = Sha256::new()
            .chain_update(text.as_bytes())
            .chain_update(&bytes)
            .finalize();
        let info = ModelInfo {
            hash: format!("sha256:{hash:x}"),
            ..info_without_hash
        };
        let mut module = CModule::load_on_device(&weights, device).map_err(|e| {
            fail(format!(
                "{WEIGHTS}: not a TorchScript module: {}",
                first_line(&e.to_string())
            ))
        })?;
        module.set_eval();
        let action_axes = manifest
            .actions
            .iter()
            .map(|a| ACTION_AXES.iter().position(|x| x == a).unwrap_or_default())
            .collect();
        let mut model = TorchScript {
            info,
            module,
            device,
            action_axes,
            state: Vec::new(),
            depth: None,
        };
        model.reset(seed, prompt).map_err(|e| fail(e.0))?;
        Ok(model)
    }

    fn call(&self, method: &str, args: &[IValue]) -> Result<IValue, StepError> {
        self.module.method_is(method, args).map_err(|e| {
            let msg = first_line(&e.to_string());
            if msg.contains(&format!("'{method}'"))
                && (msg.contains("not defined") || msg.contains("does not have"))
            {
                StepError(format!("{WEIGHTS} has no method `{method}`"))
            } else {
                StepError(format!("{method}() raised: {msg}"))
            }
        })
    }

    fn prompt_arg(&self, text: &str) -> IValue {
        IValue::String(match self.info.prompt {
            PromptMode::Text | PromptMode::SetPrompt => text.to_owned(),
            PromptMode::None => String::new(),
        })
    }
}

fn model_info(m: &Manifest) -> Result<ModelInfo, String> {
    if m.name.trim().is_empty() {
        return Err("name: must not be empty".into());
    }
    for (field, v) in [("width", m.width), ("height", m.height)] {
        if !(16..=8192).contains(&v) {
            return Err(format!("{field}: must be 16 to 8192 pixels, got {v}"));
        }
    }
    let fps = parse_fps(&m.fps)?;
    for a in &m.actions {
        if !ACTION_AXES.contains(&a.as_str()) {
            return Err(format!(
                "actions: unknown action {a:?} (expected some of {})",
                ACTION_AXES.join(", ")
            ));
        }
    }
    let params = super::package::params(&m.params)?;
    let prompt = match m.prompt.as_str() {
        "text" => PromptMode::Text,
        "none" => PromptMode::None,
        other => return Err(format!("prompt: expected text or none, got {other:?}")),
    };
    Ok(ModelInfo {
        name: m.name.clone(),
        width: m.width,
        height: m.height,
        fps,
        any_size: false,
        actions: m.actions.clone(),
        params,
        prompt,
        pitch_limit: m.pitch_limit.unwrap_or(89.0).clamp(0.0, 89.0),
        depth: m.outputs.depth,
        hash: String::new(),
        inputs: Default::default(),
        chunking: Default::default(),
        audio: None,
    })
}

/// Reads a `Dict[str, Tensor]` that a method returned.
fn state_of(value: IValue, method: &str) -> Result<Vec<(String, Tensor)>, StepError> {
    let bad = |what: &str| {
        StepError(format!(
            "{method}() must return the state as Dict[str, Tensor], got {what}"
        ))
    };
    match value {
        IValue::GenericDict(items) => items
            .into_iter()
            .map(|(k, v)| match (k, v) {
                (IValue::String(k), IValue::Tensor(t)) => Ok((k, t)),
                (k, v) => Err(bad(&format!("an entry {k:?}: {}", kind_name(&v)))),
            })
            .collect(),
        other => Err(bad(kind_name(&other))),
    }
}

fn kind_name(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a Tensor",
        IValue::Double(_) => "a float",
        IValue::Int(_) => "an int",
        IValue::Bool(_) => "a bool",
        IValue::Tuple(_) => "a tuple",
        IValue::String(_) => "a str",
        IValue::GenericDict(_) => "a dict",
        _ => "a list or object",
    }
}

pub(super) fn all_finite(t: &Tensor) -> Result<bool, StepError> {
    if !matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Ok(true);
    }
    // On the CPU a scan of the values costs microseconds; three tensor ops cost a
    // quarter of a millisecond in dispatch alone, per check, per frame.
    if t.device() == Device::Cpu && t.is_contiguous() && t.kind() == Kind::Float {
        return Ok(super::cpu_slice::<f32>(t).iter().all(|v| v.is_finite()));
    }
    Ok(t.f_isfinite()?.f_all()?.int64_value(&[]) == 1)
}

impl Generator for TorchScript {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        self.device
    }

    fn reset(&mut self, seed: u64, prompt: &str) -> Result<(), StepError> {
        let out = self.call(
            "reset",
            &[IValue::Int(seed as i64), self.prompt_arg(prompt)],
        )?;
        self.state = state_of(out, "reset")?;
        self.depth = None;
        Ok(())
    }

    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        let action: Vec<f32> = self
            .action_axes
            .iter()
            .map(|&i| input.action[i] as f32)
            .collect();
        let params: Vec<f32> = input.params.iter().map(|&v| v as f32).collect();
        let state = IValue::GenericDict(
            self.state
                .iter()
                .map(|(k, t)| (IValue::String(k.clone()), IValue::Tensor(t.shallow_clone())))
                .collect(),
        );
        let args = [
            state,
            IValue::Tensor(Tensor::from_slice(&action).to_device(self.device)),
            IValue::Tensor(Tensor::from_slice(&params).to_device(self.device)),
            self.prompt_arg(&input.prompt.text),
        ];
        let result = self.call("step", &args)?;
        let (rgb, depth, state) = match result {
            IValue::Tuple(mut v) if v.len() == 3 => {
                let state = v.pop().unwrap();
                let depth = v.pop().unwrap();
                let rgb = v.pop().unwrap();
                (rgb, depth, state)
            }
            other => {
                return Err(StepError(format!(
                    "step() must return (rgb, depth, state), got {}",
                    kind_name(&other)
                )))
            }
        };
        let (w, h) = (self.info.width as i64, self.info.height as i64);
        let rgb = match rgb {
            IValue::Tensor(t) => t,
            other => {
                return Err(StepError(format!(
                    "step() rgb must be a Tensor, got {}",
                    kind_name(&other)
                )))
            }
        };
        let rgb_ok = match (rgb.kind(), rgb.size().as_slice()) {
            (Kind::Float | Kind::Half | Kind::BFloat16, [3, sh, sw]) => (*sh, *sw) == (h, w),
            (Kind::Uint8, [sh, sw, 3]) => (*sh, *sw) == (h, w),
            _ => false,
        };
        if !rgb_ok {
            return Err(StepError(format!(
                "step() rgb must be float [3, {h}, {w}] or uint8 [{h}, {w}, 3], got {:?} {:?}",
                rgb.kind(),
                rgb.size()
            )));
        }
        if !all_finite(&rgb)? {
            return Err(StepError(format!(
                "step() rgb has NaN or infinite values at frame {}",
                input.frame
            )));
        }
        let depth = match depth {
            IValue::Tensor(t) if self.info.depth => {
                let d = match t.size().as_slice() {
                    [1, sh, sw] | [sh, sw] if (*sh, *sw) == (h, w) => t.reshape([h, w]),
                    other => {
                        return Err(StepError(format!(
                            "step() depth must be [{h}, {w}] or [1, {h}, {w}], got {other:?}"
                        )))
                    }
                };
                if !matches!(
                    d.kind(),
                    Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
                ) {
                    return Err(StepError(format!(
                        "step() depth must be a float tensor in metres, got {:?}",
                        d.kind()
                    )));
                }
                if !all_finite(&d)? {
                    return Err(StepError(format!(
                        "step() depth has NaN or infinite values at frame {}",
                        input.frame
                    )));
                }
                Some(d)
            }
            IValue::Tensor(_) | IValue::None => None,
            other => {
                return Err(StepError(format!(
                    "step() depth must be a Tensor or None, got {}",
                    kind_name(&other)
                )))
            }
        };
        let state = state_of(state, "step")?;
        // A state gone bad is caught like a bad frame: the step fails and the state
        // before it is kept, instead of every later frame coming from NaN.
        for (name, t) in &state {
            if !all_finite(t)? {
                return Err(StepError(format!(
                    "step() state {name:?} has NaN or infinite values at frame {}",
                    input.frame
                )));
            }
        }
        write_image(out, &rgb)?;
        // Commit only a step that fully succeeded, so a failed one can be retried.
        self.state = state;
        self.depth = depth;
        Ok(())
    }

    fn depth(&self) -> Option<Tensor> {
        self.depth.as_ref().map(|d| d.to_kind(Kind::Float))
    }

    fn state_bytes(&self) -> u64 {
        self.state
            .iter()
            .map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum()
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Ok(self
            .state
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect())
    }

    /// The state must have the names `reset` gives: a checkpoint of another model of the
    /// same hash cannot exist, but a hand-edited one can.
    fn restore(&mut self, state: &[(String, Tensor)], _: &PromptState) -> Result<(), StepError> {
        let mut want: Vec<&str> = self.state.iter().map(|(k, _)| k.as_str()).collect();
        let mut have: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
        want.sort_unstable();
        have.sort_unstable();
        if !want.is_empty() && want != have {
            return Err(StepError(format!(
                "the saved state has tensors {have:?}, this model's state has {want:?}"
            )));
        }
        self.state = state
            .iter()
            .map(|(k, t)| (k.clone(), t.to_device(self.device)))
            .collect();
        self.depth = None;
        Ok(())
    }
}

/// The package's folder a path names (the folder itself, or its model.pt / manifest).
pub fn package_dir(path: &Path) -> PathBuf {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(WEIGHTS | MANIFEST) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(yaml: &str) -> Result<ModelInfo, String> {
        let m: Manifest = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        model_info(&m)
    }

    #[test]
    fn manifest_reads_every_field() {
        let info = manifest(
            "name: tiny\nwidth: 256\nheight: 144\nfps: 30000/1001\nactions: [forward, yaw]\n\
             params:\n  - {name: time_of_day, default: 12, min: 0, max: 24}\nprompt: text\noutputs: {depth: true}\n",
        )
        .unwrap();
        assert_eq!(
            (info.width, info.height, info.fps),
            (256, 144, super::super::Fps::new(30000, 1001))
        );
        assert_eq!(info.actions, ["forward", "yaw"]);
        assert_eq!(info.params[0].max, 24.0);
        assert!(info.depth && !info.any_size);
    }

    #[test]
    fn manifest_errors_name_the_field() {
        let base = "name: t\nwidth: 64\nheight: 64\nfps: 30\n";
        let e = manifest("name: t\nheight: 64\nfps: 30\n").unwrap_err();
        assert!(e.contains("width"), "{e}");
        let e = manifest(&format!("{base}widht: 3\n")).unwrap_err();
        assert!(e.contains("widht"), "{e}");
        let e = manifest(&format!("{base}actions: [jump]\n")).unwrap_err();
        assert!(e.contains("actions") && e.contains("jump"), "{e}");
        let e = manifest(&format!(
            "{base}params: [{{name: fog, default: 2, min: 0, max: 1}}]\n"
        ))
        .unwrap_err();
        assert!(e.contains("params.fog"), "{e}");
        let e = manifest("name: t\nwidth: 64\nheight: 64\nfps: 1/0\n").unwrap_err();
        assert!(e.contains("fps"), "{e}");
        let e = manifest(&format!("{base}prompt: image\n")).unwrap_err();
        assert!(e.contains("prompt"), "{e}");
    }

    #[test]
    fn missing_package_names_the_path() {
        let e = TorchScript::load(Path::new("/nonexistent/pkg"), Device::Cpu, 0, "")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/nonexistent/pkg") && e.contains("not a folder"),
            "{e}"
        );
    }

    #[test]
    fn package_dir_accepts_the_folder_or_its_files() {
        assert_eq!(package_dir(Path::new("m/model.pt")), Path::new("m"));
        assert_eq!(package_dir(Path::new("m")), Path::new("m"));
    }
}
