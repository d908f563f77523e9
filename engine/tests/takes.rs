//! Takes, checkpoints and replay against the real backends: a replay is bit-identical to
//! its take, frames after a restore equal the original run's, and broken files are
//! refused with errors naming them.

mod support;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

use cuecast_engine::replay::{replay, ReplayOptions};
use cuecast_engine::{
    Checkpoint, Cue, DeviceSpec, Engine, EngineConfig, EngineError, Fps, Picture, Rendered, Take,
};
use serde_json::{json, Value};

const SIZE: (usize, usize) = (160, 90);

fn procedural() -> EngineConfig {
    EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            device: DeviceSpec::Cpu,
            seed: 7,
            prompt: "rolling green hills".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn start(config: EngineConfig, size: (usize, usize)) -> (Engine, Receiver<Rendered>) {
    let (engine, rx) = Engine::start_with_channel(config).unwrap();
    engine.set_output(size.0, size.1, Fps::new(30, 1));
    (engine, rx)
}

fn cue(v: Value) -> Cue {
    Cue::from_value(&v).unwrap()
}

/// Renders `frame` and returns its pixels (empty for a failed step).
fn render(engine: &Engine, rx: &Receiver<Rendered>, frame: u64) -> Vec<u8> {
    engine.render(frame).unwrap();
    picture(rx, frame)
}

fn picture(rx: &Receiver<Rendered>, frame: u64) -> Vec<u8> {
    match rx.recv().unwrap().picture {
        Picture::New(f) | Picture::Held(f) => f.data().to_vec(),
        Picture::Failed(e) => panic!("frame {frame} failed: {e}"),
    }
}

/// A take of a show that moves, changes prompt and params, drops a marker and skips
/// frames now and then, as a live show catching up does.
fn record_take(config: EngineConfig, dir: &Path, size: (usize, usize)) -> Take {
    let (engine, rx) = start(config, size);
    for f in 0..5 {
        render(&engine, &rx, f);
    }
    let show = engine.handle();
    let manifest = show.start_take(dir, "t1").unwrap();
    assert_eq!(manifest.start_frame, 5);
    // Status knows as soon as the call returns, before any frame.
    assert_eq!(show.status().take.as_deref(), Some("t1"));
    let inbox = engine.inbox();
    let mut frame = 5;
    for step in 0..30u64 {
        match step {
            2 => {
                inbox
                    .submit_one(cue(json!({"type": "action", "forward": 1, "yaw": 0.4})))
                    .unwrap();
            }
            8 => {
                inbox
                    .submit_one(cue(json!({"type": "marker", "label": "first"})))
                    .unwrap();
            }
            12 => {
                inbox
                    .submit_one(cue(
                        json!({"type": "prompt", "text": "red desert dunes", "transition_s": 0.3}),
                    ))
                    .unwrap();
            }
            18 => {
                inbox
                    .submit_one(cue(json!({"type": "seed", "value": 99})))
                    .unwrap();
            }
            _ => {}
        }
        if (20..24).contains(&step) {
            // Steps running late: a model that can draws these at lower detail.
            engine.render_at(frame, 0.5, false).unwrap();
            picture(&rx, frame);
        } else {
            render(&engine, &rx, frame);
        }
        // Every seventh frame the show "falls behind" and skips two.
        frame += if step % 7 == 6 { 3 } else { 1 };
    }
    let summary = show.stop_take().unwrap();
    assert_eq!(show.status().take, None);
    assert_eq!(summary.frames, 30);
    assert!(summary.lost_frames.is_empty(), "{:?}", summary.lost_frames);
    Take::open(dir).unwrap()
}

#[test]
fn a_take_holds_frames_depth_poses_cues_and_markers() {
    let dir = support::tempdir("take-contents");
    let take = record_take(procedural(), &dir.join("t1"), SIZE);
    let m = &take.manifest;
    assert!(take.complete);
    assert_eq!((m.width, m.height, m.fps), (160, 90, Fps::new(30, 1)));
    assert_eq!(take.frames.len(), 30);
    assert_eq!(take.frames[0].frame, 5);
    // Skipped frames are on the timeline, held.
    assert_eq!(take.duration_frames(), take.frames[29].frame - 5 + 1);
    let timeline = take.timeline();
    assert_eq!(timeline.len() as u64, take.duration_frames());
    assert_eq!(timeline[0], 0);
    assert_eq!(*timeline.last().unwrap(), 29);
    // The camera moved and its poses are recorded per frame.
    assert_ne!(take.frames[0].pose.pos, take.frames[29].pose.pos);
    assert_ne!(take.frames[0].pose.yaw, take.frames[29].pose.yaw);
    // Depth: the procedural world makes it, in metres, at the frame size.
    let (size, depth) = take.depth(10).unwrap().unwrap();
    assert_eq!((size.width, size.height), SIZE);
    assert!(depth.iter().all(|d| d.is_finite() && *d > 0.0));
    assert_eq!(take.rgb(3).unwrap().len(), 160 * 90 * 4);
    let types: Vec<&str> = take.cues.iter().map(|c| c.cue.type_name()).collect();
    assert_eq!(types, ["action", "marker", "prompt", "seed"]);
    let markers = take.markers();
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].label, "first");
    assert_eq!(markers[0].offset, markers[0].frame - 5);
    // Each frame's detail is recorded (what replay draws it at).
    let details: Vec<f32> = take.frames.iter().map(|f| f.detail).collect();
    assert_eq!(details[20..24], [0.5; 4]);
    assert!(details[..20]
        .iter()
        .chain(&details[24..])
        .all(|d| *d == 1.0));
    // The start checkpoint is there and loads.
    let start = Checkpoint::load(&take.start_checkpoint()).unwrap();
    assert_eq!(start.manifest.frame, Some(4));
}

