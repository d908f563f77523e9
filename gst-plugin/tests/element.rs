//! `cuecastsrc` driven by a `gst_check::Harness` on a `TestClock`: the test decides when
//! time passes, so timestamps, deadlines and repeats are checked exactly.
//!
//! Per slot the element makes two clock waits: a single-shot wait for the slot's start,
//! then an async deadline one frame later. A test "cranks" the clock to release each.

use std::collections::HashSet;
use std::sync::{Condvar, LazyLock, Mutex};

use cuecast_engine::generator::{
    register_backend, Fps, FrameInput, Generator, Image, ModelInfo, StepError,
};
use gst::prelude::*;
use gst_check::Harness;

const FRAME_NS: u64 = 33_333_333;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstcuecast::register_static().unwrap();
        register_backend("gated", |_| Ok(Box::new(Gated::new())));
        register_backend("failing-from-5", |_| Ok(Box::new(FailingFrom5::new())));
    });
}

/// A test backend whose steps for chosen frames block until the test opens the gate,
/// so "the step is late" is a fact the test controls, not a race it hopes to win.
struct Gated {
    info: ModelInfo,
}

/// (seed, frame) pairs whose steps wait, and the condition the test signals. Tests run
/// in parallel in one process, so each test that holds frames uses its own seed.
type Gate = (Mutex<HashSet<(u64, u64)>>, Condvar);
static GATE: LazyLock<Gate> = LazyLock::new(|| (Mutex::new(HashSet::new()), Condvar::new()));

fn hold(seed: u64, frame: u64) {
    GATE.0.lock().unwrap().insert((seed, frame));
}

fn release(seed: u64, frame: u64) {
    GATE.0.lock().unwrap().remove(&(seed, frame));
    GATE.1.notify_all();
}

impl Gated {
    fn new() -> Self {
        Gated {
            info: ModelInfo::simple("gated", 64, 36, Fps::new(30, 1)),
        }
    }
}

impl Generator for Gated {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn device(&self) -> tch::Device {
        tch::Device::Cpu
    }
    fn reset(&mut self, _: u64, _: &str) -> Result<(), StepError> {
        Ok(())
    }
    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        let mut held = GATE.0.lock().unwrap();
        while held.contains(&(input.seed, input.frame)) {
            held = GATE.1.wait(held).unwrap();
        }
        // Every frame is filled with its own index, so tests can tell which frame they got.
        out.data.fill((input.frame % 251) as u8);
        Ok(())
    }
}

/// A test backend whose steps fail from frame 5 on (after the warm-up's three).
struct FailingFrom5(ModelInfo);

impl FailingFrom5 {
    fn new() -> Self {
        FailingFrom5(ModelInfo::simple("failing-from-5", 64, 36, Fps::new(30, 1)))
    }
}

impl Generator for FailingFrom5 {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn device(&self) -> tch::Device {
        tch::Device::Cpu
    }
    fn reset(&mut self, _: u64, _: &str) -> Result<(), StepError> {
        Ok(())
    }
    fn step(&mut self, input: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        if input.frame >= 5 {
            return Err(StepError(format!("frame {} cannot be drawn", input.frame)));
        }
        out.data.fill(7);
        Ok(())
    }
}

fn harness(props: &str) -> (Harness, gst::Bus) {
    init();
    let mut h = Harness::new_parse(&format!("cuecastsrc {props}"));
    h.use_testclock();
    h.set_sink_caps_str(
        "video/x-raw,format=RGBx,width=64,height=36,framerate=30/1,pixel-aspect-ratio=1/1",
    );
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    (h, bus)
}

/// Releases the slot's start and takes the buffer it produced.
fn next(h: &mut Harness) -> gst::Buffer {
    assert!(h.crank_single_clock_wait().is_ok());
    h.pull().expect("a buffer")
}

fn first_byte(b: &gst::Buffer) -> u8 {
    b.map_readable().unwrap()[0]
}

fn messages(bus: &gst::Bus, name: &str) -> Vec<gst::Structure> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| {
            m.structure()
                .filter(|s| s.name() == name)
                .map(|s| s.to_owned())
        })
        .collect()
}

