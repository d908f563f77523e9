//! Generators: the models that turn world state into frames.
//!
//! A [`Generator`] is created on, and only ever used from, the engine's model thread;
//! libtorch keeps per-thread state and `Tensor` is not `Sync`, so nothing else touches
//! it. The engine hands each step the inputs for one frame and a CPU image to fill
//! (RGBx, the negotiated output size). Tensor backends render on their device and finish
//! with [`write_image`]: one conversion to u8 on the device, one copy to the host.
//!
//! Backends are looked up by name in a registry, so an application (or a test) can add
//! its own beside the built-in `procedural`, `torchscript` and `pattern`.

pub mod aoti;
pub mod inprocess;
pub mod package;
pub mod pattern;
pub mod procedural;
pub mod torchscript;

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use tch::{Device, Kind, Tensor};

use crate::camera::Pose;
use crate::world::{InputState, World};
use crate::EngineError;
pub use cuecast_cue::model::{
    AudioFormat, Chunking, Fps, ImageInput, ModelInfo, ModelInputs, ParamSpec, PromptMode,
    PromptState, VideoInput,
};

/// Everything one frame of a model may depend on, read from the show's world at that
/// frame: one type for every kind of model. A model's output must be a function of its
/// inputs, its seed and its own state, so that runs are reproducible. Each runtime gives
/// it to its models in their own terms: a [`Generator`] reads it as it is; the python
/// worker sends it as arrays in the model's declared order (axes, keys, pose matrices).
#[derive(Debug, Clone)]
pub struct FrameInput {
    /// The frame's index on the model's clock: the show's frame for a model that draws
    /// each show frame, the model's own for a chunked one.
    pub frame: u64,
    /// Seconds since that clock started (`frame / fps`).
    pub time_s: f64,
    /// The rate `frame` counts at.
    pub fps: Fps,
    pub camera: Pose,
    /// Action axes, `ACTION_AXES` order.
    pub action: [f64; 5],
    /// Keys and mouse buttons held, and the mouse movement this frame takes (zero for a
    /// model that takes no mouse).
    pub input: InputState,
    pub prompt: PromptState,
    /// Current param values, in `ModelInfo::params` order.
    pub params: Vec<f64>,
    pub seed: u64,
    /// How finely to draw, in (0, 1]: 1 is full detail. Below 1 only for a generator
    /// whose [`Generator::scales_detail`] says it can draw cheaper frames (see
    /// [`crate::detail`]); the frame is always of the output size.
    pub detail: f32,
    /// Whether this frame's depth will be asked for ([`Generator::depth`]): a take is
    /// recording it. A generator may skip making depth when it will not be.
    pub depth: bool,
}

impl FrameInput {
    /// Frame `frame` at `fps` of a world where nothing happens: the default camera,
    /// nothing held, an empty prompt, `params`, seed 0. For trying a model outside a
    /// show (tests, the benchmark).
    pub fn still(frame: u64, fps: Fps, params: Vec<f64>) -> Self {
        FrameInput {
            frame,
            time_s: frame as f64 / fps.as_f64(),
            fps,
            camera: Pose::default(),
            action: [0.0; 5],
            input: InputState::default(),
            prompt: PromptState {
                text: String::new(),
                previous: None,
                mix: 1.0,
            },
            params,
            seed: 0,
            detail: 1.0,
            depth: true,
        }
    }

    /// Frame `frame` (at `fps`) of `world` as it is now, for `info`'s model: the mouse
    /// movement is taken from the world if the model takes the mouse.
    pub fn read(world: &mut World, frame: u64, fps: Fps, at: u64, info: &ModelInfo) -> Self {
        let mouse = if info.inputs.mouse {
            world.take_mouse()
        } else {
            [0.0; 2]
        };
        let held = world.input();
        FrameInput {
            frame,
            time_s: frame as f64 / fps.as_f64(),
            fps,
            camera: world.camera(),
            action: world.action(),
            input: InputState {
                keys: held.keys.clone(),
                buttons: held.buttons.clone(),
                mouse,
            },
            prompt: world.prompt_state(at),
            params: world.params(at),
            seed: world.seed(),
            detail: 1.0,
            depth: true,
        }
    }
}

/// The frame a step fills: RGBx, 4 bytes per pixel, rows `width * 4` bytes apart.
pub struct Image<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a mut [u8],
}

