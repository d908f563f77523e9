//! `ae/import_scene.jsx`: an ExtendScript for After Effects (File > Scripts > Run
//! Script File…) that builds the take's comp: the plate, a camera keyed on every frame,
//! and the markers.
//!
//! ExtendScript is ECMAScript 3: the script uses `var`, plain functions, no trailing
//! commas, and only ES3 string escapes (line and paragraph separators are escaped
//! too). The data is embedded as literals so the script needs nothing but the bundle
//! beside it, and keys are set with `setValuesAtTimes` (one call per property, much
//! faster in AE than one call per key).
//!
//! The camera is a two-node camera (position and point of interest), which After
//! Effects keeps level exactly as the rig does, so no Euler order has to be matched.
//! Positions are in comp pixels, [`crate::convert::AE_PIXELS_PER_METRE`] per metre,
//! the world's origin at the comp's centre; zoom is in pixels.

use std::fmt::Write;

use crate::convert::ae;
use crate::text::num;
use crate::timeline::Timeline;

pub(crate) struct AeInputs<'a> {
    pub take_name: &'a str,
    /// The plate to import, relative to the bundle's root, and whether it is an image
    /// sequence (`plate/rgb.0001.png`) or a movie (`plate/plate.mov`).
    pub plate: Option<(String, bool)>,
}

pub(crate) fn import_scene_jsx(t: &Timeline, inputs: &AeInputs<'_>) -> String {
    let (w, h) = (t.width, t.height);
    let cameras: Vec<ae::Camera> = t.poses.iter().map(|p| ae::camera(p, w, h)).collect();
    let list =
        |f: &dyn Fn(usize) -> String| (0..t.len()).map(f).collect::<Vec<_>>().join(",\n    ");
    let vec3 = |v: [f64; 3]| format!("[{}, {}, {}]", num(v[0]), num(v[1]), num(v[2]));
    let times = list(&|k| num(t.time_s(k as u64)));
    let positions = list(&|k| vec3(cameras[k].position));
    let pois = list(&|k| vec3(cameras[k].point_of_interest));
    let zooms = list(&|k| num(cameras[k].zoom));
    let markers = t
        .markers
        .iter()
        .map(|m| {
            format!(
                "{{ time: {}, label: {} }}",
                num(t.time_s(m.offset)),
                js_string(&m.label)
            )
        })
        .collect::<Vec<_>>()
        .join(",\n    ");
    let (plate, sequence) = inputs
        .plate
        .clone()
        .unwrap_or_else(|| (String::new(), false));

    let mut s = String::new();
    let _ = write!(
        s,
        r#"// After Effects import for the cuecast take {take_comment}.
// Run it with File > Scripts > Run Script File... from inside the export bundle: it
// creates a comp of the take's size, rate and length with the plate, a camera keyed on
// every frame (position and point of interest in comp pixels, {ppm} px per metre, the
// world's origin at the comp's centre; zoom in pixels) and the take's markers.
(function () {{
var TAKE = {take};
var WIDTH = {w};
var HEIGHT = {h};
var FPS = {fps};
var FRAMES = {frames};
var PLATE = {plate};
var PLATE_IS_SEQUENCE = {sequence};
var TIMES = [
    {times}
];
var POSITION = [
    {positions}
];
var POINT_OF_INTEREST = [
    {pois}
];
var ZOOM = [
    {zooms}
];
var MARKERS = [
    {markers}
];

var root = new File($.fileName).parent.parent;
app.beginUndoGroup("Import cuecast take " + TAKE);
try {{
    var comp = app.project.items.addComp(TAKE, WIDTH, HEIGHT, 1, FRAMES / FPS, FPS);
    if (PLATE !== "") {{
        var options = new ImportOptions(new File(root.fsName + "/" + PLATE));
        if (PLATE_IS_SEQUENCE) {{
            options.sequence = true;
            options.forceAlphabetical = true;
        }}
        var footage = app.project.importFile(options);
        footage.mainSource.conformFrameRate = FPS;
        var plate = comp.layers.add(footage);
        plate.name = "plate";
    }}
    var camera = comp.layers.addCamera("camera", [WIDTH / 2, HEIGHT / 2]);
    camera.autoOrient = AutoOrientType.CAMERA_OR_POINT_OF_INTEREST;
    var transform = camera.property("ADBE Transform Group");
    transform.property("ADBE Position").setValuesAtTimes(TIMES, POSITION);
    transform.property("ADBE Anchor Point").setValuesAtTimes(TIMES, POINT_OF_INTEREST);
    camera.property("ADBE Camera Options Group").property("ADBE Camera Zoom").setValuesAtTimes(TIMES, ZOOM);
    for (var i = 0; i < MARKERS.length; i++) {{
        comp.markerProperty.setValueAtTime(MARKERS[i].time, new MarkerValue(MARKERS[i].label));
    }}
    comp.openInViewer();
}} finally {{
    app.endUndoGroup();
}}
}})();
"#,
        take_comment = inputs.take_name.replace(['\n', '\r'], " "),
        ppm = num(crate::convert::AE_PIXELS_PER_METRE),
        take = js_string(inputs.take_name),
        fps = num(t.fps.as_f64()),
        frames = t.len(),
        plate = js_string(&plate),
    );
    s
}

/// A string literal valid in ECMAScript 3: JSON's escapes, plus the line and paragraph
/// separators that JSON leaves raw and ES3 does not allow in strings.
fn js_string(text: &str) -> String {
    serde_json::to_string(text)
        .expect("a string serialises")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}
