//! A recorded take exported with every format, each file checked by the tool that
//! reads it: gltf-validator, usd-core, acorn and a mock of After Effects, Python (with a
//! stand-in for Blender), ffprobe, the `exr` and `png` decoders; and the values read back
//! against the take's own poses, converted.
//!
//! Why one file over 600 lines: one take is recorded once and every format is read back
//! from it by its own reader; split, each file would record its own take.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cuecast_engine::{Pose, Take};
use cuecast_exporters::convert::{self, ae, blender, usd};
use cuecast_exporters::{export, ExportOptions, ExportSummary, Format, Progress};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{assert_close3, close, f64s, vec3};

struct Exported {
    take: Take,
    out: PathBuf,
    summary: ExportSummary,
    progress: Vec<Progress>,
}

/// The take and its bundle, made once for all tests of this file.
fn exported() -> &'static Exported {
    static BUNDLE: OnceLock<Exported> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = support::tempdir("bundle");
        let take = support::record_take(&dir);
        let out = dir.join("export-test-export");
        let mut progress = Vec::new();
        let summary = export(&take, &out, &ExportOptions::default(), &mut |p| {
            progress.push(p)
        })
        .unwrap();
        Exported {
            take,
            out,
            summary,
            progress,
        }
    })
}

/// The pose on air at each timeline frame, yaw made continuous as every export does.
fn timeline_poses(take: &Take) -> Vec<Pose> {
    let mut poses: Vec<Pose> = take
        .timeline()
        .iter()
        .map(|&k| take.frames[k].pose)
        .collect();
    let mut yaws: Vec<f64> = poses.iter().map(|p| p.yaw).collect();
    convert::unwrap_degrees(&mut yaws);
    for (p, y) in poses.iter_mut().zip(yaws) {
        p.yaw = y;
    }
    poses
}

fn duration(take: &Take) -> usize {
    take.duration_frames() as usize
}

#[test]
fn the_take_has_the_features_the_exports_must_handle() {
    let take = &exported().take;
    // Skipped show frames leave gaps the timeline holds.
    assert_eq!(
        duration(take),
        take.frames.len() + support::SKIPPED.len(),
        "{:?}",
        take.frames.iter().map(|f| f.frame).collect::<Vec<_>>()
    );
    // The camera turns through ±180° (the rig wraps yaw there) and zooms.
    let yaws: Vec<f64> = take.frames.iter().map(|f| f.pose.yaw).collect();
    assert!(
        yaws.iter().any(|y| *y > 170.0) && yaws.iter().any(|y| *y < -170.0),
        "{yaws:?}"
    );
    let fovs: BTreeSet<u64> = take.frames.iter().map(|f| f.pose.fov.to_bits()).collect();
    assert!(fovs.len() > 5);
    assert_eq!(take.markers().len(), 2);
    assert!(take.manifest.depth.is_some());
}