impl Image<'_> {
    /// Bytes a pixel: 4 (RGBx, what in-process models draw into) or 3 (RGB, a worker
    /// model's show).
    pub fn channels(&self) -> usize {
        self.data.len() / (self.width * self.height).max(1)
    }

    /// A CPU tensor `[height, width, channels]` u8 viewing this image's bytes.
    ///
    /// The view borrows `self`: it must not outlive this image, which the borrow checker
    /// cannot see through `Tensor`, so it is only handed to a closure.
    pub fn with_tensor<R>(&mut self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        let (h, w) = (self.height as i64, self.width as i64);
        let c = self.channels() as i64;
        assert!(c == 3 || c == 4, "an image of {c} bytes a pixel");
        assert_eq!(self.data.len(), (h * w * c) as usize);
        // SAFETY: the tensor views `self.data`, which is valid and exclusively borrowed
        // for the duration of `f`; the tensor is dropped before this function returns.
        let mut t = unsafe {
            Tensor::from_blob(
                self.data.as_ptr(),
                &[h, w, c],
                &[w * c, c, 1],
                Kind::Uint8,
                Device::Cpu,
            )
        };
        f(&mut t)
    }
}

/// Why one step failed. The engine counts it and repeats the previous frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

impl From<tch::TchError> for StepError {
    fn from(e: tch::TchError) -> Self {
        StepError(first_line(&e.to_string()))
    }
}

/// The part of a libtorch error a user needs. TorchScript exceptions end with the
/// model's own exception (`builtins.RuntimeError: ...`); other errors lead with their
/// message and trail a C++ backtrace.
pub(crate) fn first_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let exception = lines.iter().rev().find(|l| {
        l.split_once(": ").is_some_and(|(head, _)| {
            !head.contains(' ') && (head.ends_with("Error") || head.ends_with("Exception"))
        })
    });
    let line = exception.or(lines.first()).copied().unwrap_or(s);
    let line = line.strip_prefix("Internal torch error: ").unwrap_or(line);
    line.strip_prefix("builtins.").unwrap_or(line).to_owned()
}

/// A model that makes frames. Lives on the model thread only.
pub trait Generator {
    fn info(&self) -> &ModelInfo;

    /// The device it computes on.
    fn device(&self) -> Device;

    /// Starts the world over from `seed` (at start and on a seed cue).
    fn reset(&mut self, seed: u64, prompt: &str) -> Result<(), StepError>;

    /// Renders the frame for `input` into `out`.
    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError>;

    /// Whether it draws a cheaper frame of the same size when
    /// [`FrameInput::detail`] is below 1 (the engine then lowers the detail while steps
    /// run late).
    fn scales_detail(&self) -> bool {
        false
    }

    /// Depth in metres of the last frame, `[h, w]` f32, where the model makes depth.
    fn depth(&self) -> Option<Tensor> {
        None
    }

    /// What a checkpoint must hold to resume this generator exactly: its state as
    /// named tensors (any device; checkpoints move them to the CPU).
    fn state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Ok(Vec::new())
    }

    /// Bytes its state holds now (what a state that grows step by step shows in).
    fn state_bytes(&self) -> u64 {
        0
    }

    /// Puts back what [`Generator::state`] gave, already on this generator's device.
    /// `prompt` is the prompt as of the last frame made before the checkpoint.
    fn restore(
        &mut self,
        _state: &[(String, Tensor)],
        _prompt: &PromptState,
    ) -> Result<(), StepError> {
        Ok(())
    }

    /// Terrain height under a point, where the model knows it; keeps the camera above
    /// ground.
    fn ground_height(&self, _x: f64, _z: f64) -> Option<f64> {
        None
    }
}

/// The tensor called `name` in a generator's saved state.
pub fn tensor_named<'a>(
    state: &'a [(String, Tensor)],
    name: &str,
) -> Result<&'a Tensor, StepError> {
    state
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| StepError(format!("the saved state has no tensor {name:?}")))
}

