//! A frame's inputs in the model's terms, as the worker sends them: arrays in the order
//! the model's manifest declares (axes, keys, params), its mouse and buttons when it
//! takes the mouse, and the camera as a world-to-camera matrix and intrinsics when it
//! takes poses. The engine reads one [`FrameInput`] per frame for every kind of model;
//! this is where the python runtime turns it into what a python model reads.

use crate::camera::Pose;
use crate::cue::{MouseButton, ACTION_AXES};
use crate::generator::{FrameInput, ModelInfo, PromptMode};

use super::protocol::StepInputs;

/// A chunk's inputs, one column per input the model takes.
pub(crate) fn columns(frames: &[FrameInput], info: &ModelInfo) -> StepInputs {
    let col = |taken: bool, f: &dyn Fn(&FrameInput) -> Vec<f32>| {
        taken.then(|| frames.iter().map(f).collect::<Vec<_>>())
    };
    let axes = |f: &FrameInput| {
        info.actions
            .iter()
            .map(|a| {
                let i = ACTION_AXES.iter().position(|x| x == a).unwrap_or(0);
                f.action[i] as f32
            })
            .collect()
    };
    let keys = |f: &FrameInput| {
        info.inputs
            .keys
            .iter()
            .map(|k| f32::from(u8::from(f.input.keys.contains(k))))
            .collect()
    };
    let (w, h) = (f64::from(info.width), f64::from(info.height));
    let (mouse, camera) = (info.inputs.mouse, info.inputs.camera_pose);
    // A text prompt goes with the chunk, as its first frame has it; each frame says how
    // far the blend from the previous prompt has come.
    let first = frames.first().filter(|_| info.prompt == PromptMode::Text);
    // Each frame's pose and intrinsics, computed once.
    let (camera_pose, intrinsics) = if camera {
        let (poses, ks) = frames
            .iter()
            .map(|f| pose_matrices(&f.camera, w, h))
            .unzip();
        (Some(poses), Some(ks))
    } else {
        (None, None)
    };
    StepInputs {
        frame: frames.iter().map(|f| f.frame).collect(),
        time_s: frames.iter().map(|f| f.time_s).collect(),
        axes: col(!info.actions.is_empty(), &axes),
        keys: col(!info.inputs.keys.is_empty(), &keys),
        mouse: mouse.then(|| {
            frames
                .iter()
                .map(|f| f.input.mouse.map(|v| v as f32))
                .collect()
        }),
        buttons: mouse.then(|| {
            frames
                .iter()
                .map(|f| {
                    MouseButton::ALL.map(|b| f32::from(u8::from(f.input.buttons.contains(&b))))
                })
                .collect()
        }),
        camera_pose,
        intrinsics,
        params: col(!info.params.is_empty(), &|f| {
            f.params.iter().map(|&v| v as f32).collect()
        }),
        prompt: first.map(|f| f.prompt.text.clone()),
        prompt_previous: first.map(|f| f.prompt.previous.clone()),
        prompt_mix: first.map(|_| frames.iter().map(|f| f.prompt.mix as f32).collect()),
    }
}

/// A pose as a world-to-camera matrix (row-major) in OpenCV's camera axes (x right,
/// y down, z forward), and its intrinsics at `width` x `height` from the horizontal fov.
pub(crate) fn pose_matrices(pose: &Pose, width: f64, height: f64) -> ([f32; 16], [f32; 9]) {
    let (sy, cy) = pose.yaw.to_radians().sin_cos();
    let (sp, cp) = pose.pitch.to_radians().sin_cos();
    // Camera-to-world in cuecast's camera axes: R = Ry(yaw) * Rx(pitch).
    let r = [
        [cy, sy * sp, sy * cp],
        [0.0, cp, -sp],
        [-sy, cy * sp, cy * cp],
    ];
    // OpenCV's axes are cuecast's with y and z flipped: R_cv = R * diag(1, -1, -1);
    // world-to-camera is its transpose.
    let flip = [1.0, -1.0, -1.0];
    let mut m = [0f32; 16];
    for row in 0..3 {
        let mut t = 0.0;
        for col in 0..3 {
            let v = r[col][row] * flip[row];
            m[row * 4 + col] = v as f32;
            t -= v * pose.pos[col];
        }
        m[row * 4 + 3] = t as f32;
    }
    m[15] = 1.0;
    let fx = (width / 2.0) / (pose.fov.to_radians() / 2.0).tan();
    let k = [
        fx as f32,
        0.0,
        (width / 2.0) as f32,
        0.0,
        fx as f32,
        (height / 2.0) as f32,
        0.0,
        0.0,
        1.0,
    ];
    (m, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_to_camera_sends_the_camera_to_the_origin_looking_down_z() {
        let pose = Pose {
            pos: [1.0, 2.0, 3.0],
            yaw: 90.0,
            pitch: 0.0,
            fov: 90.0,
        };
        let (m, k) = pose_matrices(&pose, 200.0, 100.0);
        let apply = |p: [f32; 3]| -> [f32; 3] {
            let mut out = [0.0; 3];
            for r in 0..3 {
                out[r] = m[r * 4] * p[0] + m[r * 4 + 1] * p[1] + m[r * 4 + 2] * p[2] + m[r * 4 + 3];
            }
            out
        };
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(apply([1.0, 2.0, 3.0]), [0.0, 0.0, 0.0]));
        // At yaw 90 the camera looks down -X: a point 5 m along -X is 5 m ahead (+z).
        assert!(close(apply([-4.0, 2.0, 3.0]), [0.0, 0.0, 5.0]));
        // Up in the world is -y for OpenCV; its right (-Z in the world at yaw 90) is +x.
        assert!(close(apply([1.0, 3.0, 3.0]), [0.0, -1.0, 0.0]));
        assert!(close(apply([1.0, 2.0, 2.0]), [1.0, 0.0, 0.0]));
        assert_eq!((k[0], k[2], k[5]), (100.0, 100.0, 50.0));
    }
}