#[test]
fn the_summary_lists_every_file() {
    let e = exported();
    let d = duration(&e.take);
    assert_eq!(e.summary.frames as usize, d);
    assert!(close(e.summary.duration_s, d as f64 / 30.0, 1e-12));
    assert!(e.summary.seconds > 0.0);
    let mut on_disk = Vec::new();
    walk(&e.out, &e.out, &mut on_disk);
    on_disk.sort();
    assert_eq!(e.summary.files, on_disk);
    for f in [
        "manifest.json",
        "markers.json",
        "camera/scene.glb",
        "camera/camera.usda",
        "plate/rgb.0001.png",
        "plate/plate.mov",
        "depth/depth.0001.exr",
        "ae/import_scene.jsx",
        "blender/import_scene.py",
    ] {
        assert!(
            on_disk.iter().any(|x| x == f),
            "{f} missing from {on_disk:?}"
        );
    }
    assert_eq!(on_disk.iter().filter(|f| f.ends_with(".png")).count(), d);
    assert_eq!(on_disk.iter().filter(|f| f.ends_with(".exr")).count(), d);
    assert!(on_disk.contains(&format!("plate/rgb.{d:04}.png")));
    // Progress went through every frame and every file, in order.
    let frames: Vec<u64> = e
        .progress
        .iter()
        .filter(|p| p.stage == "frames")
        .map(|p| p.done)
        .collect();
    assert_eq!(frames, (1..=d as u64).collect::<Vec<_>>());
    assert!(e.progress.iter().all(|p| p.done <= p.total));
    assert!(e.progress.iter().any(|p| p.stage == "checksums"));
    // No temporary folder is left beside the bundle.
    let parent = e.out.parent().unwrap();
    let names: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn manifest_checksums_match_the_files() {
    let e = exported();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(e.out.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_object().unwrap();
    assert_eq!(
        files.len(),
        e.summary.files.len() - 1,
        "every file but the manifest"
    );
    assert!(!files.contains_key("manifest.json"));
    for (name, entry) in files {
        let bytes = std::fs::read(e.out.join(name)).unwrap();
        let sum: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(entry["sha256"], sum.as_str(), "{name}");
        assert_eq!(entry["bytes"], bytes.len(), "{name}");
    }
    let d = duration(&e.take);
    assert_eq!(manifest["format"], "cuecast-export/1");
    assert_eq!(manifest["take"], "export-test");
    assert_eq!(manifest["fps"]["num"], 30);
    assert_eq!(manifest["fps"]["den"], 1);
    assert_eq!(manifest["frames"]["first"], 1);
    assert_eq!(manifest["frames"]["last"], d);
    assert_eq!(manifest["frames"]["count"], d);
    assert_eq!(manifest["frames"]["show_first"], e.take.frames[0].frame);
    assert_eq!(manifest["size"]["width"], support::WIDTH);
    assert_eq!(manifest["size"]["height"], support::HEIGHT);
    assert_eq!(manifest["generator"]["model"]["backend"], "procedural");
    // The skipped show frames are the held timeline frames.
    let first = e.take.frames[0].frame;
    let held: Vec<u64> = support::SKIPPED.iter().map(|f| f - first + 1).collect();
    assert_eq!(manifest["frames"]["held"], serde_json::json!(held));
    assert!(manifest["axes"]["camera/camera.usda"].is_string());
    assert!(manifest["units"]["camera/camera.usda"].is_string());
}

#[test]
fn markers_json_has_the_takes_markers() {
    let e = exported();
    let markers: Value =
        serde_json::from_slice(&std::fs::read(e.out.join("markers.json")).unwrap()).unwrap();
    let list = markers["markers"].as_array().unwrap();
    let expected = e.take.markers();
    assert_eq!(list.len(), expected.len());
    for (m, x) in list.iter().zip(&expected) {
        assert_eq!(m["label"], x.label.as_str());
        assert_eq!(m["frame"], x.offset + 1);
        assert_eq!(m["show_frame"], x.frame);
        assert!(close(m["time_s"].as_f64().unwrap(), x.time_s, 1e-12));
    }
    assert_eq!(list[0]["label"], "cut \"here\"");
}

/// A GLB's JSON and binary chunks.
fn read_glb(path: &Path) -> (Value, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"glTF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 2);
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
        bytes.len()
    );
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    assert_eq!(&bytes[16..20], b"JSON");
    let json: Value = serde_json::from_slice(&bytes[20..20 + json_len]).unwrap();
    let rest = &bytes[20 + json_len..];
    let bin_len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
    assert_eq!(&rest[4..8], b"BIN\0");
    (json, rest[8..8 + bin_len].to_vec())
}

/// An accessor's floats, `components` per element.
fn accessor_f32(json: &Value, bin: &[u8], index: u64) -> (Vec<f32>, usize) {
    let a = &json["accessors"][index as usize];
    assert_eq!(a["componentType"], 5126);
    let view = &json["bufferViews"][a["bufferView"].as_u64().unwrap() as usize];
    let n = match a["type"].as_str().unwrap() {
        "SCALAR" => 1,
        "VEC3" => 3,
        "VEC4" => 4,
        t => panic!("type {t}"),
    };
    let count = a["count"].as_u64().unwrap() as usize;
    let start = view["byteOffset"].as_u64().unwrap_or(0) as usize
        + a["byteOffset"].as_u64().unwrap_or(0) as usize;
    let values = bin[start..start + count * n * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (values, count)
}

#[test]
fn gltf_validator_reports_no_errors() {
    let e = exported();
    let report = support::node("validate_gltf.js", &[&e.out.join("camera/scene.glb")]);
    let issues = &report["issues"];
    println!(
        "gltf-validator {}: {} errors, {} warnings, {} infos, {} hints",
        report["validatorVersion"],
        issues["numErrors"],
        issues["numWarnings"],
        issues["numInfos"],
        issues["numHints"]
    );
    for m in issues["messages"].as_array().unwrap() {
        println!(
            "  {} {} {}: {}",
            m["severity"], m["code"], m["pointer"], m["message"]
        );
    }
    assert_eq!(issues["numErrors"], 0, "{issues:#}");
    assert_eq!(issues["numWarnings"], 0, "{issues:#}");
    let info = &report["info"];
    assert_eq!(info["animationCount"], 1);
    assert!(info["extensionsUsed"]
        .as_array()
        .unwrap()
        .contains(&Value::from("KHR_animation_pointer")));
}

#[test]
fn gltf_has_one_key_per_timeline_frame_matching_the_take() {
    let e = exported();
    let (json, bin) = read_glb(&e.out.join("camera/scene.glb"));
    let poses = timeline_poses(&e.take);
    let aspect = support::WIDTH as f64 / support::HEIGHT as f64;
    let anim = &json["animations"][0];
    let sampler =
        |i: usize| &anim["samplers"][anim["channels"][i]["sampler"].as_u64().unwrap() as usize];
    assert_eq!(anim["channels"][0]["target"]["path"], "translation");
    assert_eq!(anim["channels"][1]["target"]["path"], "rotation");
    assert_eq!(anim["channels"][2]["target"]["path"], "pointer");
    assert_eq!(
        anim["channels"][2]["target"]["extensions"]["KHR_animation_pointer"]["pointer"],
        "/cameras/0/perspective/yfov"
    );
    let camera_node = anim["channels"][0]["target"]["node"].as_u64().unwrap() as usize;
    assert_eq!(json["nodes"][camera_node]["camera"], 0);

    let (times, n) = accessor_f32(&json, &bin, sampler(0)["input"].as_u64().unwrap());
    assert_eq!(n, poses.len());
    // Keyed at the exported frame numbers' times: a plain glTF import (Blender's: frame
    // = time × fps) keys frame 1 on the plate's first frame, 1, as the bundle's script
    // and the USD do.
    for (k, t) in times.iter().enumerate() {
        let frame = (k + 1) as f64;
        assert!(close(f64::from(*t), frame / 30.0, 1e-6));
        assert_eq!(
            (f64::from(*t) * 30.0).round(),
            frame,
            "key {k} on frame {frame}"
        );
    }
    let (translations, n) = accessor_f32(&json, &bin, sampler(0)["output"].as_u64().unwrap());
    assert_eq!(n, poses.len());
    let (rotations, n) = accessor_f32(&json, &bin, sampler(1)["output"].as_u64().unwrap());
    assert_eq!(n, poses.len());
    let (yfovs, n) = accessor_f32(&json, &bin, sampler(2)["output"].as_u64().unwrap());
    assert_eq!(n, poses.len());
    let take = &e.take;
    for (k, &index) in take.timeline().iter().enumerate() {
        // The recorded pose itself (yaw as recorded, wrapped): the key must look the
        // same way.
        let pose = take.frames[index].pose;
        let t = &translations[k * 3..k * 3 + 3];
        assert_close3(
            t.iter()
                .map(|v| f64::from(*v))
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
            pose.pos,
            1e-4,
            "translation",
        );
        let q: [f64; 4] = rotations[k * 4..k * 4 + 4]
            .iter()
            .map(|v| f64::from(*v))
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        assert_close3(
            rotate(q, [0.0, 0.0, -1.0]),
            pose.forward(),
            1e-5,
            "view direction",
        );
        assert_close3(rotate(q, [1.0, 0.0, 0.0]), pose.right(), 1e-5, "right");
        let yfov = 2.0 * ((pose.fov.to_radians() / 2.0).tan() / aspect).atan();
        assert!(close(f64::from(yfovs[k]), yfov, 1e-6));
    }
    assert!(close(
        json["cameras"][0]["perspective"]["aspectRatio"]
            .as_f64()
            .unwrap(),
        aspect,
        1e-12
    ));
}

#[test]
fn gltf_points_lie_at_the_first_frames_depth() {
    let e = exported();
    let (json, bin) = read_glb(&e.out.join("camera/scene.glb"));
    let primitive = &json["meshes"][0]["primitives"][0];
    assert_eq!(primitive["mode"], 0);
    let (points, n) = accessor_f32(
        &json,
        &bin,
        primitive["attributes"]["POSITION"].as_u64().unwrap(),
    );
    assert!(n > 100, "only {n} points");
    let take = &e.take;
    let first = take.frames[take.timeline()[0]].pose;
    let (size, depth) = take.depth(take.timeline()[0]).unwrap().unwrap();
    let max = depth.iter().cloned().fold(0f32, f32::max);
    let f = first.forward();
    let tan_x = (first.fov.to_radians() / 2.0).tan();
    for p in points.chunks_exact(3) {
        let d = [0, 1, 2].map(|i| f64::from(p[i]) - first.pos[i]);
        // Along the view axis, each point is as far as a depth in the map, in front of
        // the camera and inside its horizontal field of view.
        let along = d[0] * f[0] + d[1] * f[1] + d[2] * f[2];
        assert!(along > 0.0 && along <= f64::from(max) * 1.001, "{along}");
        let r = first.right();
        let across = d[0] * r[0] + d[1] * r[1] + d[2] * r[2];
        assert!(across.abs() <= along * tan_x * 1.001);
    }
    assert!(size.width > 0);
}

/// Rotates `v` by the unit quaternion `[x, y, z, w]`.
fn rotate(q: [f64; 4], v: [f64; 3]) -> [f64; 3] {
    let [x, y, z, w] = q;
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let t = cross([x, y, z], v).map(|c| 2.0 * c);
    let c = cross([x, y, z], t);
    [0, 1, 2].map(|i| v[i] + w * t[i] + c[i])
}

#[test]
fn usd_opens_complies_and_matches_the_take() {
    let e = exported();
    let report = support::python("check_usd.py", &[&e.out.join("camera/camera.usda")]);
    let compliance = &report["compliance"];
    println!("usd-core ComplianceChecker: {compliance:#}");
    assert_eq!(
        compliance["errors"],
        serde_json::json!([]),
        "{compliance:#}"
    );
    assert_eq!(
        compliance["failedChecks"],
        serde_json::json!([]),
        "{compliance:#}"
    );
    assert_eq!(
        compliance["warnings"],
        serde_json::json!([]),
        "{compliance:#}"
    );
    println!("usd-core UsdValidation: {:#}", report["validation"]);
    assert_eq!(report["validation"], serde_json::json!([]));
    assert_eq!(report["upAxis"], "Z");
    assert_eq!(report["metersPerUnit"], 1.0);
    assert_eq!(report["timeCodesPerSecond"], 30.0);
    assert_eq!(report["framesPerSecond"], 30.0);
    let poses = timeline_poses(&e.take);
    assert_eq!(report["startTimeCode"], 1.0);
    assert_eq!(report["endTimeCode"], poses.len() as f64);
    assert_eq!(report["defaultPrim"], "/cuecast");
    assert_eq!(report["cameraType"], "Camera");
    assert_eq!(report["projection"], "perspective");
    // USD's lens units are tenths of a scene unit: 0.36 m tenths is the 36 mm back
    // (Blender's and Unreal's importers: mm = value × 100 × metersPerUnit).
    let mm = |v: &Value| v.as_f64().unwrap() * 100.0 * report["metersPerUnit"].as_f64().unwrap();
    assert!(close(mm(&report["horizontalAperture"]), 36.0, 1e-5));
    assert!(close(
        mm(&report["verticalAperture"]),
        36.0 * support::HEIGHT as f64 / support::WIDTH as f64,
        1e-4
    ));
    assert_eq!(
        report["xformOpOrder"],
        serde_json::json!(["xformOp:translate", "xformOp:rotateXYZ"])
    );
    assert_eq!(report["backplate"], "../plate/rgb.####.png");
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), poses.len());
    assert_eq!(f64s(&report["focalTimeSamples"]).len(), poses.len());
    for (k, (s, p)) in samples.iter().zip(&poses).enumerate() {
        assert_eq!(s["time"], (k + 1) as f64);
        assert_close3(vec3(&s["translate"]), usd::translate(p), 1e-9, "translate");
        assert_close3(vec3(&s["rotateXYZ"]), usd::rotate_xyz(p), 1e-9, "rotateXYZ");
        assert!(close(
            s["focalLength"].as_f64().unwrap(),
            usd::focal_length(p),
            1e-6
        ));
        // A plain import in Blender 4.2 reads the numbers as metres, whatever the
        // stage's units, and the lens as tenths of a unit: it must land exactly where the
        // bundle's own Blender script puts the camera.
        assert_close3(
            vec3(&s["translate"]),
            blender::location(p),
            1e-9,
            "Blender's location",
        );
        assert!(close(mm(&s["focalLength"]), blender::lens_mm(p), 1e-4));
        // What USD computes from them, in metres (Unreal converts these to its cm): the
        // rig's position and view, turned to Z up.
        let [x, y, z] = p.pos;
        let metres = report["metersPerUnit"].as_f64().unwrap();
        assert_close3(
            vec3(&s["position"]).map(|v| v * metres),
            [x, -z, y],
            1e-6,
            "position",
        );
        let [fx, fy, fz] = p.forward();
        assert_close3(vec3(&s["forward"]), [fx, -fz, fy], 1e-6, "forward");
        assert!(vec3(&s["up"])[2] > 0.0, "the camera is upright");
        assert!(
            close(s["hfov"].as_f64().unwrap(), p.fov, 1e-3),
            "{} vs {}",
            s["hfov"],
            p.fov
        );
    }
}

