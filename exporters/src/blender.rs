//! `blender/import_scene.py`: a Blender Python script that sets the scene's rate,
//! frame range and resolution, and creates the take's camera keyed on every frame,
//! the plate as the camera's background, the markers, and (optionally) the depth
//! points from `camera/scene.glb`.
//!
//! Blender is Z up, right-handed, in metres, and its cameras look down their -Z like
//! glTF's, so the camera is keyed with [`crate::convert::blender`]: location
//! `(x, -z, y)`, Euler XYZ `(90° + pitch, 0, yaw)`. That is the same turn Blender's own
//! glTF importer applies, so the points land where the camera saw them. New keys are
//! linear: every frame has one, and linear keys keep motion blur on the straight path.

use std::fmt::Write;

use crate::convert::{blender, sensor_height_mm, SENSOR_WIDTH_MM};
use crate::text::num;
use crate::timeline::Timeline;

pub(crate) struct BlenderInputs<'a> {
    pub take_name: &'a str,
    /// The plate relative to the bundle's root: the first PNG of the sequence, or the
    /// movie.
    pub plate: Option<String>,
    /// The glTF scene relative to the bundle's root, for its point cloud.
    pub points: Option<String>,
}

pub(crate) fn import_scene_py(t: &Timeline, inputs: &BlenderInputs<'_>) -> String {
    let keys = t
        .poses
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let l = blender::location(p);
            let r = blender::rotation_euler_deg(p).map(f64::to_radians);
            format!(
                "({}, ({}, {}, {}), ({}, {}, {}), {})",
                t.number(k),
                num(l[0]),
                num(l[1]),
                num(l[2]),
                num(r[0]),
                num(r[1]),
                num(r[2]),
                num(blender::lens_mm(p))
            )
        })
        .collect::<Vec<_>>()
        .join(",\n    ");
    let markers = t
        .markers
        .iter()
        .map(|m| format!("({}, {})", t.number(m.offset as usize), py_string(&m.label)))
        .collect::<Vec<_>>()
        .join(",\n    ");
    let optional = |v: &Option<String>| v.as_deref().map_or("None".to_owned(), py_string);

    let mut s = String::new();
    let _ = write!(
        s,
        r#""""Blender import for the cuecast take {take_doc}.

Open this file in Blender's Text Editor and press Run Script, or start Blender with
`blender --python blender/import_scene.py`, from inside the export bundle. It sets the
scene's frame rate, frame range and resolution, and creates the camera keyed on every
frame (Z up, metres; lens on a 36 mm wide sensor), the plate as the camera's
background, the take's markers and, if IMPORT_POINTS is true, the depth points of
camera/scene.glb.
"""

import os

import bpy

IMPORT_POINTS = True

TAKE = {take}
WIDTH = {w}
HEIGHT = {h}
FPS = {rate}
FIRST_FRAME = {first}
LAST_FRAME = {last}
SENSOR_WIDTH = {sensor_w}
SENSOR_HEIGHT = {sensor_h}
PLATE = {plate}
POINTS = {points}
# (frame, location in metres, rotation_euler XYZ in radians, lens in mm)
KEYS = [
    {keys}
]
# (frame, label)
MARKERS = [
    {markers}
]


def bundle_root():
    """The export bundle's folder: the parent of this script's folder."""
    here = globals().get("__file__") or ""
    if not os.path.isfile(here):
        text = getattr(getattr(bpy.context, "space_data", None), "text", None)
        if text is not None and text.filepath:
            here = bpy.path.abspath(text.filepath)
    return os.path.dirname(os.path.dirname(os.path.abspath(here)))


def set_scene(scene):
    scene.render.fps = max(1, round(FPS))
    scene.render.fps_base = scene.render.fps / FPS
    scene.frame_start = FIRST_FRAME
    scene.frame_end = LAST_FRAME
    scene.render.resolution_x = WIDTH
    scene.render.resolution_y = HEIGHT
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = 1.0


def make_camera(scene):
    data = bpy.data.cameras.new(TAKE)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH
    data.sensor_height = SENSOR_HEIGHT
    data.clip_start = 0.1
    data.clip_end = 10000.0
    camera = bpy.data.objects.new(TAKE, data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.rotation_mode = "XYZ"
    edit = bpy.context.preferences.edit
    interpolation = edit.keyframe_new_interpolation_type
    edit.keyframe_new_interpolation_type = "LINEAR"
    try:
        for frame, location, rotation, lens in KEYS:
            camera.location = location
            camera.rotation_euler = rotation
            data.lens = lens
            camera.keyframe_insert("location", frame=frame)
            camera.keyframe_insert("rotation_euler", frame=frame)
            data.keyframe_insert("lens", frame=frame)
    finally:
        edit.keyframe_new_interpolation_type = interpolation
    return camera


def add_plate(camera, root):
    if PLATE is None:
        return
    path = os.path.join(root, PLATE)
    data = camera.data
    background = data.background_images.new()
    if PLATE.endswith(".mov"):
        background.source = "MOVIE_CLIP"
        background.clip = bpy.data.movieclips.load(path)
    else:
        image = bpy.data.images.load(path)
        image.source = "SEQUENCE"
        background.image = image
        background.image_user.frame_start = FIRST_FRAME
        background.image_user.frame_duration = LAST_FRAME - FIRST_FRAME + 1
        background.image_user.use_auto_refresh = True
    data.show_background_images = True


def add_markers(scene):
    for frame, label in MARKERS:
        scene.timeline_markers.new(label, frame=frame)


def import_points(root):
    if POINTS is None or not IMPORT_POINTS:
        return
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=os.path.join(root, POINTS))
    # The glTF also holds the camera: keep only its points.
    for obj in set(bpy.data.objects) - before:
        if obj.type == "CAMERA":
            bpy.data.objects.remove(obj, do_unlink=True)


def main():
    root = bundle_root()
    scene = bpy.context.scene
    set_scene(scene)
    camera = make_camera(scene)
    add_plate(camera, root)
    add_markers(scene)
    import_points(root)
    scene.frame_set(FIRST_FRAME)
    print("cuecast: imported take %s, frames %d-%d at %.3f fps" % (TAKE, FIRST_FRAME, LAST_FRAME, FPS))


main()
"#,
        take_doc = inputs.take_name.replace(['\n', '\r', '"', '\\'], " "),
        take = py_string(inputs.take_name),
        rate = py_float(t.fps.as_f64()),
        w = t.width,
        h = t.height,
        first = t.number(0),
        last = t.last_number(),
        sensor_w = py_float(SENSOR_WIDTH_MM),
        sensor_h = py_float(sensor_height_mm(t.width, t.height)),
        plate = optional(&inputs.plate),
        points = optional(&inputs.points),
    );
    s
}

fn py_float(v: f64) -> String {
    let s = num(v);
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A Python string literal: JSON's escapes are all valid in Python.
fn py_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}
