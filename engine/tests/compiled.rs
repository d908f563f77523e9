//! Contract 2 in process: the reference models exported by `models/compiled/export.py`
//! as AOTInductor `.pt2` and TorchScript packages, run by cuecast with no Python. The
//! compiled graphs give the eager model's outputs; packages that do not match their
//! manifest are refused at load, by name; the models run in a show.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cuecast_engine::generator::aoti::Pt2;
use cuecast_engine::generator::package::Package;
use cuecast_engine::{DeviceSpec, Engine, EngineConfig};
use serde_json::json;
use tch::{Device, Kind, Tensor};

/// Exported once for all the tests of this binary (AOTInductor takes about a minute).
fn packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::compiled_packages(&support::tempdir("compiled")))
}

/// A copy of package `name` in a new folder, its manifest edited by `edit`.
fn edited(name: &str, tag: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let from = packages().join(name);
    let to = support::tempdir(&format!("compiled-{tag}"));
    for e in std::fs::read_dir(&from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let manifest = to.join("cuecast-model.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(text)).unwrap();
    to
}

fn show(backend: &str, model: &Path) -> EngineConfig {
    EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            backend: backend.parse().unwrap(),
            model: Some(model.to_owned()),
            device: DeviceSpec::Cpu,
            model_threads: Some(1),
            seed: 3,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn load_error(backend: &str, model: &Path) -> String {
    match Engine::start_with_channel(show(backend, model)) {
        Ok(_) => panic!("{} loaded", model.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pt2_graphs_give_the_eager_models_outputs_within_1e_5() {
    for name in ["tiny-world-aoti", "chunks-aoti"] {
        let dir = packages().join(name);
        let reference = Tensor::read_npz(dir.join("reference.npz")).unwrap();
        // "NN.graph.in|out.II" -> the call's inputs and outputs, in order.
        let mut calls: BTreeMap<(String, String), (Vec<Tensor>, Vec<Tensor>)> = BTreeMap::new();
        for (key, t) in reference {
            let parts: Vec<&str> = key.split('.').collect();
            let call = calls
                .entry((parts[0].to_owned(), parts[1].to_owned()))
                .or_default();
            match parts[2] {
                "in" => call.0.push(t),
                _ => call.1.push(t),
            }
        }
        assert!(calls.len() >= 4, "{name}: a reset and steps");
        let mut graphs: BTreeMap<String, Pt2> = BTreeMap::new();
        let mut worst = 0f64;
        for ((_, graph), (inputs, want)) in &calls {
            if !graphs.contains_key(graph) {
                let g = Pt2::load(&dir.join("model.pt2"), graph, Device::Cpu).unwrap();
                assert_eq!(g.metadata().get("AOTI_DEVICE_KEY").unwrap(), "cpu");
                graphs.insert(graph.clone(), g);
            }
            let got = graphs[graph].run(inputs).unwrap();
            assert_eq!(got.len(), want.len(), "{name} {graph}: outputs");
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g.size(), w.size(), "{name} {graph} output {i}");
                if g.kind() == Kind::Int64 {
                    assert!(g.equal(w), "{name} {graph} output {i}");
                    continue;
                }
                let diff = (g - w).abs().max().double_value(&[]);
                if graph != "reset" && i == 0 {
                    // The frames, in [0, 1]: within 1e-5.
                    worst = worst.max(diff);
                    assert!(diff <= 1e-5, "{name} {graph} frames: off by {diff}");
                } else {
                    // Depth in metres and the state: within 1e-5 of their scale.
                    let scale = w.abs().max().double_value(&[]).max(1.0);
                    assert!(
                        diff <= 1e-5 * scale,
                        "{name} {graph} output {i}: off by {diff} at a scale of {scale}"
                    );
                }
            }
        }
        println!("{name}: the .pt2's frames are at most {worst:.2e} from eager PyTorch's");
    }
}

#[test]
fn packages_that_do_not_match_their_manifest_are_refused_at_load_by_name() {
    // A graph made for 256 wide, a manifest saying 128.
    let narrow = edited("tiny-world-aoti", "narrow", |m| {
        m.replace("width: 256", "width: 128")
    });
    let e = load_error("aoti", &narrow);
    assert!(
        e.contains(&narrow.display().to_string())
            && e.contains("model.pt2")
            && e.contains("rgb must be float32 [1, 3, 144, 128]")
            && e.contains("got float32 [1, 3, 144, 256]"),
        "{e}"
    );
    // One axis more than the graph takes: AOTInductor's own input check, by index.
    let axes = edited("tiny-world-aoti", "axes", |m| {
        m.replace("[forward, strafe, yaw]", "[forward, strafe, yaw, pitch]")
    });
    let e = load_error("aoti", &axes);
    assert!(
        e.contains("step() takes float32[1,3] as input 5 (axes), cuecast gives float32[1,4]"),
        "{e}"
    );
    // Fewer state tensors named than the graphs hand back.
    let state = edited("chunks-aoti", "state", |m| {
        m.replace("state: [latents, seed]", "state: [latents]")
    });
    let e = load_error("aoti", &state);
    assert!(
        e.contains("reset() must return the 1 state tensors the manifest names (latents), got 2"),
        "{e}"
    );
    // A chunked package whose first step differs needs its first_step graph.
    let first = edited("tiny-world-aoti", "first", |m| {
        m.replace("fps: 30", "fps: 30\nfirst_step_frames: 2")
    });
    let e = load_error("aoti", &first);
    assert!(e.contains("cannot load its `first_step` graph"), "{e}");
    // The runtime is the backend's.
    let e = load_error("python", &packages().join("tiny-world-aoti"));
    assert!(e.contains("load it with backend aoti"), "{e}");
    let e = load_error("aoti", &packages().join("tiny-world-torchscript"));
    assert!(e.contains("load it with backend torchscript"), "{e}");
    // A package without its weights.
    let bare = edited("tiny-world-aoti", "bare", |m| m);
    std::fs::remove_file(bare.join("model.pt2")).unwrap();
    let e = load_error("aoti", &bare);
    assert!(e.contains("model.pt2") && e.contains("No such file"), "{e}");
}

fn render(config: EngineConfig, cues: &[serde_json::Value], n: u64) -> Vec<Vec<u8>> {
    let (engine, rx) = support::with_cues(config, (256, 144), cues);
    let frames = support::frames_of(&engine, &rx, 0..n);
    let status = engine.status();
    assert_eq!(status.steps_failed, 0, "no failed steps");
    assert!(
        status.model_process.is_none(),
        "no process: it runs in this one"
    );
    frames
}

#[test]
fn compiled_models_run_in_a_show_and_answer_their_inputs() {
    let chunks = packages().join("chunks-aoti");
    let info = Package::load(&chunks).unwrap().info;
    assert_eq!(
        (
            info.chunking.first_step_frames,
            info.chunking.frames_per_step
        ),
        (3, 4)
    );
    let still = render(show("aoti", &chunks), &[], 24);
    assert_ne!(still[0], still[23], "the world moves on");
    assert_eq!(
        still,
        render(show("aoti", &chunks), &[], 24),
        "the same seed, the same frames"
    );
    let walking = render(
        show("aoti", &chunks),
        &[json!({"type": "input", "keys": ["KeyW", "KeyD"]})],
        24,
    );
    assert_ne!(walking[23], still[23], "keys steer it");

    // The same one-frame model as a .pt2 and as TorchScript: the same frames, within a
    // level of rounding.
    let aoti = render(show("aoti", &packages().join("tiny-world-aoti")), &[], 8);
    let ts = render(
        show("torchscript", &packages().join("tiny-world-torchscript")),
        &[],
        8,
    );
    for (f, (a, t)) in aoti.iter().zip(&ts).enumerate() {
        let off = a.iter().zip(t).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(off <= 1, "frame {f}: aoti and torchscript differ by {off}");
    }
    assert_ne!(aoti[0], aoti[7]);
}

#[test]
fn a_compiled_models_saved_state_resumes_it_exactly() {
    use cuecast_engine::generator::inprocess::InProcessModel;
    use cuecast_engine::generator::FrameInput;
    let package = Package::load(&packages().join("chunks-aoti")).unwrap();
    let info = package.info.clone();
    let chunk = |from: u64, n: u32| -> Vec<FrameInput> {
        (from..from + u64::from(n))
            .map(|k| {
                let mut f = FrameInput::still(k, info.fps, vec![0.4, 1.5]);
                f.input.keys = vec!["KeyW".into(), "KeyD".into()];
                f.input.mouse = [3.0, -1.0];
                f
            })
            .collect()
    };
    let _guard = tch::no_grad_guard();
    let mut a = InProcessModel::load(&package, Device::Cpu, 5, None).unwrap();
    a.step(&chunk(0, 3)).unwrap();
    a.step(&chunk(3, 4)).unwrap();
    let saved = a.save_state();
    assert_eq!(
        saved.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["latents", "seed"]
    );
    let next: Vec<Tensor> = (0..2)
        .map(|k| a.step(&chunk(7 + 4 * k, 4)).unwrap().rgb)
        .collect();
    // Another model, from another seed, given the saved state, makes the same frames.
    let mut b = InProcessModel::load(&package, Device::Cpu, 77, None).unwrap();
    let other = b.step(&chunk(0, 3)).unwrap().rgb;
    assert!(!other.equal(&next[0].narrow(0, 0, 3)));
    b.load_state(&saved).unwrap();
    for (k, want) in next.iter().enumerate() {
        let got = b.step(&chunk(7 + 4 * k as u64, 4)).unwrap().rgb;
        assert!(got.equal(want), "chunk {k} after the saved state differs");
    }
    // A state of another shape is refused by name, and changes nothing.
    let wrong = vec![
        (
            "latents".to_owned(),
            Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        ),
        (saved[1].0.clone(), saved[1].1.shallow_clone()),
    ];
    let e = b.load_state(&wrong).unwrap_err().to_string();
    assert!(
        e.contains("\"latents\"") && e.contains("float32 [4, 8, 18, 32]"),
        "{e}"
    );
    let nan = vec![
        (
            "latents".to_owned(),
            Tensor::full([4, 8, 18, 32], f64::NAN, (Kind::Float, Device::Cpu)),
        ),
        (saved[1].0.clone(), saved[1].1.shallow_clone()),
    ];
    let e = b.load_state(&nan).unwrap_err().to_string();
    assert!(e.contains("\"latents\" has NaN"), "{e}");
    let again = b.step(&chunk(15, 4)).unwrap().rgb;
    assert_eq!(again.size(), [4, 3, 144, 256]);

    // In a show: a checkpoint saved live restores into another show of the model.
    let dir = support::tempdir("compiled-checkpoint");
    let (engine, rx) = support::with_cues(
        show("aoti", &packages().join("chunks-aoti")),
        (256, 144),
        &[],
    );
    support::frames_of(&engine, &rx, 0..20);
    engine.handle().save_checkpoint(&dir.join("c")).unwrap();
    drop(engine);
    let ckpt = cuecast_engine::checkpoint::Checkpoint::load(&dir.join("c")).unwrap();
    assert_eq!(ckpt.manifest.state_tensors, ["latents", "seed"]);
    let (engine, rx) = support::with_cues(
        show("aoti", &packages().join("chunks-aoti")),
        (256, 144),
        &[],
    );
    support::frames_of(&engine, &rx, 0..5);
    engine.handle().restore(ckpt).unwrap();
    support::frames_of(&engine, &rx, 5..20);
    assert_eq!(engine.status().steps_failed, 0);
}