#[test]
fn after_effects_script_is_es3_and_builds_the_comp() {
    let e = exported();
    let result = support::node("run_ae_script.js", &[&e.out.join("ae/import_scene.jsx")]);
    let poses = timeline_poses(&e.take);
    let n = poses.len();
    assert_eq!(
        result["undo"].as_array().unwrap().len(),
        2,
        "{}",
        result["undo"]
    );
    let comps = result["comps"].as_array().unwrap();
    assert_eq!(comps.len(), 1);
    let comp = &comps[0];
    assert_eq!(comp["name"], "export-test");
    assert_eq!(comp["width"], support::WIDTH);
    assert_eq!(comp["height"], support::HEIGHT);
    assert_eq!(comp["pixelAspect"], 1);
    assert_eq!(comp["frameRate"], 30);
    assert!(close(
        comp["duration"].as_f64().unwrap(),
        n as f64 / 30.0,
        1e-12
    ));
    assert_eq!(comp["opened"], true);
    // The plate is the PNG sequence, conformed to the take's rate.
    let imports = result["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 1);
    assert!(imports[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("plate/rgb.0001.png"));
    assert_eq!(imports[0]["sequence"], true);
    assert_eq!(imports[0]["conformFrameRate"], 30);
    let layers = comp["layers"].as_array().unwrap();
    let camera = layers.iter().find(|l| l["kind"] == "camera").unwrap();
    assert!(layers.iter().any(|l| l["kind"] == "footage"));
    assert_eq!(camera["autoOrient"], "poi");
    for (prop, what) in [("position", 0), ("pointOfInterest", 1), ("zoom", 2)] {
        let keys = camera[prop].as_array().unwrap();
        assert_eq!(keys.len(), n, "{prop}");
        for (k, (key, p)) in keys.iter().zip(&poses).enumerate() {
            assert!(close(key[0].as_f64().unwrap(), k as f64 / 30.0, 1e-12));
            let c = ae::camera(p, support::WIDTH, support::HEIGHT);
            match what {
                0 => assert_close3(vec3(&key[1]), c.position, 1e-9, prop),
                1 => assert_close3(vec3(&key[1]), c.point_of_interest, 1e-9, prop),
                _ => assert!(close(key[1].as_f64().unwrap(), c.zoom, 1e-9)),
            }
        }
    }
    let markers = comp["markers"].as_array().unwrap();
    let expected = e.take.markers();
    assert_eq!(markers.len(), expected.len());
    for (m, x) in markers.iter().zip(&expected) {
        assert!(close(m[0].as_f64().unwrap(), x.time_s, 1e-12));
        assert_eq!(m[1], x.label.as_str());
    }
}

#[test]
fn after_effects_script_refuses_to_parse_es5_only_syntax() {
    // The ES3 check is real: the same checker rejects what ExtendScript cannot run.
    let dir = support::tempdir("es5");
    let file = dir.join("modern.jsx");
    std::fs::write(&file, "var a = { b: 1, };\n").unwrap();
    let tools = std::env::var("CUECAST_NODE_TOOLS").expect("run scripts/setup");
    let out = Command::new("node")
        .arg(support::support("run_ae_script.js"))
        .arg(&file)
        .env("NODE_PATH", tools)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ECMAScript 3"));
}

#[test]
fn blender_script_compiles_and_keys_every_frame() {
    let e = exported();
    let script = e.out.join("blender/import_scene.py");
    let py = std::env::var("CUECAST_PYTHON").expect("CUECAST_PYTHON is not set: run scripts/setup");
    // Compiled from a copy: py_compile writes __pycache__ beside the file it compiles,
    // and the bundle must stay as exported for the other tests.
    let copy = support::tempdir("py_compile").join("import_scene.py");
    std::fs::copy(&script, &copy).unwrap();
    let mut compile = Command::new(&py);
    compile.args(["-m", "py_compile"]).arg(&copy);
    support::run(compile, "python -m py_compile");
    let result = support::python("run_blender_script.py", &[&script]);
    let poses = timeline_poses(&e.take);
    let n = poses.len();
    assert_eq!(result["fps"], 30);
    assert_eq!(result["fps_base"], 1.0);
    assert_eq!(result["frame_start"], 1);
    assert_eq!(result["frame_end"], n);
    assert_eq!(
        result["resolution"],
        serde_json::json!([support::WIDTH, support::HEIGHT])
    );
    assert_eq!(result["sensor_fit"], "HORIZONTAL");
    assert_eq!(result["sensor_width"], 36.0);
    assert_eq!(result["rotation_mode"], "XYZ");
    assert_eq!(result["interpolation_restored"], "BEZIER");
    let keys = &result["keys"];
    for (path, what) in [("location", 0), ("rotation_euler", 1), ("lens", 2)] {
        let list = keys[path].as_array().unwrap();
        assert_eq!(list.len(), n, "{path}");
        for (k, (key, p)) in list.iter().zip(&poses).enumerate() {
            assert_eq!(key[0], k + 1);
            match what {
                0 => assert_close3(vec3(&key[1]), blender::location(p), 1e-9, path),
                1 => assert_close3(
                    vec3(&key[1]),
                    blender::rotation_euler_deg(p).map(f64::to_radians),
                    1e-9,
                    path,
                ),
                _ => assert!(close(key[1].as_f64().unwrap(), blender::lens_mm(p), 1e-9)),
            }
        }
    }
    let bg = &result["backgrounds"][0];
    assert!(bg["image"]
        .as_str()
        .unwrap()
        .ends_with("plate/rgb.0001.png"));
    assert_eq!(bg["source"], "SEQUENCE");
    assert_eq!(bg["frame_duration"], n);
    let markers = result["markers"].as_array().unwrap();
    let expected = e.take.markers();
    assert_eq!(markers.len(), expected.len());
    for (m, x) in markers.iter().zip(&expected) {
        assert_eq!(m[0], x.offset + 1);
        assert_eq!(m[1], x.label.as_str());
    }
    // The glTF's points were imported and its camera dropped.
    assert!(result["gltf"][0]
        .as_str()
        .unwrap()
        .ends_with("camera/scene.glb"));
    let objects = result["objects"].as_array().unwrap();
    assert_eq!(objects.iter().filter(|o| o[1] == "CAMERA").count(), 1);
}

#[test]
fn prores_plate_is_4444_with_every_frame() {
    let e = exported();
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,codec_tag_string,profile,pix_fmt,width,height,nb_frames,r_frame_rate,avg_frame_rate",
        "-of",
        "json",
    ])
    .arg(e.out.join("plate/plate.mov"));
    let out = support::run(cmd, "ffprobe");
    let probe: Value = serde_json::from_str(&out).unwrap();
    println!("ffprobe: {probe}");
    let s = &probe["streams"][0];
    assert_eq!(s["codec_name"], "prores");
    assert_eq!(s["codec_tag_string"], "ap4h");
    assert_eq!(s["nb_frames"], duration(&e.take).to_string());
    assert_eq!(s["r_frame_rate"], "30/1");
    assert_eq!(s["avg_frame_rate"], "30/1");
    assert_eq!(s["width"], support::WIDTH);
    assert_eq!(s["height"], support::HEIGHT);
    // Written as 10-bit 4:4:4 without alpha; FFmpeg's decoder reports 4444 as 12-bit.
    let pix_fmt = s["pix_fmt"].as_str().unwrap();
    assert!(pix_fmt.starts_with("yuv444p"), "{s}");
}

