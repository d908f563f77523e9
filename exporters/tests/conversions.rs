//! The camera conversions against poses worked out by hand: yaw 0, 90 and 180, pitch
//! ±30, known positions and fields of view, for every target. Each target is also
//! checked by turning its own representation back into a view direction with that
//! tool's documented rules and comparing with the rig's `Pose::forward`.

use cuecast_engine::Pose;
use cuecast_exporters::convert::{self, ae, blender, gltf, unreal, usd};

const EPS: f64 = 1e-9;

fn pose(pos: [f64; 3], yaw: f64, pitch: f64, fov: f64) -> Pose {
    Pose {
        pos,
        yaw,
        pitch,
        fov,
    }
}

#[track_caller]
fn assert_close<const N: usize>(a: [f64; N], b: [f64; N]) {
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < EPS),
        "{a:?} != {b:?}"
    );
}

fn h() -> f64 {
    std::f64::consts::FRAC_1_SQRT_2
}

/// Rotates `v` by the unit quaternion `q = [x, y, z, w]`.
fn rotate(q: [f64; 4], v: [f64; 3]) -> [f64; 3] {
    let [x, y, z, w] = q;
    let u = [x, y, z];
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let t = cross(u, v).map(|c| 2.0 * c);
    let c = cross(u, t);
    [0, 1, 2].map(|i| v[i] + w * t[i] + c[i])
}

/// `Rz(c) · Ry(b) · Rx(a)` applied to `v`: an XYZ Euler rotation as USD's
/// `rotateXYZ` and Blender's `XYZ` mode define it (X first), degrees.
fn euler_xyz(r: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    let (sa, ca) = r[0].to_radians().sin_cos();
    let (sb, cb) = r[1].to_radians().sin_cos();
    let (sc, cc) = r[2].to_radians().sin_cos();
    let v = [v[0], ca * v[1] - sa * v[2], sa * v[1] + ca * v[2]];
    let v = [cb * v[0] + sb * v[2], v[1], -sb * v[0] + cb * v[2]];
    [cc * v[0] - sc * v[1], sc * v[0] + cc * v[1], v[2]]
}

/// Poses with every yaw and pitch of interest.
fn poses() -> Vec<Pose> {
    let mut out = Vec::new();
    for yaw in [0.0, 90.0, 180.0, -90.0, 37.0, -170.0] {
        for pitch in [0.0, 30.0, -30.0, 12.5] {
            out.push(pose([1.0, 2.0, 3.0], yaw, pitch, 70.0));
        }
    }
    out
}

#[test]
fn the_rig_frame_is_what_the_conversions_assume() {
    // The conversions start from Ry(yaw)·Rx(pitch); the rig's own vectors must agree.
    for p in poses() {
        assert_close(convert::forward(&p), p.forward());
        let m = convert::rotation_matrix(&p);
        assert_close([m[0][0], m[1][0], m[2][0]], p.right());
    }
}

