//! The `torchscript` backend against real packages exported with PyTorch: the example
//! model runs and responds to everything it takes; broken packages fail clearly, at
//! load or as counted failed steps, and never take the engine down.

mod support;

use std::sync::atomic::Ordering;

use cuecast_engine::{Cue, DeviceSpec, Engine, EngineConfig, Fps, Picture};
use serde_json::json;

fn config(model: &std::path::Path) -> EngineConfig {
    EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "torchscript".parse().unwrap(),
            model: Some(model.to_path_buf()),
            device: DeviceSpec::Cpu,
            seed: 1,
            prompt: "a quiet field".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn frames(config: EngineConfig, cues: &[serde_json::Value], n: u64) -> Vec<Vec<u8>> {
    support::frames(config, (256, 144), cues, n)
}

#[test]
fn the_example_package_runs_and_responds_to_state_action_params_and_prompt() {
    let dir = support::tempdir("ts-example");
    let pkg = support::example_package(&dir);
    let still = frames(config(&pkg), &[], 6);
    // State: the latent world drifts even with the camera still.
    assert_ne!(still[0], still[5]);
    // The same inputs give the same frames.
    assert_eq!(still, frames(config(&pkg), &[], 6));
    // Action, params and prompt each change the picture.
    let moving = frames(
        config(&pkg),
        &[json!({"type": "action", "forward": 1, "yaw": 0.5})],
        6,
    );
    assert_ne!(moving[5], still[5]);
    let bright = frames(
        config(&pkg),
        &[json!({"type": "param", "name": "brightness", "value": 1.8})],
        6,
    );
    assert_ne!(bright[5], still[5]);
    let other = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            prompt: "a neon city".into(),
            ..config(&pkg).settings
        },
        ..config(&pkg)
    };
    assert_ne!(frames(other, &[], 1)[0], still[0]);
    // What the manifest says is what the engine reports.
    let (engine, _rx) = Engine::start_with_channel(config(&pkg)).unwrap();
    let info = engine.info();
    assert_eq!(
        (info.name.as_str(), info.width, info.height),
        ("tiny-world", 256, 144)
    );
    assert_eq!(info.actions, ["forward", "strafe", "yaw"]);
    assert!(info.hash.starts_with("sha256:"));
}

