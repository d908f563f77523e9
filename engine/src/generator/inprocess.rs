//! Contract 2 in this process: a model compiled to graphs (`runtime: aoti`, a `.pt2` from
//! `torch.export` + AOTInductor; or `runtime: torchscript`, a `model.pt`), run with no
//! Python. What the python runtime gives a model as named arrays, these graphs take as
//! flat tensors, in a fixed order (`docs/model-contract.md`, "In process"):
//!
//! ```text
//! reset(seed, [image])                         -> (*state)
//! step(*state, frame, [axes], [keys], [mouse, buttons], [camera_pose, intrinsics], [params])
//!                                              -> (rgb, [depth], *state)
//! ```
//!
//! `state` is the manifest's list of tensor names; the bracketed inputs are there when
//! the manifest declares them, each with one row a frame. A graph compiled by
//! AOTInductor takes fixed shapes, so `step` makes `frames_per_step` frames and, when the
//! first step after a reset makes another number, a `first_step` graph makes those.
//!
//! The state is functional: a step hands back new tensors and cuecast keeps them only
//! when the whole step succeeded, so a failed step leaves the model as it was, and the
//! state is its own checkpoint. Everything is checked at load, by name: the device the
//! package was compiled for, the CPU's instruction sets, and the shapes and kinds of
//! every output of a reset and a first step run on still inputs. A wrong-shaped input is
//! refused by AOTInductor's own check, which cuecast turns on.
//!
//! These runtimes run the package's compiled code inside cuecast's process, outside the
//! python runtime's sandbox: they are for packages the show's owner built or trusts.

use tch::{CModule, Device, IValue, Kind, Tensor};

use super::aoti::{missing_cpu_features, Pt2};
use super::package::{Package, Runtime};
use super::torchscript::all_finite;
use super::{first_line, FrameInput, StepError};
use crate::worker::RgbImage;
use crate::EngineError;

/// One of a package's graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    Reset,
    FirstStep,
    Step,
}

impl Graph {
    pub fn name(self) -> &'static str {
        match self {
            Graph::Reset => "reset",
            Graph::FirstStep => "first_step",
            Graph::Step => "step",
        }
    }
}

/// The compiled code, by runtime.
enum Program {
    Aoti {
        reset: Pt2,
        step: Pt2,
        first_step: Option<Pt2>,
    },
    TorchScript(CModule),
}

impl Program {
    fn load(package: &Package, device: Device) -> Result<Program, String> {
        let weights = package.runtime.weights().unwrap_or_default();
        let path = package.dir.join(weights);
        match package.runtime {
            Runtime::Aoti => {
                let load = |graph: Graph| {
                    let g = Pt2::load(&path, graph.name(), device).map_err(|e| {
                        format!(
                            "{weights}: cannot load its `{}` graph: {}",
                            graph.name(),
                            first_line(&e)
                        )
                    })?;
                    check_compiled_for(&g, weights, graph, device)?;
                    Ok::<_, String>(g)
                };
                let chunking = package.info.chunking;
                Ok(Program::Aoti {
                    reset: load(Graph::Reset)?,
                    step: load(Graph::Step)?,
                    first_step: (chunking.first_step_frames != chunking.frames_per_step)
                        .then(|| load(Graph::FirstStep))
                        .transpose()?,
                })
            }
            Runtime::TorchScript => {
                let mut m = CModule::load_on_device(&path, device).map_err(|e| {
                    format!(
                        "{weights}: not a TorchScript module: {}",
                        first_line(&e.to_string())
                    )
                })?;
                m.set_eval();
                Ok(Program::TorchScript(m))
            }
            Runtime::Python { .. } => Err("a python package runs in a worker".into()),
        }
    }

