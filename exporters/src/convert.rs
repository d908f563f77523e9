//! The camera, converted exactly into each tool's conventions: pure functions of one
//! [`Pose`], tested against hand-computed poses.
//!
//! The take's camera has one convention (see `cuecast_engine::camera`): right-handed,
//! Y up, metres; at yaw 0 the camera looks down -Z with +X to its right; yaw turns it
//! left (counter-clockwise seen from above), pitch tilts it up, degrees; `fov` is the
//! horizontal field of view; the rig never rolls. As a rotation matrix (column
//! vectors) the camera's orientation is `R = Ry(yaw) · Rx(pitch)`: pitch about the
//! camera's own X, then yaw about the world's Y.
//!
//! | target | axes | units | position | orientation |
//! |---|---|---|---|---|
//! | glTF | Y up, right-handed; camera looks -Z | metres | `(x, y, z)` | quaternion of `Ry(yaw)·Rx(pitch)` |
//! | USD (`upAxis = "Z"`) | Z up, right-handed; camera looks -Z | metres (`metersPerUnit = 1`) | `(x, -z, y)` | `rotateXYZ = (90 + pitch, 0, yaw)` |
//! | Blender | Z up, right-handed; camera looks -Z | metres | `(x, -z, y)` | Euler XYZ `(90 + pitch, 0, yaw)` |
//! | Unreal | Z up, left-handed, X forward, Y right | cm | `100·(-z, x, y)` | pitch = pitch, yaw = -yaw, roll = 0 |
//! | After Effects | Y down, Z into the screen | pixels | `(w/2 + s·x, h/2 - s·y, -s·z)` | point of interest along the view |
//!
//! Why these: Y-up to Z-up is a +90° turn about X, `(x, y, z) → (x, -z, y)`, which is
//! what USD tools and Blender's own glTF importer do, so a glTF opened in Blender lands
//! where the Blender script and the USD put the camera. The turn conjugates `Ry(yaw)`
//! into `Rz(yaw)`, so `C·Ry(yaw)·Rx(pitch) = Rz(yaw)·Rx(90° + pitch)`, an XYZ Euler
//! rotation of `(90 + pitch, 0, yaw)`. Unreal is left-handed with X forward: the
//! camera's forward at yaw 0 (-Z) becomes +X, its right (+X) becomes +Y, up stays up;
//! Unreal's yaw turns X towards Y (to the right), hence the sign flip, and its pitch
//! looks up like ours. After Effects is our frame turned 180° about X (Y down, Z away
//! from the viewer, still right-handed), scaled by [`AE_PIXELS_PER_METRE`] and moved so
//! that the world's origin is the comp's centre.

use cuecast_engine::Pose;

/// The sensor every exported camera has: a full-frame 36 mm wide back. The field of
/// view changes by changing the focal length (as a zoom lens does), never the sensor,
/// so the aperture stays constant in every tool and only the focal length is keyed.
pub const SENSOR_WIDTH_MM: f64 = 36.0;

/// After Effects works in pixels: one metre of the world is this many comp pixels.
pub const AE_PIXELS_PER_METRE: f64 = 100.0;

/// Unreal works in centimetres.
pub const CM_PER_METRE: f64 = 100.0;

/// The camera's orientation as a rotation matrix (rows), `Ry(yaw) · Rx(pitch)`: the
/// columns are the camera's right, up and backward (+Z) axes in world space.
pub fn rotation_matrix(pose: &Pose) -> [[f64; 3]; 3] {
    let (sy, cy) = pose.yaw.to_radians().sin_cos();
    let (sp, cp) = pose.pitch.to_radians().sin_cos();
    [
        [cy, sy * sp, sy * cp],
        [0.0, cp, -sp],
        [-sy, cy * sp, cy * cp],
    ]
}

/// The unit vector the camera looks along, world space.
pub fn forward(pose: &Pose) -> [f64; 3] {
    let m = rotation_matrix(pose);
    [-m[0][2], -m[1][2], -m[2][2]]
}

