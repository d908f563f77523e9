//! The world's tests: prompts, params, scenes and their transitions.

use super::*;
use crate::model::{ParamSpec, PromptMode};
use serde_json::json;

fn info() -> ModelInfo {
    ModelInfo {
        name: "test".into(),
        width: 64,
        height: 36,
        fps: Fps::new(30, 1),
        any_size: true,
        actions: vec![],
        params: vec![
            ParamSpec {
                name: "fog".into(),
                default: 0.2,
                min: 0.0,
                max: 1.0,
                description: String::new(),
            },
            ParamSpec {
                name: "speed".into(),
                default: 1.0,
                min: 0.0,
                max: 10.0,
                description: String::new(),
            },
        ],
        prompt: PromptMode::Text,
        pitch_limit: 45.0,
        depth: false,
        hash: String::new(),
        inputs: Default::default(),
        chunking: Default::default(),
        audio: None,
    }
}

fn world(scenes: Vec<Scene>) -> World {
    World::new(
        &info(),
        Fps::new(30, 1),
        7,
        "hills",
        scenes,
        Pose::default(),
    )
}

fn cue(v: serde_json::Value) -> Cue {
    Cue::from_value(&v).unwrap()
}

#[test]
fn param_ramps_linearly_from_where_it_is() {
    let mut w = world(vec![]);
    w.apply(
        &cue(json!({"type": "param", "name": "fog", "value": 1.0, "ramp_s": 1.0})),
        10,
    );
    assert_eq!(w.params(10)[0], 0.2);
    assert!((w.params(25)[0] - 0.6).abs() < 1e-12);
    assert_eq!(w.params(40)[0], 1.0);
    // Retargeting mid-ramp starts from the current value, without a jump.
    w.apply(
        &cue(json!({"type": "param", "name": "fog", "value": 0.0, "ramp_s": 1.0})),
        25,
    );
    assert!((w.params(25)[0] - 0.6).abs() < 1e-12);
}

#[test]
fn prompt_blends_over_its_transition() {
    let mut w = world(vec![]);
    w.apply(
        &cue(json!({"type": "prompt", "text": "desert", "transition_s": 1.0})),
        30,
    );
    let s = w.prompt_state(30);
    assert_eq!(
        (s.text.as_str(), s.previous.as_deref(), s.mix),
        ("desert", Some("hills"), 0.0)
    );
    assert_eq!(w.prompt_state(45).mix, 0.5);
    let s = w.prompt_state(60);
    assert_eq!((s.previous, s.mix), (None, 1.0));
}

#[test]
fn speed_param_scales_camera_motion() {
    let mut w = world(vec![]);
    w.apply(
        &cue(json!({"type": "param", "name": "speed", "value": 2.0})),
        0,
    );
    w.apply(&cue(json!({"type": "action", "forward": 1})), 0);
    for f in 1..=30 {
        w.advance(f, |_, _| None);
    }
    assert!((w.camera().pos[2] + 2.0 * crate::camera::MOVE_SPEED).abs() < 1e-9);
}

#[test]
fn freeze_holds_the_camera() {
    let mut w = world(vec![]);
    w.apply(&cue(json!({"type": "action", "forward": 1})), 0);
    w.advance(1, |_, _| None);
    w.apply(&cue(json!({"type": "freeze"})), 2);
    let held = w.camera();
    for f in 2..10 {
        w.advance(f, |_, _| None);
    }
    assert_eq!(w.camera(), held);
    w.apply(&cue(json!({"type": "resume"})), 10);
    w.advance(10, |_, _| None);
    assert_ne!(w.camera(), held);
}

#[test]
fn fade_to_black_and_back() {
    let mut w = world(vec![]);
    w.apply(
        &cue(json!({"type": "fade", "to": "black", "duration_s": 1.0})),
        0,
    );
    assert_eq!(w.fade_level(15), 0.5);
    assert_eq!(w.fade_level(30), 0.0);
    w.apply(
        &cue(json!({"type": "fade", "to": "program", "duration_s": 0})),
        31,
    );
    assert_eq!(w.fade_level(31), 1.0);
}

#[test]
fn seed_cue_asks_for_a_reset() {
    let mut w = world(vec![]);
    let fx = w.apply(&cue(json!({"type": "seed", "value": 99})), 3);
    assert!(fx.reset);
    assert_eq!(w.seed(), 99);
}

fn scene() -> Scene {
    Scene {
        name: "night".into(),
        prompt: Some("canyon".into()),
        seed: Some(5),
        camera: Some(Pose {
            pos: [1.0, 2.0, 3.0],
            yaw: 10.0,
            pitch: 0.0,
            fov: 60.0,
        }),
        params: [("fog".to_string(), 0.9)].into(),
    }
}

#[test]
fn scene_cut_loads_everything_at_once() {
    let mut w = world(vec![scene()]);
    let fx = w.apply(&cue(json!({"type": "scene", "name": "night"})), 5);
    assert!(fx.reset);
    assert_eq!(w.prompt(), "canyon");
    assert_eq!(w.prompt_state(5).mix, 1.0);
    assert_eq!(w.seed(), 5);
    assert_eq!(w.camera().pos, [1.0, 2.0, 3.0]);
    assert_eq!(w.params(5)[0], 0.9);
}

