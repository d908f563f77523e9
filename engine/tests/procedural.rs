//! The procedural world: reproducible from seed and cues, and drawn the same by both
//! renderers (the CPU's plain Rust and the tensor ops CUDA uses, run here on the CPU).

mod support;

use cuecast_engine::camera::Pose;
use cuecast_engine::generator::procedural::Procedural;
use cuecast_engine::generator::{Fps, FrameInput, Generator, Image, PromptState};
use cuecast_engine::{DeviceSpec, EngineConfig};
use serde_json::json;

fn run(seed: u64, cues: &[serde_json::Value], frames: u64) -> Vec<Vec<u8>> {
    let config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            device: DeviceSpec::Cpu,
            seed,
            prompt: "rolling green hills".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    support::frames(config, (160, 90), cues, frames)
}

#[test]
fn same_seed_and_cues_give_identical_frames() {
    let cues = [
        json!({"type": "action", "forward": 1, "yaw": 0.4, "at": {"frame": 2}}),
        json!({"type": "prompt", "text": "desert dunes at sunset", "transition_s": 0.5, "at": {"frame": 8}}),
        json!({"type": "param", "name": "fog", "value": 0.7, "ramp_s": 0.3, "at": {"frame": 12}}),
        json!({"type": "action", "pitch": -1, "duration_s": 0.3, "at": {"frame": 15}}),
    ];
    let a = run(42, &cues, 30);
    let b = run(42, &cues, 30);
    assert!(a == b, "same seed and cue log, different frames");
    // And the cues did something: the world is not static...
    assert!(a.windows(2).filter(|w| w[0] != w[1]).count() > 20);
    // ...and another seed is another world.
    assert_ne!(run(43, &cues, 1)[0], a[0]);
}

fn render(tensor: bool, pose: Pose, prompt: &str, tod: f64, detail: f32) -> (Vec<u8>, Vec<f32>) {
    render_at(tensor, pose, prompt, tod, detail, (192, 108))
}

/// One frame of `w` x `h` from `gen` for `input`.
fn step(gen: &mut Procedural, input: &FrameInput, (w, h): (usize, usize)) -> Vec<u8> {
    let mut data = vec![0u8; w * h * 4];
    gen.step(
        input,
        &mut Image {
            width: w,
            height: h,
            data: &mut data,
        },
    )
    .unwrap();
    data
}

fn render_at(
    tensor: bool,
    pose: Pose,
    prompt: &str,
    tod: f64,
    detail: f32,
    (w, h): (usize, usize),
) -> (Vec<u8>, Vec<f32>) {
    let mut gen = Procedural::new(tch::Device::Cpu, 7, prompt, tensor);
    let prompt = PromptState {
        text: prompt.into(),
        previous: None,
        mix: 1.0,
    };
    let input = FrameInput {
        camera: pose,
        prompt,
        seed: 7,
        detail,
        ..FrameInput::still(0, Fps::new(30, 1), vec![tod, 0.3, 1.0])
    };
    let data = step(&mut gen, &input, (w, h));
    let depth = gen.depth().unwrap();
    assert_eq!(depth.size(), [h as i64, w as i64]);
    (data, Vec::<f32>::try_from(depth.flatten(0, -1)).unwrap())
}