    /// Runs `graph` on `inputs`, named `names` in errors.
    fn run(
        &self,
        graph: Graph,
        inputs: &[Tensor],
        names: &[String],
    ) -> Result<Vec<Tensor>, StepError> {
        let fail = |e: String| StepError(format!("{}() failed: {}", graph.name(), first_line(&e)));
        match self {
            Program::Aoti {
                reset,
                step,
                first_step,
            } => {
                let g = match graph {
                    Graph::Reset => reset,
                    Graph::Step => step,
                    Graph::FirstStep => first_step.as_ref().unwrap_or(step),
                };
                let signed = g.metadata().get(SIGNATURE);
                if let Some(takes) = signed {
                    check_signature(takes, inputs, names).map_err(|e| {
                        StepError(format!(
                            "{}() {e}: the manifest and the graph disagree",
                            graph.name()
                        ))
                    })?;
                }
                g.run(inputs).map_err(|e| match signed {
                    Some(_) => fail(e),
                    // AOTInductor's own input check says which input only in the log.
                    None => fail(format!(
                        "{e} (perhaps an input of another shape or kind than the graph was compiled for: libtorch's log says)"
                    )),
                })
            }
            Program::TorchScript(m) => {
                let method = match graph {
                    Graph::FirstStep => Graph::Step.name(),
                    g => g.name(),
                };
                let args: Vec<IValue> = inputs
                    .iter()
                    .map(|t| IValue::Tensor(t.shallow_clone()))
                    .collect();
                let out = m
                    .method_is(method, &args)
                    .map_err(|e| fail(e.to_string()))?;
                tensors_of(out).map_err(|what| {
                    StepError(format!(
                        "{}() must return a tuple of tensors, got {what}",
                        graph.name()
                    ))
                })
            }
        }
    }
}

/// A TorchScript method's result as flat tensors.
fn tensors_of(v: IValue) -> Result<Vec<Tensor>, String> {
    match v {
        IValue::Tensor(t) => Ok(vec![t]),
        IValue::TensorList(ts) => Ok(ts),
        IValue::Tuple(items) | IValue::GenericList(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                IValue::Tensor(t) => Ok(t),
                _ => Err(format!("something else than a tensor at {i}")),
            })
            .collect(),
        _ => Err("something else".into()),
    }
}

/// The metadata key where `models/compiled/export.py` writes what a graph takes:
/// `float32[2] int64[1] ...`, one per input. AOTInductor's own check stops a wrong input
/// too, but its message goes to the log, not to the error.
pub const SIGNATURE: &str = "cuecast.inputs";

/// `inputs` against a graph's signature, each named by `names`.
fn check_signature(takes: &str, inputs: &[Tensor], names: &[String]) -> Result<(), String> {
    let takes: Vec<&str> = takes.split_whitespace().collect();
    let listed = |n: usize| names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if takes.len() != inputs.len() {
        return Err(format!(
            "takes {} inputs, cuecast gives {} ({})",
            takes.len(),
            inputs.len(),
            listed(inputs.len())
        ));
    }
    for (i, (want, t)) in takes.iter().zip(inputs).enumerate() {
        let dims: Vec<String> = t.size().iter().map(i64::to_string).collect();
        let have = format!("{}[{}]", kind_name(t.kind()), dims.join(","));
        if *want != have {
            let name = names.get(i).map_or("?", String::as_str);
            return Err(format!(
                "takes {want} as input {i} ({name}), cuecast gives {have}"
            ));
        }
    }
    Ok(())
}

