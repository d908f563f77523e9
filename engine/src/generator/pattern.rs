//! `pattern`: a trivial backend that costs next to nothing per frame.
//!
//! It exists to measure everything around the model (buffer handling, timestamps,
//! pacing) with the model's own cost taken out, and to test the pipeline quickly. The
//! picture still follows the world: the stripes slide with the camera's yaw and position
//! and a bar sweeps once a second, so motion and freezes are visible.

use tch::{Device, Tensor};

use super::{
    tensor_named, BackendConfig, Fps, FrameInput, Generator, Image, ModelInfo, PromptState,
    StepError,
};
use crate::EngineError;

pub struct Pattern {
    info: ModelInfo,
    /// Base colour from the seed, so a seed cue visibly changes the picture.
    tint: [u8; 3],
}

impl Pattern {
    pub fn create(config: &BackendConfig) -> Result<Box<dyn Generator>, EngineError> {
        let mut p = Pattern {
            info: ModelInfo {
                hash: "pattern-1".into(),
                ..ModelInfo::simple("pattern", 1280, 720, Fps::new(30, 1))
            },
            tint: [0; 3],
        };
        p.reset(config.seed, &config.prompt)
            .map_err(|e| EngineError::Config {
                what: "pattern".into(),
                message: e.0,
            })?;
        Ok(Box::new(p))
    }
}

impl Generator for Pattern {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn reset(&mut self, seed: u64, _prompt: &str) -> Result<(), StepError> {
        let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.tint = [
            (h >> 16) as u8 & 0x7f,
            (h >> 32) as u8 & 0x7f,
            (h >> 48) as u8 & 0x7f,
        ];
        Ok(())
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Ok(vec![("tint".into(), Tensor::from_slice(&self.tint))])
    }

    fn restore(&mut self, state: &[(String, Tensor)], _: &PromptState) -> Result<(), StepError> {
        let tint = tensor_named(state, "tint")?;
        let values = Vec::<u8>::try_from(&tint.to_device(Device::Cpu))?;
        self.tint = values
            .try_into()
            .map_err(|_| StepError("state tensor \"tint\" must hold 3 bytes".into()))?;
        Ok(())
    }

    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        let w = out.width;
        let cam = input.camera;
        // Stripes move with yaw and sideways position; the sweep marks time.
        let shift = (cam.yaw * w as f64 / cam.fov + cam.pos[0] * 4.0 - cam.pos[2] * 2.0) as i64;
        let per_second = u64::from(input.fps.nominal());
        let sweep = (input.frame % per_second) as usize * w / per_second as usize;
        let [r0, g0, b0] = self.tint;
        let mut row = vec![0u8; w * 4];
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            let band =
                ((x as i64 + shift).rem_euclid(w as i64 / 8 + 1) * 255 / (w as i64 / 8 + 1)) as u8;
            px.copy_from_slice(&[r0 | band, g0 | (band / 2), b0 | (255 - band), 255]);
            if x.abs_diff(sweep) < 4 {
                px[..3].copy_from_slice(&[255, 255, 255]);
            }
        }
        for line in out.data.chunks_exact_mut(w * 4) {
            line.copy_from_slice(&row);
        }
        Ok(())
    }
}