#[test]
fn gltf_at_known_poses() {
    let p = pose([1.0, 2.0, 3.0], 0.0, 0.0, 90.0);
    assert_close(gltf::translation(&p), [1.0, 2.0, 3.0]);
    assert_close(gltf::rotation(&p), [0.0, 0.0, 0.0, 1.0]);
    // Yaw 90: a half-turn-angle of 45° about +Y; the camera looks down -X.
    let p = pose([0.0; 3], 90.0, 0.0, 90.0);
    assert_close(gltf::rotation(&p), [0.0, h(), 0.0, h()]);
    assert_close(
        rotate(gltf::rotation(&p), [0.0, 0.0, -1.0]),
        [-1.0, 0.0, 0.0],
    );
    // Yaw 180: about +Y by 180°, looking down +Z.
    let p = pose([0.0; 3], 180.0, 0.0, 90.0);
    assert_close(gltf::rotation(&p), [0.0, 1.0, 0.0, 0.0]);
    assert_close(
        rotate(gltf::rotation(&p), [0.0, 0.0, -1.0]),
        [0.0, 0.0, 1.0],
    );
    // Pitch +30 about +X: looking up and ahead.
    let (s15, c15) = 15f64.to_radians().sin_cos();
    let p = pose([0.0; 3], 0.0, 30.0, 90.0);
    assert_close(gltf::rotation(&p), [s15, 0.0, 0.0, c15]);
    assert_close(
        rotate(gltf::rotation(&p), [0.0, 0.0, -1.0]),
        [0.0, 0.5, -(3f64.sqrt() / 2.0)],
    );
    // Yaw 90 then pitch -30: qy(90)·qx(-30).
    let p = pose([0.0; 3], 90.0, -30.0, 90.0);
    assert_close(
        gltf::rotation(&p),
        [-h() * s15, h() * c15, h() * s15, h() * c15],
    );
    assert_close(
        rotate(gltf::rotation(&p), [0.0, 0.0, -1.0]),
        [-(3f64.sqrt() / 2.0), -0.5, 0.0],
    );
    // The camera never rolls: its right stays level.
    for p in poses() {
        let q = gltf::rotation(&p);
        assert_close(rotate(q, [0.0, 0.0, -1.0]), p.forward());
        assert_close(rotate(q, [1.0, 0.0, 0.0]), p.right());
        assert!((q.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < EPS);
    }
}

#[test]
fn gltf_vertical_field_of_view() {
    // hfov 90 at 16:9: tan(yfov/2) = 1 / (16/9).
    let p = pose([0.0; 3], 0.0, 0.0, 90.0);
    assert!((gltf::yfov(&p, 16.0 / 9.0) - 2.0 * (9.0f64 / 16.0).atan()).abs() < EPS);
    // A square picture has equal fields of view.
    assert!((gltf::yfov(&p, 1.0) - 90f64.to_radians()).abs() < EPS);
}

#[test]
fn focal_length_on_the_36mm_sensor() {
    assert!((convert::focal_length_mm(90.0) - 18.0).abs() < EPS);
    assert!((convert::focal_length_mm(60.0) - 18.0 * 3f64.sqrt()).abs() < EPS);
    assert!((convert::sensor_height_mm(1920, 1080) - 20.25).abs() < EPS);
}

#[test]
fn usd_at_known_poses() {
    let p = pose([1.0, 2.0, 3.0], 0.0, 0.0, 90.0);
    assert_close(usd::translate(&p), [1.0, -3.0, 2.0]);
    assert_close(usd::translate(&p), blender::location(&p));
    assert_close(usd::rotate_xyz(&p), [90.0, 0.0, 0.0]);
    // Tenths of a metre: 18 mm.
    assert!((usd::focal_length(&p) - 0.18).abs() < EPS);
    // At yaw 0 the camera looks down the rig's -Z, which is USD's +Y.
    assert_close(
        euler_xyz(usd::rotate_xyz(&p), [0.0, 0.0, -1.0]),
        [0.0, 1.0, 0.0],
    );
    assert_close(
        euler_xyz(usd::rotate_xyz(&p), [0.0, 1.0, 0.0]),
        [0.0, 0.0, 1.0],
    );
    let p = pose([0.0; 3], 90.0, 0.0, 90.0);
    assert_close(usd::rotate_xyz(&p), [90.0, 0.0, 90.0]);
    assert_close(
        euler_xyz(usd::rotate_xyz(&p), [0.0, 0.0, -1.0]),
        [-1.0, 0.0, 0.0],
    );
    let p = pose([0.0; 3], 180.0, 30.0, 90.0);
    assert_close(usd::rotate_xyz(&p), [120.0, 0.0, 180.0]);
    assert_close(
        euler_xyz(usd::rotate_xyz(&p), [0.0, 0.0, -1.0]),
        [0.0, -(3f64.sqrt() / 2.0), 0.5],
    );
    let p = pose([0.0; 3], 0.0, -30.0, 90.0);
    assert_close(usd::rotate_xyz(&p), [60.0, 0.0, 0.0]);
    // Everywhere: the USD camera looks where the rig does, turned Y-up to Z-up.
    for p in poses() {
        let [x, y, z] = p.forward();
        assert_close(euler_xyz(usd::rotate_xyz(&p), [0.0, 0.0, -1.0]), [x, -z, y]);
    }
}

#[test]
fn blender_at_known_poses() {
    let p = pose([1.0, 2.0, 3.0], 0.0, 0.0, 60.0);
    assert_close(blender::location(&p), [1.0, -3.0, 2.0]);
    assert_close(blender::rotation_euler_deg(&p), [90.0, 0.0, 0.0]);
    assert!((blender::lens_mm(&p) - 18.0 * 3f64.sqrt()).abs() < EPS);
    let p = pose([0.0; 3], 90.0, 30.0, 60.0);
    assert_close(blender::rotation_euler_deg(&p), [120.0, 0.0, 90.0]);
    assert_close(
        euler_xyz(blender::rotation_euler_deg(&p), [0.0, 0.0, -1.0]),
        [-(3f64.sqrt() / 2.0), 0.0, 0.5],
    );
    for p in poses() {
        let [x, y, z] = p.forward();
        assert_close(
            euler_xyz(blender::rotation_euler_deg(&p), [0.0, 0.0, -1.0]),
            [x, -z, y],
        );
        // No roll: the camera's right stays horizontal (Blender's Z is up).
        assert!(euler_xyz(blender::rotation_euler_deg(&p), [1.0, 0.0, 0.0])[2].abs() < EPS);
    }
}

#[test]
fn unreal_at_known_poses() {
    let p = pose([1.0, 2.0, 3.0], 0.0, 0.0, 90.0);
    assert_close(unreal::location(&p), [-300.0, 100.0, 200.0]);
    let r = unreal::rotation(&p);
    assert_close([r.pitch, r.yaw, r.roll], [0.0, 0.0, 0.0]);
    // Yaw 0 looks down Unreal's +X (forward).
    assert_close(unreal::rotator_forward(r), [1.0, 0.0, 0.0]);
    // Turning left 90° looks down -Y (Unreal's Y is to the right).
    let r = unreal::rotation(&pose([0.0; 3], 90.0, 0.0, 90.0));
    assert_close([r.pitch, r.yaw, r.roll], [0.0, -90.0, 0.0]);
    assert_close(unreal::rotator_forward(r), [0.0, -1.0, 0.0]);
    let r = unreal::rotation(&pose([0.0; 3], 180.0, -30.0, 90.0));
    assert_close([r.pitch, r.yaw, r.roll], [-30.0, -180.0, 0.0]);
    assert_close(
        unreal::rotator_forward(r),
        [-(3f64.sqrt() / 2.0), 0.0, -0.5],
    );
    // A point 1 m to the camera's right at yaw 0 (+X) is 100 cm along Unreal's +Y.
    assert_close(
        unreal::location(&pose([1.0, 0.0, 0.0], 0.0, 0.0, 90.0)),
        [0.0, 100.0, 0.0],
    );
    for p in poses() {
        let [x, y, z] = p.forward();
        assert_close(unreal::rotator_forward(unreal::rotation(&p)), [-z, x, y]);
    }
    assert!((unreal::focal_length_mm(&pose([0.0; 3], 0.0, 0.0, 90.0)) - 18.0).abs() < EPS);
}

#[test]
fn after_effects_at_known_poses() {
    let (w, h) = (1920, 1080);
    // hfov 90: zoom = (1920 / 2) / tan(45°) = 960 px = 18 mm × 1920 / 36 mm.
    let c = ae::camera(&pose([1.0, 2.0, 3.0], 0.0, 0.0, 90.0), w, h);
    assert_close(c.position, [1060.0, 340.0, -300.0]);
    assert!((c.zoom - 960.0).abs() < EPS);
    // Looking down the rig's -Z is looking into the screen, AE's +Z.
    assert_close(c.point_of_interest, [1060.0, 340.0, 660.0]);
    // Yaw 90 looks left: AE's -X.
    let c = ae::camera(&pose([0.0; 3], 90.0, 0.0, 90.0), w, h);
    assert_close(c.position, [960.0, 540.0, 0.0]);
    assert_close(c.point_of_interest, [0.0, 540.0, 0.0]);
    // Yaw 180 looks out of the screen, AE's -Z.
    let c = ae::camera(&pose([0.0; 3], 180.0, 0.0, 90.0), w, h);
    assert_close(c.point_of_interest, [960.0, 540.0, -960.0]);
    // Pitch +30 looks up: AE's Y decreases.
    let c = ae::camera(&pose([0.0; 3], 0.0, 30.0, 90.0), w, h);
    assert_close(
        c.point_of_interest,
        [960.0, 540.0 - 480.0, 960.0 * 3f64.sqrt() / 2.0],
    );
    // Pitch -30 looks down: AE's Y increases.
    let c = ae::camera(&pose([0.0; 3], 0.0, -30.0, 90.0), w, h);
    assert_close(
        c.point_of_interest,
        [960.0, 540.0 + 480.0, 960.0 * 3f64.sqrt() / 2.0],
    );
    // 60° at 1280 wide: 640 / tan 30°.
    let c = ae::camera(&pose([0.0; 3], 0.0, 0.0, 60.0), 1280, 720);
    assert!((c.zoom - 640.0 * 3f64.sqrt()).abs() < 1e-9);
    assert!((c.zoom - convert::focal_length_mm(60.0) * 1280.0 / 36.0).abs() < 1e-9);
}

#[test]
fn yaw_is_made_continuous() {
    // Each value moves by whole turns to within 180° of the one before: through the
    // wrap at ±180 both ways, and the long way round (10 → -179 is 189° left, 171° right).
    let mut yaws = [170.0, -170.0, -150.0, 170.0, 10.0, -179.0, 179.0, -10.0];
    convert::unwrap_degrees(&mut yaws);
    assert_close(
        yaws,
        [170.0, 190.0, 210.0, 170.0, 10.0, 181.0, 179.0, 350.0],
    );
}

#[test]
fn points_in_the_camera_frame_go_to_the_world() {
    // 5 m ahead of a camera at (1, 2, 3) turned left 90° is 5 m along -X.
    let p = pose([1.0, 2.0, 3.0], 90.0, 0.0, 70.0);
    assert_close(
        convert::camera_to_world(&p, [0.0, 0.0, -5.0]),
        [-4.0, 2.0, 3.0],
    );
    // 1 m to its right is towards -Z.
    assert_close(
        convert::camera_to_world(&p, [1.0, 0.0, 0.0]),
        [1.0, 2.0, 2.0],
    );
}
