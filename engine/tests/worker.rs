//! The python runtime's worker, driven directly: a real worker process running the
//! reference models, its chunks through shared memory, and what it does when the
//! model dies, hangs or breaks the contract.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use cuecast_engine::frame::FramePool;
use cuecast_engine::generator::package::Package;
use cuecast_engine::worker::{FrameInputs, Worker, WorkerEvent, WorkerOptions};

fn options() -> WorkerOptions {
    WorkerOptions {
        python: std::env::var_os("CUECAST_PYTHON").map(Into::into),
        device: tch::Device::Cpu,
        threads: 1,
        seed: 7,
        prompt: "a quiet valley".into(),
        image: None,
    }
}

fn inputs(n: usize, from: u64, keys: usize) -> Vec<FrameInputs> {
    (0..n as u64)
        .map(|i| FrameInputs {
            frame: from + i,
            time_s: (from + i) as f64 / 16.0,
            keys: vec![0.0; keys],
            params: vec![0.2, 1.0],
            camera_pose: [
                1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.,
            ],
            intrinsics: [200., 0., 128., 0., 200., 72., 0., 0., 1.],
            ..Default::default()
        })
        .collect()
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
    let id = worker.step(inputs(3, 0, 4), None, pool.clone());
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
    let id = worker.step(inputs(4, 3, 4), None, pool);
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
        backend: "python".into(),
        model: Some(support::repo().join("models").join(model)),
        device: cuecast_engine::DeviceSpec::Cpu,
        seed: 7,
        model_threads: Some(1),
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