fn replays_identically(config: EngineConfig, size: (usize, usize), name: &str) {
    let dir = support::tempdir(name);
    let take = record_take(config, &dir.join("t1"), size);
    let summary = replay(
        &take,
        &dir.join("again"),
        &ReplayOptions::default(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.frames, 30);
    assert_eq!(
        summary.identical,
        Some(true),
        "differing: {:?}",
        summary.differing
    );
    let again = Take::open(&dir.join("again")).unwrap();
    let poses = |t: &Take| t.frames.iter().map(|f| f.pose).collect::<Vec<_>>();
    assert_eq!(poses(&again), poses(&take));
    // Every frame's hash is recorded, and is its bytes'.
    for (k, record) in take.frames.iter().enumerate() {
        let hash = cuecast_engine::take::frame_hash(&take.rgb(k).unwrap());
        assert_eq!(record.hash.as_deref(), Some(hash.as_str()), "frame {k}");
    }
    // A take whose record of frame 7 says another picture: the replay names that frame.
    let edited = dir.join("edited");
    copy_dir(&dir.join("t1"), &edited);
    let lines = std::fs::read_to_string(edited.join("frames.jsonl")).unwrap();
    let wrong = take.frames[7].hash.clone().unwrap();
    let zeros = format!("sha256:{}", "0".repeat(64));
    let lines: Vec<String> = lines
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 7 {
                l.replace(&wrong, &zeros)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(edited.join("frames.jsonl"), lines.join("\n") + "\n").unwrap();
    let s = replay(
        &Take::open(&edited).unwrap(),
        &dir.join("again-edited"),
        &ReplayOptions::default(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(s.identical, Some(false));
    assert_eq!(s.differing, [take.frames[7].frame]);
    // At another size it renders, and says it cannot compare.
    let small = ReplayOptions {
        size: Some((size.0 / 2, size.1 / 2)),
        ..Default::default()
    };
    let s = replay(&take, &dir.join("small"), &small, |_, _| {}).unwrap();
    assert_eq!((s.frames, s.identical), (30, None));
    assert_eq!(
        Take::open(&dir.join("small")).unwrap().manifest.width,
        size.0 / 2
    );
}

#[test]
fn a_procedural_replay_is_bit_identical_to_its_take() {
    replays_identically(procedural(), SIZE, "replay-procedural");
}

#[test]
fn a_final_quality_replay_draws_every_frame_at_full_detail() {
    let dir = support::tempdir("replay-final");
    let take = record_take(procedural(), &dir.join("t1"), SIZE);
    let lowered: Vec<u64> = take
        .frames
        .iter()
        .filter(|f| f.detail < 1.0)
        .map(|f| f.frame)
        .collect();
    assert_eq!(lowered.len(), 4, "the take drew four frames at half detail");
    let options = ReplayOptions {
        final_quality: true,
        ..Default::default()
    };
    let s = replay(&take, &dir.join("final"), &options, |_, _| {}).unwrap();
    assert_eq!((s.frames, s.identical), (30, None));
    // Exactly the frames drawn at less than full detail live are drawn anew; the camera
    // track, the frames and their timing are the take's.
    assert_eq!(s.differing, lowered);
    let again = Take::open(&dir.join("final")).unwrap();
    assert!(again.frames.iter().all(|f| f.detail == 1.0));
    let track = |t: &Take| {
        t.frames
            .iter()
            .map(|f| (f.frame, f.pose))
            .collect::<Vec<_>>()
    };
    assert_eq!(track(&again), track(&take));
}

#[test]
fn a_torchscript_replay_is_bit_identical_to_its_take() {
    let dir = support::tempdir("replay-ts-package");
    let pkg = support::example_package(&dir);
    let config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "torchscript".parse().unwrap(),
            model: Some(pkg.clone()),
            ..procedural().settings
        },
        ..procedural()
    };
    replays_identically(config.clone(), (256, 144), "replay-torchscript");
    // A take made by another version of the package (here: its manifest said another
    // thing): replay refuses, naming the model and both hashes.
    let manifest = pkg.join("cuecast-model.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("overall light level", "overall light"),
    )
    .unwrap();
    let dir = support::tempdir("replay-ts-changed");
    let take = record_take(config, &dir.join("t1"), (256, 144));
    std::fs::write(&manifest, text).unwrap();
    let e = replay(
        &take,
        &dir.join("again"),
        &ReplayOptions::default(),
        |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tiny-world") && e.contains("sha256:"), "{e}");
    assert!(!dir.join("again").exists(), "nothing half-made is left");
}

/// Frames `from..to` of a run that saves a checkpoint after frame `save_after`.
fn run_with_checkpoint(
    config: EngineConfig,
    param: (&str, f64),
    dir: &Path,
    save_after: u64,
    to: u64,
) -> Vec<Vec<u8>> {
    let (engine, rx) = start(config, SIZE);
    let inbox = engine.inbox().clone();
    inbox
        .submit_one(cue(
            json!({"type": "action", "forward": 0.8, "yaw": -0.3, "pitch": 0.2}),
        ))
        .unwrap();
    inbox
        .submit_one(cue(json!({"type": "param", "name": param.0, "value": param.1, "ramp_s": 2, "at": {"frame": save_after - 10}})))
        .unwrap();
    let mut after = Vec::new();
    for f in 0..=to {
        let pixels = render(&engine, &rx, f);
        if f == save_after {
            engine.handle().save_checkpoint(dir).unwrap();
        }
        if f > save_after {
            after.push(pixels);
        }
    }
    after
}

#[test]
fn frames_after_a_restore_equal_the_frames_that_followed_the_checkpoint() {
    for (name, param, config) in [
        ("procedural", ("time_of_day", 18.0), procedural()),
        ("torchscript", ("brightness", 1.6), {
            let pkg = support::example_package(&support::tempdir("restore-ts-package"));
            EngineConfig {
                settings: cuecast_engine::engine::ModelSettings {
                    backend: "torchscript".parse().unwrap(),
                    model: Some(pkg),
                    ..procedural().settings
                },
                ..procedural()
            }
        }),
    ] {
        let dir = support::tempdir(&format!("restore-{name}"));
        let ckpt = dir.join("mid");
        let original = run_with_checkpoint(config.clone(), param, &ckpt, 40, 60);
        // Another show of the same model, elsewhere and later, restores it live.
        let (engine, rx) = start(
            EngineConfig {
                settings: cuecast_engine::engine::ModelSettings {
                    seed: 3,
                    prompt: "night coast".into(),
                    ..config.settings.clone()
                },
                ..config
            },
            SIZE,
        );
        for f in 0..100 {
            render(&engine, &rx, f);
        }
        engine
            .handle()
            .restore(Checkpoint::load(&ckpt).unwrap())
            .unwrap();
        let resumed: Vec<Vec<u8>> = (100..120).map(|f| render(&engine, &rx, f)).collect();
        assert!(
            resumed == original,
            "{name}: frames after the restore differ from the original run's"
        );
        let status = engine.status();
        assert_eq!(status.frame, 119, "the show's frame numbers keep counting");
    }
}

#[test]
fn a_checkpoint_of_another_model_is_refused_naming_both_hashes() {
    let dir = support::tempdir("ckpt-other-model");
    let (engine, rx) = start(procedural(), SIZE);
    render(&engine, &rx, 0);
    engine.handle().save_checkpoint(&dir.join("c")).unwrap();
    let (pattern, _rx) = start(
        EngineConfig {
            settings: cuecast_engine::engine::ModelSettings {
                backend: "pattern".parse().unwrap(),
                ..procedural().settings
            },
            ..procedural()
        },
        SIZE,
    );
    let before = pattern.status();
    let e = pattern
        .handle()
        .restore(Checkpoint::load(&dir.join("c")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("procedural-2") && e.contains("pattern-1"), "{e}");
    assert_eq!(pattern.status().camera, before.camera, "nothing changed");
    // A checkpoint folder that exists is not overwritten.
    let e = engine
        .handle()
        .save_checkpoint(&dir.join("c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn open_error(dir: &Path) -> String {
    Take::open(dir).unwrap_err().to_string()
}

#[test]
fn broken_takes_and_checkpoints_are_refused_naming_the_file() {
    let dir = support::tempdir("broken");
    let good = dir.join("good");
    record_take(procedural(), &good, (64, 36));
    let variant = |name: &str| -> PathBuf {
        let d = dir.join(name);
        copy_dir(&good, &d);
        d
    };
    // Missing.
    assert!(open_error(&dir.join("nope")).contains("nope"));
    // Truncated pixels.
    let d = variant("short-rgb");
    let rgb = d.join("rgb.raw");
    let len = std::fs::metadata(&rgb).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&rgb)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let e = open_error(&d);
    assert!(e.contains("rgb.raw") && e.contains("truncated"), "{e}");
    // A corrupt manifest.
    let d = variant("bad-manifest");
    std::fs::write(d.join("take.json"), "{\"format\": ").unwrap();
    assert!(open_error(&d).contains("take.json"));
    // A bad line in the middle of the frame list.
    let d = variant("bad-line");
    let frames = std::fs::read_to_string(d.join("frames.jsonl")).unwrap();
    let mut lines: Vec<&str> = frames.lines().collect();
    lines[3] = "not json";
    std::fs::write(d.join("frames.jsonl"), lines.join("\n")).unwrap();
    let e = open_error(&d);
    assert!(e.contains("frames.jsonl") && e.contains("line 4"), "{e}");
    // Checkpoints: corrupt manifest, missing tensors.
    let d = variant("bad-ckpt");
    let ckpt = d.join("start");
    std::fs::write(ckpt.join("checkpoint.json"), "[]").unwrap();
    let e = Checkpoint::load(&ckpt).unwrap_err().to_string();
    assert!(e.contains("checkpoint.json"), "{e}");
    let d = variant("no-state");
    std::fs::remove_file(d.join("start/state.safetensors")).unwrap();
    let e = Checkpoint::load(&d.join("start")).unwrap_err().to_string();
    assert!(
        e.contains("state.safetensors") && e.contains("missing"),
        "{e}"
    );
    let take = Take::open(&d).unwrap();
    let e = replay(&take, &dir.join("r"), &ReplayOptions::default(), |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("state.safetensors"), "{e}");
    assert!(!dir.join("r").exists(), "a failed replay leaves nothing");
}

#[test]
fn a_take_cut_short_is_still_readable() {
    let dir = support::tempdir("cut-short");
    let (engine, rx) = start(procedural(), (64, 36));
    engine
        .handle()
        .start_take(&dir.join("live"), "live")
        .unwrap();
    for f in 0..12 {
        render(&engine, &rx, f);
    }
    // What a kill leaves: the files as written so far, and maybe a torn last line.
    let frames = dir.join("live/frames.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&frames).unwrap().lines().count() < 12 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    copy_dir(&dir.join("live"), &dir.join("crashed"));
    let mut torn = std::fs::read_to_string(dir.join("crashed/frames.jsonl")).unwrap();
    torn.push_str("{\"index\": 12, \"fra");
    std::fs::write(dir.join("crashed/frames.jsonl"), torn).unwrap();
    let take = Take::open(&dir.join("crashed")).unwrap();
    assert!(!take.complete);
    assert_eq!(take.frames.len(), 12);
    assert_eq!(take.rgb(11).unwrap().len(), 64 * 36 * 4);
    // Recording on is unaffected; a second take cannot start over it.
    let e = engine
        .handle()
        .start_take(&dir.join("other"), "other")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"live\"") && e.contains("stop it first"), "{e}");
    assert!(!dir.join("other").exists());
    let summary = engine.handle().stop_take().unwrap();
    assert_eq!(summary.frames, 12);
    assert!(Take::open(&dir.join("live")).unwrap().complete);
}

/// A checkpoint is a file anyone can edit: edits that would panic the model thread or
/// put nonsense on air are refused naming the field, and the show goes on unchanged.
#[test]
fn an_edited_checkpoint_is_refused_naming_the_field_and_the_show_goes_on() {
    let dir = support::tempdir("edited-checkpoint");
    let good = dir.join("good");
    let (engine, rx) = start(procedural(), SIZE);
    for f in 0..10 {
        render(&engine, &rx, f);
    }
    let show = engine.handle();
    show.save_checkpoint(&good).unwrap();
    let text = std::fs::read_to_string(good.join("checkpoint.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 9] = [
        ("world.speed_param", |m| {
            m["world"]["speed_param"] = json!(99)
        }),
        ("world.params", |m| m["world"]["params"] = json!([])),
        ("world.rig.pitch_limit", |m| {
            m["world"]["rig"]["pitch_limit"] = json!(-10)
        }),
        ("world.rig.pose.fov", |m| {
            m["world"]["rig"]["pose"]["fov"] = json!(0)
        }),
        ("world.rig.pose.pitch", |m| {
            m["world"]["rig"]["pose"]["pitch"] = json!(1000)
        }),
        ("world.rig.pose.pos", |m| {
            m["world"]["rig"]["pose"]["pos"][0] = json!(1e300)
        }),
        ("world.fade", |m| m["world"]["fade"]["to"] = json!(7)),
        ("world.prompt", |m| {
            m["world"]["prompt"] = json!("x".repeat(200_000))
        }),
        ("summary", |m| m["seed"] = json!(12345)),
    ];
    let before = show.status();
    for (i, (field, edit)) in edits.iter().enumerate() {
        let mut m = manifest.clone();
        edit(&mut m);
        let edited = dir.join(format!("edit{i}"));
        copy_dir(&good, &edited);
        std::fs::write(edited.join("checkpoint.json"), m.to_string()).unwrap();
        let e = Checkpoint::load(&edited)
            .map_err(EngineError::from)
            .and_then(|c| show.restore(c))
            .expect_err(field);
        assert!(e.to_string().contains(field), "{field}: {e}");
        // Nothing changed, and frames keep coming.
        let f = 10 + i as u64;
        assert!(!render(&engine, &rx, f).is_empty());
        let now = show.status();
        assert_eq!(
            (now.seed, now.prompt.as_str()),
            (before.seed, before.prompt.as_str())
        );
    }
    // The untouched file still restores.
    show.restore(Checkpoint::load(&good).unwrap()).unwrap();
}

/// A checkpoint restored live during a take: the take keeps a copy and marks the frame,
/// and its replay restores it at the same frame, so the replay is still bit-identical.
/// The same holds for a model started over by the failure policy.
#[test]
fn a_take_with_a_live_restore_and_a_reset_replays_identically() {
    use cuecast_engine::engine::{FailureAction, FailurePolicy};
    let dir = support::tempdir("replay-restore");
    let packages = support::broken_packages(&dir.join("packages"));
    let config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: "torchscript".parse().unwrap(),
            model: Some(packages.join("state-nan-after-five")),
            on_failure: FailurePolicy {
                after: 2,
                action: FailureAction::Reset,
            },
            ..procedural().settings
        },
        ..procedural()
    };
    let (engine, rx) = start(config, (64, 36));
    let show = engine.handle();
    let outcome = |f: u64| {
        engine.render(f).unwrap();
        matches!(rx.recv().unwrap().picture, Picture::New(_))
    };
    for f in 0..2 {
        assert!(outcome(f));
    }
    show.save_checkpoint(&dir.join("cp")).unwrap();
    show.start_take(&dir.join("t"), "t").unwrap();
    show.inbox()
        .submit_one(cue(json!({"type": "action", "forward": 1, "yaw": 0.4})))
        .unwrap();
    // Frames 2..: steps 3 and 4 good, 5 and 6 fail, started over, good again.
    let mut good = Vec::new();
    for f in 2..9 {
        good.push(outcome(f));
    }
    assert_eq!(good, [true, true, false, false, true, true, true]);
    show.restore(Checkpoint::load(&dir.join("cp")).unwrap())
        .unwrap();
    for f in 9..13 {
        outcome(f);
    }
    show.stop_take().unwrap();
    drop(engine);

    let take = Take::open(&dir.join("t")).unwrap();
    let marked: Vec<(u64, bool, Option<String>)> = take
        .frames
        .iter()
        .filter(|r| r.reset || r.restored.is_some())
        .map(|r| (r.frame, r.reset, r.restored.clone()))
        .collect();
    assert_eq!(
        marked,
        [(6, true, None), (9, false, Some("restores/9".into()))]
    );
    assert!(dir.join("t/restores/9").is_dir());
    let summary = replay(
        &take,
        &dir.join("again"),
        &ReplayOptions::default(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(
        summary.identical,
        Some(true),
        "differing: {:?}",
        summary.differing
    );
}
