//! `cuecast`: runs the show.
//!
//! `cuecast serve` builds one GStreamer pipeline in this process, with `cuecastsrc`
//! registered statically (no plugin file needed): the procedural world, its cue API on
//! 127.0.0.1:7070, and a local recording. Ctrl-C (SIGINT) or SIGTERM ends the show
//! cleanly: end-of-stream runs through the encoder and muxer, so the recording is a
//! complete, playable file.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use gst::glib;
use gst::prelude::*;

const USAGE: &str = "\
usage: cuecast serve [options]

Runs the show: the world model live, its cue API, and a local recording.

options:
  --prompt TEXT        scene description (default: rolling green hills)
  --backend NAME       procedural (default), torchscript, pattern
  --model DIR          model package folder (torchscript)
  --device DEV         auto (default), cpu, cuda:N
  --size WxH           frame size (default 1280x720)
  --fps N              frame rate (default 30)
  --control ADDR       cue API address (default 127.0.0.1:7070)
  --record FILE        recording, Matroska (default recordings/show-<time>.mkv)
  --cues FILE          cue file played from the first frame
";

struct Options {
    prompt: String,
    backend: String,
    model: Option<String>,
    device: String,
    width: u32,
    height: u32,
    fps: u32,
    control: String,
    record: PathBuf,
    cues: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut o = Options {
        prompt: "rolling green hills".into(),
        backend: "procedural".into(),
        model: None,
        device: "auto".into(),
        width: 1280,
        height: 720,
        fps: 30,
        control: "127.0.0.1:7070".into(),
        record: PathBuf::from(format!("recordings/show-{stamp}.mkv")),
        cues: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--prompt" => o.prompt = value()?,
            "--backend" => o.backend = value()?,
            "--model" => o.model = Some(value()?),
            "--device" => o.device = value()?,
            "--size" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .ok_or_else(|| anyhow!("--size: expected WxH, got {v:?}"))?;
                o.width = w
                    .parse()
                    .with_context(|| format!("--size: bad width in {v:?}"))?;
                o.height = h
                    .parse()
                    .with_context(|| format!("--size: bad height in {v:?}"))?;
            }
            "--fps" => o.fps = value()?.parse().context("--fps: expected a whole number")?,
            "--control" => o.control = value()?,
            "--record" => o.record = PathBuf::from(value()?),
            "--cues" => o.cues = Some(value()?),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    if !(16..=8192).contains(&o.width)
        || !(16..=8192).contains(&o.height)
        || !(1..=240).contains(&o.fps)
    {
        bail!("--size must be 16..8192 on each side and --fps 1..240");
    }
    Ok(o)
}

fn serve(o: Options) -> Result<()> {
    gst::init()?;
    gstcuecast::register_static()?;
    if let Some(dir) = o.record.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let src = gst::ElementFactory::make("cuecastsrc")
        .name("src")
        .property("prompt", &o.prompt)
        .property("backend", &o.backend)
        .property("device", &o.device)
        .property("control-address", &o.control)
        .build()?;
    if let Some(m) = &o.model {
        src.set_property("model", m);
    }
    if let Some(c) = &o.cues {
        src.set_property("cues", c);
    }
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", o.width as i32)
        .field("height", o.height as i32)
        .field("framerate", gst::Fraction::new(o.fps as i32, 1))
        .build();
    let pipeline = gst::Pipeline::with_name("show");
    // The recording sits behind a leaky queue: a slow disk or encoder drops frames from
    // the recording, never stalls the source.
    let tail = gst::parse::bin_from_description(
        &format!(
            "queue leaky=downstream max-size-buffers=60 max-size-time=0 max-size-bytes=0 ! videoconvert ! \
             video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=veryfast key-int-max={} ! \
             h264parse ! matroskamux ! filesink name=file",
            o.fps * 2
        ),
        true,
    )?;
    tail.by_name("file")
        .unwrap()
        .set_property("location", o.record.to_string_lossy().as_ref());
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()?;
    pipeline.add_many([&src, &filter, tail.upcast_ref()])?;
    gst::Element::link_many([&src, &filter, tail.upcast_ref()])?;

    let main_loop = glib::MainLoop::new(None, false);
    let p = pipeline.downgrade();
    std::thread::Builder::new()
        .name("cuecast-signals".into())
        .spawn(move || {
            while let Some(signal) = wait_for_signal() {
                eprintln!("cuecast: signal {signal}: stopping, finishing the recording");
                if let Some(p) = p.upgrade() {
                    p.send_event(gst::event::Eos::new());
                }
            }
        })?;
    let bus = pipeline.bus().unwrap();
    let ml = main_loop.clone();
    let failed = std::rc::Rc::new(std::cell::Cell::new(None::<String>));
    let failure = failed.clone();
    let _watch = bus.add_watch_local(move |_, msg| {
        match msg.view() {
            gst::MessageView::Eos(_) => ml.quit(),
            gst::MessageView::Error(e) => {
                failure.set(Some(format!(
                    "{}{}",
                    e.error(),
                    e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                )));
                ml.quit();
            }
            gst::MessageView::Warning(w) => eprintln!("cuecast: warning: {}", w.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "cuecast-stats") {
                    let get = |f: &str| s.get::<u64>(f).unwrap_or(0);
                    eprintln!(
                        "cuecast: {} frames, {} repeated, step {:.1} ms",
                        get("frames"),
                        get("repeated"),
                        s.get::<f64>("step-ms-mean").unwrap_or(0.0)
                    );
                }
            }
            _ => {}
        }
        glib::ControlFlow::Continue
    })?;
    pipeline
        .set_state(gst::State::Playing)
        .context("the show did not start")?;
    eprintln!(
        "cuecast: {} world, {}x{} at {} fps",
        o.backend, o.width, o.height, o.fps
    );
    eprintln!(
        "cuecast: cue API on http://{}/api/v1/cues (status: /api/v1/status)",
        o.control
    );
    eprintln!("cuecast: recording to {}", o.record.display());
    main_loop.run();
    pipeline.set_state(gst::State::Null)?;
    if let Some(e) = failed.take() {
        bail!("{e}");
    }
    eprintln!("cuecast: recording complete: {}", o.record.display());
    Ok(())
}

/// SIGINT and SIGTERM are blocked in every thread (set before any thread starts) and
/// taken here, synchronously, by the thread that turns them into end-of-stream.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a local set, before other threads exist.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal() -> Option<i32> {
    let set = block_stop_signals();
    let mut signal = 0;
    // SAFETY: `set` is a valid signal set; sigwait writes the signal number.
    (unsafe { libc::sigwait(&set, &mut signal) } == 0).then_some(signal)
}

fn main() {
    block_stop_signals();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => parse(&args[1..]).and_then(serve),
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version") => {
            println!("cuecast {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("cuecast: {e:#}");
        std::process::exit(1);
    }
}
