//! Property-based fuzzing of the OSC decoder: random datagrams, and valid packets with
//! bytes flipped, cut or appended, decode or fail with an error, never panic, in bounded
//! time; what decodes turns into a cue or an error naming the address, and a cue it
//! turns into is one the cue parser answers (accepts or refuses) without panicking.
//!
//! CI runs a few thousand cases with a fixed seed; `make fuzz` runs many more
//! (`CUECAST_FUZZ_CASES`).

mod fuzz;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cuecast::osc::{encode_message, parse_packet, to_command, OscArg, OscCommand, OscMessage};
use fuzz::{cases, runner};
use proptest::prelude::*;
use serde_json::json;

fn arg() -> impl Strategy<Value = OscArg> {
    prop_oneof![
        any::<i32>().prop_map(OscArg::Int),
        any::<f32>().prop_map(OscArg::Float),
        any::<f64>().prop_map(OscArg::Double),
        any::<i64>().prop_map(OscArg::Long),
        "\\PC{0,20}".prop_map(OscArg::Str),
        // Words the new forms take, so some messages reach the cue parser's checks.
        prop::sample::select(vec!["KeyW", "ShiftLeft", "left", "right", "start.png"])
            .prop_map(|w| OscArg::Str(w.into())),
        any::<bool>().prop_map(OscArg::Bool),
        Just(OscArg::Nil),
    ]
}

/// A valid message to a cuecast-ish address, encoded.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    let address = prop_oneof![
        prop::sample::select(vec![
            "/cuecast/prompt",
            "/cuecast/action",
            "/cuecast/action/forward",
            "/cuecast/param/fog",
            "/cuecast/go",
            "/cuecast/back",
            "/cuecast/scene",
            "/cuecast/marker",
            "/cuecast/seed",
            "/cuecast/fade",
            "/cuecast/freeze",
            "/cuecast/input/keys",
            "/cuecast/input/mouse",
            "/cuecast/image",
            "/dawn",
        ])
        .prop_map(str::to_owned),
        "/[a-z/]{0,20}",
    ];
    (address, prop::collection::vec(arg(), 0..5))
        .prop_map(|(address, args)| encode_message(&OscMessage { address, args }))
}

/// A valid packet damaged: bytes flipped, then cut short, wrapped in a bundle whose
/// element size lies, extended, or left at that.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        packet(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        0usize..4,
        any::<u32>(),
    )
        .prop_map(|(mut p, flips, how, n)| {
            for (i, b) in flips {
                if !p.is_empty() {
                    let at = i.index(p.len());
                    p[at] = b;
                }
            }
            match how {
                0 => p.truncate(n as usize % (p.len() + 1)),
                1 => {
                    let mut b = b"#bundle\0\0\0\0\0\0\0\0\x01".to_vec();
                    b.extend_from_slice(&n.to_be_bytes());
                    b.extend_from_slice(&p);
                    p = b;
                }
                2 => p.extend_from_slice(&n.to_be_bytes()),
                // Flips only (often none): packets that still decode reach to_command.
                _ => {}
            }
            p
        })
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let aliases = BTreeMap::from([(
        "/dawn".to_owned(),
        json!([{"type": "prompt", "text": "dawn"}]),
    )]);
    let started = Instant::now();
    if let Ok(messages) = parse_packet(bytes) {
        for m in &messages {
            match to_command(m, "/cuecast", &aliases) {
                Ok(Some(OscCommand::Cues(cue))) => {
                    let _ = cuecast_engine::Cue::list_from_value(&cue);
                }
                Ok(_) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
    prop_assert!(
        started.elapsed() < Duration::from_secs(1),
        "{} bytes took {:?}",
        bytes.len(),
        started.elapsed()
    );
    Ok(())
}

#[test]
fn random_datagrams_never_break_the_decoder() {
    let n = cases(4000);
    runner(n, 11)
        .run(&prop::collection::vec(any::<u8>(), 0..512), |b| check(&b))
        .unwrap();
    eprintln!("fuzz: {n} random datagrams, 0 failures");
}

#[test]
fn damaged_packets_never_break_the_decoder() {
    let n = cases(4000);
    let decoded = std::cell::Cell::new(0u32);
    runner(n, 11)
        .run(&damaged(), |b| {
            decoded.set(decoded.get() + u32::from(parse_packet(&b).is_ok()));
            check(&b)
        })
        .unwrap();
    eprintln!(
        "fuzz: {n} damaged packets ({} still decoded), 0 failures",
        decoded.get()
    );
    assert!(
        decoded.get() > 0,
        "every case failed to decode: the fuzzer reaches nothing past the header"
    );
}
