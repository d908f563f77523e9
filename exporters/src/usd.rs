//! `camera/camera.usda`: the camera as USD ASCII, written by hand (no USD library is
//! needed to write a camera, and the file stays readable and diffable).
//!
//! The stage is Z up in metres (`upAxis = "Z"`, `metersPerUnit = 1`): Blender 4.2's
//! importer places prims in the file's numbers as metres whatever the stage's units say,
//! and Unreal's converts the stage's metres to its centimetres itself, so both put the
//! camera where the bundle's Blender script does. Time codes are the exported frame
//! numbers (1 = the take's first frame) at the take's rate. The camera prim has one time
//! sample per frame for `xformOp:translate` (metres), `xformOp:rotateXYZ` (degrees) and
//! `focalLength`; the lens and filmback are in USD's tenths of a scene unit (a 36 mm wide
//! aperture is 0.36, see [`crate::convert::SENSOR_WIDTH_MM`]), which both importers turn
//! back into millimetres. USD has no backplate schema; the
//! plate's path is recorded on the camera as `cuecast:backplate` for tools and people.

use std::fmt::Write;

use crate::convert::{self, usd};
use crate::text::num;
use crate::timeline::Timeline;

/// What the USD file refers to besides the camera.
pub(crate) struct UsdInputs<'a> {
    pub take_name: &'a str,
    pub generator: &'a str,
    /// The plate relative to the USD file (`../plate/rgb.####.png`), if exported.
    pub backplate: Option<String>,
}

pub(crate) fn camera_usda(t: &Timeline, inputs: &UsdInputs<'_>) -> String {
    let rate = t.fps.as_f64();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"#usda 1.0
(
    customLayerData = {{
        string "cuecast:generator" = "{generator}"
        string "cuecast:take" = "{take}"
    }}
    defaultPrim = "cuecast"
    doc = "cuecast take {take}: camera, one time sample per frame"
    endTimeCode = {end}
    framesPerSecond = {rate}
    metersPerUnit = {meters_per_unit}
    startTimeCode = {start}
    timeCodesPerSecond = {rate}
    upAxis = "Z"
)

def Xform "cuecast"
{{
    def Camera "camera"
    {{
"#,
        generator = escape(inputs.generator),
        take = escape(inputs.take_name),
        start = t.number(0),
        end = t.last_number(),
        rate = num(rate),
        meters_per_unit = num(usd::METERS_PER_UNIT),
    );
    let first = &t.poses[0];
    let _ = writeln!(s, "        float2 clippingRange = (0.1, 10000)");
    let _ = writeln!(
        s,
        "        float focalLength = {}",
        num(usd::focal_length(first))
    );
    samples(&mut s, "float focalLength", t, |p| {
        num(usd::focal_length(p))
    });
    let _ = writeln!(
        s,
        "        float horizontalAperture = {}",
        num(usd::lens_units(convert::SENSOR_WIDTH_MM))
    );
    let _ = writeln!(s, "        token projection = \"perspective\"");
    let _ = writeln!(
        s,
        "        float verticalAperture = {}",
        num(usd::lens_units(convert::sensor_height_mm(
            t.width, t.height
        )))
    );
    samples(&mut s, "double3 xformOp:rotateXYZ", t, |p| {
        triple(usd::rotate_xyz(p))
    });
    samples(&mut s, "double3 xformOp:translate", t, |p| {
        triple(usd::translate(p))
    });
    let _ = writeln!(
        s,
        "        uniform token[] xformOpOrder = [\"xformOp:translate\", \"xformOp:rotateXYZ\"]"
    );
    if let Some(plate) = &inputs.backplate {
        let _ = writeln!(
            s,
            "        custom string cuecast:backplate = \"{}\"",
            escape(plate)
        );
    }
    s.push_str("    }\n}\n");
    s
}

fn samples(
    s: &mut String,
    declaration: &str,
    t: &Timeline,
    value: impl Fn(&cuecast_engine::Pose) -> String,
) {
    let _ = writeln!(s, "        {declaration}.timeSamples = {{");
    for (k, p) in t.poses.iter().enumerate() {
        let _ = writeln!(s, "            {}: {},", t.number(k), value(p));
    }
    s.push_str("        }\n");
}

fn triple(v: [f64; 3]) -> String {
    format!("({}, {}, {})", num(v[0]), num(v[1]), num(v[2]))
}

/// A USD string literal's contents.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