#[test]
fn scene_fade_switches_at_black() {
    let mut w = world(vec![scene()]);
    w.apply(
        &cue(json!({"type": "scene", "name": "night", "transition": "fade", "transition_s": 2.0})),
        0,
    );
    for f in 1..30 {
        assert!(!w.advance(f, |_, _| None).reset);
        assert_eq!(w.prompt(), "hills");
    }
    assert!((w.fade_level(29) - 1.0 / 30.0).abs() < 1e-12);
    assert!(w.advance(30, |_, _| None).reset);
    assert_eq!(w.prompt(), "canyon");
    assert_eq!(w.fade_level(30), 0.0);
    assert_eq!(w.fade_level(45), 0.5);
    assert_eq!(w.fade_level(60), 1.0);
}

#[test]
fn context_rejects_unknown_or_out_of_range_params() {
    let ctx = ShowContext {
        params: info().params,
        scenes: vec!["a".into()],
        fps: Some(Fps::new(25, 1)),
        ..Default::default()
    };
    let e = ctx
        .check(&cue(json!({"type": "param", "name": "haze", "value": 1})))
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("name"));
    assert!(
        e.message.contains("haze") && e.message.contains("fog"),
        "{e}"
    );
    let e = ctx
        .check(&cue(json!({"type": "param", "name": "fog", "value": 2})))
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("value"));
    assert!(e.message.contains("[0, 1]"), "{e}");
    let e = ctx
        .check(&cue(json!({"type": "scene", "name": "b"})))
        .unwrap_err();
    assert!(e.message.contains("unknown scene \"b\""), "{e}");
    let e = ctx
        .check(&cue(
            json!({"type": "freeze", "at": {"timecode": "00:00:00:27"}}),
        ))
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("at.timecode"));
    ctx.check(&cue(json!({"type": "scene", "name": "a"})))
        .unwrap();
}

#[test]
fn input_cues_hold_keys_and_buttons_and_pile_up_movement_until_a_frame_takes_it() {
    let mut w = world(vec![]);
    w.apply(
        &cue(json!({"type": "input", "keys": ["KeyW", "ShiftLeft"], "mouse": {"dx": 3, "dy": -1, "buttons": ["left"]}})),
        0,
    );
    w.apply(
        &cue(json!({"type": "input", "mouse": {"dx": 2, "dy": 0.5}})),
        1,
    );
    assert_eq!(w.input().keys, ["KeyW", "ShiftLeft"]);
    assert_eq!(w.input().buttons, [MouseButton::Left]);
    assert_eq!(w.take_mouse(), [5.0, -0.5]);
    assert_eq!(w.take_mouse(), [0.0, 0.0], "movement is handed over once");
    w.apply(&cue(json!({"type": "input", "keys": []})), 2);
    assert!(w.input().keys.is_empty());
    assert_eq!(w.input().buttons, [MouseButton::Left], "buttons stay held");
    // A flood of movement cannot pile up without bound.
    for f in 0..100 {
        w.apply(
            &cue(json!({"type": "input", "mouse": {"dx": 10000, "dy": -10000}})),
            f,
        );
    }
    assert_eq!(
        w.take_mouse(),
        [MAX_PENDING_MOUSE_PX, -MAX_PENDING_MOUSE_PX]
    );
}

#[test]
fn an_image_cue_names_the_image_and_starts_the_model_over() {
    let mut w = world(vec![]);
    let fx = w.apply(&cue(json!({"type": "image", "name": "start.png"})), 4);
    assert!(fx.reset);
    assert_eq!(w.image(), Some("start.png"));
    w.check(&info()).unwrap();
}

#[test]
fn context_refuses_inputs_the_model_does_not_take_and_images_outside_the_media_folder() {
    let media = std::env::temp_dir().join(format!("cuecast-media-{}", std::process::id()));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("start.png"), b"x").unwrap();
    std::fs::create_dir_all(media.join("folder.png")).unwrap();
    let mut ctx = ShowContext::default();
    let keys = cue(json!({"type": "input", "keys": ["KeyW"]}));
    let mouse = cue(json!({"type": "input", "mouse": {"dx": 1, "dy": 1}}));
    let image = cue(json!({"type": "image", "name": "start.png"}));
    assert_eq!(ctx.check(&keys).unwrap_err().field.as_deref(), Some("keys"));
    assert_eq!(
        ctx.check(&mouse).unwrap_err().field.as_deref(),
        Some("mouse")
    );
    let e = ctx.check(&image).unwrap_err();
    assert!(e.message.contains("takes no image"), "{e}");
    ctx.inputs = ModelInputs {
        keys: vec!["KeyW".into()],
        mouse: true,
        camera_pose: false,
        image: ImageInput::Optional,
        video: None,
        audio: None,
    };
    ctx.check(&keys).unwrap();
    ctx.check(&mouse).unwrap();
    let e = ctx.check(&image).unwrap_err();
    assert!(e.message.contains("no media folder"), "{e}");
    ctx.media = Some(media.clone());
    ctx.check(&image).unwrap();
    for missing in ["other.png", "folder.png"] {
        let e = ctx
            .check(&cue(json!({"type": "image", "name": missing})))
            .unwrap_err();
        assert!(e.message.contains("no image"), "{e}");
    }
    // A link in the folder is refused, whatever it names: an endless file, a picture
    // outside the folder.
    std::os::unix::fs::symlink("/proc/self/pagemap", media.join("endless.png")).unwrap();
    std::os::unix::fs::symlink(media.join("start.png"), media.join("link.png")).unwrap();
    for link in ["endless.png", "link.png"] {
        let e = ctx
            .check(&cue(json!({"type": "image", "name": link})))
            .unwrap_err();
        assert!(e.message.contains("a link"), "{e}");
    }
    std::fs::remove_dir_all(media).unwrap();
}