/// A point given in the camera's frame (x right, y up, -z forward), in world space.
pub fn camera_to_world(pose: &Pose, p: [f64; 3]) -> [f64; 3] {
    let m = rotation_matrix(pose);
    let mut out = pose.pos;
    for (o, row) in out.iter_mut().zip(m) {
        *o += row[0] * p[0] + row[1] * p[1] + row[2] * p[2];
    }
    out
}

/// Focal length in mm on a [`SENSOR_WIDTH_MM`] wide sensor for a horizontal field of
/// view: `f = (sensor / 2) / tan(hfov / 2)`.
pub fn focal_length_mm(hfov_deg: f64) -> f64 {
    SENSOR_WIDTH_MM / 2.0 / (hfov_deg.to_radians() / 2.0).tan()
}

/// The sensor's height in mm for a `width` x `height` picture (square pixels).
pub fn sensor_height_mm(width: usize, height: usize) -> f64 {
    SENSOR_WIDTH_MM * height as f64 / width as f64
}

/// Vertical field of view in radians, from the horizontal one in degrees and the
/// picture's aspect ratio (width / height): `yfov = 2·atan(tan(hfov / 2) / aspect)`.
pub fn vertical_fov_rad(hfov_deg: f64, aspect: f64) -> f64 {
    2.0 * ((hfov_deg.to_radians() / 2.0).tan() / aspect).atan()
}

/// Degrees made continuous: each value moved by whole turns to within 180° of the one
/// before it. The rig keeps yaw in (-180, 180]; a camera turning through 180° would
/// otherwise spin the long way round between two keys in any tool that interpolates
/// Euler angles.
pub fn unwrap_degrees(values: &mut [f64]) {
    for i in 1..values.len() {
        let prev = values[i - 1];
        let turns = ((values[i] - prev) / 360.0).round();
        values[i] -= turns * 360.0;
    }
}

/// glTF: Y up, metres, the internal frame itself.
pub mod gltf {
    use super::*;

    pub fn translation(pose: &Pose) -> [f64; 3] {
        pose.pos
    }

    /// The node rotation as a unit quaternion `[x, y, z, w]`:
    /// `q = qy(yaw) · qx(pitch) = (cy·sp, sy·cp, -sy·sp, cy·cp)` with half angles.
    pub fn rotation(pose: &Pose) -> [f64; 4] {
        let (sy, cy) = (pose.yaw.to_radians() / 2.0).sin_cos();
        let (sp, cp) = (pose.pitch.to_radians() / 2.0).sin_cos();
        [cy * sp, sy * cp, -sy * sp, cy * cp]
    }

    /// `perspective.yfov` (radians) for a picture of `aspect` = width / height.
    pub fn yfov(pose: &Pose, aspect: f64) -> f64 {
        vertical_fov_rad(pose.fov, aspect)
    }
}

/// USD with `upAxis = "Z"` and `metersPerUnit = 1`: the stage in metres, so that a
/// reader that ignores the stage's units (Blender 4.2's importer places prims in
/// metres whatever `metersPerUnit` says) and one that converts them (Unreal's) both put
/// the camera where it was. The camera prim looks down its -Z like every USD camera.
pub mod usd {
    use super::*;

    /// The stage's `metersPerUnit`.
    pub const METERS_PER_UNIT: f64 = 1.0;

    /// `xformOp:translate` in metres: `(x, -z, y)`, Blender's own placement.
    pub fn translate(pose: &Pose) -> [f64; 3] {
        let [x, y, z] = pose.pos;
        [x, -z, y]
    }

    /// USD keeps a camera's lens and filmback in tenths of a scene unit (Blender's and
    /// Unreal's importers read them so: millimetres = value · 100 · `metersPerUnit`).
    pub fn lens_units(mm: f64) -> f64 {
        mm / (100.0 * METERS_PER_UNIT)
    }

    /// `xformOp:rotateXYZ` in degrees: `(90 + pitch, 0, yaw)`.
    pub fn rotate_xyz(pose: &Pose) -> [f64; 3] {
        [90.0 + pose.pitch, 0.0, pose.yaw]
    }

    /// `focalLength`, in tenths of a scene unit.
    pub fn focal_length(pose: &Pose) -> f64 {
        lens_units(focal_length_mm(pose.fov))
    }
}