#[test]
fn frames_are_scaled_to_the_negotiated_size() {
    let dir = support::tempdir("ts-scale");
    let pkg = support::example_package(&dir);
    let (engine, rx) = Engine::start_with_channel(config(&pkg)).unwrap();
    engine.set_output(320, 180, Fps::new(25, 1));
    engine.render(0).unwrap();
    match rx.recv().unwrap().picture {
        Picture::New(f) => assert_eq!(
            (f.width(), f.height(), f.data().len()),
            (320, 180, 320 * 180 * 4)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_packages_are_refused_at_load_with_the_reason() {
    let dir = support::broken_packages(&support::tempdir("ts-broken"));
    for (name, expect) in [
        ("missing-weights", vec!["model.pt", "No such file"]),
        (
            "not-torchscript",
            vec!["model.pt", "not a TorchScript module"],
        ),
        ("bad-manifest", vec!["cuecast-model.yaml", "widht"]),
        ("no-step", vec!["no method `step`"]),
        (
            "wrong-shape",
            vec!["rgb must be float [3, 36, 64]", "[3, 10, 10]"],
        ),
        ("wrong-dtype", vec!["rgb must be float [3, 36, 64]", "Int"]),
    ] {
        let err = Engine::start(config(&dir.join(name)), |_| {})
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"))
            .to_string();
        for e in expect {
            assert!(err.contains(e), "{name}: {err:?} should mention {e:?}");
        }
    }
    assert!(Engine::start(config(&dir.join("good")), |_| {}).is_ok());
}

#[test]
fn failing_steps_are_counted_and_the_engine_goes_on() {
    let dir = support::broken_packages(&support::tempdir("ts-runtime"));
    for (name, expect) in [
        ("nan-after-five", "NaN"),
        ("throws-after-five", "the model gave up"),
        ("state-nan-after-five", "state \"t\" has NaN"),
    ] {
        let (engine, rx) = Engine::start_with_channel(config(&dir.join(name))).unwrap();
        engine.set_output(64, 36, Fps::new(30, 1));
        let mut outcomes = Vec::new();
        for f in 0..8 {
            engine.render(f).unwrap();
            outcomes.push(rx.recv().unwrap().picture);
        }
        assert!(
            outcomes[..4].iter().all(|p| matches!(p, Picture::New(_))),
            "{name}: first steps fine"
        );
        for p in &outcomes[4..] {
            match p {
                Picture::Failed(e) => assert!(e.0.contains(expect), "{name}: {e}"),
                other => panic!("{name}: expected a failed step, got {other:?}"),
            }
        }
        assert_eq!(engine.counters().failed.load(Ordering::Relaxed), 4);
        // The engine still answers: status and cues work after failures.
        assert_eq!(engine.status().steps_failed, 4);
        engine
            .inbox()
            .submit_one(Cue::from_value(&json!({"type": "seed", "value": 2})).unwrap())
            .unwrap();
    }
}

/// A model whose state has gone bad fails every step after it: after `after` failures
/// in a row the engine starts it over (the picture comes back), or, told to hold, keeps
/// the last picture and says how long the run of failures is.
#[test]
fn a_model_that_keeps_failing_is_started_over_or_held_as_configured() {
    use cuecast_engine::engine::{FailureAction, FailurePolicy};
    let dir = support::broken_packages(&support::tempdir("ts-policy"));
    for action in [FailureAction::Reset, FailureAction::Hold] {
        let config = EngineConfig {
            settings: cuecast_engine::engine::ModelSettings {
                on_failure: FailurePolicy { after: 3, action },
                ..config(&dir.join("state-nan-after-five")).settings
            },
            ..config(&dir.join("state-nan-after-five"))
        };
        let (engine, rx) = Engine::start_with_channel(config).unwrap();
        engine.set_output(64, 36, Fps::new(30, 1));
        let mut good = Vec::new();
        for f in 0..12 {
            engine.render(f).unwrap();
            good.push(matches!(rx.recv().unwrap().picture, Picture::New(_)));
        }
        let status = engine.status();
        match action {
            // Steps 1-4 good, 5-7 fail (state NaN), started over: 8-11 good, 12 fails.
            FailureAction::Reset => {
                assert_eq!(
                    good,
                    [true, true, true, true, false, false, false, true, true, true, true, false]
                );
                assert_eq!(status.model_resets, 1, "{status:?}");
                assert!(
                    status
                        .last_reset
                        .as_deref()
                        .is_some_and(|r| r.starts_with("3 steps in a row failed")),
                    "{status:?}"
                );
                assert_eq!(status.failing_steps, 1);
            }
            FailureAction::Hold => {
                assert_eq!(good.iter().filter(|g| **g).count(), 4, "{good:?}");
                assert_eq!((status.model_resets, status.failing_steps), (0, 8));
            }
        }
    }
}

/// A state that grows every step shows in the status, and past the limit the model is
/// started over, so the process never grows without bound.
#[test]
fn a_state_past_its_limit_starts_the_model_over() {
    let dir = support::broken_packages(&support::tempdir("ts-grows"));
    let config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            state_limit_mb: Some(20.0 * 4096.0 / 1_048_576.0),
            ..config(&dir.join("grows-state")).settings
        },
        ..config(&dir.join("grows-state"))
    };
    let (engine, rx) = Engine::start_with_channel(config).unwrap();
    engine.set_output(64, 36, Fps::new(30, 1));
    let mut sizes = Vec::new();
    for f in 0..40 {
        engine.render(f).unwrap();
        assert!(matches!(rx.recv().unwrap().picture, Picture::New(_)));
        sizes.push(engine.status().state_bytes);
    }
    let status = engine.status();
    assert!(status.model_resets >= 1, "{status:?}");
    assert!(
        status
            .last_reset
            .as_deref()
            .is_some_and(|r| r.contains("over the limit of 0.1 MB")),
        "{status:?}"
    );
    assert!(sizes.iter().all(|b| *b <= 21 * 4096 + 4), "{sizes:?}");
    assert!(
        sizes.windows(2).any(|w| w[1] < w[0]),
        "never shrank: {sizes:?}"
    );
}