/// The movie's pictures are the take's, in order: each frame decoded back to RGB by
/// `ffmpeg` is nearer the frame on air than any other recorded frame, within ProRes's
/// loss. (That loss is far above a real plate's on the tests' 64x36 frames of pure
/// detail: 10 of 255 here, 0.02 on a 1280x720 procedural take.)
#[test]
fn prores_plate_holds_the_frames_on_air() {
    let e = exported();
    let take = &e.take;
    let (w, h) = (support::WIDTH, support::HEIGHT);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"])
        .arg(e.out.join("plate/plate.mov"))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timeline = take.timeline();
    assert_eq!(out.stdout.len(), timeline.len() * w * h * 3);
    let recorded: Vec<Vec<u8>> = (0..take.frames.len())
        .map(|i| take.rgb(i).unwrap())
        .collect();
    let mean_diff = |rgbx: &[u8], rgb: &[u8]| {
        let sum: u64 = rgbx
            .chunks_exact(4)
            .zip(rgb.chunks_exact(3))
            .map(|(a, b)| (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum::<u64>())
            .sum();
        sum as f64 / (w * h * 3) as f64
    };
    for (k, (&index, decoded)) in timeline
        .iter()
        .zip(out.stdout.chunks_exact(w * h * 3))
        .enumerate()
    {
        let diffs: Vec<f64> = recorded.iter().map(|r| mean_diff(r, decoded)).collect();
        let nearest = (0..diffs.len())
            .min_by(|&a, &b| diffs[a].total_cmp(&diffs[b]))
            .unwrap();
        assert!(
            recorded[nearest] == recorded[index],
            "movie frame {k} is nearest recorded frame {nearest}, not {index} ({diffs:?})"
        );
        assert!(
            diffs[index] < 16.0,
            "movie frame {k}: mean difference {:.2}",
            diffs[index]
        );
    }
}

#[test]
fn exr_depth_is_a_float_z_channel_in_metres() {
    use exr::prelude::*;
    let e = exported();
    let take = &e.take;
    let size = take.manifest.depth.unwrap();
    for (k, &index) in take.timeline().iter().enumerate() {
        let path = e.out.join(format!("depth/depth.{:04}.exr", k + 1));
        let image = read()
            .no_deep_data()
            .largest_resolution_level()
            .all_channels()
            .all_layers()
            .all_attributes()
            .from_file(&path)
            .unwrap();
        assert_eq!(image.layer_data.len(), 1);
        let layer = &image.layer_data[0];
        assert_eq!(layer.size, Vec2(size.width, size.height));
        let channels = &layer.channel_data.list;
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].name, Text::from("Z"));
        let FlatSamples::F32(values) = &channels[0].sample_data else {
            panic!("{}: depth is not 32-bit float", path.display());
        };
        assert!(values.iter().all(|v| v.is_finite() && *v > 0.0));
        // Lossless, and the frame on air (held across the skipped frames).
        let (_, expected) = take.depth(index).unwrap().unwrap();
        assert_eq!(values, &expected, "{}", path.display());
    }
}

