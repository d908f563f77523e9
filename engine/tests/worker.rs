//! The python runtime's worker, driven directly: a real worker process running the
//! reference models, its chunks through shared memory, and what it does when the
//! model dies, hangs or breaks the contract.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use cuecast_engine::frame::FramePool;
use cuecast_engine::generator::package::Package;
use cuecast_engine::generator::{Fps, FrameInput};
use cuecast_engine::worker::{Worker, WorkerEvent, WorkerOptions};

fn options() -> WorkerOptions {
    WorkerOptions {
        python: std::env::var_os("CUECAST_PYTHON").map(Into::into),
        device: tch::Device::Cpu,
        threads: 1,
        seed: 7,
        prompt: "a quiet valley".into(),
        image: None,
        restart_max_s: 10.0,
        ..WorkerOptions::default()
    }
}

fn inputs(n: usize, from: u64) -> Vec<FrameInput> {
    (0..n as u64)
        .map(|i| FrameInput::still(from + i, Fps::new(16, 1), vec![0.2, 1.0]))
        .collect()
}

/// The mean absolute difference of two frames, in 0-255 units.
fn mad(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// A camera's frame: a gradient with a bright box (`a`) or stripes (`b`), RGB.
fn camera(kind: char, w: usize, h: usize) -> cuecast_engine::worker::RgbImage {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let px = match kind {
                'a' if (40..100).contains(&y) && (80..170).contains(&x) => [230, 220, 60],
                'a' => [(x * 255 / (w - 1)) as u8, 0, 90],
                _ => [
                    0,
                    if (x / 16) % 2 == 0 { 200 } else { 30 },
                    (y * 255 / (h - 1)) as u8,
                ],
            };
            data.extend_from_slice(&px);
        }
    }
    cuecast_engine::worker::RgbImage {
        width: w,
        height: h,
        data,
    }
}

#[test]
fn the_video_to_video_reference_model_restyles_the_video_pushed_to_the_show() {
    let pkg = support::repo().join("models/restyle");
    let run = |second: char| {
        let (engine, rx) = support::started(support::probe_show(&pkg));
        let video = engine.video_in().expect("restyle takes video").clone();
        // A camera at twice the model's size: scaled as it is pushed.
        video.push(camera('a', 512, 288));
        let mut frames = support::frames_of(&engine, &rx, 0..6);
        video.push(camera(second, 512, 288));
        frames.extend(support::frames_of(&engine, &rx, 6..12));
        let stats = engine.status().video_in.expect("video stats");
        (frames, stats)
    };
    let (same, stats) = run('a');
    assert!(stats.received == 2 && stats.used == 2, "{stats:?}");
    assert!(
        stats.repeated > 0,
        "steps between pushes get the last frame: {stats:?}"
    );
    let (changed, _) = run('b');
    assert_eq!(same[0], changed[0], "the same camera, the same frames");
    let d = mad(&same[11], &changed[11]);
    assert!(d > 4.0, "the model's frames follow its input video: {d:.2}");
}

