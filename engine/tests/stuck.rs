//! A model whose step never returns must not wedge whoever talks to the model thread:
//! requests fail fast with "not responding", status says how long the step has run, and
//! stopping the engine returns, finishing the take it was recording.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cuecast_engine::engine::{STEP_STALL, STOP_GRACE};
use cuecast_engine::generator::{
    register_backend, BackendConfig, Fps, FrameInput, Generator, Image, ModelInfo, StepError,
};
use cuecast_engine::{DeviceSpec, Engine, EngineConfig, EngineError, Take};
use tch::Device;

/// Steps normally until `hang` is set, then blocks until `release` is set.
struct Stuck {
    info: ModelInfo,
    hang: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

impl Generator for Stuck {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn reset(&mut self, _seed: u64, _prompt: &str) -> Result<(), StepError> {
        Ok(())
    }

    fn step(&mut self, _input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        while self.hang.load(Ordering::Acquire) && !self.release.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        out.data.fill(90);
        Ok(())
    }
}

#[test]
fn a_hung_step_makes_requests_fail_fast_and_stopping_return() {
    let hang = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (h, r) = (hang.clone(), release.clone());
    register_backend("stuck-test", move |_: &BackendConfig| {
        Ok(Box::new(Stuck {
            info: ModelInfo::simple("stuck", 64, 36, Fps::new(30, 1)),
            hang: h.clone(),
            release: r.clone(),
        }) as Box<dyn Generator>)
    });
    let config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "stuck-test".parse().unwrap(),
            device: DeviceSpec::Cpu,
            ..Default::default()
        },
        ..Default::default()
    };
    let (engine, frames) = Engine::start_with_channel(config).unwrap();
    let show = engine.handle();
    let dir = std::env::temp_dir().join(format!("cuecast-test-{}-stuck", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let checkpoint = |n: &str| show.save_checkpoint(&dir.join(n));
    engine.render(0).unwrap();
    frames.recv_timeout(Duration::from_secs(10)).unwrap();
    // Answers while the model steps normally.
    checkpoint("healthy").expect("a checkpoint of a healthy model");
    // A take records two frames before the hang.
    show.start_take(&dir.join("take"), "take").unwrap();
    for f in 1..3 {
        engine.render(f).unwrap();
        frames.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    hang.store(true, Ordering::Release);
    engine.render(3).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while show.counters().step_running().is_none() {
        assert!(Instant::now() < until, "the step never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let asked = Instant::now();
    let e = checkpoint("stuck").expect_err("the model is stuck");
    let waited = asked.elapsed();
    assert!(
        matches!(e, EngineError::NotResponding { running_s } if running_s >= STEP_STALL.as_secs_f64()),
        "{e}"
    );
    assert!(e.to_string().contains("not responding"), "{e}");
    assert!(
        waited < STEP_STALL + Duration::from_secs(2),
        "the request waited {waited:?}"
    );
    // Status says so, and a second request fails at once.
    let s = show.status();
    assert!(s.step_running_s.is_some_and(|r| r >= 5.0), "{s:?}");
    let asked = Instant::now();
    assert!(matches!(
        checkpoint("again"),
        Err(EngineError::NotResponding { .. })
    ));
    assert!(asked.elapsed() < Duration::from_secs(1));

    // Stopping leaves the stuck thread behind instead of hanging.
    let stopping = Instant::now();
    drop(engine);
    assert!(
        stopping.elapsed() < STOP_GRACE + Duration::from_secs(2),
        "stopping took {:?}",
        stopping.elapsed()
    );
    // ... and the take it was recording was finished, with what it holds.
    let take = Take::open(&dir.join("take")).unwrap();
    assert!(take.complete, "{:?}", take.manifest);
    assert_eq!(take.manifest.frames, Some(2));
    release.store(true, Ordering::Release);
    let _ = std::fs::remove_dir_all(&dir);
}
