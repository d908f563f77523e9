//! `procedural`: the built-in world, needing no weights.
//!
//! A 3D landscape (terrain, water, sky, sun, fog) rendered from the camera rig with
//! real parallax and per-pixel depth. The prompt's words choose the biome and palette
//! ([`look`]), `time_of_day` and `fog` set the light, and the seed rearranges the
//! terrain. It is deterministic from seed and cue log on a given device.
//!
//! Two renderers draw the same world with the same algorithm: plain Rust on the CPU
//! ([`render`]; its cost is in the benchmark's section 1) and tensor ops on CUDA
//! ([`tensor`]). Tensor ops on a CPU cost 5-10x the plain Rust version, which is why the
//! CPU does not use them.

pub mod look;
pub mod render;
pub mod tensor;
pub mod terrain;

use std::collections::HashMap;

use tch::{Device, Tensor};

use super::{
    tensor_named, BackendConfig, Fps, FrameInput, Generator, Image, ModelInfo, ParamSpec,
    PromptMode, PromptState, StepError,
};
use crate::cue::ACTION_AXES;
use crate::EngineError;
use look::{look_for, Light, Look};
use render::{plan, render_cpu, Scratch, Shading};
use terrain::{TerrainMap, PERIOD};

/// Param order, as `ModelInfo::params` lists them.
const TIME_OF_DAY: usize = 0;
const FOG: usize = 1;

pub fn params() -> Vec<ParamSpec> {
    let p = |name: &str, default, min, max, description: &str| ParamSpec {
        name: name.into(),
        default,
        min,
        max,
        description: description.into(),
    };
    vec![
        p(
            "time_of_day",
            10.0,
            0.0,
            24.0,
            "hours: sunrise 6, noon 12, sunset 18",
        ),
        p("fog", 0.2, 0.0, 1.0, "0 clear to 1 thick"),
        p("speed", 1.0, 0.0, 10.0, "camera speed multiplier"),
    ]
}

/// Which renderer draws the frames.
enum Renderer {
    Cpu(Scratch),
    Tensor(tensor::TensorRenderer),
}

pub struct Procedural {
    info: ModelInfo,
    device: Device,
    map: TerrainMap,
    seed: u64,
    looks: HashMap<String, Look>,
    /// The look of the last frame (its water level is the ground the camera meets).
    current: Look,
    renderer: Renderer,
}

impl Procedural {
    pub fn create(config: &BackendConfig) -> Result<Box<dyn Generator>, EngineError> {
        Ok(Box::new(Procedural::new(
            config.device,
            config.seed,
            &config.prompt,
            config.device.is_cuda(),
        )))
    }

    /// A world on `device`; `tensor` picks the tensor renderer (always used on CUDA).
    pub fn new(device: Device, seed: u64, prompt: &str, tensor: bool) -> Procedural {
        let look = look_for(prompt);
        let renderer = if tensor {
            Renderer::Tensor(tensor::TensorRenderer::new(device))
        } else {
            Renderer::Cpu(Scratch::default())
        };
        Procedural {
            info: ModelInfo {
                name: "procedural".into(),
                width: 1280,
                height: 720,
                fps: Fps::new(30, 1),
                any_size: true,
                actions: ACTION_AXES.iter().map(|s| s.to_string()).collect(),
                params: params(),
                prompt: PromptMode::Text,
                pitch_limit: 60.0,
                depth: true,
                hash: "procedural-2".into(),
                inputs: Default::default(),
                chunking: Default::default(),
                audio: None,
            },
            device,
            map: TerrainMap::new(look.shape, seed),
            seed,
            looks: HashMap::from([(prompt.to_owned(), look)]),
            current: look,
            renderer,
        }
    }

    fn look(&mut self, prompt: &str) -> Look {
        if self.looks.len() > 64 {
            self.looks.clear();
        }
        *self
            .looks
            .entry(prompt.to_owned())
            .or_insert_with(|| look_for(prompt))
    }
}

impl Generator for Procedural {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        self.device
    }

    fn reset(&mut self, seed: u64, _prompt: &str) -> Result<(), StepError> {
        self.seed = seed;
        Ok(())
    }

    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        let target = self.look(&input.prompt.text);
        let look = match &input.prompt.previous {
            Some(prev) => self.look(prev).mix(&target, input.prompt.mix as f32),
            None => target,
        };
        self.current = look;
        self.map.update(look.shape, self.seed);
        let light = Light::new(
            input.params[TIME_OF_DAY] as f32,
            input.params[FOG] as f32,
            &look,
        );
        let plan = plan(&input.camera, out.width, out.height, input.detail);
        let shading = Shading::new(&look, &light);
        match &mut self.renderer {
            Renderer::Cpu(scratch) => {
                render_cpu(&plan, &self.map, &shading, out.data, scratch, input.depth);
                Ok(())
            }
            Renderer::Tensor(t) => t.render(&plan, &self.map, &shading, out),
        }
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Ok(vec![(
            "seed".into(),
            Tensor::from_slice(&[self.seed as i64]),
        )])
    }

    /// The terrain map follows from seed and look on every step; the look of the last
    /// frame (which the camera's ground clearance reads) follows from its prompt.
    fn restore(
        &mut self,
        state: &[(String, Tensor)],
        prompt: &PromptState,
    ) -> Result<(), StepError> {
        let seed = tensor_named(state, "seed")?
            .to_device(Device::Cpu)
            .int64_value(&[0]);
        self.seed = seed as u64;
        let target = self.look(&prompt.text);
        self.current = match &prompt.previous {
            Some(prev) => self.look(prev).mix(&target, prompt.mix as f32),
            None => target,
        };
        self.map.update(self.current.shape, self.seed);
        Ok(())
    }

    /// A coarser level image, scaled up by the warp it already has for pitch.
    fn scales_detail(&self) -> bool {
        true
    }

    fn depth(&self) -> Option<Tensor> {
        match &self.renderer {
            Renderer::Cpu(s) if !s.depth.is_empty() => {
                Some(Tensor::from_slice(&s.depth).view([-1, s.width as i64]))
            }
            Renderer::Cpu(_) => None,
            Renderer::Tensor(t) => t.depth(),
        }
    }

    fn ground_height(&self, x: f64, z: f64) -> Option<f64> {
        let t = self
            .map
            .sample(0, x.rem_euclid(PERIOD) as f32, z.rem_euclid(PERIOD) as f32);
        Some(f64::from(t[0].max(self.current.water)))
    }
}
