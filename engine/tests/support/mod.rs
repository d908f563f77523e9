//! Test support shared by the engine's and the element's tests (included by path):
//! the project's Python with PyTorch, and the model packages it exports.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use cuecast_engine::{Cue, Engine, EngineConfig, Fps, Picture};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python that has PyTorch 2.11: scripts/setup installs it and records it in
/// `.cargo/config.toml` as `CUECAST_PYTHON`.
pub fn python() -> Command {
    let py = std::env::var("CUECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(py);
    cmd.env("PYTHONWARNINGS", "ignore");
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run Python ({e}); run scripts/setup"));
    assert!(
        out.status.success(),
        "{what} failed (does CUECAST_PYTHON have torch? run scripts/setup):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh temporary folder.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cuecast-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Exports the example package (models/example/export.py) into `dir` and returns it.
pub fn example_package(dir: &Path) -> PathBuf {
    let out = dir.join("tiny-world");
    let mut cmd = python();
    cmd.arg(repo().join("models/example/export.py"))
        .arg("--out")
        .arg(&out);
    run(cmd, "exporting the example model");
    out
}

/// The compiled reference packages (models/compiled/export.py, with `reference.npz`
/// beside each `.pt2`), exported once into `dir`: `tiny-world-aoti`,
/// `tiny-world-torchscript`, `tiny-world-python`, `chunks-aoti`.
pub fn compiled_packages(dir: &Path) -> PathBuf {
    let mut cmd = python();
    cmd.arg(repo().join("models/compiled/export.py"))
        .arg("--out")
        .arg(dir)
        .arg("--reference");
    run(cmd, "exporting the compiled reference models");
    dir.to_path_buf()
}

/// Writes the broken packages of tests/fixtures/broken_models.py into `dir`.
pub fn broken_packages(dir: &Path) -> PathBuf {
    let mut cmd = python();
    cmd.arg(repo().join("engine/tests/fixtures/broken_models.py"))
        .arg(dir);
    run(cmd, "writing the broken model packages");
    dir.to_path_buf()
}

/// Starts an engine at `size` and 30 fps and sends `cues` before its first frame.
pub fn with_cues(
    config: EngineConfig,
    size: (usize, usize),
    cues: &[serde_json::Value],
) -> (Engine, mpsc::Receiver<cuecast_engine::Rendered>) {
    let (engine, rx) = Engine::start_with_channel(config).unwrap();
    engine.set_output(size.0, size.1, Fps::new(30, 1));
    if !cues.is_empty() {
        engine
            .inbox()
            .submit(
                cues.iter().map(|c| Cue::from_value(c).unwrap()).collect(),
                None,
            )
            .unwrap();
    }
    (engine, rx)
}

/// Starts an engine, sends `cues` before the first frame, renders frames `0..n` at
/// `size`, and returns their pixels. A failed step fails the test.
pub fn frames(
    config: EngineConfig,
    size: (usize, usize),
    cues: &[serde_json::Value],
    n: u64,
) -> Vec<Vec<u8>> {
    let (engine, rx) = with_cues(config, size, cues);
    (0..n)
        .map(|f| {
            engine.render(f).unwrap();
            match rx.recv().unwrap().picture {
                Picture::New(p) | Picture::Held(p) => p.data().to_vec(),
                Picture::Failed(e) => panic!("frame {f}: {e}"),
            }
        })
        .collect()
}

/// A probe package (tests/fixtures/probe_model.py, contract 2, python) in `dir/name`:
/// 64x36 at 16 fps, chunks of 4, keys W A S D, mouse, the forward axis, `set_prompt`,
/// compact state, a 1 s step deadline. `manifest` adds or replaces manifest lines;
/// `config` is the YAML map its model reads (its faults and gate).
pub fn probe_package(dir: &Path, name: &str, manifest: &str, config: &str) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let mut lines = vec![
        ("contract", "2".to_owned()),
        ("name", name.to_owned()),
        ("runtime", "python".to_owned()),
        ("entry", "model:Probe".to_owned()),
        ("width", "64".to_owned()),
        ("height", "36".to_owned()),
        ("fps", "16".to_owned()),
        ("frames_per_step", "4".to_owned()),
        ("first_step_frames", "4".to_owned()),
        (
            "inputs",
            "{keys: [KeyW, KeyA, KeyS, KeyD], mouse: true, axes: [forward], image: optional}"
                .to_owned(),
        ),
        ("prompt", "set_prompt".to_owned()),
        ("save_state", "true".to_owned()),
        ("step_timeout_s", "1".to_owned()),
        ("warmup_s", "20".to_owned()),
        ("config", format!("{{{config}}}")),
    ];
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once(':').unwrap();
        match lines.iter_mut().find(|(key, _)| *key == k.trim()) {
            Some(entry) => entry.1 = v.trim().to_owned(),
            None => lines.push((
                Box::leak(k.trim().to_owned().into_boxed_str()),
                v.trim().to_owned(),
            )),
        }
    }
    let text: String = lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    std::fs::write(out.join("cuecast-model.yaml"), text).unwrap();
    std::fs::copy(
        repo().join("engine/tests/fixtures/probe_model.py"),
        out.join("model.py"),
    )
    .unwrap();
    out
}

/// What a probe frame says about itself: (model frame, step, keys bits, mouse dx, dy).
pub fn probe_pixel(rgbx: &[u8]) -> (u64, u8, u8, i32, i32) {
    let frame = u64::from(rgbx[0]) | u64::from(rgbx[1]) << 8;
    (
        frame,
        rgbx[2],
        rgbx[4],
        i32::from(rgbx[5]) - 128,
        i32::from(rgbx[6]) - 128,
    )
}

/// A show of a probe package (`probe_package`): CPU, one thread, quick restarts.
pub fn probe_show(package: &std::path::Path) -> cuecast_engine::EngineConfig {
    cuecast_engine::EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "python".parse().unwrap(),
            model: Some(package.to_owned()),
            device: cuecast_engine::DeviceSpec::Cpu,
            model_threads: Some(1),
            restart_max_s: Some(0.05),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn started(
    config: cuecast_engine::EngineConfig,
) -> (
    cuecast_engine::Engine,
    mpsc::Receiver<cuecast_engine::Rendered>,
) {
    let (engine, rx) = cuecast_engine::Engine::start_with_channel(config).unwrap();
    engine.set_output(64, 36, cuecast_engine::Fps::new(30, 1));
    (engine, rx)
}

/// Renders show frames `from..to` as a non-live pipeline does.
pub fn render_range(
    engine: &cuecast_engine::Engine,
    rx: &mpsc::Receiver<cuecast_engine::Rendered>,
    frames: std::ops::Range<u64>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in frames {
        engine.render(f).unwrap();
        loop {
            let r = rx.recv_timeout(Duration::from_secs(30)).expect("a frame");
            if r.frame < f {
                continue;
            }
            if let cuecast_engine::Picture::New(p) | cuecast_engine::Picture::Held(p) = r.picture {
                out.push(p.data().to_vec());
            }
            break;
        }
    }
    out
}

/// Renders show frames `frames` as a non-live pipeline does, every frame's picture
/// (held frames included).
pub fn frames_of(
    engine: &cuecast_engine::Engine,
    rx: &mpsc::Receiver<cuecast_engine::Rendered>,
    frames: std::ops::Range<u64>,
) -> Vec<Vec<u8>> {
    let out = render_range(engine, rx, frames.clone());
    assert_eq!(out.len(), frames.count(), "a picture for every frame");
    out
}

pub fn process(engine: &cuecast_engine::Engine) -> cuecast_engine::worker::ModelProcess {
    engine
        .status()
        .model_process
        .expect("a python model has a process")
}

pub fn kill(pid: u32) {
    // SAFETY: a plain syscall on a pid the engine reported as its worker's.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}
