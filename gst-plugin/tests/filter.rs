//! `cuecastfilter`: a model that takes video, fed through the element's sink pad, on a
//! `TestClock`. A probe model tells in its frames what input video it was given (the
//! newest frame's mean red, and how many frames a step got), so a test reads off the
//! picture which input reached which output frame.

use std::path::Path;
use std::time::Duration;

use gst::prelude::*;
use gst_check::Harness;

#[path = "../../engine/tests/support/mod.rs"]
mod support;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstcuecast::register_static().unwrap();
    });
}

fn python() -> String {
    std::env::var("CUECAST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A probe model that takes video (frames of 32x18, four a step), 16 fps, whose frames
/// are due `lag` of its frames after their input.
fn video_probe(dir: &Path, lag: u32, config: &str) -> std::path::PathBuf {
    support::probe_package(
        dir,
        "v2v",
        &format!(
            "inputs: {{video: {{frames_per_step: 4, width: 32, height: 18}}}}\nlatency_frames: {lag}\n"
        ),
        config,
    )
}

/// A playing filter of `package` on a test clock that reads 1 s, fed RGB 64x36 at 30 fps.
fn harness(package: &Path, extra: &[(&str, &str)]) -> Harness {
    init();
    let (model, python) = (package.display().to_string(), python());
    let mut builder = gst::ElementFactory::make("cuecastfilter")
        .property_from_str("backend", "python")
        .property_from_str("model", &model)
        .property_from_str("python", &python)
        .property("model-threads", 1u32);
    for (k, v) in extra {
        builder = builder.property_from_str(k, v);
    }
    let element = builder.build().unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.use_testclock();
    h.set_time(gst::ClockTime::from_seconds(1)).unwrap();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    h.play();
    h
}

/// An input frame of one red level.
fn input(red: u8, n: u64) -> gst::Buffer {
    let mut data = vec![0u8; 64 * 36 * 3];
    for p in data.chunks_exact_mut(3) {
        p[0] = red;
    }
    let mut b = gst::Buffer::from_mut_slice(data);
    let pts = gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30);
    b.get_mut().unwrap().set_pts(pts);
    b
}

/// What the probe says of a frame's input video: (newest frame's red, frames given).
/// Frames are RGB: the model's own layout, which the filter offers first.
fn seen(b: &gst::Buffer) -> (u8, u8) {
    let m = b.map_readable().unwrap();
    assert_eq!(m.len(), 64 * 36 * 3, "an RGB frame");
    (m[9], m[10])
}

fn counter(h: &Harness, name: &str) -> u64 {
    h.element().unwrap().property::<u64>(name)
}

fn frame_ns(n: u64) -> u64 {
    n * 1_000_000_000 / 30
}

#[test]
fn frames_carry_their_inputs_time_and_the_latency_is_the_models_lag() {
    let dir = support::tempdir("filter-timing");
    // 8 frames at 16 fps: half a second.
    let pkg = video_probe(&dir, 8, "");
    let mut h = harness(&pkg, &[]);
    h.push(input(40, 0)).unwrap();
    let mut stamps = Vec::new();
    for _ in 0..10 {
        assert!(h.crank_single_clock_wait().is_ok());
        let b = h.pull().unwrap();
        assert_eq!(
            seen(&b),
            (40, 4),
            "the model got the input, four frames a step"
        );
        stamps.push(b.pts().unwrap().nseconds());
        std::thread::sleep(Duration::from_millis(10));
    }
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(
        s.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(30, 1),
        "the output runs at the input's rate"
    );
    let mut q = gst::query::Latency::new();
    assert!(h
        .element()
        .unwrap()
        .static_pad("src")
        .unwrap()
        .query(&mut q));
    let (live, min, _) = q.result();
    assert!(live);
    assert_eq!(min.nseconds(), 500_000_000, "the model's declared lag");
    // Output frame n leaves at its slot (1 s + n/30) and shows the input of half a
    // second before, less the frame its slot counts: it is stamped so.
    let shift = 500_000_000 - frame_ns(1);
    for (n, pts) in stamps.iter().enumerate() {
        assert_eq!(
            *pts,
            1_000_000_000 + frame_ns(n as u64) - shift,
            "frame {n}"
        );
    }
}

#[test]
fn a_late_step_repeats_an_overrun_drops_and_counts_and_a_flush_empties_what_waits() {
    let dir = support::tempdir("filter-late");
    let gate = dir.join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    // The second step waits for the test: late, and meanwhile nothing takes the input.
    std::fs::write(gate.join("hold-2"), "").unwrap();
    let pkg = video_probe(&dir, 4, &format!("gate: {}", gate.display()));
    let folders = gate.display().to_string();
    let mut h = harness(&pkg, &[("model-folders", &folders)]);
    h.push(input(10, 0)).unwrap();
    let mut last_pts = None;
    let mut repeats_seen = 0;
    // The first chunk (4 model frames at 16 fps) covers 8 show frames; then the held
    // second chunk is late: its slots repeat the last frame, the cadence holding.
    for n in 0..14u64 {
        assert!(h.crank_single_clock_wait().is_ok(), "slot {n}");
        if n >= 8 {
            assert!(h.crank_single_clock_wait().is_ok(), "slot {n}'s deadline");
        }
        let b = h.pull().unwrap();
        let pts = b.pts().unwrap().nseconds();
        if let Some(last) = last_pts {
            assert_eq!(
                pts - last,
                frame_ns(n) - frame_ns(n - 1),
                "the cadence holds"
            );
        }
        last_pts = Some(pts);
        if n >= 8 {
            repeats_seen += 1;
            assert_eq!(seen(&b), (10, 4), "frame {n} repeats the last one made");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        counter(&h, "repeated") >= repeats_seen,
        "repeats are counted"
    );
    // The model is busy: ten frames come, four (a step's) wait, the rest are dropped.
    let before = (counter(&h, "input-received"), counter(&h, "input-dropped"));
    for i in 0..10 {
        h.push(input(20 + i, 1 + u64::from(i))).unwrap();
    }
    let received = counter(&h, "input-received") - before.0;
    let dropped = counter(&h, "input-dropped") - before.1;
    assert_eq!((received, dropped), (10, 6), "never more than a step waits");
    // A flush empties what waits: counted as dropped.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert_eq!(counter(&h, "input-dropped") - before.1, 10);
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    // The model goes on with what comes after.
    std::fs::remove_file(gate.join("hold-2")).unwrap();
    h.push(input(99, 20)).unwrap();
    let mut got = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(33));
        assert!(h.crank_single_clock_wait().is_ok());
        let b = h.pull().unwrap();
        if seen(&b).0 == 99 {
            got = Some(b);
            break;
        }
    }
    assert!(got.is_some(), "a frame made from the input after the flush");
}

#[test]
fn a_model_that_takes_no_video_is_refused_by_name() {
    init();
    let dir = support::tempdir("filter-novideo");
    let pkg = support::probe_package(&dir, "plain", "", "");
    let element = gst::ElementFactory::make("cuecastfilter")
        .property_from_str("backend", "python")
        .property_from_str("model", &pkg.display().to_string())
        .property_from_str("python", &python())
        .build()
        .unwrap();
    let pipeline = gst::Pipeline::new();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&element, &sink]).unwrap();
    element.link(&sink).unwrap();
    assert!(pipeline.set_state(gst::State::Paused).is_err());
    let bus = pipeline.bus().unwrap();
    let error = std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error on the bus");
    assert!(
        error.contains("inputs.video") && error.contains("plain"),
        "{error}"
    );
    let _ = pipeline.set_state(gst::State::Null);
}
