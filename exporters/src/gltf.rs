//! `camera/scene.glb`: the camera as a glTF 2.0 binary, with the first frame's depth as
//! a point cloud.
//!
//! - One node holds the camera; its `translation` and `rotation` are keyed once per
//!   timeline frame, at the time of its exported frame number (frame 1, the plate's
//!   first, at 1/fps) (`LINEAR`: at the frame times the values are exact, and between
//!   them motion blur sees the straight path a real shutter would).
//! - The field of view is keyed through `KHR_animation_pointer` on
//!   `/cameras/0/perspective/yfov`: core glTF cannot animate camera properties. The
//!   extension is listed in `extensionsUsed` but not required, so a reader without it
//!   still loads the scene and keeps the first frame's `yfov`.
//! - The point cloud is a `POINTS` primitive in world space (Y up, metres), with the
//!   plate's colours, from a regular subsample of the depth map of the take's first
//!   frame, so the camera's motion can be checked against the scene it saw.
//!
//! The JSON is written with `serde_json` rather than `gltf-json`, whose types cannot
//! express a channel that targets a pointer instead of a node.

use cuecast_engine::take::Size;
use serde_json::{json, Value};

use crate::convert::{self, gltf};
use crate::timeline::Timeline;

/// At most about this many points in the cloud.
pub const MAX_POINTS: usize = 50_000;
/// Depth beyond this is sky or haze, not a surface: left out of the point cloud.
pub const POINT_MAX_DEPTH_M: f32 = 1000.0;

const ARRAY_BUFFER: u32 = 34962;
const FLOAT: u32 = 5126;
const UNSIGNED_BYTE: u32 = 5121;

/// The first frame's depth with its picture: what the point cloud is made of.
pub(crate) struct FirstFrame<'a> {
    pub depth_size: Size,
    pub depth: &'a [f32],
    pub rgbx: &'a [u8],
}

/// The binary chunk and the views and accessors into it.
#[derive(Default)]
struct Bin {
    data: Vec<u8>,
    views: Vec<Value>,
    accessors: Vec<Value>,
}

impl Bin {
    fn view(&mut self, bytes: &[u8], target: Option<u32>) -> usize {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
        let mut view = json!({
            "buffer": 0,
            "byteOffset": self.data.len(),
            "byteLength": bytes.len(),
        });
        if let Some(t) = target {
            view["target"] = json!(t);
        }
        self.data.extend_from_slice(bytes);
        self.views.push(view);
        self.views.len() - 1
    }

    /// A float accessor of `kind` (`SCALAR`, `VEC3`, `VEC4`) over `values`, with its
    /// exact bounds when `bounds` (required for animation inputs and positions).
    fn floats(&mut self, values: &[f32], kind: &str, bounds: bool, target: Option<u32>) -> usize {
        let n = components(kind);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = self.view(&bytes, target);
        let mut accessor = json!({
            "bufferView": view,
            "componentType": FLOAT,
            "count": values.len() / n,
            "type": kind,
        });
        if bounds {
            let mut min = vec![f32::INFINITY; n];
            let mut max = vec![f32::NEG_INFINITY; n];
            for v in values.chunks_exact(n) {
                for i in 0..n {
                    min[i] = min[i].min(v[i]);
                    max[i] = max[i].max(v[i]);
                }
            }
            // The f32 values widened exactly, so the bounds match the data bit for bit.
            let widen = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
            accessor["min"] = json!(widen(min));
            accessor["max"] = json!(widen(max));
        }
        self.accessors.push(accessor);
        self.accessors.len() - 1
    }

    fn colours(&mut self, rgba: &[u8]) -> usize {
        let view = self.view(rgba, Some(ARRAY_BUFFER));
        self.accessors.push(json!({
            "bufferView": view,
            "componentType": UNSIGNED_BYTE,
            "normalized": true,
            "count": rgba.len() / 4,
            "type": "VEC4",
        }));
        self.accessors.len() - 1
    }
}

fn components(kind: &str) -> usize {
    match kind {
        "SCALAR" => 1,
        "VEC3" => 3,
        _ => 4,
    }
}

