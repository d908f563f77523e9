//! `cuecastsrc backend=python`: a model's own Python in a worker process, through the
//! element. A probe model (its frames say which model frame they are) checks the two
//! clocks on a `TestClock`: model frame k on air at k/16 s, a late chunk repeated and
//! counted with the cadence held, its stale frames skipped, the next chunk on time. The
//! reference models check that every kind of input reaches the model's frames.

use std::path::{Path, PathBuf};
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

/// The model frame on air at show frame `n` of a 30 fps show, for a 16 fps model.
fn slot(n: u64) -> u64 {
    n * 16 / 30
}

/// A live element of `package`, with `extra` properties.
fn live_harness(package: &Path, caps: &str, extra: &str) -> Harness {
    init();
    let mut h = Harness::new_parse(&format!(
        "cuecastsrc backend=python model={} python={} model-threads=1 {extra}",
        package.display(),
        python()
    ));
    h.use_testclock();
    h.set_sink_caps_str(caps);
    h.play();
    h
}

fn src_of(h: &Harness) -> gst::Element {
    let e = h.element().unwrap();
    match e.downcast_ref::<gst::Bin>() {
        Some(bin) => bin
            .children()
            .into_iter()
            .find(|e| e.factory().is_some_and(|f| f.name() == "cuecastsrc"))
            .unwrap(),
        None => e,
    }
}

fn model_frame(b: &gst::Buffer) -> u64 {
    support::probe_pixel(&b.map_readable().unwrap()).0
}

fn pts(n: u64) -> Option<gst::ClockTime> {
    Some(gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30))
}

#[test]
fn a_late_chunk_is_repeated_and_counted_the_cadence_holds_and_the_next_chunk_is_on_time() {
    let dir = support::tempdir("element-gated");
    let gate = dir.join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let pkg = support::probe_package(&dir, "gated", "", &format!("gate: {}", gate.display()));
    // The third chunk (slots 8 to 11, first on air at show frame 15) is late.
    std::fs::write(gate.join("hold-3"), "").unwrap();
    // The model sees the gate only because the show gives it the folder.
    let mut h = live_harness(
        &pkg,
        "video/x-raw,format=RGBx,width=64,height=36,framerate=30/1,pixel-aspect-ratio=1/1",
        &format!("model-folders={}", gate.display()),
    );
    for n in 0..15u64 {
        assert!(h.crank_single_clock_wait().is_ok());
        let b = h.pull().unwrap();
        assert_eq!(b.pts(), pts(n));
        assert_eq!(model_frame(&b), slot(n), "show frame {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for n in 15..18u64 {
        assert!(h.crank_single_clock_wait().is_ok(), "slot {n} starts");
        assert!(
            h.crank_single_clock_wait().is_ok(),
            "slot {n}'s deadline passes"
        );
        let b = h.pull().unwrap();
        assert_eq!(b.pts(), pts(n), "the cadence holds");
        assert_eq!(
            model_frame(&b),
            7,
            "show frame {n} repeats the last model frame"
        );
    }
    std::fs::remove_file(gate.join("hold-3")).unwrap();
    for n in 18..48u64 {
        // The show's own pace, so that the next chunk is asked for as it would be live.
        std::thread::sleep(Duration::from_millis(33));
        assert!(h.crank_single_clock_wait().is_ok());
        let b = h.pull().unwrap();
        assert_eq!(b.pts(), pts(n), "show frame {n}");
        // Model frame 8's time passed while it was late: the show goes on at 9.
        assert_eq!(model_frame(&b), slot(n), "show frame {n}");
    }
    let src = src_of(&h);
    assert_eq!(src.property::<u64>("repeated"), 3);
    assert_eq!(src.property::<u64>("frames"), 48);
}

#[test]
fn a_16_fps_model_is_on_air_at_its_own_rate_in_a_25_fps_show_too() {
    let dir = support::tempdir("element-25");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let mut h = live_harness(
        &pkg,
        "video/x-raw,format=RGBx,width=64,height=36,framerate=25/1,pixel-aspect-ratio=1/1",
        "",
    );
    for n in 0..60u64 {
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.crank_single_clock_wait().is_ok());
        let b = h.pull().unwrap();
        let k = model_frame(&b);
        // Model frame k is on air from k/16 s, within one show frame.
        let t = b.pts().unwrap().nseconds() as f64 / 1e9;
        assert!(
            t >= k as f64 / 16.0 - 1e-9 && t < k as f64 / 16.0 + 1.0 / 25.0 + 1.0 / 16.0,
            "model frame {k} at {t} s"
        );
        assert_eq!(k, n * 16 / 25, "show frame {n}");
    }
}

