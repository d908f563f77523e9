//! Test support shared by the engine's and the element's tests (included by path):
//! the project's Python with PyTorch, and the model packages it exports.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Writes the broken packages of tests/fixtures/broken_models.py into `dir`.
pub fn broken_packages(dir: &Path) -> PathBuf {
    let mut cmd = python();
    cmd.arg(repo().join("engine/tests/fixtures/broken_models.py"))
        .arg(dir);
    run(cmd, "writing the broken model packages");
    dir.to_path_buf()
}

/// Starts an engine, sends `cues` before the first frame, renders frames `0..n` at
/// `size`, and returns their pixels. A failed step fails the test.
pub fn frames(
    config: EngineConfig,
    size: (usize, usize),
    cues: &[serde_json::Value],
    n: u64,
) -> Vec<Vec<u8>> {
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