#[test]
fn the_chunked_reference_model_steps_through_the_worker() {
    let package = Package::load(&support::repo().join("models/kv-chunks")).unwrap();
    let (tx, rx) = mpsc::channel();
    let worker = Worker::start(&package, options(), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let pool = FramePool::new(256, 144);
    let id = worker.step(inputs(3, 0), Default::default(), pool.clone());
    let chunk = match rx.recv_timeout(Duration::from_secs(20)).unwrap() {
        WorkerEvent::Chunk(Ok(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(chunk.id, id);
    assert_eq!(chunk.frames.len(), 3);
    assert_ne!(chunk.frames[0].data(), chunk.frames[2].data());
    assert!(chunk.frames[0].data().chunks(4).all(|p| p[3] == 255));
    println!(
        "step {:?} transfer {:?} wall {:?}",
        chunk.step, chunk.transfer, chunk.wall
    );
    let id = worker.step(inputs(4, 3), Default::default(), pool);
    match rx.recv_timeout(Duration::from_secs(20)).unwrap() {
        WorkerEvent::Chunk(Ok(c)) => assert_eq!((c.id, c.frames.len()), (id, 4)),
        other => panic!("{other:?}"),
    }
    let state = worker.save_state().unwrap();
    assert!(!state.is_empty());
    worker.load_state(state).unwrap();
}

fn python_show(model: &str) -> cuecast_engine::EngineConfig {
    cuecast_engine::EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "python".parse().unwrap(),
            model: Some(support::repo().join("models").join(model)),
            device: cuecast_engine::DeviceSpec::Cpu,
            seed: 7,
            model_threads: Some(1),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Renders show frames `0..n` one after another (as a non-live pipeline does) and
/// returns their pixels.
fn render_all(
    engine: &cuecast_engine::Engine,
    rx: &mpsc::Receiver<cuecast_engine::Rendered>,
    n: u64,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in 0..n {
        engine.render(f).unwrap();
        loop {
            let r = rx.recv_timeout(Duration::from_secs(20)).expect("a frame");
            if r.frame < f {
                continue;
            }
            match r.picture {
                cuecast_engine::Picture::New(p) | cuecast_engine::Picture::Held(p) => {
                    out.push(p.data().to_vec())
                }
                cuecast_engine::Picture::Failed(e) => panic!("frame {f}: {e}"),
            }
            break;
        }
    }
    out
}

#[test]
fn a_16_fps_model_in_a_30_fps_show_moves_at_its_own_speed() {
    let (engine, rx) =
        cuecast_engine::Engine::start_with_channel(python_show("kv-chunks")).unwrap();
    engine.set_output(256, 144, cuecast_engine::Fps::new(30, 1));
    let frames = render_all(&engine, &rx, 61);
    // A new model frame comes on air at ceil(k * 30 / 16): k/16 s, within a frame.
    let changes: Vec<u64> = (1..frames.len())
        .filter(|&i| frames[i] != frames[i - 1])
        .map(|i| i as u64)
        .collect();
    let expected: Vec<u64> = (1..33u64)
        .map(|k| (k * 30).div_ceil(16))
        .filter(|&f| f <= 60)
        .collect();
    assert_eq!(changes, expected);
    let s = engine.status();
    assert_eq!(s.frames_skipped, 0);
    assert!(s.model_process.as_ref().unwrap().pid.is_some());
}

#[test]
fn a_worker_killed_mid_show_is_started_again_and_resumes_from_its_saved_state() {
    let dir = support::tempdir("worker-kill");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let before = support::render_range(&engine, &rx, 0..60);
    let last = support::probe_pixel(before.last().unwrap()).0;
    let p = support::process(&engine);
    assert_eq!((p.restarts, p.saved_state_bytes > 0), (0, true), "{p:?}");
    support::kill(p.pid.unwrap());
    let after = support::render_range(&engine, &rx, 60..100);
    let p = support::process(&engine);
    assert_eq!(p.restarts, 1, "{p:?}");
    assert!(
        p.last_exit
            .as_deref()
            .unwrap()
            .contains("signal 9 (SIGKILL)"),
        "{p:?}"
    );
    assert_ne!(p.pid, None);
    // It went on from the state it saved (within the second before the kill), not
    // from its first frame.
    let resumed = support::probe_pixel(&after[after.len() / 2]).0;
    assert!(
        resumed > 8 && resumed <= last + 40,
        "resumed at model frame {resumed}, was at {last}"
    );
}

#[test]
fn a_hung_step_is_killed_at_its_deadline_and_the_model_started_again() {
    let dir = support::tempdir("worker-hang");
    let pkg = support::probe_package(&dir, "probe", "", "hang_at: 3, once: true");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let t = std::time::Instant::now();
    let frames = support::render_range(&engine, &rx, 0..40);
    assert_eq!(frames.len(), 40);
    let p = support::process(&engine);
    assert_eq!(p.restarts, 1, "{p:?}");
    assert!(
        p.last_exit.as_deref().unwrap().contains("deadline"),
        "{p:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[test]
fn a_worker_that_dies_at_import_is_refused_at_start_with_the_reason() {
    let dir = support::tempdir("worker-import");
    let pkg = support::probe_package(&dir, "exits", "", "");
    std::fs::write(
        pkg.join("model.py"),
        "import os\nprint('loading', flush=True)\nos._exit(7)\n",
    )
    .unwrap();
    let e = cuecast_engine::Engine::start(support::probe_show(&pkg), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("exited with status 7"), "{e}");
    let pkg = support::probe_package(&dir, "missing", "", "");
    std::fs::write(pkg.join("model.py"), "import flash_attn_not_here\n").unwrap();
    let e = cuecast_engine::Engine::start(support::probe_show(&pkg), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("ModuleNotFoundError") && e.contains("flash_attn_not_here"),
        "{e}"
    );
    let pkg = support::probe_package(&dir, "no-class", "entry: model:Nope", "");
    let e = cuecast_engine::Engine::start(support::probe_show(&pkg), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no class Nope"), "{e}");
}

#[test]
fn a_wrong_shape_or_nan_fails_its_step_and_a_model_whose_state_changes_in_place_starts_over() {
    let dir = support::tempdir("worker-bad-output");
    let pkg = support::probe_package(&dir, "probe", "", "wrong_shape_at: 2, nan_at: 5");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let frames = support::render_range(&engine, &rx, 0..60);
    assert_eq!(frames.len(), 60);
    let s = engine.status();
    assert_eq!(s.steps_failed, 2, "{s:?}");
    assert!(s.model_resets >= 2, "{s:?}");
    let why = s.last_reset.unwrap();
    assert!(why.contains("NaN") || why.contains("rgb must be"), "{why}");
    assert_eq!(
        support::process(&engine).restarts,
        0,
        "a bad step is not a dead process"
    );
}

#[test]
fn a_model_that_needs_more_memory_than_there_is_is_refused_before_it_loads() {
    let dir = support::tempdir("worker-vram");
    let pkg = support::probe_package(&dir, "huge", "vram_gb: 4000", "");
    let e = cuecast_engine::Engine::start(support::probe_show(&pkg), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("needs 4000 GB") && e.contains("available"),
        "{e}"
    );
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn twenty_restarts_in_a_row_leave_memory_and_open_files_flat() {
    let dir = support::tempdir("worker-restarts");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let mut next = 0;
    let mut restart = |engine: &cuecast_engine::Engine| {
        let pid = support::process(engine).pid.unwrap();
        support::kill(pid);
        support::render_range(engine, &rx, next..next + 12);
        next += 12;
        let p = support::process(engine);
        assert!(p.pid.is_some_and(|p| p != pid), "{p:?}");
    };
    restart(&engine);
    let (files, rss) = (open_files(), rss_kb());
    for _ in 0..20 {
        restart(&engine);
    }
    assert_eq!(support::process(&engine).restarts, 21);
    // Other tests in this binary run beside this one: allow them a few files.
    assert!(
        open_files() <= files + 4,
        "open files {files} -> {}",
        open_files()
    );
    assert!(
        rss_kb() < rss + 30_000,
        "resident memory {rss} kB -> {} kB",
        rss_kb()
    );
}

/// The reference models' own tests (shapes, determinism, every input changing frames,
/// compact state round trips), run with the project's Python.
#[test]
fn the_reference_models_pass_their_own_tests() {
    let out = support::python()
        .args(["-m", "unittest", "discover", "-s", "models/tests"])
        .current_dir(support::repo())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("the project's Python runs (scripts/setup)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("OK"), "{err}");
}

/// The Python end of the worker protocol handles the golden requests
/// (`python/protocol.golden.json`, which `worker::protocol`'s tests write and read too)
/// and answers as the golden replies say.
#[test]
fn the_python_worker_speaks_the_golden_messages() {
    let out = support::python()
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "python",
            "-p",
            "test_*.py",
        ])
        .current_dir(support::repo())
        .output()
        .expect("the project's Python runs (scripts/setup)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Ran 2 tests") && err.contains("OK"), "{err}");
}

/// Spoken words as the show's sound (48 kHz stereo float), made with espeak-ng.
fn speech() -> Vec<f32> {
    let dir = support::tempdir("speech");
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    let ok = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg("Good evening, and welcome to the show. Tonight the weather turns.")
        .status()
        .expect("espeak-ng (scripts/setup installs it)")
        .success();
    assert!(ok);
    let ok = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", wav.display()))
        .args(["!", "wavparse", "!", "audioconvert", "!", "audioresample"])
        .args([
            "!",
            "audio/x-raw,format=F32LE,rate=48000,channels=2",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", raw.display()))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn the_voice_driven_reference_model_follows_the_programs_sound() {
    let pkg = support::repo().join("models/voice");
    let voice = speech();
    // The middle of the sentence: words, not the silence around them.
    let middle = &voice[voice.len() / 3..voice.len() / 3 + 48_000 * 2];
    let run = |sound: Option<&[f32]>| {
        let (engine, rx) = support::started(support::probe_show(&pkg));
        let into = engine.sound_in().expect("voice takes sound").clone();
        let mut frames = Vec::new();
        for f in 0..12u64 {
            // A show frame's worth of sound (1/30 s) before each frame is asked for.
            if let Some(s) = sound {
                let at = (f as usize * 3200) % (s.len() - 3200);
                into.push(&s[at..at + 3200]);
            }
            frames.extend(support::frames_of(&engine, &rx, f..f + 1));
        }
        frames
    };
    let silent = run(None);
    let spoken = run(Some(middle));
    assert_eq!(silent[2], silent[11], "silence keeps the mouth shut");
    let d = mad(&silent[11], &spoken[11]);
    assert!(d > 1.0, "the face follows the voice: {d:.2}");
}
