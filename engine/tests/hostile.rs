//! A python model is someone else's code: the probe model (fixtures/probe_model.py)
//! plays a hostile or broken one, each test one way, through a real engine and worker
//! in the sandbox. It hunts for the show's secrets, forks helpers that try to outlive
//! it, shrinks the shared memory under cuecast, lies in its answers, fails every step,
//! grows without bound and dies at every start; the show goes on and gives it nothing.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use cuecast_engine::generator::package::Package;
use cuecast_engine::worker::sandbox::{self, ModelFolder};
use cuecast_engine::worker::{Worker, WorkerOptions};
use cuecast_engine::{Engine, Fps};
use serde_json::Value;

fn folder(spec: String) -> ModelFolder {
    spec.parse().unwrap()
}

/// Waits (bounded) for `ok`, polling.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Running processes named `name` (their `comm`).
fn named(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .unwrap_or("");
        if comm.trim_end() == name && state != "Z" {
            out.push(pid);
        }
    }
    out
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let i = s.rfind(')')?;
            s[i + 1..].split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

fn writable_by_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

fn hunt_report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the probe wrote its report"))
        .unwrap()
}

#[test]
fn a_model_finds_none_of_the_shows_secrets_and_reaches_nothing() {
    let dir = support::tempdir("hostile-secrets");
    let (out, shared) = (dir.join("out"), dir.join("shared"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    // Writable by the model's user (nobody, where the tests run as root).
    writable_by_all(&out);
    let secret = format!("sekrit-stream-key-{}", std::process::id());
    // The show's config, holding a stream key, in a folder the model may read.
    let config_file = shared.join("cuecast.yaml");
    std::fs::write(&config_file, format!("key: {secret}\n")).unwrap();
    sandbox::keep_secret(&config_file);
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let hunt = |report: &Path| {
        format!(
            "hunt: {{report: {}, needles: [{secret}], files: [{}], connect: '{}'}}",
            report.display(),
            config_file.display(),
            api.local_addr().unwrap()
        )
    };
    let report = out.join("sandboxed.json");
    let pkg = support::probe_package(&dir, "hunter", "", &hunt(&report));
    let mut config = support::probe_show(&pkg);
    config.settings.model_folders = vec![
        folder(format!("{}:rw", out.display())),
        folder(shared.display().to_string()),
    ];
    let engine = Engine::start(config, |_| {}).unwrap();
    let p = support::process(&engine);
    assert!(p.sandbox.starts_with("bubblewrap"), "{p:?}");
    assert!(!p.network, "{p:?}");
    let r = hunt_report(&report);
    assert_eq!(r["found"], serde_json::json!([]), "{r}");
    // Its own PID namespace: bubblewrap's init and nothing of the machine's.
    assert!(
        r["processes"].as_array().unwrap().len() <= 1,
        "it saw other processes: {r}"
    );
    assert!(
        !r["reached"].to_string().contains("127.0.0.1"),
        "it reached the network: {r}"
    );
    drop(engine);

    // The same hunt outside the sandbox finds the key and the API: the hunt is real.
    let report = out.join("bare.json");
    let pkg = support::probe_package(&dir, "bare", "", &hunt(&report));
    let options = WorkerOptions {
        python: std::env::var_os("CUECAST_PYTHON").map(Into::into),
        sandbox: false,
        ..WorkerOptions::default()
    };
    let worker = Worker::start(&Package::load(&pkg).unwrap(), options, |_| {}).unwrap();
    assert!(worker.status().sandbox.starts_with("none"));
    let r = hunt_report(&report);
    assert!(r["found"].to_string().contains("cuecast.yaml"), "{r}");
    assert!(r["reached"].to_string().contains("127.0.0.1"), "{r}");
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_models_helpers_end_with_its_worker_and_its_death_is_seen_at_once() {
    let dir = support::tempdir("hostile-helpers");
    let name = format!("cch{}", std::process::id() % 1_000_000);
    // A long step deadline: that the worker died must be seen from the process itself,
    // not from its socket (which the helpers hold open) or the deadline.
    let pkg = support::probe_package(
        &dir,
        "forker",
        "step_timeout_s: 30",
        &format!("helpers: {name}"),
    );
    let (engine, rx) = support::started(support::probe_show(&pkg));
    support::render_range(&engine, &rx, 0..8);
    wait_for("three helpers", Duration::from_secs(10), || {
        named(&name).len() == 3
    });
    let helpers = named(&name);
    wait_for("the helpers counted", Duration::from_secs(2), || {
        support::process(&engine).processes >= 4
    });
    let p = support::process(&engine);
    let killed = Instant::now();
    support::kill(p.pid.unwrap());
    wait_for("the death seen", Duration::from_secs(1), || {
        support::process(&engine).restarts == 1
    });
    println!("seen dead after {:?}", killed.elapsed());
    wait_for(
        "the first worker's helpers gone",
        Duration::from_secs(3),
        || helpers.iter().all(|h| !running(*h)),
    );
    // The new worker starts helpers of its own; the show's end ends them too.
    support::render_range(&engine, &rx, 8..16);
    wait_for("the new helpers", Duration::from_secs(10), || {
        named(&name).len() == 3
    });
    drop(engine);
    wait_for("every helper gone", Duration::from_secs(3), || {
        named(&name).is_empty()
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The worker's folders under /dev/shm (or the temporary folder) of this process.
fn runtime_dirs() -> Vec<std::path::PathBuf> {
    let prefix = format!("cuecast-worker-{}-", std::process::id());
    ["/dev/shm".into(), std::env::temp_dir()]
        .iter()
        .flat_map(|base| std::fs::read_dir(base).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn the_workers_folder_and_files_are_readable_by_no_other_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = support::tempdir("hostile-folder");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    // Long enough for a state to be saved for a restart.
    support::render_range(&engine, &rx, 0..60);
    // Its folder, as its process has it mounted (other tests start workers meanwhile).
    let pid = support::process(&engine).pid.unwrap();
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let within = mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/run/cuecast"))
        .map(|f| f[3].trim_end_matches("/model").to_owned())
        .expect("the worker folder is mounted at /run/cuecast");
    let root = &runtime_dirs()
        .into_iter()
        .find(|d| d.ends_with(within.trim_start_matches('/')))
        .expect("the folder is one of this process's");
    let state = root.join("model/state.safetensors");
    assert!(state.is_file(), "a state saved for a restart");
    for (path, mode) in [
        (root.clone(), 0o700),
        (root.join("model"), 0o700),
        (root.join("tmp"), 0o700),
        (state.clone(), 0o600),
    ] {
        let m = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{} is {m:o}", path.display());
    }
    // The frames go through memory with no name in any folder.
    assert!(!root.join("model/frames.shm").exists());
    let nobody = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(&state)
        .output()
        .expect("runuser (util-linux) runs");
    assert!(
        !nobody.status.success(),
        "another user read the model's state"
    );
    let nobody = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "ls"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        !nobody.status.success(),
        "another user listed the worker's folder"
    );
    engine.stop_within(Duration::from_secs(1));
    assert!(!root.exists(), "the folder is removed at stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_cannot_shrink_the_frames_memory_and_a_lying_answer_is_a_restart() {
    let dir = support::tempdir("hostile-protocol");
    let pkg = support::probe_package(&dir, "liar", "", "truncate_at: 3, absurd_at: 6");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let frames = support::render_range(&engine, &rx, 0..80);
    assert_eq!(frames.len(), 80, "the show went on");
    let s = engine.status();
    assert!(s.steps_failed >= 1, "{s:?}");
    let p = s.model_process.unwrap();
    assert_eq!(p.restarts, 1, "the lie is a broken worker: {p:?}");
    let exit = p.last_exit.unwrap_or_default();
    assert!(exit.contains("step_ms"), "{exit}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_seal_is_what_refused_the_shrink() {
    let dir = support::tempdir("hostile-truncate");
    let pkg = support::probe_package(&dir, "shrinker", "", "truncate_at: 1");
    let options = WorkerOptions {
        python: std::env::var_os("CUECAST_PYTHON").map(Into::into),
        ..WorkerOptions::default()
    };
    let package = Package::load(&pkg).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = Worker::start(&package, options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let pool = cuecast_engine::frame::FramePool::new(64, 36);
    let fps = package.info.fps;
    let frames = (0..4)
        .map(|i| cuecast_engine::generator::FrameInput::still(i, fps, vec![]))
        .collect();
    worker.step(frames, Default::default(), pool);
    match rx.recv_timeout(Duration::from_secs(20)).unwrap() {
        cuecast_engine::worker::WorkerEvent::Chunk(Err((_, e))) => {
            assert!(e.0.contains("Operation not permitted"), "{e}");
            assert!(!e.0.contains("shrunk"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_that_fails_every_step_costs_at_most_its_step_rate_and_the_status_keeps_up() {
    let dir = support::tempdir("hostile-failing");
    let pkg = support::probe_package(&dir, "failing", "", "raise_from: 2");
    let mut config = support::probe_show(&pkg);
    config.live = true;
    let (engine, _rx) = Engine::start_with_channel(config).unwrap();
    engine.set_output(64, 36, Fps::new(30, 1));
    // As a live element asks: a frame every 1/30 s, for two seconds.
    let started = Instant::now();
    let mut frame = 0;
    while started.elapsed() < Duration::from_secs(2) {
        engine.render(frame).unwrap();
        frame += 1;
        std::thread::sleep(Duration::from_millis(33));
    }
    let elapsed = started.elapsed().as_secs_f64();
    wait_for(
        "the status at the last frame",
        Duration::from_secs(2),
        || engine.status().frame + 1 >= frame,
    );
    let s = engine.status();
    // Chunks of 4 frames at 16 fps: at most 4 steps a second, whatever it costs.
    let most = (elapsed * 16.0 / 4.0).ceil() as u64 + 2;
    assert!(
        (1..=most).contains(&s.steps_failed),
        "{} failed steps in {elapsed:.1} s (at most {most}): {s:?}",
        s.steps_failed
    );
    assert!(s.failing_steps > 0, "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Renders until the model's process has been restarted once; how it ended.
fn killed_at_cap(
    engine: &cuecast_engine::Engine,
    rx: &std::sync::mpsc::Receiver<cuecast_engine::Rendered>,
) -> String {
    let mut next = 0;
    wait_for(
        "the model killed at its cap",
        Duration::from_secs(60),
        || {
            support::render_range(engine, rx, next..next + 4);
            next += 4;
            support::process(engine).restarts >= 1
        },
    );
    support::process(engine).last_exit.unwrap_or_default()
}

#[test]
fn a_model_that_outgrows_its_memory_cap_is_killed_and_started_again() {
    let dir = support::tempdir("hostile-memory");
    // It says it needs 0.1 GB: its cap is 1.1 GB (a quarter more, at least 1 GB more).
    // A long step deadline: only its memory may end it (a loaded machine takes a while
    // to fault in 256 MB).
    let pkg = support::probe_package(
        &dir,
        "grower",
        "memory_gb: 0.1\nstep_timeout_s: 30",
        "grow_mb: 256",
    );
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let p = support::process(&engine);
    assert_eq!(p.memory_cap_bytes, Some(1_100_000_000), "{p:?}");
    let exit = killed_at_cap(&engine, &rx);
    assert!(exit.contains("over its cap"), "{exit}");
    drop(engine);
    // Files in its /tmp are memory too (tmpfs), and outlive its processes.
    let pkg = support::probe_package(
        &dir,
        "filler",
        "memory_gb: 0.1\nstep_timeout_s: 30",
        "tmp_mb: 256",
    );
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let exit = killed_at_cap(&engine, &rx);
    assert!(exit.contains("over its cap"), "{exit}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_that_dies_at_every_start_is_tried_at_most_once_a_second_and_each_try_counted() {
    let dir = support::tempdir("hostile-restarts");
    // No saved state: a restart resets, and from the second process on, reset dies.
    let pkg = support::probe_package(&dir, "dier", "save_state: false", "die_in_reset: 2");
    let mut config = support::probe_show(&pkg);
    config.settings.restart_max_s = Some(0.0);
    let (engine, rx) = support::started(config);
    support::render_range(&engine, &rx, 0..8);
    support::kill(support::process(&engine).pid.unwrap());
    std::thread::sleep(Duration::from_secs(3));
    let p = support::process(&engine);
    assert!(
        (2..=5).contains(&p.restarts),
        "{} tries in 3 s: {p:?}",
        p.restarts
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restored_python_model_goes_on_from_its_checkpoint_and_marks_only_real_starts() {
    let dir = support::tempdir("hostile-restore");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let (engine, rx) = support::started(support::probe_show(&pkg));
    let show = engine.handle();
    show.start_take(&dir.join("t"), "t").unwrap();
    let before = support::render_range(&engine, &rx, 0..30);
    show.save_checkpoint(&dir.join("cp")).unwrap();
    // The world moves on five seconds past the checkpoint, a seed cue among them.
    support::render_range(&engine, &rx, 30..100);
    show.inbox()
        .submit_one(
            cuecast_engine::Cue::from_value(&serde_json::json!({"type": "seed", "value": 9}))
                .unwrap(),
        )
        .unwrap();
    support::render_range(&engine, &rx, 100..180);
    show.restore(cuecast_engine::Checkpoint::load(&dir.join("cp")).unwrap())
        .unwrap();
    // Not a frozen picture for the five seconds: the model goes on from the state it
    // had saved, a new model frame at its own rate (16 in 30 show frames).
    let after = support::render_range(&engine, &rx, 180..240);
    let model_frames: Vec<u64> = after.iter().map(|f| support::probe_pixel(f).0).collect();
    let at = support::probe_pixel(before.last().unwrap()).0;
    assert!(
        model_frames[0] >= at && model_frames[0] <= at + 12,
        "resumed at model frame {} for a checkpoint at {at}",
        model_frames[0]
    );
    for (j, m) in model_frames.iter().enumerate() {
        let expected = model_frames[0] + (j as u64 * 16) / 30;
        assert!(
            m.abs_diff(expected) <= 1,
            "show frame {} shows model frame {m}, {expected} expected: {model_frames:?}",
            180 + j
        );
    }
    show.stop_take().unwrap();
    drop(engine);
    let take = cuecast_engine::Take::open(&dir.join("t")).unwrap();
    let marked: Vec<(u64, bool, bool)> = take
        .frames
        .iter()
        .filter(|r| r.reset || r.restored.is_some())
        .map(|r| (r.frame, r.reset, r.restored.is_some()))
        .collect();
    // The seed cue started the model over once (one frame says so), the restore once.
    assert_eq!(marked.iter().filter(|m| m.1).count(), 1, "{marked:?}");
    assert_eq!(marked.iter().filter(|m| m.2).count(), 1, "{marked:?}");
    assert!(
        marked.iter().any(|m| m.1 && (100..180).contains(&m.0)),
        "{marked:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An 8192 x 8192 16-bit RGB PNG of one colour: 400 MB of pixels in a small file.
fn huge_png(path: &Path) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut e = png::Encoder::new(file, 8192, 8192);
    e.set_color(png::ColorType::Rgb);
    e.set_depth(png::BitDepth::Sixteen);
    let mut w = e.write_header().unwrap().into_stream_writer().unwrap();
    let row: Vec<u8> = [0xc0u8, 0x00, 0x40, 0x00, 0x20, 0x00].repeat(8192);
    for _ in 0..8192 {
        std::io::Write::write_all(&mut w, &row).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn a_huge_image_is_decoded_off_the_model_thread_once_and_its_cue_waits_for_it() {
    let dir = support::tempdir("hostile-image");
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    huge_png(&media.join("huge.png"));
    let pkg = support::probe_package(&dir, "probe", "", "");
    let mut config = support::probe_show(&pkg);
    config.media = Some(media.clone());
    // Live: a frame is not waited for, and a cue whose image is not ready waits.
    config.live = true;
    let (engine, rx) = support::started(config);
    let show = engine.handle();
    support::render_range(&engine, &rx, 0..10);
    let image = |name: &str| {
        cuecast_engine::Cue::from_value(&serde_json::json!({"type": "image", "name": name}))
            .unwrap()
    };
    let id = show.inbox().submit_one(image("huge.png")).unwrap();
    // The show goes on while the picture is decoded: frames are made, and the cue
    // applies on a later one, once its image is ready.
    let mut next = 10;
    let applied = loop {
        support::render_range(&engine, &rx, next..next + 10);
        next += 10;
        let log = show.cue_log(None, 10);
        if let Some(c) = log.iter().find(|c| c.id == id) {
            break c.frame;
        }
        assert!(next < 100_000, "the image cue never applied");
    };
    assert!(
        applied > 15,
        "applied at frame {applied}: it did not wait for its image"
    );
    // A seed cue starts the model over from the same image: not decoded again.
    let decoded = cuecast_engine::media::decoded();
    show.inbox()
        .submit_one(
            cuecast_engine::Cue::from_value(&serde_json::json!({"type": "seed", "value": 3}))
                .unwrap(),
        )
        .unwrap();
    support::render_range(&engine, &rx, next..next + 40);
    let log = show.cue_log(None, 10);
    assert_eq!(log.len(), 2, "the seed cue applied: {log:?}");
    assert_eq!(cuecast_engine::media::decoded(), decoded);
    // A link in the folder is refused when the cue arrives, whatever it names.
    std::os::unix::fs::symlink("/proc/self/pagemap", media.join("endless.png")).unwrap();
    let e = show.inbox().submit_one(image("endless.png")).unwrap_err();
    assert!(e.message.contains("a link"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_procedural_fallback_draws_the_world_from_above_its_hills() {
    use cuecast_engine::generator::Generator;
    // A seed whose hills rise above the camera's start (60 m): drawn from there, the
    // fallback would show the inside of a hill, one flat colour.
    let prompt = "snowy mountains";
    let seed = (0..500u64)
        .find(|&s| {
            let p = cuecast_engine::generator::procedural::Procedural::new(
                tch::Device::Cpu,
                s,
                prompt,
                false,
            );
            p.ground_height(0.0, 0.0).is_some_and(|g| g > 65.0)
        })
        .expect("a seed with a hill above the camera");
    let dir = support::tempdir("hostile-fallback");
    // No saved state, and from its second start on it dies in reset: down for good.
    let pkg = support::probe_package(&dir, "dier", "save_state: false", "die_in_reset: 2");
    let mut config = support::probe_show(&pkg);
    config.settings.seed = seed;
    config.settings.prompt = prompt.into();
    config.settings.fallback = cuecast_engine::engine::Fallback::Procedural;
    let (engine, rx) = support::started(config);
    support::render_range(&engine, &rx, 0..8);
    support::kill(support::process(&engine).pid.unwrap());
    wait_for("the model down", Duration::from_secs(5), || {
        support::process(&engine).restarts >= 1
    });
    let frames = support::render_range(&engine, &rx, 8..20);
    assert!(engine.status().fallback_frames > 0);
    let last = frames.last().unwrap();
    let colours: std::collections::HashSet<&[u8]> = last.chunks(4).collect();
    assert!(
        colours.len() > 50,
        "the fallback drew {} colours: the inside of a hill",
        colours.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