#[test]
fn timestamps_are_the_frame_grid_and_durations_one_frame() {
    let (mut h, _bus) = harness("backend=gated");
    for n in 0..10u64 {
        let b = next(&mut h);
        assert_eq!(
            b.pts(),
            Some(gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30))
        );
        let end = (n + 1) * 1_000_000_000 / 30;
        assert_eq!(
            b.pts().unwrap() + b.duration().unwrap(),
            gst::ClockTime::from_nseconds(end)
        );
        assert_eq!((b.offset(), b.offset_end()), (n, n + 1));
        assert_eq!(first_byte(&b), n as u8, "frame {n} carries its own picture");
    }
}

#[test]
fn answers_the_latency_query_with_one_frame() {
    let (mut h, _bus) = harness("backend=gated");
    next(&mut h);
    // Ask the element's own pad: an element-level query on a source goes downstream.
    let mut q = gst::query::Latency::new();
    assert!(h
        .element()
        .unwrap()
        .static_pad("src")
        .unwrap()
        .query(&mut q));
    let (live, min, max) = q.result();
    assert!(live);
    assert_eq!(min, gst::ClockTime::from_nseconds(FRAME_NS));
    assert_eq!(max, Some(gst::ClockTime::from_nseconds(FRAME_NS)));
}

#[test]
fn a_late_step_repeats_the_previous_frame_and_the_cadence_holds() {
    // Frame 3's step blocks; the deadline passes; frame 2 goes out again in slot 3.
    hold(77, 3);
    let (mut h, bus) = harness("backend=gated seed=77");
    for _ in 0..3 {
        next(&mut h);
    }
    assert!(h.crank_single_clock_wait().is_ok(), "slot 3 starts");
    assert!(
        h.crank_single_clock_wait().is_ok(),
        "slot 3's deadline passes with the step still running"
    );
    let repeat = h.pull().unwrap();
    assert_eq!(
        repeat.pts(),
        Some(gst::ClockTime::from_nseconds(3 * 1_000_000_000 / 30))
    );
    assert_eq!(first_byte(&repeat), 2, "slot 3 repeats frame 2");
    release(77, 3);
    // The rate never wavers: every slot has its buffer, on the grid.
    for n in 4..40u64 {
        let b = next(&mut h);
        assert_eq!(
            b.pts(),
            Some(gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30)),
            "slot {n}"
        );
        assert_eq!(first_byte(&b), n as u8);
    }
    // The repeat was counted and reported.
    let stats = messages(&bus, "cuecast-stats");
    let last = stats
        .last()
        .expect("a stats message after a second of frames");
    assert_eq!(last.get::<u64>("repeated").unwrap(), 1);
    assert_eq!(last.get::<f64>("fps").unwrap(), 30.0);
    // ... and the element's read-only counters say the same.
    let bin = h.element().unwrap().downcast::<gst::Bin>().unwrap();
    let src = bin
        .children()
        .into_iter()
        .find(|e| e.factory().is_some_and(|f| f.name() == "cuecastsrc"))
        .expect("the cuecastsrc in the harness");
    assert_eq!(src.property::<u64>("frames"), 40);
    assert_eq!(src.property::<u64>("repeated"), 1);
    assert_eq!(src.property::<u64>("failed"), 0);
    let rendered = src.property::<u64>("rendered");
    // 40 frames, and the next one the element asks for as soon as one is out.
    assert!((39..=41).contains(&rendered), "{rendered}");
}

#[test]
fn stopping_takes_at_most_a_second_whatever_the_model_does() {
    // Frame 5's step never returns until released, long after the stop. (Warm-up
    // steps frames 0-2 before the element starts.)
    hold(88, 5);
    let (mut h, _bus) = harness("backend=gated seed=88");
    for _ in 0..5 {
        next(&mut h);
    }
    assert!(h.crank_single_clock_wait().is_ok(), "slot 5 starts");
    let src = h.element().unwrap();
    let asked = std::time::Instant::now();
    src.set_state(gst::State::Null).unwrap();
    let took = asked.elapsed();
    release(88, 5);
    assert!(
        took < std::time::Duration::from_millis(1800),
        "reaching NULL took {took:?}"
    );
}