/// The frames a reference model makes non-live for a cue file, at its native size.
fn frames_with(model: &str, cues: &str, media: Option<&Path>, n: u32) -> Vec<Vec<u8>> {
    init();
    let dir = support::tempdir(&format!("element-ref-{model}-{}", cues.len()));
    let file = dir.join("cues.yaml");
    std::fs::write(&file, if cues.is_empty() { "[]\n" } else { cues }).unwrap();
    let package: PathBuf = support::repo().join("models").join(model);
    let info = cuecast_engine::generator::package::Package::load(&package)
        .unwrap()
        .info;
    let media = media.map_or(String::new(), |m| format!("media={}", m.display()));
    let pipeline = format!(
        "cuecastsrc backend=python model={} python={} model-threads=1 is-live=false seed=3 cues={} {media} num-buffers={n} \
         ! video/x-raw,width={},height={},framerate=30/1 ! appsink name=out sync=false",
        package.display(),
        python(),
        file.display(),
        info.width,
        info.height,
    );
    let p = gst::parse::launch(&pipeline)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    if p.set_state(gst::State::Playing).is_err() {
        let bus = p.bus().unwrap();
        let err = std::iter::from_fn(|| bus.pop()).find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        });
        panic!("{model} with {cues}: {err:?}");
    }
    let mut frames = Vec::new();
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        frames.push(s.buffer().unwrap().map_readable().unwrap().to_vec());
    }
    let _ = p.set_state(gst::State::Null);
    assert_eq!(frames.len(), n as usize, "{model} with {cues}");
    frames
}

/// The first show frame at which `b` differs from `a` by more than float noise.
fn first_change(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| {
        let diff: u64 = x
            .iter()
            .zip(y)
            .map(|(p, q)| u64::from(p.abs_diff(*q)))
            .sum();
        diff as f64 / x.len() as f64 > 0.5
    })
}

/// Each kind of input a model takes changes its frames from the first model frame made
/// after the cue (the cue at show frame 20 lands on model frame 11, on air at 21).
#[test]
fn every_kind_of_input_reaches_the_chunked_reference_model() {
    let media = support::tempdir("element-media");
    write_png(&media.join("start.png"), 256, 144);
    let base = frames_with("kv-chunks", "", None, 40);
    assert_eq!(
        base,
        frames_with("kv-chunks", "", None, 40),
        "the model is deterministic"
    );
    for (what, cue) in [
        ("keys", "type: input, keys: [KeyW, KeyD]"),
        ("mouse", "type: input, mouse: {dx: 40, dy: -25}"),
        (
            "camera pose",
            "type: camera_path, points: [{t: 0, pos: [50, 80, -40], yaw: 90, pitch: -20}]",
        ),
        (
            "prompt",
            "type: prompt, text: a red desert at noon, transition_s: 0",
        ),
        ("param", "type: param, name: grain, value: 0.9"),
        ("image", "type: image, name: start.png"),
    ] {
        let cues = format!("- {{{cue}, at: {{frame: 20}}}}\n");
        let frames = frames_with("kv-chunks", &cues, Some(&media), 40);
        assert_eq!(first_change(&base, &frames), Some(21), "{what}: {cues}");
    }
}

#[test]
fn every_kind_of_input_reaches_the_one_frame_reference_model() {
    let media = support::tempdir("element-media-lw");
    write_png(&media.join("start.png"), 160, 96);
    let base = frames_with("latent-window", "", None, 30);
    for (what, cue) in [
        ("keys", "type: input, keys: [KeyW, Space, Digit3]"),
        ("mouse", "type: input, mouse: {dx: -30, dy: 12}"),
        (
            "buttons",
            "type: input, mouse: {dx: 0, dy: 0, buttons: [left, right]}",
        ),
        ("image", "type: image, name: start.png"),
    ] {
        let cues = format!("- {{{cue}, at: {{frame: 20}}}}\n");
        let frames = frames_with("latent-window", &cues, Some(&media), 30);
        // At 20 fps in a 30 fps show, the cue at frame 20 lands on model frame 13, on
        // air from show frame 20 (ceil(13 * 30 / 20)).
        assert_eq!(first_change(&base, &frames), Some(20), "{what}: {cues}");
    }
}

/// A PNG with a pattern, as an upload or a media file is.
fn write_png(path: &Path, w: u32, h: u32) {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 200]);
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    e.set_color(png::ColorType::Rgb);
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(&data).unwrap();
}

