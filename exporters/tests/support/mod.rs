//! Test support for the exporters: a small recorded take, and the external validators
//! (node with gltf-validator and acorn, Python with usd-core, ffprobe) that
//! `scripts/setup` installs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cuecast_engine::{Cue, DeviceSpec, Engine, EngineConfig, Fps, Picture, Take};
use serde_json::Value;

pub const WIDTH: usize = 64;
pub const HEIGHT: usize = 36;

/// Show frames the recorded take skips (the show caught up): the timeline holds the
/// frame before them.
pub const SKIPPED: [u64; 2] = [8, 9];
/// The last show frame rendered.
pub const LAST_FRAME: u64 = 24;

/// A fresh temporary folder for this test process.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cuecast-export-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cue(text: &str) -> Cue {
    Cue::from_json(text).unwrap()
}

/// Records a take into `dir/take` at 30 fps: see [`record_take_at`].
pub fn record_take(dir: &Path) -> Take {
    record_take_at(dir, Fps::new(30, 1))
}

/// Records a take into `dir/take`: the camera follows a path that turns through
/// yaw ±180°, pitches from down to up and zooms in; two markers are dropped; two show
/// frames are skipped.
pub fn record_take_at(dir: &Path, fps: Fps) -> Take {
    let (engine, rx) = Engine::start_with_channel(EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "procedural".parse().unwrap(),
            device: DeviceSpec::Cpu,
            seed: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    engine.set_output(WIDTH, HEIGHT, fps);
    let render = |f: u64| {
        engine.render(f).unwrap();
        match rx.recv().unwrap().picture {
            Picture::New(_) | Picture::Held(_) => {}
            Picture::Failed(e) => panic!("frame {f} failed: {e}"),
        }
    };
    render(0);
    let show = engine.handle();
    let take_dir = dir.join("take");
    show.start_take(&take_dir, "export-test").unwrap();
    engine
        .inbox()
        .submit_one(cue(r#"{"type": "camera_path", "points": [
                {"t": 0, "pos": [0, 60, 0], "yaw": 170, "pitch": -20, "fov": 70},
                {"t": 0.6, "pos": [6, 64, -15], "yaw": -165, "pitch": 15, "fov": 45}]}"#))
        .unwrap();
    for f in 1..=LAST_FRAME {
        if SKIPPED.contains(&f) {
            continue;
        }
        if f == 12 {
            engine
                .inbox()
                .submit_one(cue(r#"{"type": "marker", "label": "cut \"here\""}"#))
                .unwrap();
        }
        if f == 20 {
            engine
                .inbox()
                .submit_one(cue(r#"{"type": "marker", "label": "end"}"#))
                .unwrap();
        }
        render(f);
    }
    show.stop_take().unwrap();
    Take::open(&take_dir).unwrap()
}

fn tool_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/setup (it installs the export validators and writes .cargo/config.toml)")
    })
}

/// The folder of support scripts.
pub fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// Runs a command and returns its stdout; a failure shows its stderr and says how to
/// get the tool.
pub fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "{what}: cannot start {:?} ({e}); run scripts/setup",
            cmd.get_program()
        )
    });
    assert!(
        out.status.success(),
        "{what} failed ({}; if a tool or module is missing, run scripts/setup):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `node tests/support/<script> <args>` with the validators' `node_modules` from
/// `CUECAST_NODE_TOOLS`.
pub fn node(script: &str, args: &[&Path]) -> Value {
    let tools = tool_env("CUECAST_NODE_TOOLS");
    assert!(
        Path::new(&tools).join("gltf-validator").is_dir()
            && Path::new(&tools).join("acorn").is_dir(),
        "gltf-validator and acorn are not installed in {tools}: run scripts/setup"
    );
    let mut cmd = Command::new("node");
    cmd.arg(support(script)).args(args).env("NODE_PATH", &tools);
    let out = run(cmd, script);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{out}"))
}

/// `$CUECAST_PYTHON tests/support/<script> <args>`: the project's venv, with usd-core.
pub fn python(script: &str, args: &[&Path]) -> Value {
    let py = tool_env("CUECAST_PYTHON");
    let mut cmd = Command::new(py);
    cmd.arg(support(script))
        .args(args)
        .env("PYTHONWARNINGS", "ignore");
    let out = run(cmd, script);
    // The report is the last line; what the script under test prints comes before it.
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{out}"))
}

pub fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[track_caller]
pub fn assert_close3(a: [f64; 3], b: [f64; 3], tolerance: f64, what: &str) {
    assert!(
        (0..3).all(|i| close(a[i], b[i], tolerance)),
        "{what}: {a:?} != {b:?} (±{tolerance})"
    );
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub fn vec3(v: &Value) -> [f64; 3] {
    let v = f64s(v);
    [v[0], v[1], v[2]]
}
