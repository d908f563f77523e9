//! A take at a fractional broadcast rate (30000/1001): every file must carry the exact
//! rate, not 30 and not a rounded 29.97.

mod support;

use std::process::Command;

use cuecast_engine::Fps;
use cuecast_exporters::{export, ExportOptions, Format};
use serde_json::Value;
use support::close;

#[test]
fn ntsc_rate_reaches_every_tool_exactly() {
    let dir = support::tempdir("ntsc");
    let take = support::record_take_at(&dir, Fps::new(30000, 1001));
    let out = dir.join("bundle");
    let options = ExportOptions {
        formats: Format::parse_list("prores,usd,ae,blender").unwrap(),
        force: false,
    };
    let summary = export(&take, &out, &options, &mut |_| {}).unwrap();
    let n = take.duration_frames();
    let rate = 30000.0 / 1001.0;
    assert!(close(summary.duration_s, n as f64 / rate, 1e-12));

    let mut probe = Command::new("ffprobe");
    probe
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=r_frame_rate,avg_frame_rate,nb_frames",
        ])
        .args(["-of", "json"])
        .arg(out.join("plate/plate.mov"));
    let probe: Value = serde_json::from_str(&support::run(probe, "ffprobe")).unwrap();
    let stream = &probe["streams"][0];
    assert_eq!(stream["r_frame_rate"], "30000/1001");
    assert_eq!(stream["avg_frame_rate"], "30000/1001");
    assert_eq!(stream["nb_frames"], n.to_string());

    let usd = support::python("check_usd.py", &[&out.join("camera/camera.usda")]);
    assert!(close(
        usd["timeCodesPerSecond"].as_f64().unwrap(),
        rate,
        1e-12
    ));
    assert!(close(usd["framesPerSecond"].as_f64().unwrap(), rate, 1e-12));

    let ae = support::node("run_ae_script.js", &[&out.join("ae/import_scene.jsx")]);
    let comp = &ae["comps"][0];
    assert!(close(comp["frameRate"].as_f64().unwrap(), rate, 1e-12));
    assert!(close(
        comp["duration"].as_f64().unwrap(),
        n as f64 / rate,
        1e-9
    ));
    // The plate is the movie when no PNGs were exported.
    assert!(ae["imports"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("plate/plate.mov"));
    assert_eq!(ae["imports"][0]["sequence"], false);
    let zoom = comp["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "camera")
        .unwrap()["zoom"]
        .clone();
    let last = &zoom.as_array().unwrap()[n as usize - 1];
    assert!(close(
        last[0].as_f64().unwrap(),
        (n - 1) as f64 * 1001.0 / 30000.0,
        1e-12
    ));

    let blender = support::python(
        "run_blender_script.py",
        &[&out.join("blender/import_scene.py")],
    );
    assert_eq!(blender["fps"], 30);
    assert!(close(blender["fps_base"].as_f64().unwrap(), 1.001, 1e-12));
    assert_eq!(blender["frame_end"], n);
}