/// With frame-blend, a show frame between two model frames mixes them by where it
/// falls: the probe's picture brightens by 7 levels a model frame, so show frame n
/// reads 7 * n * 16 / 30.
#[test]
fn frame_blend_mixes_neighbouring_model_frames_by_time() {
    init();
    let dir = support::tempdir("element-blend");
    let pkg = support::probe_package(&dir, "probe", "", "");
    let p = gst::parse::launch(&format!(
        "cuecastsrc backend=python model={} python={} is-live=false frame-blend=true num-buffers=40 \
         ! video/x-raw,width=64,height=36,framerate=30/1 ! appsink name=out sync=false",
        pkg.display(),
        python()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut n = 0u64;
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        // RGB, a worker model's own layout, where downstream takes it.
        let format = s
            .caps()
            .unwrap()
            .structure(0)
            .unwrap()
            .get::<&str>("format");
        assert_eq!(format.unwrap(), "RGB");
        let b = s.buffer().unwrap().map_readable().unwrap();
        // A pixel of the picture's body (row 1), away from the probe's marks in row 0.
        let red = f64::from(b[64 * 3]);
        let want = 7.0 * n as f64 * 16.0 / 30.0;
        assert!(
            (red - want).abs() <= 1.0,
            "show frame {n}: {red}, not {want:.2}"
        );
        n += 1;
    }
    let _ = p.set_state(gst::State::Null);
    assert_eq!(n, 40);
}

/// Whether a probe frame (`bpp` bytes a pixel) is one model frame throughout: every
/// pixel after the first three has the red its first pixel's frame count gives.
fn whole(bytes: &[u8], bpp: usize) -> bool {
    let frame = u64::from(bytes[0]) | u64::from(bytes[1]) << 8;
    let red = (frame * 7 % 256) as u8;
    bytes.chunks_exact(bpp).skip(3).all(|p| p[0] == red)
}

#[test]
fn frames_go_on_air_where_the_worker_wrote_them_and_a_held_buffer_is_never_written_over() {
    let dir = support::tempdir("element-ring");
    // Its worker dies in its ninth step (once) with frames of earlier chunks held.
    let pkg = support::probe_package(&dir, "ring", "", "die_at: 9, once: true");
    // Downstream takes any layout: the element offers RGB first for a worker's model.
    let mut h = live_harness(
        &pkg,
        "video/x-raw,width=64,height=36,framerate=30/1,pixel-aspect-ratio=1/1",
        "",
    );
    let mut held = Vec::new();
    let mut last = None;
    for n in 0..120u64 {
        std::thread::sleep(Duration::from_millis(10));
        let b = loop {
            assert!(h.crank_single_clock_wait().is_ok(), "show frame {n}");
            if let Some(b) = h.try_pull() {
                break b;
            }
        };
        if n == 0 {
            let caps = h.sinkpad().unwrap().current_caps().unwrap();
            let s = caps.structure(0).unwrap();
            assert_eq!(s.get::<&str>("format").unwrap(), "RGB", "{caps}");
        }
        let bytes = b.map_readable().unwrap().to_vec();
        assert_eq!(bytes.len(), 64 * 36 * 3);
        assert!(
            whole(&bytes, 3),
            "show frame {n} is one model frame throughout"
        );
        let k = model_frame(&b);
        assert!(
            last.is_none_or(|l| k >= l),
            "show frame {n}: model frame {k} after {last:?}"
        );
        last = Some(k);
        // One frame of about every chunk held, as a slow branch downstream would: every
        // slot of the ring is taken in the end.
        if n % 8 == 0 && n < 80 {
            held.push((n, b, bytes));
        }
    }
    for (n, b, bytes) in &held {
        let now = b.map_readable().unwrap();
        assert!(
            now.as_slice() == &bytes[..],
            "held show frame {n} was written over"
        );
    }
    let src = src_of(&h).downcast::<gstcuecast::CuecastSrc>().unwrap();
    let process = src.show().unwrap().status().model_process.unwrap();
    assert_eq!(process.restarts, 1, "{process:?}");
    // Most chunks went on air where the worker wrote them; those made while every slot
    // was held were copied out instead.
    let chunks = 120 * 16 / 30 / 4;
    assert!(
        process.copied_chunks >= 1 && process.copied_chunks < chunks - 4,
        "{} of about {chunks} chunks copied",
        process.copied_chunks
    );
    drop(held);
}
