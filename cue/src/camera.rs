//! The camera rig: where the virtual camera is, frame by frame.
//!
//! One internal convention, used everywhere and converted only at the edges (exports):
//! right-handed, Y up, metres. At yaw 0 the camera looks down -Z with +X to its right
//! (the glTF camera convention); yaw turns it to the left (counter-clockwise seen from
//! above), pitch tilts it up. Angles are degrees; `fov` is the horizontal field of view.
//!
//! The rig advances by whole frames with a fixed `dt`, never by wall-clock time, so the
//! same cues at the same frames give the same poses: that is what makes a scene
//! replayable.

use serde::{Deserialize, Serialize};

use crate::cue::{Action, CueError, PathPoint};

/// Metres per second at `forward` or `strafe` = 1 and `speed` = 1.
pub const MOVE_SPEED: f64 = 20.0;
/// Metres per second at `rise` = 1.
pub const RISE_SPEED: f64 = 10.0;
/// Degrees per second at `yaw` = 1.
pub const YAW_RATE: f64 = 60.0;
/// Degrees per second at `pitch` = 1.
pub const PITCH_RATE: f64 = 40.0;
/// The camera stays at least this far above the ground, where the model knows it.
pub const GROUND_CLEARANCE: f64 = 2.0;
pub const DEFAULT_FOV: f64 = 70.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pose {
    /// Position in metres.
    pub pos: [f64; 3],
    /// Degrees, counter-clockwise from -Z seen from above.
    pub yaw: f64,
    /// Degrees, positive looks up.
    pub pitch: f64,
    /// Horizontal field of view in degrees.
    pub fov: f64,
}

impl Default for Pose {
    fn default() -> Self {
        Pose {
            pos: [0.0, 60.0, 0.0],
            yaw: 0.0,
            pitch: 0.0,
            fov: DEFAULT_FOV,
        }
    }
}

impl Pose {
    /// Whether every number in it is finite (what may be drawn and recorded).
    pub fn is_finite(&self) -> bool {
        self.pos.iter().all(|v| v.is_finite())
            && self.yaw.is_finite()
            && self.pitch.is_finite()
            && self.fov.is_finite()
    }

    /// Unit vector the camera looks along, level (ignoring pitch).
    pub fn forward_level(&self) -> [f64; 3] {
        let y = self.yaw.to_radians();
        [-y.sin(), 0.0, -y.cos()]
    }

    /// Unit vector to the camera's right (always level: the rig never rolls).
    pub fn right(&self) -> [f64; 3] {
        let y = self.yaw.to_radians();
        [y.cos(), 0.0, -y.sin()]
    }

    /// Unit vector the camera looks along, with pitch.
    pub fn forward(&self) -> [f64; 3] {
        let (sp, cp) = self.pitch.to_radians().sin_cos();
        let f = self.forward_level();
        [f[0] * cp, sp, f[2] * cp]
    }
}

/// Where an axis of the current action came from, so that a timed action
/// (`duration_s`) stops only the axes it set and only if nothing changed them since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Axis {
    value: f64,
    /// The frame at which this axis returns to zero, for timed actions.
    until: Option<u64>,
}

/// A camera path being followed: the points, and the frame at which it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ActivePath {
    points: Vec<PathPoint>,
    looped: bool,
    start_frame: u64,
}

/// Integrates action cues and follows camera paths, one frame at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRig {
    pose: Pose,
    axes: [Axis; 5],
    path: Option<ActivePath>,
    pitch_limit: f64,
}

impl CameraRig {
    /// Checks a rig read from a file with the rules cues obey; the error names the field
    /// under `rig`.
    pub fn check(&self) -> Result<(), CueError> {
        use crate::cue::{MAX_PATH_YAW, MAX_POSITION_M};
        let bad = |field: &str, message: String| Err(CueError::field(field, message));
        if !(f64::MIN_POSITIVE..=89.0).contains(&self.pitch_limit) {
            return bad(
                "pitch_limit",
                format!("must be in (0, 89], got {}", self.pitch_limit),
            );
        }
        let p = &self.pose;
        if let Some(v) = p.pos.iter().find(|v| !within(**v, MAX_POSITION_M)) {
            return bad(
                "pose.pos",
                format!("each coordinate within ±{MAX_POSITION_M} metres, got {v}"),
            );
        }
        if !within(p.yaw, MAX_PATH_YAW) {
            return bad(
                "pose.yaw",
                format!("must be within ±{MAX_PATH_YAW}, got {}", p.yaw),
            );
        }
        if !within(p.pitch, self.pitch_limit) {
            return bad(
                "pose.pitch",
                format!("must be within ±{}, got {}", self.pitch_limit, p.pitch),
            );
        }
        if !(1.0..=170.0).contains(&p.fov) {
            return bad("pose.fov", format!("must be in [1, 170], got {}", p.fov));
        }
        for (i, a) in self.axes.iter().enumerate() {
            if !(-1.0..=1.0).contains(&a.value) {
                return bad(
                    &format!("axes[{i}]"),
                    format!("must be in [-1, 1], got {}", a.value),
                );
            }
        }
        if let Some(path) = &self.path {
            let mut last = -1.0;
            for (i, pt) in path.points.iter().enumerate() {
                let within_point = |e: CueError| e.within(&format!("path.points[{i}]"));
                if pt.t <= last {
                    return Err(within_point(CueError::field(
                        "t",
                        format!("times must increase, got {}", pt.t),
                    )));
                }
                last = pt.t;
                // Unwrapped yaw may run past a cue's bound by half a turn a point.
                pt.check(MAX_PATH_YAW + 180.0 * (i as f64 + 1.0))
                    .map_err(within_point)?;
            }
            if path.points.is_empty() {
                return bad("path.points", "a path has points".into());
            }
        }
        Ok(())
    }