/// Refuses a graph compiled for another kind of device, or for instructions this CPU
/// does not have.
fn check_compiled_for(g: &Pt2, weights: &str, graph: Graph, device: Device) -> Result<(), String> {
    let meta = g.metadata();
    let key = meta
        .get("AOTI_DEVICE_KEY")
        .map(String::as_str)
        .unwrap_or("cpu");
    let here = if device.is_cuda() { "cuda" } else { "cpu" };
    if key != here {
        return Err(format!(
            "{weights}: its `{}` graph was compiled for {key}, and the show runs on {here}: \
             export it for {here}, or set the show's device to {key}",
            graph.name()
        ));
    }
    if here == "cpu" {
        let missing = missing_cpu_features(meta.get("AOTI_CPU_ISA").map_or("", String::as_str));
        if !missing.is_empty() {
            return Err(format!(
                "{weights}: its `{}` graph was compiled for CPU instructions this machine lacks ({}): export it on this machine",
                graph.name(),
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// A shape and kind as a manifest reader writes them: `float32 [4, 3, 144, 256]`.
fn describe(t: &Tensor) -> String {
    format!("{} {:?}", kind_name(t.kind()), t.size())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Uint8 => "uint8",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Bool => "bool",
        _ => "another kind",
    }
}

/// What one step made.
pub struct Stepped {
    /// Float `[F, 3, H, W]` in [0, 1], or uint8 `[F, H, W, 3]`.
    pub rgb: Tensor,
    /// Float `[F, H, W]` in metres, for a model that makes depth.
    pub depth: Option<Tensor>,
    /// The state after it: the model's once [`InProcessModel::commit`]ted.
    pub state: Vec<Tensor>,
}

/// A contract 2 package run in this process: its program, and its state.
pub struct InProcessModel {
    package: Package,
    program: Program,
    device: Device,
    state: Vec<Tensor>,
    /// Why the model has no state to step from: its last reset failed.
    broken: Option<String>,
}

impl InProcessModel {
    /// Loads `package` for `device`, resets it with `seed` (and `image`, for a model that
    /// needs one) and checks a first step on still inputs: every output's shape and kind.
    pub fn load(
        package: &Package,
        device: Device,
        seed: u64,
        image: Option<&RgbImage>,
    ) -> Result<InProcessModel, EngineError> {
        let fail = |message: String| EngineError::Model {
            path: package.dir.clone(),
            message,
        };
        let program = Program::load(package, device).map_err(fail)?;
        let mut model = InProcessModel {
            package: package.clone(),
            program,
            device,
            state: Vec::new(),
            broken: None,
        };
        let info = &package.info;
        let still = |from: u32, n: u32| -> Vec<FrameInput> {
            (u64::from(from)..u64::from(from + n))
                .map(|k| {
                    FrameInput::still(k, info.fps, info.params.iter().map(|p| p.default).collect())
                })
                .collect()
        };
        let (first, then) = (
            info.chunking.first_step_frames,
            info.chunking.frames_per_step,
        );
        let blank = RgbImage {
            width: info.width as usize,
            height: info.height as usize,
            data: vec![0; info.width as usize * info.height as usize * 3],
        };
        let trial = image.or(Some(&blank));
        model
            .reset(seed, trial)
            .and_then(|()| model.step(&still(0, first)).map(|_| ()))
            .and_then(|()| model.step(&still(first, then)).map(|_| ()))
            .map_err(|e| {
                fail(format!(
                    "{}: {e}",
                    package.runtime.weights().unwrap_or_default()
                ))
            })?;
        model.reset(seed, image).map_err(|e| fail(e.0))?;
        Ok(model)
    }

    pub fn package(&self) -> &Package {
        &self.package
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Starts over: `reset(seed, [image])`.
    pub fn reset(&mut self, seed: u64, image: Option<&RgbImage>) -> Result<(), StepError> {
        let info = &self.package.info;
        let mut inputs = vec![Tensor::from_slice(&[seed as i64]).to_device(self.device)];
        if info.inputs.image == super::ImageInput::Required {
            let img = image.ok_or_else(|| {
                StepError(format!("model {} needs an image to start from", info.name))
            })?;
            inputs.push(
                Tensor::from_slice(&img.data)
                    .view([img.height as i64, img.width as i64, 3])
                    .to_device(self.device),
            );
        }
        let names = ["seed", "image"].map(String::from);
        let made = self
            .program
            .run(Graph::Reset, &inputs, &names)
            .and_then(|state| self.check_state(&state, Graph::Reset, None).map(|()| state));
        match made {
            Ok(state) => {
                self.state = state;
                self.broken = None;
                Ok(())
            }
            Err(e) => {
                // The world asked to start over: going on from the old state would
                // drop the cue that asked. Steps fail until a reset succeeds.
                self.broken = Some(e.0.clone());
                Err(e)
            }
        }
    }

    /// Makes one chunk and moves the state on: [`Self::try_step`], then
    /// [`Self::commit`].
    pub fn step(&mut self, frames: &[FrameInput]) -> Result<Stepped, StepError> {
        let mut made = self.try_step(frames)?;
        self.commit(std::mem::take(&mut made.state));
        Ok(made)
    }

    /// The state a step made becomes the model's: once everything done with the step's
    /// frames has succeeded, so that a step that fails anywhere leaves the model as it was.
    pub fn commit(&mut self, state: Vec<Tensor>) {
        self.state = state;
    }

    /// Makes one chunk without moving the state on: `frames` are its frames' inputs, as
    /// many as `step` (or `first_step`) makes.
    pub fn try_step(&self, frames: &[FrameInput]) -> Result<Stepped, StepError> {
        if let Some(why) = &self.broken {
            return Err(StepError(format!(
                "the model has no state to step from: its reset failed ({why})"
            )));
        }
        let info = &self.package.info;
        let chunking = info.chunking;
        let want = frames.len();
        let graph = if want == chunking.frames_per_step as usize {
            Graph::Step
        } else if want == chunking.first_step_frames as usize {
            Graph::FirstStep
        } else {
            return Err(StepError(format!(
                "a step makes {} frames ({} after a reset), asked for {want}",
                chunking.frames_per_step, chunking.first_step_frames
            )));
        };
        let mut inputs: Vec<Tensor> = self.state.iter().map(Tensor::shallow_clone).collect();
        inputs.extend(self.frame_inputs(frames));
        let mut out = self.program.run(graph, &inputs, &self.input_names())?;
        let n_state = self.state.len();
        let want_out = 1 + usize::from(info.depth) + n_state;
        if out.len() != want_out {
            return Err(StepError(format!(
                "{}() must return {want_out} tensors (rgb,{} then the {n_state} state tensors), got {}",
                graph.name(),
                if info.depth { " depth," } else { "" },
                out.len()
            )));
        }
        let state = out.split_off(want_out - n_state);
        let depth = info.depth.then(|| out.pop()).flatten();
        let rgb = out.pop().expect("counted above");
        let (f, h, w) = (want as i64, info.height as i64, info.width as i64);
        let rgb_ok = match (rgb.kind(), rgb.size().as_slice()) {
            (Kind::Float | Kind::Half | Kind::BFloat16, s) => s == [f, 3, h, w],
            (Kind::Uint8, s) => s == [f, h, w, 3],
            _ => false,
        };
        if !rgb_ok {
            return Err(StepError(format!(
                "{}() rgb must be float32 [{f}, 3, {h}, {w}] or uint8 [{f}, {h}, {w}, 3], got {}",
                graph.name(),
                describe(&rgb)
            )));
        }
        if !all_finite(&rgb)? {
            return Err(StepError(format!(
                "{}() rgb has NaN or infinite values",
                graph.name()
            )));
        }
        if let Some(d) = &depth {
            let ok = matches!(d.kind(), Kind::Float | Kind::Half | Kind::BFloat16)
                && d.size() == [f, h, w];
            if !ok {
                return Err(StepError(format!(
                    "{}() depth must be float32 [{f}, {h}, {w}] in metres, got {}",
                    graph.name(),
                    describe(d)
                )));
            }
        }
        self.check_state(&state, graph, Some(&self.state))?;
        Ok(Stepped { rgb, depth, state })
    }

    /// The names of a step's inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        let info = &self.package.info;
        let mut names = self.package.state.clone();
        names.push("frame".into());
        let declared = [
            (!info.actions.is_empty(), &["axes"][..]),
            (!info.inputs.keys.is_empty(), &["keys"]),
            (info.inputs.mouse, &["mouse", "buttons"]),
            (info.inputs.camera_pose, &["camera_pose", "intrinsics"]),
            (!info.params.is_empty(), &["params"]),
        ];
        for (taken, n) in declared {
            if taken {
                names.extend(n.iter().map(|s| s.to_string()));
            }
        }
        names
    }

    /// The step's inputs after the state, per the contract's order.
    fn frame_inputs(&self, frames: &[FrameInput]) -> Vec<Tensor> {
        let info = &self.package.info;
        let cols = crate::worker::terms::columns(frames, info);
        let f = frames.len() as i64;
        let dev = self.device;
        let frame: Vec<i64> = cols.frame.iter().map(|&k| k as i64).collect();
        let mut v = vec![Tensor::from_slice(&frame).to_device(dev)];
        let rows = |rows: Vec<Vec<f32>>, n: usize| {
            let flat: Vec<f32> = rows.into_iter().flatten().collect();
            Tensor::from_slice(&flat).view([f, n as i64]).to_device(dev)
        };
        if let Some(a) = cols.axes {
            v.push(rows(a, info.actions.len()));
        }
        if let Some(k) = cols.keys {
            v.push(rows(k, info.inputs.keys.len()));
        }
        if let (Some(m), Some(b)) = (cols.mouse, cols.buttons) {
            v.push(rows(m.iter().map(|r| r.to_vec()).collect(), 2));
            v.push(rows(b.iter().map(|r| r.to_vec()).collect(), 3));
        }
        if let (Some(p), Some(k)) = (cols.camera_pose, cols.intrinsics) {
            v.push(rows(p.iter().map(|r| r.to_vec()).collect(), 16).view([f, 4, 4]));
            v.push(rows(k.iter().map(|r| r.to_vec()).collect(), 9).view([f, 3, 3]));
        }
        if let Some(p) = cols.params {
            v.push(rows(p, info.params.len()));
        }
        v
    }

    /// A graph's state: as many tensors as the manifest names, finite, and (after a
    /// step) of the shapes and kinds they had, so the next call gets what it was built for.
    fn check_state(
        &self,
        state: &[Tensor],
        graph: Graph,
        before: Option<&[Tensor]>,
    ) -> Result<(), StepError> {
        let names = &self.package.state;
        if state.len() != names.len() {
            return Err(StepError(format!(
                "{}() must return the {} state tensors the manifest names ({}), got {} tensors",
                graph.name(),
                names.len(),
                names.join(", "),
                state.len()
            )));
        }
        for (i, t) in state.iter().enumerate() {
            if let Some(b) = before.and_then(|b| b.get(i)) {
                if b.size() != t.size() || b.kind() != t.kind() {
                    return Err(StepError(format!(
                        "{}() state {:?} must keep its shape and kind {}, got {}",
                        graph.name(),
                        names[i],
                        describe(b),
                        describe(t)
                    )));
                }
            }
            if !all_finite(t)? {
                return Err(StepError(format!(
                    "{}() state {:?} has NaN or infinite values",
                    graph.name(),
                    names[i]
                )));
            }
        }
        Ok(())
    }

    /// The state by name (a checkpoint's compact state: it is the whole state).
    pub fn save_state(&self) -> Vec<(String, Tensor)> {
        self.package
            .state
            .iter()
            .zip(&self.state)
            .map(|(n, t)| (n.clone(), t.copy()))
            .collect()
    }

    /// Puts a saved state back: the same names, shapes and kinds.
    pub fn load_state(&mut self, saved: &[(String, Tensor)]) -> Result<(), StepError> {
        let mut state = Vec::with_capacity(self.state.len());
        for (name, now) in self.package.state.iter().zip(&self.state) {
            let t = super::tensor_named(saved, name)?;
            if t.size() != now.size() || t.kind() != now.kind() {
                return Err(StepError(format!(
                    "the saved state's {name:?} is {}, this model's is {}",
                    describe(t),
                    describe(now)
                )));
            }
            if !all_finite(t)? {
                return Err(StepError(format!(
                    "the saved state's {name:?} has NaN or infinite values"
                )));
            }
            // Into a tensor laid out as the graph's own (strides included).
            let mut into = now.empty_like();
            into.f_copy_(&t.to_device(self.device))?;
            state.push(into);
        }
        self.state = state;
        self.broken = None;
        Ok(())
    }

    /// Bytes the state holds.
    pub fn state_bytes(&self) -> u64 {
        self.state
            .iter()
            .map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum()
    }
}