#[test]
fn a_device_that_is_not_one_is_refused_when_set() {
    init();
    let src = gst::ElementFactory::make("cuecastsrc").build().unwrap();
    for good in ["cpu", "cuda:1", "auto"] {
        src.set_property("device", good);
        assert_eq!(src.property::<String>("device"), good);
    }
    src.set_property("device", "cpu");
    for bad in ["gpu", "cuda:x", "tpu:0"] {
        src.set_property("device", bad);
        assert_eq!(src.property::<String>("device"), "cpu", "{bad} was taken");
    }
}

#[test]
fn a_cue_applies_at_its_frame_and_says_so() {
    let dir = tempdir();
    let file = dir.join("cues.yaml");
    std::fs::write(&file, "- {type: seed, value: 9, at: {frame: 5}}\n- {type: marker, label: here, at: {in_s: 0.2}}\n").unwrap();
    let (mut h, bus) = harness(&format!("backend=gated cues={}", file.display()));
    for _ in 0..8 {
        next(&mut h);
    }
    let applied = messages(&bus, "cuecast-cue-applied");
    let got: Vec<(String, u64, u64)> = applied
        .iter()
        .map(|s| {
            (
                s.get::<String>("type").unwrap(),
                s.get::<u64>("frame").unwrap(),
                s.get::<gst::ClockTime>("pts").unwrap().nseconds(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("seed".into(), 5, 5_000_000_000 / 30),
            ("marker".into(), 6, 6 * 1_000_000_000 / 30)
        ]
    );
    assert!(applied[0]
        .get::<String>("cue")
        .unwrap()
        .contains("\"value\":9"));
}

#[test]
fn a_bad_cue_file_fails_to_start_naming_the_cue() {
    init();
    let dir = tempdir();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "- {type: freeze}\n- {type: param, name: nope, value: 1}\n",
    )
    .unwrap();
    let src = gst::ElementFactory::make("cuecastsrc")
        .property("backend", "gated")
        .property("cues", file.to_str().unwrap())
        .build()
        .unwrap();
    let err = start_error(&src);
    assert!(
        err.contains("cues[1].name") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn unknown_backend_fails_to_start_with_the_known_ones() {
    init();
    let src = gst::ElementFactory::make("cuecastsrc")
        .property("backend", "dream")
        .build()
        .unwrap();
    let err = start_error(&src);
    assert!(err.contains("dream") && err.contains("procedural"), "{err}");
}

/// Starts `src` on its own bus and returns the message of the error it failed with (the
/// message, not the debug text: that is what users see first).
fn start_error(src: &gst::Element) -> String {
    let bus = gst::Bus::new();
    src.set_bus(Some(&bus));
    assert!(
        src.set_state(gst::State::Paused).is_err(),
        "the element started"
    );
    let err = std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error message");
    let _ = src.set_state(gst::State::Null);
    err
}

fn tempdir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "cuecast-element-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the engine tells of the model reaches `gst-launch-1.0` users as bus messages:
/// steps failing past `failure-after` start the model over, and the element says so.
#[test]
fn the_model_started_over_is_posted_on_the_bus() {
    let (mut h, bus) = harness("backend=failing-from-5 failure-action=reset failure-after=2");
    let mut resets = Vec::new();
    for _ in 0..30 {
        next(&mut h);
        resets.extend(messages(&bus, "cuecast-model-reset"));
        if !resets.is_empty() {
            break;
        }
    }
    let first = resets.first().expect("a cuecast-model-reset message");
    assert_eq!(first.get::<u64>("resets").unwrap(), 1);
    let reason = first.get::<String>("reason").unwrap();
    assert!(reason.contains("2 steps in a row failed"), "{reason}");
    assert!(reason.contains("cannot be drawn"), "{reason}");
}