    /// A rig at `pose`; pitch is kept within ±`pitch_limit` degrees (what the model can draw).
    pub fn new(pose: Pose, pitch_limit: f64) -> Self {
        let mut rig = CameraRig {
            pose,
            axes: Default::default(),
            path: None,
            pitch_limit: pitch_limit.clamp(0.0, 89.0),
        };
        rig.pose.pitch = rig.pose.pitch.clamp(-rig.pitch_limit, rig.pitch_limit);
        rig
    }

    pub fn pose(&self) -> Pose {
        self.pose
    }

    /// The current action axes in `ACTION_AXES` order.
    pub fn action(&self) -> [f64; 5] {
        self.axes.map(|a| a.value)
    }

    pub fn following_path(&self) -> bool {
        self.path.is_some()
    }

    /// Jumps to `pose` and stops all motion (scene cuts, checkpoint restores).
    pub fn place(&mut self, pose: Pose) {
        self.pose = pose;
        self.pose.pitch = pose.pitch.clamp(-self.pitch_limit, self.pitch_limit);
        self.axes = Default::default();
        self.path = None;
    }

    /// Applies an action cue at `frame`. Setting any axis hands control back from a
    /// camera path to the axes.
    pub fn apply_action(&mut self, action: &Action, frame: u64, fps: f64) {
        let until = action
            .duration_s
            .map(|d| frame + (d * fps).round().max(1.0) as u64);
        for (axis, value) in self.axes.iter_mut().zip(action.axes()) {
            if let Some(v) = value {
                *axis = Axis { value: v, until };
            }
        }
        self.path = None;
    }

    /// Starts following a camera path at `frame`. If the first point is later than
    /// t = 0, the path starts from the current pose so the camera glides into it.
    pub fn follow_path(&mut self, points: &[PathPoint], looped: bool, frame: u64) {
        let mut pts = Vec::with_capacity(points.len() + 1);
        if points[0].t > 0.0 {
            pts.push(PathPoint {
                t: 0.0,
                pos: self.pose.pos,
                yaw: self.pose.yaw,
                pitch: self.pose.pitch,
                fov: Some(self.pose.fov),
            });
        }
        pts.extend_from_slice(points);
        // Unwrap yaw so the camera turns the short way between points: each point
        // within half a turn of the one before (computed, not looped, so no value of yaw
        // can stall the model thread).
        for i in 1..pts.len() {
            let prev = pts[i - 1].yaw;
            pts[i].yaw = prev + shortest_turn(pts[i].yaw - prev);
        }
        // A point without fov keeps the one before it.
        let mut fov = self.pose.fov;
        for p in &mut pts {
            fov = p.fov.unwrap_or(fov);
            p.fov = Some(fov);
        }
        self.axes = Default::default();
        self.path = Some(ActivePath {
            points: pts,
            looped,
            start_frame: frame,
        });
    }

    /// Moves the rig to `frame` (one frame after the last call). `speed` scales motion;
    /// `ground` gives the terrain height under a point when the model knows it.
    pub fn advance(
        &mut self,
        frame: u64,
        fps: f64,
        speed: f64,
        ground: impl Fn(f64, f64) -> Option<f64>,
    ) {
        for axis in &mut self.axes {
            if axis.until.is_some_and(|u| frame >= u) {
                *axis = Axis::default();
            }
        }
        if let Some(path) = &self.path {
            let t = (frame - path.start_frame) as f64 / fps;
            let (mut pose, finished) = sample_path(&path.points, path.looped, t);
            pose.pitch = pose.pitch.clamp(-self.pitch_limit, self.pitch_limit);
            if finished {
                self.path = None;
            }
            // Cues are bounded so this cannot happen; if a path ever made a pose that is
            // not finite, the camera stays where it was rather than record or draw it.
            if pose.is_finite() {
                self.pose = pose;
            } else {
                self.path = None;
            }
            return;
        }
        let dt = 1.0 / fps;
        let [forward, strafe, rise, yaw, pitch] = self.action();
        let p = &mut self.pose;
        p.yaw = wrap_degrees(p.yaw + yaw * YAW_RATE * dt);
        p.pitch = (p.pitch + pitch * PITCH_RATE * dt).clamp(-self.pitch_limit, self.pitch_limit);
        let f = p.forward_level();
        let r = p.right();
        let step = MOVE_SPEED * speed * dt;
        p.pos[0] += (f[0] * forward + r[0] * strafe) * step;
        p.pos[2] += (f[2] * forward + r[2] * strafe) * step;
        p.pos[1] += rise * RISE_SPEED * speed * dt;
        if let Some(g) = ground(p.pos[0], p.pos[2]) {
            p.pos[1] = p.pos[1].max(g + GROUND_CLEARANCE);
        }
    }
}