/// Blender: Z up, right-handed, metres; cameras look down their -Z.
pub mod blender {
    use super::*;

    /// `location` in metres: `(x, -z, y)`.
    pub fn location(pose: &Pose) -> [f64; 3] {
        let [x, y, z] = pose.pos;
        [x, -z, y]
    }

    /// `rotation_euler` (mode `XYZ`) in degrees: `(90 + pitch, 0, yaw)`.
    pub fn rotation_euler_deg(pose: &Pose) -> [f64; 3] {
        [90.0 + pose.pitch, 0.0, pose.yaw]
    }

    /// `lens` in mm with `sensor_fit = 'HORIZONTAL'`, `sensor_width` = [`SENSOR_WIDTH_MM`].
    pub fn lens_mm(pose: &Pose) -> f64 {
        focal_length_mm(pose.fov)
    }
}

/// Unreal: left-handed, X forward, Y right, Z up, centimetres; a camera looks down +X.
pub mod unreal {
    use super::*;

    /// An `FRotator`, degrees.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Rotator {
        pub pitch: f64,
        pub yaw: f64,
        pub roll: f64,
    }

    /// Location in cm: `100·(-z, x, y)`.
    pub fn location(pose: &Pose) -> [f64; 3] {
        let [x, y, z] = pose.pos;
        [-z * CM_PER_METRE, x * CM_PER_METRE, y * CM_PER_METRE]
    }

    /// Rotation: pitch = pitch, yaw = -yaw, roll = 0.
    pub fn rotation(pose: &Pose) -> Rotator {
        Rotator {
            pitch: pose.pitch,
            yaw: -pose.yaw,
            roll: 0.0,
        }
    }

    /// The direction an `FRotator` looks along (Unreal's `FRotator::Vector()`).
    pub fn rotator_forward(r: Rotator) -> [f64; 3] {
        let (sp, cp) = r.pitch.to_radians().sin_cos();
        let (sy, cy) = r.yaw.to_radians().sin_cos();
        [cp * cy, cp * sy, sp]
    }

    /// A `CineCameraComponent`'s current focal length (mm) with a
    /// [`SENSOR_WIDTH_MM`] filmback.
    pub fn focal_length_mm(pose: &Pose) -> f64 {
        super::focal_length_mm(pose.fov)
    }
}

/// After Effects: pixels, X right, Y down, Z into the screen, origin at the comp's
/// top-left corner; a two-node camera (position and point of interest) keeps itself
/// level, exactly like the rig, so no Euler order is involved.
pub mod ae {
    use super::*;

    /// One camera key.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Camera {
        pub position: [f64; 3],
        pub point_of_interest: [f64; 3],
        /// AE's zoom: the distance in pixels at which one comp pixel is one screen pixel,
        /// `(width / 2) / tan(hfov / 2)` = focal × comp width / sensor width.
        pub zoom: f64,
    }

    /// A world point in comp pixels: `(w/2 + s·x, h/2 - s·y, -s·z)`.
    pub fn point(p: [f64; 3], width: usize, height: usize) -> [f64; 3] {
        let s = AE_PIXELS_PER_METRE;
        [
            width as f64 / 2.0 + s * p[0],
            height as f64 / 2.0 - s * p[1],
            -s * p[2],
        ]
    }

    pub fn zoom(pose: &Pose, width: usize) -> f64 {
        width as f64 / 2.0 / (pose.fov.to_radians() / 2.0).tan()
    }

    /// The camera for a comp of `width` x `height`. The point of interest lies along
    /// the view at the zoom distance (where AE puts it by default).
    pub fn camera(pose: &Pose, width: usize, height: usize) -> Camera {
        let position = point(pose.pos, width, height);
        let zoom = zoom(pose, width);
        let f = forward(pose);
        let dir = [f[0], -f[1], -f[2]];
        Camera {
            position,
            point_of_interest: [
                position[0] + dir[0] * zoom,
                position[1] + dir[1] * zoom,
                position[2] + dir[2] * zoom,
            ],
            zoom,
        }
    }
}
