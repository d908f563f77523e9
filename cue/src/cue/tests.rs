//! The cue language's tests: every type, every bound, every refusal named.

use super::*;
use serde_json::json;

fn err(v: Value) -> CueError {
    Cue::from_value(&v).expect_err("cue should be rejected")
}

#[test]
fn parses_every_cue_type() {
    let cues = [
        json!({"type": "prompt", "text": "snowy mountains at dawn"}),
        json!({"type": "action", "forward": 1, "yaw": -0.5, "duration_s": 2}),
        json!({"type": "camera_path", "points": [{"t": 0, "pos": [0, 50, 0], "yaw": 0, "pitch": -5},
                                                {"t": 4, "pos": [0, 60, -100], "yaw": 30, "pitch": 0, "fov": 50}], "loop": true}),
        json!({"type": "param", "name": "fog", "value": 0.5, "ramp_s": 2}),
        json!({"type": "scene", "name": "intro", "transition": "fade", "transition_s": 2}),
        json!({"type": "seed", "value": 42}),
        json!({"type": "marker", "label": "take 1 starts"}),
        json!({"type": "freeze"}),
        json!({"type": "resume"}),
        json!({"type": "fade", "to": "black", "duration_s": 0.5}),
    ];
    for v in cues {
        let cue = Cue::from_value(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(cue.type_name(), v["type"].as_str().unwrap());
        // The schema round-trips: what we write in logs parses back to the same cue.
        assert_eq!(Cue::from_value(&cue.to_value()).unwrap(), cue);
        let text = serde_json::to_string(&cue).unwrap();
        assert_eq!(serde_json::from_str::<Cue>(&text).unwrap(), cue);
    }
}

#[test]
fn serde_reads_cues_through_the_parser_and_names_the_field() {
    let e = serde_json::from_str::<Vec<Cue>>(
        r#"[{"type": "seed", "value": 1}, {"type": "action", "forwrd": 1}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("forwrd"), "{e}");
    let e = serde_json::from_str::<Cue>(r#"{"type": "action", "pitch": 9}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pitch"), "{e}");
}

#[test]
fn defaults_are_filled_in() {
    let c = Cue::from_value(&json!({"type": "prompt", "text": "x"})).unwrap();
    assert_eq!(
        c.kind,
        CueKind::Prompt {
            text: "x".into(),
            transition_s: 1.0
        }
    );
    let c = Cue::from_value(&json!({"type": "scene", "name": "a"})).unwrap();
    assert_eq!(
        c.kind,
        CueKind::Scene {
            name: "a".into(),
            transition: SceneTransition::Cut,
            transition_s: 1.0
        }
    );
}

#[test]
fn unknown_type_is_named() {
    let e = err(json!({"type": "explode"}));
    assert_eq!(e.field.as_deref(), Some("type"));
    assert!(
        e.message.contains("explode") && e.message.contains("prompt"),
        "{e}"
    );
}

#[test]
fn missing_type_is_named() {
    assert_eq!(err(json!({"text": "x"})).field.as_deref(), Some("type"));
}

#[test]
fn not_an_object() {
    let e = err(json!([1, 2]));
    assert!(e.field.is_none() && e.message.contains("object"), "{e}");
}

#[test]
fn out_of_range_action_is_named() {
    let e = err(json!({"type": "action", "forward": 1.5}));
    assert_eq!(e.field.as_deref(), Some("forward"));
    assert!(
        e.message.contains("[-1, 1]") && e.message.contains("1.5"),
        "{e}"
    );
}

#[test]
fn wrong_type_of_value_is_named() {
    let e = err(json!({"type": "action", "yaw": "left"}));
    assert_eq!(e.field.as_deref(), Some("yaw"));
    assert!(e.message.contains("number"), "{e}");
}

#[test]
fn empty_action_is_rejected() {
    let e = err(json!({"type": "action"}));
    assert!(e.message.contains("at least one"), "{e}");
}

#[test]
fn unknown_field_is_named() {
    let e = err(json!({"type": "action", "forwrd": 1}));
    assert_eq!(e.field.as_deref(), Some("forwrd"));
    assert_eq!(e.message, "unknown field");
}

#[test]
fn missing_required_field_is_named() {
    assert_eq!(
        err(json!({"type": "prompt"})).field.as_deref(),
        Some("text")
    );
    assert_eq!(
        err(json!({"type": "param", "name": "fog"}))
            .field
            .as_deref(),
        Some("value")
    );
    assert_eq!(err(json!({"type": "fade"})).field.as_deref(), Some("to"));
}

#[test]
fn blank_prompt_is_rejected() {
    assert_eq!(
        err(json!({"type": "prompt", "text": "  "}))
            .field
            .as_deref(),
        Some("text")
    );
}

#[test]
fn negative_or_huge_durations_are_rejected() {
    assert_eq!(
        err(json!({"type": "prompt", "text": "x", "transition_s": -1}))
            .field
            .as_deref(),
        Some("transition_s")
    );
    assert_eq!(
        err(json!({"type": "fade", "to": "black", "duration_s": 1e9}))
            .field
            .as_deref(),
        Some("duration_s")
    );
}

#[test]
fn bad_enum_values_are_named() {
    assert_eq!(
        err(json!({"type": "fade", "to": "white"})).field.as_deref(),
        Some("to")
    );
    assert_eq!(
        err(json!({"type": "scene", "name": "a", "transition": "wipe"}))
            .field
            .as_deref(),
        Some("transition")
    );
}

#[test]
fn seed_must_be_a_whole_number() {
    assert_eq!(
        err(json!({"type": "seed", "value": -3})).field.as_deref(),
        Some("value")
    );
    assert_eq!(
        err(json!({"type": "seed", "value": 1.5})).field.as_deref(),
        Some("value")
    );
}

#[test]
fn camera_path_errors_name_the_point() {
    let e = err(json!({"type": "camera_path", "points": [
        {"t": 0, "pos": [0, 1, 2], "yaw": 0, "pitch": 0},
        {"t": 1, "pos": [0, 1], "yaw": 0, "pitch": 0}]}));
    assert_eq!(e.field.as_deref(), Some("points[1].pos"));
    let e = err(json!({"type": "camera_path", "points": [
        {"t": 2, "pos": [0, 1, 2], "yaw": 0, "pitch": 0},
        {"t": 1, "pos": [0, 1, 3], "yaw": 0, "pitch": 0}]}));
    assert_eq!(e.field.as_deref(), Some("points[1].t"));
    let e = err(json!({"type": "camera_path", "points": [
        {"t": 0, "pos": [0, 1, 2], "yaw": 0, "pitch": 95}]}));
    assert_eq!(e.field.as_deref(), Some("points[0].pitch"));
    let e = err(json!({"type": "camera_path", "points": []}));
    assert_eq!(e.field.as_deref(), Some("points"));
}

#[test]
fn camera_path_refuses_absurd_angles_and_positions() {
    let path = |yaw: Value, pos: Value| {
        json!({"type": "camera_path", "points": [
            {"t": 0, "pos": [0, 100, 0], "yaw": 0, "pitch": 0},
            {"t": 1, "pos": pos, "yaw": yaw, "pitch": 0}]})
    };
    let e = err(path(json!(1e300), json!([0, 100, 0])));
    assert_eq!(e.field.as_deref(), Some("points[1].yaw"), "{e}");
    let e = err(path(json!(-3600.5), json!([0, 100, 0])));
    assert_eq!(e.field.as_deref(), Some("points[1].yaw"), "{e}");
    let e = err(path(json!(0), json!([0, 1e308, 0])));
    assert_eq!(e.field.as_deref(), Some("points[1].pos"), "{e}");
    assert!(e.message.contains("1000000"), "{e}");
    let e = err(path(json!(0), json!([-1.5e6, 0, 0])));
    assert_eq!(e.field.as_deref(), Some("points[1].pos"), "{e}");
    // Several turns and far places are fine.
    Cue::from_value(&path(json!(3600), json!([1e6, 0, -1e6]))).unwrap();
}

#[test]
fn at_in_all_three_forms() {
    let c = Cue::from_value(&json!({"type": "freeze", "at": {"frame": 90}})).unwrap();
    assert_eq!(c.at, Some(At::Frame(90)));
    let c = Cue::from_value(&json!({"type": "freeze", "at": {"in_s": 1.5}})).unwrap();
    assert_eq!(c.at, Some(At::InS(1.5)));
    let c = Cue::from_value(&json!({"type": "freeze", "at": {"timecode": "00:01:02:03"}})).unwrap();
    let Some(At::Timecode(tc)) = c.at else {
        panic!("{c:?}")
    };
    assert_eq!(tc.to_frame(30).unwrap(), (62 * 30 + 3) as u64);
    assert_eq!(tc.to_string(), "00:01:02:03");
}

#[test]
fn bad_at_is_named() {
    let e = err(json!({"type": "freeze", "at": {"frame": -1}}));
    assert_eq!(e.field.as_deref(), Some("at.frame"));
    let e = err(json!({"type": "freeze", "at": {"timecode": "1:2:3"}}));
    assert_eq!(e.field.as_deref(), Some("at.timecode"));
    let e = err(json!({"type": "freeze", "at": {"frame": 1, "in_s": 2}}));
    assert_eq!(e.field.as_deref(), Some("at"));
    let e = err(json!({"type": "freeze", "at": {"when": 1}}));
    assert_eq!(e.field.as_deref(), Some("at.when"));
    let e = err(json!({"type": "freeze", "at": 5}));
    assert_eq!(e.field.as_deref(), Some("at"));
}

#[test]
fn timecode_frame_field_must_exist_at_the_rate() {
    let tc: Timecode = "00:00:01:29".parse().unwrap();
    assert_eq!(tc.to_frame(30).unwrap(), 59);
    let e = tc.to_frame(25).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("at.timecode"));
}

#[test]
fn list_errors_name_the_index() {
    let e = Cue::list_from_value(&json!([
        {"type": "freeze"},
        {"type": "action", "pitch": 7}
    ]))
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("[1].pitch"));
    assert_eq!(
        Cue::list_from_value(&json!({"type": "resume"}))
            .unwrap()
            .len(),
        1
    );
    assert!(Cue::list_from_value(&json!([])).is_err());
}

#[test]
fn malformed_json() {
    let e = Cue::from_json("{\"type\": ").unwrap_err();
    assert!(e.message.starts_with("malformed JSON"), "{e}");
}

#[test]
fn input_cues_name_the_key_or_mouse_field_at_fault() {
    let ok = Cue::from_value(
        &json!({"type": "input", "keys": ["KeyW", "ArrowUp", "Space"],
                                     "mouse": {"dx": -4.5, "dy": 2, "buttons": ["right", "left"]}}),
    )
    .unwrap();
    let CueKind::Input(i) = &ok.kind else {
        panic!()
    };
    assert_eq!(i.keys.as_deref().unwrap(), ["KeyW", "ArrowUp", "Space"]);
    let m = i.mouse.as_ref().unwrap();
    assert_eq!((m.dx, m.dy), (-4.5, 2.0));
    assert_eq!(
        m.buttons.as_deref().unwrap(),
        [MouseButton::Left, MouseButton::Right]
    );
    for (bad, field) in [
        (json!({"type": "input"}), None),
        (json!({"type": "input", "keys": "KeyW"}), Some("keys")),
        (json!({"type": "input", "keys": ["w"]}), Some("keys[0]")),
        (
            json!({"type": "input", "keys": ["KeyW", "KeyW"]}),
            Some("keys[1]"),
        ),
        (
            json!({"type": "input", "keys": vec!["KeyA"; MAX_KEYS + 1]}),
            Some("keys"),
        ),
        (
            json!({"type": "input", "mouse": {"dx": 1}}),
            Some("mouse.dy"),
        ),
        (
            json!({"type": "input", "mouse": {"dx": 1, "dy": 1e9}}),
            Some("mouse.dy"),
        ),
        (
            json!({"type": "input", "mouse": {"dx": 1, "dy": 1, "wheel": 1}}),
            Some("mouse.wheel"),
        ),
        (
            json!({"type": "input", "mouse": {"dx": 1, "dy": 1, "buttons": ["back"]}}),
            Some("mouse.buttons[0]"),
        ),
        (json!({"type": "input", "mouse": [1, 2]}), Some("mouse")),
    ] {
        let e = Cue::from_value(&bad).unwrap_err();
        assert_eq!(e.field.as_deref(), field, "{bad}: {e}");
    }
}

#[test]
fn image_cues_take_a_file_name_and_never_a_path() {
    Cue::from_value(&json!({"type": "image", "name": "start-1.jpg"})).unwrap();
    for bad in [
        "../etc/passwd.png",
        "/abs.png",
        "a/b.png",
        ".hidden.png",
        "x.gif",
        "x",
        "",
        "x.png\u{0}",
    ] {
        let e = Cue::from_value(&json!({"type": "image", "name": bad})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{bad:?}: {e}");
    }
}
