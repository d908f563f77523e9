//! Property-based fuzzing of the cue parser: any JSON, and JSON shaped like cues with
//! hostile values, is either refused with an error or accepted as a cue that the world
//! applies and advances through in bounded time with a finite camera.
//!
//! CI runs a few thousand cases with a fixed seed; `make fuzz` runs many more
//! (`CUECAST_FUZZ_CASES`).

mod fuzz;

use std::time::{Duration, Instant};

use cuecast_engine::camera::Pose;
use cuecast_engine::generator::{Fps, ModelInfo};
use cuecast_engine::world::World;
use cuecast_engine::Cue;
use fuzz::{cases, runner};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Numbers that break naive code: huge, tiny, negative, fractional, integral.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2.0f64..2.0).prop_map(|v| json!(v)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            89.0,
            90.0,
            180.0,
            360.0,
            3600.0,
            1e6,
            1e12,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324
        ])
        .prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "[ -~]{0,12}".prop_map(Value::String),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

/// Any JSON, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Types not in the language, tried beside every real one.
const NOT_TYPES: [&str; 2] = ["teleport", ""];
const FIELDS: [&str; 22] = [
    "text",
    "transition_s",
    "forward",
    "strafe",
    "rise",
    "yaw",
    "pitch",
    "duration_s",
    "points",
    "loop",
    "name",
    "value",
    "ramp_s",
    "transition",
    "label",
    "to",
    "at",
    "t",
    "pos",
    "fov",
    "frame",
    "in_s",
];

/// A path point with hostile values.
fn point() -> impl Strategy<Value = Value> {
    (number(), prop::collection::vec(number(), 2..4), number(), number(), number()).prop_map(
        |(t, pos, yaw, pitch, fov)| json!({"t": t, "pos": pos, "yaw": yaw, "pitch": pitch, "fov": fov}),
    )
}

/// JSON shaped like a cue: a known type, known field names, hostile values.
fn cue_like() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        4 => number(),
        2 => leaf(),
        2 => prop::collection::vec(point(), 0..5).prop_map(Value::Array),
        1 => prop_oneof![
            number().prop_map(|n| json!({"frame": n})),
            number().prop_map(|n| json!({"in_s": n})),
            "[0-9:]{0,14}".prop_map(|t| json!({"timecode": t})),
        ],
        1 => any_json(),
    ];
    (
        prop::sample::select(
            cuecast_engine::schema::CUE_TYPES
                .iter()
                .chain(&NOT_TYPES)
                .copied()
                .collect::<Vec<_>>(),
        ),
        prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value), 0..5),
    )
        .prop_map(|(kind, fields)| {
            let mut m = Map::new();
            m.insert("type".into(), json!(kind));
            for (k, v) in fields {
                m.insert(k.into(), v);
            }
            Value::Object(m)
        })
}

/// Mostly in range, sometimes hostile.
fn mostly(lo: f64, hi: f64) -> impl Strategy<Value = Value> {
    prop_oneof![3 => (lo..hi).prop_map(|v| json!(v)), 1 => number()]
}

/// Cues of each type with their own fields, mostly valid: what reaches the world.
fn typed_cue() -> impl Strategy<Value = Value> {
    let path_point = (
        0.01f64..5.0,
        prop::collection::vec(mostly(-1e4, 1e4), 3),
        mostly(-720.0, 720.0),
        mostly(-80.0, 80.0),
        mostly(10.0, 120.0),
    );
    let path =
        (prop::collection::vec(path_point, 1..6), any::<bool>()).prop_map(|(pts, looped)| {
            let mut t = 0.0;
            let points: Vec<Value> = pts
                .into_iter()
                .map(|(dt, pos, yaw, pitch, fov)| {
                    t += dt;
                    json!({"t": t, "pos": pos, "yaw": yaw, "pitch": pitch, "fov": fov})
                })
                .collect();
            json!({"type": "camera_path", "points": points, "loop": looped})
        });
    prop_oneof![
        (mostly(-1.0, 1.0), mostly(-1.0, 1.0), mostly(-1.0, 1.0), mostly(0.0, 10.0))
            .prop_map(|(f, y, p, d)| json!({"type": "action", "forward": f, "yaw": y, "pitch": p, "duration_s": d})),
        path,
        ("\\PC{0,60}", mostly(0.0, 10.0)).prop_map(|(t, s)| json!({"type": "prompt", "text": t, "transition_s": s})),
        (prop::sample::select(vec!["fog", "speed", "time_of_day", "nope"]), mostly(0.0, 1.0), mostly(0.0, 5.0))
            .prop_map(|(n, v, r)| json!({"type": "param", "name": n, "value": v, "ramp_s": r})),
        (prop::sample::select(vec!["black", "picture", "grey"]), mostly(0.0, 5.0))
            .prop_map(|(to, d)| json!({"type": "fade", "to": to, "duration_s": d})),
        any::<u64>().prop_map(|v| json!({"type": "seed", "value": v})),
        Just(json!({"type": "freeze"})),
        Just(json!({"type": "resume"})),
    ]
}

/// Applies an accepted cue and runs the world 60 frames: bounded time, finite pose.
fn applies_sanely(cue: &Cue, source: &Value) -> Result<(), TestCaseError> {
    let info = ModelInfo::simple("fuzz", 64, 36, Fps::new(30, 1));
    let mut world = World::new(
        &info,
        Fps::new(30, 1),
        1,
        "hills",
        Vec::new(),
        Pose::default(),
    );
    let started = Instant::now();
    world.apply(cue, 0);
    for f in 0..60 {
        world.advance(f, |_, _| Some(0.0));
        let p = world.camera();
        prop_assert!(
            p.pos.iter().all(|v| v.is_finite()) && p.yaw.is_finite() && p.pitch.is_finite(),
            "non-finite pose {p:?} from {source}"
        );
    }
    prop_assert!(
        started.elapsed() < Duration::from_secs(2),
        "{source} took {:?} to apply",
        started.elapsed()
    );
    Ok(())
}

fn check(v: &Value) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let parsed = Cue::from_value(v);
    prop_assert!(
        started.elapsed() < Duration::from_secs(1),
        "parsing {v} took {:?}",
        started.elapsed()
    );
    match parsed {
        Ok(cue) => applies_sanely(&cue, v),
        Err(e) => {
            prop_assert!(!e.message.is_empty(), "an error without a message for {v}");
            Ok(())
        }
    }
}

#[test]
fn any_json_is_refused_or_a_sane_cue() {
    let n = cases(2000);
    runner(n, 7).run(&any_json(), |v| check(&v)).unwrap();
    eprintln!("fuzz: {n} arbitrary JSON values, 0 failures");
}

#[test]
fn hostile_cue_shaped_json_is_refused_or_a_sane_cue() {
    let n = cases(4000);
    let accepted = std::cell::Cell::new(0u32);
    runner(n, 7)
        .run(&prop_oneof![cue_like(), typed_cue()], |v| {
            if Cue::from_value(&v).is_ok() {
                accepted.set(accepted.get() + 1);
            }
            check(&v)
        })
        .unwrap();
    eprintln!(
        "fuzz: {n} cue-shaped values ({} accepted), 0 failures",
        accepted.get()
    );
    // The generator reaches the parser's accepting paths, not only its errors.
    assert!(
        accepted.get() > 0,
        "no case was a valid cue: the fuzzer tests nothing past the errors"
    );
}