#[test]
fn the_tensor_renderer_draws_what_the_cpu_renderer_draws() {
    let ground = |x: f64, z: f64| {
        Procedural::new(tch::Device::Cpu, 7, "tropical islands", false)
            .ground_height(x, z)
            .unwrap()
    };
    let views = [
        (
            "rolling green hills",
            Pose {
                pos: [10.0, 80.0, -30.0],
                yaw: 20.0,
                pitch: 0.0,
                fov: 70.0,
            },
            10.0,
        ),
        (
            "tropical islands",
            Pose {
                pos: [300.0, ground(300.0, 40.0) + 60.0, 40.0],
                yaw: -135.0,
                pitch: -25.0,
                fov: 60.0,
            },
            17.5,
        ),
        (
            "snowy mountains at dawn",
            Pose {
                pos: [-200.0, 420.0, 900.0],
                yaw: 75.0,
                pitch: 12.0,
                fov: 90.0,
            },
            7.0,
        ),
    ];
    // At 1280x720 too, looking into the evening sun: there the CPU shades the sky only
    // every few rows (and every row near the sun's disc) and blends between.
    let sunset = (
        "rolling green hills",
        Pose {
            pos: [10.0, 80.0, -30.0],
            yaw: 90.0,
            pitch: 0.0,
            fov: 70.0,
        },
        17.8,
    );
    let sized = views
        .into_iter()
        .map(|v| (v, (192, 108)))
        .chain([(sunset, (1280, 720)), (sunset, (192, 108))]);
    for ((prompt, pose, tod), size) in sized {
        let (cpu, cpu_depth) = render_at(false, pose, prompt, tod, 1.0, size);
        let (ten, ten_depth) = render_at(true, pose, prompt, tod, 1.0, size);
        if tod == 17.8 {
            // The sun's disc is in the picture: pixels at full red.
            let sun = cpu.chunks_exact(4).filter(|p| p[0] == 255).count();
            eprintln!("{size:?}: {sun} sunlit pixels");
            assert!(sun > 0, "the sun is not in view");
        }
        let px = cpu.len() / 4;
        let mut off = 0;
        let mut total = 0u64;
        for (a, b) in cpu.chunks_exact(4).zip(ten.chunks_exact(4)) {
            let d = (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap();
            total += u64::from(d);
            off += usize::from(d > 4);
        }
        // Float rounding differs between the two (libm vs vectorised exp, summation
        // order), so a row boundary can move by a pixel; nothing more.
        assert!(
            off * 100 < px,
            "{prompt} {size:?}: {off} of {px} pixels differ by more than 4 levels"
        );
        assert!(
            (total as f64 / px as f64) < 1.0,
            "{prompt} {size:?}: mean difference {}",
            total as f64 / px as f64
        );
        let far = cpu_depth
            .iter()
            .zip(&ten_depth)
            .filter(|(a, b)| (*a - *b).abs() > 0.01 * a.abs().max(1.0))
            .count();
        assert!(
            far * 100 < px,
            "{prompt}: {far} of {px} depths differ by over 1 %"
        );
        assert!(
            cpu_depth.iter().all(|d| d.is_finite() && *d > 0.0),
            "{prompt}: depth is finite and positive"
        );
    }
}

/// Lower detail (what the engine asks for while steps run late) draws the same view,
/// coarser, at the full output size, with depth for every pixel, and the same every time.
#[test]
fn lower_detail_draws_the_same_view_coarser() {
    for pitch in [0.0, -20.0] {
        let pose = Pose {
            pos: [10.0, 80.0, -30.0],
            yaw: 20.0,
            pitch,
            fov: 70.0,
        };
        let (full, _) = render(false, pose, "rolling green hills", 10.0, 1.0);
        for detail in [0.75, 0.5] {
            let (coarse, depth) = render(false, pose, "rolling green hills", 10.0, detail);
            assert_eq!(coarse.len(), full.len());
            assert_ne!(
                coarse, full,
                "pitch {pitch}, detail {detail}: nothing changed"
            );
            let px = full.len() / 4;
            let total: u64 = full
                .chunks_exact(4)
                .zip(coarse.chunks_exact(4))
                .map(|(a, b)| u64::from((0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap()))
                .sum();
            let mean = total as f64 / px as f64;
            assert!(
                mean < 6.0,
                "pitch {pitch}, detail {detail}: mean difference {mean} from full detail"
            );
            assert!(depth.iter().all(|d| d.is_finite() && *d > 0.0));
            let (again, _) = render(false, pose, "rolling green hills", 10.0, detail);
            assert_eq!(
                again, coarse,
                "pitch {pitch}, detail {detail}: not repeatable"
            );
        }
    }
}

/// With no take recording, the engine asks for no depth: the same picture, none made.
#[test]
fn a_frame_without_depth_is_the_same_picture() {
    let pose = Pose {
        pos: [10.0, 80.0, -30.0],
        yaw: 20.0,
        pitch: -15.0,
        fov: 70.0,
    };
    for pitch in [0.0, -15.0] {
        let pose = Pose { pitch, ..pose };
        let mut gen = Procedural::new(tch::Device::Cpu, 7, "rolling green hills", false);
        let (w, h) = (320usize, 180usize);
        let mut frame = |depth: bool| {
            let input = FrameInput {
                camera: pose,
                seed: 7,
                depth,
                ..FrameInput::still(0, Fps::new(30, 1), vec![10.0, 0.3, 1.0])
            };
            (step(&mut gen, &input, (w, h)), gen.depth())
        };
        let (with, d) = frame(true);
        assert_eq!(d.unwrap().size(), [h as i64, w as i64]);
        let (without, d) = frame(false);
        assert!(
            d.is_none(),
            "pitch {pitch}: depth made though not asked for"
        );
        assert!(with == without, "pitch {pitch}: the picture changed");
    }
}