/// Writes a frame computed on any device into `out`, scaling it when its size differs.
///
/// `rgb` is either float `[3, h, w]` in [0, 1] (what models return) or u8 `[h, w, 3|4]`.
/// The conversion to u8 RGBx or RGB (as `out` is laid out) happens on the tensor's
/// device, so a CUDA frame crosses to the host once, already in its final form.
pub fn write_image(out: &mut Image, rgb: &Tensor) -> Result<(), StepError> {
    let (w, h) = (out.width as i64, out.height as i64);
    if rgb.device() == Device::Cpu && rgb.is_contiguous() {
        // On the CPU one fused pass beats six tensor ops (clamp, scale, round, cast,
        // permute, copy): 1280x720 goes from ~10 ms to under 1 ms.
        match (rgb.kind(), rgb.size().as_slice()) {
            (Kind::Float, [3, sh, sw]) if (*sh, *sw) == (h, w) => {
                float_planes_to_pixels(cpu_slice::<f32>(rgb), out);
                return Ok(());
            }
            (Kind::Uint8, [sh, sw, c]) if (*sh, *sw) == (h, w) && (*c == 3 || *c == 4) => {
                let bytes = cpu_slice::<u8>(rgb);
                match (*c, out.channels()) {
                    (3, 3) => out.data.copy_from_slice(bytes),
                    (3, 4) => rgb_to_rgbx(bytes, out.data),
                    (_, oc) => {
                        for (dst, src) in out.data.chunks_exact_mut(oc).zip(bytes.chunks_exact(4)) {
                            dst[..3].copy_from_slice(&src[..3]);
                            if oc == 4 {
                                dst[3] = 255;
                            }
                        }
                    }
                }
                return Ok(());
            }
            _ => {}
        }
    }
    let hwc = match (rgb.kind(), rgb.size().as_slice()) {
        (Kind::Uint8, [sh, sw, c]) if (*c == 3 || *c == 4) && (*sh, *sw) == (h, w) => {
            rgb.shallow_clone()
        }
        (Kind::Uint8, [_, _, c]) if *c == 3 || *c == 4 => to_u8_hwc(&scale(
            &(rgb.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0),
            h,
            w,
        )?),
        (Kind::Float | Kind::Half | Kind::BFloat16, [3, sh, sw]) => {
            let f = rgb.to_kind(Kind::Float);
            let f = if (*sh, *sw) == (h, w) {
                f
            } else {
                scale(&f, h, w)?
            };
            if f.device() == Device::Cpu {
                let f = f.contiguous();
                float_planes_to_pixels(cpu_slice::<f32>(&f), out);
                return Ok(());
            }
            to_u8_hwc(&f)
        }
        (kind, size) => {
            return Err(StepError(format!(
                "rgb must be float [3, H, W] or uint8 [H, W, 3], got {kind:?} {size:?}"
            )))
        }
    };
    let rgbx = match (hwc.size()[2], out.channels()) {
        (3, 4) => {
            let alpha = Tensor::full([h, w, 1], 255, (Kind::Uint8, hwc.device()));
            Tensor::cat(&[hwc, alpha], 2)
        }
        (4, 3) => hwc.narrow(2, 0, 3),
        _ => hwc,
    };
    out.with_tensor(|dst| dst.f_copy_(&rgbx))?;
    Ok(())
}

