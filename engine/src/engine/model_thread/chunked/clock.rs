//! The two clocks of a chunked model: the show's frames and the model's own (slot `k`
//! on air from the first show frame at or after `k / native` seconds), in exact integer
//! arithmetic for fractional rates; and the camera as a model that takes poses reads it.

use crate::camera::Pose;
use crate::generator::Fps;

/// `a * b / c`, rounded down or up, without overflow.
pub(super) fn ratio(a: u64, b: u64, c: u64, up: bool) -> u64 {
    let (n, d) = (u128::from(a) * u128::from(b), u128::from(c.max(1)));
    (if up { n.div_ceil(d) } else { n / d }) as u64
}

/// The slot on air at world frame `f`: `floor(f * native / show)`.
pub(super) fn slot_at(f: u64, show: Fps, native: Fps) -> u64 {
    ratio(
        f,
        u64::from(native.num) * u64::from(show.den),
        u64::from(native.den) * u64::from(show.num),
        false,
    )
}

/// The first world frame that shows slot `k`: `ceil(k * show / native)`.
pub(super) fn slot_frame(k: u64, show: Fps, native: Fps) -> u64 {
    ratio(
        k,
        u64::from(show.num) * u64::from(native.den),
        u64::from(show.den) * u64::from(native.num),
        true,
    )
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
    fn a_16_fps_model_in_a_30_fps_show_shows_frame_k_at_k_over_16_seconds() {
        let (show, native) = (Fps::new(30, 1), Fps::new(16, 1));
        for k in 0..200u64 {
            let f = slot_frame(k, show, native);
            // On air within one show frame of k/16 s, never before it.
            let t = f as f64 / 30.0;
            assert!(
                t >= k as f64 / 16.0 - 1e-9 && t < k as f64 / 16.0 + 1.0 / 30.0,
                "{k}"
            );
            assert_eq!(slot_at(f, show, native), k);
            if f > 0 {
                assert_eq!(slot_at(f - 1, show, native), k - 1);
            }
        }
        let ntsc = Fps::new(30000, 1001);
        assert_eq!(
            slot_at(slot_frame(1_000_000, ntsc, native), ntsc, native),
            1_000_000
        );
    }

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