/// The glTF scene as GLB bytes.
pub(crate) fn scene_glb(
    t: &Timeline,
    take_name: &str,
    generator: &str,
    first: Option<FirstFrame<'_>>,
) -> Vec<u8> {
    let aspect = t.aspect();
    let mut bin = Bin::default();
    // Keyed at the exported frame numbers' times (frame 1 at 1/fps): importers turn a
    // key's time into a frame as time × fps (Blender's does), so the first key lands on
    // the plate's first frame, 1, as in the USD and the scripts.
    let times: Vec<f32> = (0..t.len()).map(|k| t.time_s(t.number(k)) as f32).collect();
    let translations: Vec<f32> = t
        .poses
        .iter()
        .flat_map(|p| gltf::translation(p).map(|v| v as f32))
        .collect();
    let mut rotations: Vec<f32> = Vec::with_capacity(t.len() * 4);
    let mut previous: Option<[f64; 4]> = None;
    for p in &t.poses {
        let mut q = gltf::rotation(p);
        // Keep consecutive keys in one hemisphere so slerp takes the short way.
        if let Some(prev) = previous {
            if (0..4).map(|i| q[i] * prev[i]).sum::<f64>() < 0.0 {
                q = q.map(|v| -v);
            }
        }
        previous = Some(q);
        rotations.extend(q.map(|v| v as f32));
    }
    let yfovs: Vec<f32> = t
        .poses
        .iter()
        .map(|p| gltf::yfov(p, aspect) as f32)
        .collect();

    let input = bin.floats(&times, "SCALAR", true, None);
    let translation = bin.floats(&translations, "VEC3", false, None);
    let rotation = bin.floats(&rotations, "VEC4", false, None);
    let yfov = bin.floats(&yfovs, "SCALAR", false, None);

    let first_pose = &t.poses[0];
    let camera_node = json!({
        "name": "camera",
        "camera": 0,
        "translation": translations[0..3],
        "rotation": rotations[0..4],
    });
    let mut nodes = vec![camera_node];
    let mut meshes = Vec::new();
    if let Some(first) = first {
        let (positions, colours) = point_cloud(first_pose, &first, t.width, t.height);
        if !colours.is_empty() {
            let position = bin.floats(&positions, "VEC3", true, Some(ARRAY_BUFFER));
            let colour = bin.colours(&colours);
            meshes.push(json!({
                "name": "depth points",
                "primitives": [{
                    "attributes": { "POSITION": position, "COLOR_0": colour },
                    "mode": 0,
                }],
            }));
            nodes.push(json!({ "name": "depth points", "mesh": 0 }));
        }
    }
    while bin.data.len() % 4 != 0 {
        bin.data.push(0);
    }

    let sampler =
        |output: usize| json!({ "input": input, "output": output, "interpolation": "LINEAR" });
    let mut root = json!({
        "asset": {
            "version": "2.0",
            "generator": generator,
            "extras": { "take": take_name },
        },
        "extensionsUsed": ["KHR_animation_pointer"],
        "scene": 0,
        "scenes": [{ "name": take_name, "nodes": (0..nodes.len()).collect::<Vec<_>>() }],
        "nodes": nodes,
        "cameras": [{
            "name": "camera",
            "type": "perspective",
            "perspective": {
                "aspectRatio": aspect,
                "yfov": f64::from(yfovs[0]),
                "znear": 0.1,
                "zfar": 10000.0,
            },
        }],
        "animations": [{
            "name": "camera",
            "samplers": [sampler(translation), sampler(rotation), sampler(yfov)],
            "channels": [
                { "sampler": 0, "target": { "node": 0, "path": "translation" } },
                { "sampler": 1, "target": { "node": 0, "path": "rotation" } },
                { "sampler": 2, "target": {
                    "path": "pointer",
                    "extensions": { "KHR_animation_pointer": { "pointer": "/cameras/0/perspective/yfov" } },
                } },
            ],
        }],
        "buffers": [{ "byteLength": bin.data.len() }],
        "bufferViews": bin.views,
        "accessors": bin.accessors,
    });
    if meshes.is_empty() {
        root.as_object_mut().unwrap().remove("meshes");
    } else {
        root["meshes"] = json!(meshes);
    }
    glb(&root, &bin.data)
}

/// World-space points (and RGBA colours) from a depth map seen from `pose`: pixel
/// centres unprojected through the pinhole of horizontal field of view `pose.fov`,
/// `p_camera = (x_ndc·tan(hfov/2)·d, y_ndc·tan(vfov/2)·d, -d)`, then placed by
/// [`convert::camera_to_world`]. The depth map covers the picture's field of view at its
/// own size; colours come from the nearest plate pixel.
pub(crate) fn point_cloud(
    pose: &cuecast_engine::Pose,
    first: &FirstFrame<'_>,
    width: usize,
    height: usize,
) -> (Vec<f32>, Vec<u8>) {
    let Size {
        width: dw,
        height: dh,
    } = first.depth_size;
    let step = (((dw * dh) as f64 / MAX_POINTS as f64).sqrt().ceil() as usize).max(1);
    let tan_x = (pose.fov.to_radians() / 2.0).tan();
    let tan_y = tan_x * dh as f64 / dw as f64;
    let mut positions = Vec::new();
    let mut colours = Vec::new();
    for j in (step / 2..dh).step_by(step) {
        for i in (step / 2..dw).step_by(step) {
            let d = first.depth[j * dw + i];
            if !(d.is_finite() && d > 0.0 && d < POINT_MAX_DEPTH_M) {
                continue;
            }
            let d = f64::from(d);
            let x_ndc = 2.0 * (i as f64 + 0.5) / dw as f64 - 1.0;
            let y_ndc = 1.0 - 2.0 * (j as f64 + 0.5) / dh as f64;
            let p = convert::camera_to_world(pose, [x_ndc * tan_x * d, y_ndc * tan_y * d, -d]);
            positions.extend(p.map(|v| v as f32));
            let u = ((i as f64 + 0.5) * width as f64 / dw as f64) as usize;
            let v = ((j as f64 + 0.5) * height as f64 / dh as f64) as usize;
            let o = (v.min(height - 1) * width + u.min(width - 1)) * 4;
            colours.extend_from_slice(&[first.rgbx[o], first.rgbx[o + 1], first.rgbx[o + 2], 255]);
        }
    }
    (positions, colours)
}

/// A GLB container: 12-byte header, the JSON chunk padded with spaces, the binary
/// chunk padded with zeros.
fn glb(root: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json = serde_json::to_vec(root).expect("a glTF document serialises");
    while json.len() % 4 != 0 {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + if bin.is_empty() { 0 } else { 8 + bin.len() };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    if !bin.is_empty() {
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(bin);
    }
    out
}