/// The elements of a contiguous CPU tensor whose kind is `T`, borrowed in place.
fn cpu_slice<T: tch::kind::Element>(t: &Tensor) -> &[T] {
    assert!(t.device() == Device::Cpu && t.is_contiguous() && t.kind() == T::KIND);
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: the tensor is a contiguous CPU tensor of `n` elements of kind `T` (checked
    // above); the slice borrows `t`, which keeps the storage alive and unchanged.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) }
}

/// Float planes R, G, B in [0, 1] to RGBx bytes, rounding to nearest, across cores.
fn float_planes_to_pixels(planes: &[f32], out: &mut Image) {
    let n = out.width * out.height;
    let (r, rest) = planes.split_at(n);
    let (g, b) = rest.split_at(n);
    // 64 Ki pixels a job.
    const PIXELS: usize = 1 << 16;
    let c = out.channels();
    let parts = out
        .data
        .chunks_mut(PIXELS * c)
        .zip(r.chunks(PIXELS))
        .zip(g.chunks(PIXELS))
        .zip(b.chunks(PIXELS));
    crate::parallel::in_parallel(parts, |(((dst, r), g), b)| {
        for (((px, &r), &g), &b) in dst.chunks_exact_mut(c).zip(r).zip(g).zip(b) {
            px[..3].copy_from_slice(&[to_byte(r), to_byte(g), to_byte(b)]);
            if c == 4 {
                px[3] = 255;
            }
        }
    });
}

/// RGB bytes to RGBx (`dst` a third longer than `src`), across cores.
pub fn rgb_to_rgbx(src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len() / 3 * 4, dst.len());
    // 64 Ki pixels a job.
    const PIXELS: usize = 1 << 16;
    let convert = |(dst, src): (&mut [u8], &[u8])| {
        let n = src.len() / 3;
        // Four bytes read where three are wanted, the fourth replaced: 2.5x faster
        // than pixel by pixel (measured at 832x480). The last pixel has no fourth.
        for i in 0..n.saturating_sub(1) {
            let v = u32::from_le_bytes(src[3 * i..3 * i + 4].try_into().unwrap()) | 0xff00_0000;
            dst[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        if n > 0 {
            let s = &src[3 * (n - 1)..];
            dst[4 * (n - 1)..].copy_from_slice(&[s[0], s[1], s[2], 255]);
        }
    };
    if dst.len() <= PIXELS * 4 {
        // One job's worth: threads would cost more than they share.
        convert((dst, src));
        return;
    }
    let parts = dst.chunks_mut(PIXELS * 4).zip(src.chunks(PIXELS * 3));
    crate::parallel::in_parallel(parts, convert);
}

/// [0, 1] to 0..=255, rounding to nearest; NaN and out-of-range values clamp.
#[inline(always)]
fn to_byte(v: f32) -> u8 {
    // `max`/`min` (unlike `clamp`) turn NaN into a bound, so x is in [0.5, 255.5].
    #[allow(clippy::manual_clamp)]
    let x = v.max(0.0).min(1.0) * 255.0 + 0.5;
    // SAFETY: x is finite and truncates to 0..=255, which u8 represents; the unchecked
    // conversion lets the compiler vectorise the loop.
    unsafe { x.to_int_unchecked::<u8>() }
}

/// Bilinear scaling of `[3, h, w]`; antialiased when shrinking so detail does not alias.
fn scale(chw: &Tensor, h: i64, w: i64) -> Result<Tensor, StepError> {
    let nchw = chw.unsqueeze(0);
    let shrinking = chw.size()[1] > h || chw.size()[2] > w;
    let scaled = if shrinking {
        nchw.f_internal_upsample_bilinear2d_aa([h, w], false, None, None)?
    } else {
        nchw.f_upsample_bilinear2d([h, w], false, None, None)?
    };
    Ok(scaled.squeeze_dim(0))
}

fn to_u8_hwc(chw: &Tensor) -> Tensor {
    (chw.clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
}

/// How a backend is asked to start.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub backend: String,
    /// Model package folder, for backends that load one.
    pub model: Option<PathBuf>,
    pub device: Device,
    pub seed: u64,
    pub prompt: String,
}

type Factory = dyn Fn(&BackendConfig) -> Result<Box<dyn Generator>, EngineError> + Send + Sync;

static REGISTRY: LazyLock<Mutex<BTreeMap<String, Arc<Factory>>>> = LazyLock::new(|| {
    let mut m: BTreeMap<String, Arc<Factory>> = BTreeMap::new();
    m.insert(
        "procedural".into(),
        Arc::new(procedural::Procedural::create),
    );
    m.insert(
        "torchscript".into(),
        Arc::new(torchscript::TorchScript::create),
    );
    m.insert("pattern".into(), Arc::new(pattern::Pattern::create));
    Mutex::new(m)
});

/// Makes a backend available by name (replacing one of the same name).
pub fn register_backend<F>(name: &str, factory: F)
where
    F: Fn(&BackendConfig) -> Result<Box<dyn Generator>, EngineError> + Send + Sync + 'static,
{
    REGISTRY.lock().insert(name.to_owned(), Arc::new(factory));
}

/// The names of all known backends: the registry's, `python` (a model's own code in a
/// worker process) and `aoti` (a compiled package in process), which the engine runs
/// itself, chunk by chunk, rather than as a [`Generator`].
pub fn backend_names() -> Vec<String> {
    let mut names: Vec<String> = REGISTRY.lock().keys().cloned().collect();
    names.extend(["python".into(), "aoti".into()]);
    names.sort();
    names
}

/// Creates the generator `config.backend` names. Call on the thread that will own it.
pub fn create_generator(config: &BackendConfig) -> Result<Box<dyn Generator>, EngineError> {
    if config.backend == "python" || config.backend == "aoti" {
        return Err(EngineError::Config {
            what: "backend".into(),
            message: format!(
                "{} models make chunks on their own clock, not one frame when asked",
                config.backend
            ),
        });
    }
    // Look up and release the lock before calling: a factory may take a while.
    let found = REGISTRY.lock().get(&config.backend).cloned();
    let factory = found.ok_or_else(|| EngineError::Config {
        what: "backend".into(),
        message: format!(
            "unknown backend {:?} (known: {})",
            config.backend,
            backend_names().join(", ")
        ),
    })?;
    factory(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_is_exact_for_fractional_rates() {
        let ntsc = Fps::new(30000, 1001);
        assert_eq!(ntsc.nominal(), 30);
        assert_eq!(ntsc.frame_to_ns(30000), 1001 * 1_000_000_000);
        assert_eq!(Fps::new(30, 1).frame_to_ns(1), 33_333_333);
    }

    fn image_of(w: usize, h: usize, rgb: &Tensor) -> Vec<u8> {
        let mut data = vec![0u8; w * h * 4];
        let mut img = Image {
            width: w,
            height: h,
            data: &mut data,
        };
        write_image(&mut img, rgb).unwrap();
        data
    }

    #[test]
    fn writes_float_chw_as_rgbx() {
        let rgb = Tensor::from_slice(&[1.0f32, 0.0, 0.5, 0.25, 0.0, 1.0]).view([3, 1, 2]);
        assert_eq!(
            image_of(2, 1, &rgb),
            vec![255, 128, 0, 255, 0, 64, 255, 255]
        );
    }

    #[test]
    fn writes_u8_hwc_and_scales_other_sizes() {
        let rgb = Tensor::full([2, 2, 3], 200, (Kind::Uint8, Device::Cpu));
        assert_eq!(image_of(2, 2, &rgb), [200, 200, 200, 255].repeat(4));
        let scaled = image_of(4, 4, &rgb);
        assert_eq!(scaled, [200, 200, 200, 255].repeat(16));
    }

    #[test]
    fn rgb_becomes_rgbx() {
        let src: Vec<u8> = (0..3 * 70_000).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; 4 * 70_000];
        rgb_to_rgbx(&src, &mut dst);
        for (d, s) in dst.chunks_exact(4).zip(src.chunks_exact(3)) {
            assert_eq!(d, [s[0], s[1], s[2], 255]);
        }
    }

    #[test]
    fn out_of_range_and_nan_values_clamp() {
        let rgb = Tensor::from_slice(&[-1.0f32, 2.0, f32::NAN]).view([3, 1, 1]);
        assert_eq!(image_of(1, 1, &rgb), vec![0, 255, 0, 255]);
    }

    #[test]
    fn rejects_other_shapes() {
        let bad = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        let mut data = vec![0u8; 16];
        let mut img = Image {
            width: 2,
            height: 2,
            data: &mut data,
        };
        let e = write_image(&mut img, &bad).unwrap_err();
        assert!(e.0.contains("[3, H, W]"), "{e}");
    }

    #[test]
    fn torch_errors_are_summarised_to_what_went_wrong() {
        let ts = "The following operation failed in the TorchScript interpreter.\nTraceback ...\n  raise X\n\
                  builtins.RuntimeError: the model gave up\n";
        assert_eq!(first_line(ts), "RuntimeError: the model gave up");
        let cpp = "Internal torch error: shape '[2]' is invalid\nException raised from foo at bar.cpp:1\nframe #0: x";
        assert_eq!(first_line(cpp), "shape '[2]' is invalid");
    }

    #[test]
    fn unknown_backend_lists_the_known_ones() {
        let cfg = BackendConfig {
            backend: "nope".into(),
            model: None,
            device: Device::Cpu,
            seed: 0,
            prompt: String::new(),
        };
        let e = create_generator(&cfg).err().unwrap().to_string();
        assert!(e.contains("nope") && e.contains("procedural"), "{e}");
    }
}