#[test]
fn png_plate_is_the_frame_on_air() {
    let e = exported();
    let take = &e.take;
    for (k, &index) in take.timeline().iter().enumerate() {
        let path = e.out.join(format!("plate/rgb.{:04}.png", k + 1));
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(
            (info.width as usize, info.height as usize),
            (support::WIDTH, support::HEIGHT)
        );
        let rgb: Vec<u8> = take
            .rgb(index)
            .unwrap()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        assert_eq!(&buf[..info.buffer_size()], &rgb[..], "{}", path.display());
    }
}

#[test]
fn a_subset_of_formats_writes_only_those_files() {
    let e = exported();
    let out = support::tempdir("subset").join("camera-only");
    let options = ExportOptions {
        formats: Format::parse_list("usd, ae").unwrap(),
        force: false,
    };
    let summary = export(&e.take, &out, &options, &mut |_| {}).unwrap();
    assert_eq!(
        summary.files,
        [
            "ae/import_scene.jsx",
            "camera/camera.usda",
            "manifest.json",
            "markers.json"
        ]
    );
    // Without a plate the AE script imports nothing, and USD names no backplate.
    let result = support::node("run_ae_script.js", &[&out.join("ae/import_scene.jsx")]);
    assert_eq!(result["imports"], serde_json::json!([]));
    let text = std::fs::read_to_string(out.join("camera/camera.usda")).unwrap();
    assert!(!text.contains("backplate"));
}