/// Whether `v` is within ±`limit` (never for NaN).
fn within(v: f64, limit: f64) -> bool {
    v.abs() <= limit
}

/// The turn equal to `d` degrees modulo whole turns, within [-180, 180]: `d` itself when
/// it is, else the nearest end's side (540 gives 180, -540 gives -180).
fn shortest_turn(d: f64) -> f64 {
    if d > 180.0 {
        180.0 - (180.0 - d).rem_euclid(360.0)
    } else if d < -180.0 {
        (d + 180.0).rem_euclid(360.0) - 180.0
    } else {
        d
    }
}

/// Keeps yaw in (-180, 180] so it never grows without bound over a long show.
fn wrap_degrees(d: f64) -> f64 {
    let w = d.rem_euclid(360.0);
    if w > 180.0 {
        w - 360.0
    } else {
        w
    }
}

/// The pose at `t` seconds along a path (uniform Catmull-Rom through the points),
/// and whether a non-looping path has ended. A looping path repeats with the period of
/// its last point's time; when its last point equals its first, the loop is seamless.
fn sample_path(points: &[PathPoint], looped: bool, t: f64) -> (Pose, bool) {
    let n = points.len();
    let end = points[n - 1].t;
    if n == 1 {
        return (pose_of(&points[0]), !looped);
    }
    let (t, finished) = if looped && end > 0.0 {
        (t.rem_euclid(end), false)
    } else if t >= end {
        return (pose_of(&points[n - 1]), true);
    } else {
        (t, false)
    };
    let k = points.partition_point(|p| p.t <= t).clamp(1, n - 1) - 1;
    let closed = looped && same_place(&points[0], &points[n - 1]);
    // Neighbours for the tangents: across the seam of a closed loop, else clamped.
    let prev = if k > 0 {
        k - 1
    } else if closed {
        n - 2
    } else {
        0
    };
    let next = if k + 2 < n {
        k + 2
    } else if closed {
        1
    } else {
        n - 1
    };
    let (p0, p1, p2, p3) = (&points[prev], &points[k], &points[k + 1], &points[next]);
    let u = ((t - p1.t) / (p2.t - p1.t)).clamp(0.0, 1.0);
    let mut yaw0 = p0.yaw;
    let mut yaw3 = p3.yaw;
    if closed && k == 0 {
        yaw0 = p1.yaw - (points[n - 1].yaw - p0.yaw);
    }
    if closed && k + 2 >= n {
        yaw3 = p2.yaw + (p3.yaw - points[0].yaw);
    }
    let cr = |a: f64, b: f64, c: f64, d: f64| catmull_rom(a, b, c, d, u);
    let pose = Pose {
        pos: [0, 1, 2].map(|i| cr(p0.pos[i], p1.pos[i], p2.pos[i], p3.pos[i])),
        yaw: wrap_degrees(cr(yaw0, p1.yaw, p2.yaw, yaw3)),
        pitch: cr(p0.pitch, p1.pitch, p2.pitch, p3.pitch),
        fov: cr(fov_of(p0), fov_of(p1), fov_of(p2), fov_of(p3)).clamp(1.0, 170.0),
    };
    (pose, finished)
}

fn same_place(a: &PathPoint, b: &PathPoint) -> bool {
    a.pos.iter().zip(b.pos).all(|(x, y)| (x - y).abs() < 1e-6)
}

fn fov_of(p: &PathPoint) -> f64 {
    p.fov.unwrap_or(DEFAULT_FOV)
}

fn pose_of(p: &PathPoint) -> Pose {
    Pose {
        pos: p.pos,
        yaw: wrap_degrees(p.yaw),
        pitch: p.pitch,
        fov: fov_of(p),
    }
}

/// Uniform Catmull-Rom: passes through `b` at u = 0 and `c` at u = 1.
fn catmull_rom(a: f64, b: f64, c: f64, d: f64, u: f64) -> f64 {
    let u2 = u * u;
    let u3 = u2 * u;
    0.5 * (2.0 * b
        + (c - a) * u
        + (2.0 * a - 5.0 * b + 4.0 * c - d) * u2
        + (3.0 * b - a - 3.0 * c + d) * u3)
}

#[cfg(test)]
mod tests;
