//! `cuecast serve`: one show, from its config to its outputs, until SIGINT/SIGTERM.
//!
//! Threads, each with one owner and one way to stop: the main thread runs the show
//! pipeline's bus (GLib main loop); `cuecast-outputs` supervises outputs; `cuecast-api`
//! runs the HTTP API on a small tokio runtime; `cuecast-osc` listens for OSC; the
//! config watcher re-reads the config on change; `cuecast-signals` turns SIGINT and
//! SIGTERM into a clean stop (recordings finished, outputs closed, then the show).

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use cuecast_engine::engine::EngineEvent;
use cuecast_engine::world::ShowContext;
use cuecast_engine::Cue;
use gst::glib;
use gst::prelude::*;
use serde_json::json;

use crate::api::{self, AppState};
use crate::audio::ProgramAudio;
use crate::config::{Config, OutputKind, Show};
use crate::control::{Command, Cues, Step};
use crate::events::{Event, Events, LiveStats, ModelState, TakeState};
use crate::inputs::Inputs;
use crate::osc::{OscCommand, OscListener};
use crate::outputs::Outputs;

mod bus;
mod control;
mod reload;

#[allow(unused_imports)]
use bus::*;
#[allow(unused_imports)]
use control::*;
#[allow(unused_imports)]
use reload::*;

/// The show's secrets live in this process (its environment, the config it read):
/// nothing else may read them out of it. Not dumpable, its `/proc` files (environ, mem)
/// are its own user's alone to open, with no core dump to leak them; and the config
/// file is hidden from every hosted model's sandbox, even inside a folder the model may
/// read.
fn keep_secrets(config_path: &Path) {
    // SAFETY: a plain syscall on this process.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!(
            "cuecast could not make itself undumpable: {}",
            std::io::Error::last_os_error()
        );
    }
    cuecast_engine::worker::sandbox::keep_secret(config_path);
}

/// Runs the show; once it is live, `ready` (when given) gets the addresses bound, so a
/// caller that asked for port 0 learns which one it got.
pub fn serve(config_path: &Path, ready: Option<&Path>) -> Result<()> {
    keep_secrets(config_path);
    let config = Config::load(config_path)?;
    for line in config.summary() {
        tracing::info!("{line}");
    }
    gst::init()?;
    gstcuecast::register_static()?;

    let show = &config.show;
    let src = gst::ElementFactory::make("cuecastsrc")
        .name("src")
        .build()?;
    src.set_property("media", config.media.to_string_lossy().as_ref());
    let cuecastsrc = src
        .clone()
        .downcast::<gstcuecast::CuecastSrc>()
        .map_err(|_| anyhow!("cuecastsrc is not ours"))?;
    // The model's settings in one typed call, as the show preset read them.
    cuecastsrc
        .set_model_settings(show.settings.clone())
        .map_err(|e| anyhow!("show {}: {e}", show.name))?;
    cuecastsrc
        .set_scenes(show.scenes.clone())
        .map_err(|e| anyhow!("{e}"))?;
    let v = config.video;
    let pipeline = gst::Pipeline::with_name("show");
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", v.width as i32)
                .field("height", v.height as i32)
                .field("framerate", gst::Fraction::new(v.fps as i32, 1))
                .build(),
        )
        .build()?;
    let program = gst::ElementFactory::make("tee")
        .name("program")
        .property("allow-not-linked", true)
        .build()?;
    // A sink that always takes frames, so the show runs with no outputs at all.
    let idle = gst::parse::bin_from_description(
        "queue leaky=downstream max-size-buffers=1 ! fakesink sync=false async=false",
        true,
    )?;
    pipeline.add_many([&src, &caps, &program, idle.upcast_ref()])?;
    gst::Element::link_many([&src, &caps, &program, idle.upcast_ref()])?;
    // The program's sound, mixed from the inputs the config names (silence without).
    let audio = ProgramAudio::build(&pipeline, &config.audio)
        .map_err(|e| anyhow!("the program audio could not be made: {e}"))?;

    // Starting runs the model's warm-up; a model that cannot load fails here.
    if let Err(e) = pipeline.set_state(gst::State::Paused) {
        let reason = first_error(&pipeline).unwrap_or_else(|| e.to_string());
        let _ = pipeline.set_state(gst::State::Null);
        bail!("the show did not start: {reason}");
    }
    let handle = cuecastsrc
        .show()
        .ok_or_else(|| anyhow!("the show did not start"))?;
    // Before anything can happen on air: every engine event from the first frame.
    let engine_events = handle.subscribe();
    // The rundown and OSC map must fit the model before anything goes on air.
    check_show(&handle.inbox().context(), show).map_err(|e| anyhow!("{e}"))?;

    // On air before any output is attached: an encoder or preview branch joining a
    // pipeline that is still changing state can be left behind in PAUSED, where its
    // appsink waits for preroll for ever.
    pipeline
        .set_state(gst::State::Playing)
        .context("the show did not start playing")?;
    let (reached, now, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    if reached.is_err() || now != gst::State::Playing {
        let reason = first_error(&pipeline).unwrap_or_else(|| format!("it is {now:?}"));
        let _ = pipeline.set_state(gst::State::Null);
        bail!("the show did not start playing: {reason}");
    }
    let events = Events::default();
    let video_in = cuecastsrc.video_in();
    if video_in.is_some() && show.video_input.is_none() {
        tracing::warn!(
            "the model takes video but show {:?} names no video_input: it is given black frames",
            show.name
        );
    }
    audio
        .start()
        .map_err(|e| anyhow!("the program audio did not start: {e}"))?;
    // The model's own sound into the mix, and the mix to a model that takes sound.
    {
        let audio = audio.clone();
        cuecastsrc.set_sound_sink(move |pts, sound| audio.push_model(pts, sound));
    }
    audio.feed(cuecastsrc.sound_in());
    let names = audio.names();
    handle.inbox().update_context(|c| c.audio_sources = names);
    let inputs = Inputs::start(
        config.inputs.clone(),
        show.video_input.clone(),
        video_in,
        Some(audio.clone()),
        (show.video_fallback.clone(), config.media.clone()),
        events.clone(),
    );
    let outputs = Outputs::start(
        &pipeline,
        &program,
        config.video,
        config.outputs.clone(),
        events.clone(),
    );
    // What a cuecast killed while starting a take or saving a checkpoint left behind.
    for folder in [&config.takes, &config.checkpoints] {
        for name in cuecast_engine::take::remove_leftovers(folder) {
            tracing::warn!(
                "removed {name} from {}: left by a cuecast that was stopped while writing it",
                crate::user_path(folder)
            );
        }
    }
    let mut state = AppState::new(
        &config,
        handle.clone(),
        Arc::new(outputs.clone()),
        events.clone(),
    );
    state.inputs = inputs.clone();
    state.audio = Some(audio.clone());
    {
        let state = state.clone();
        std::thread::Builder::new()
            .name("cuecast-engine-events".into())
            .spawn(move || follow_engine(engine_events, state))?;
    }
    let server = ApiServer::start(config.api_listen, state.clone())?;
    let osc = Arc::new(Mutex::new(None));
    if let Some(addr) = config.osc_listen {
        *osc.lock() = Some(start_osc(addr, config.osc_allow.clone(), show, &state)?);
    }
    if let Some(path) = ready {
        let osc_addr = osc.lock().as_ref().map(OscListener::local_addr);
        let text = json!({"api": server.addr.to_string(), "osc": osc_addr.map(|a| a.to_string())});
        // Whole or not at all: a reader polling for it never sees half.
        cuecast_engine::files::write(path, text.to_string().as_bytes())
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    if crate::logging::is_json() {
        tracing::info!(
            api = %server.addr,
            model = %handle.status().model,
            "the show is live"
        );
    } else {
        eprint!(
            "{}",
            live_banner(&config, server.addr, &handle.status().model)
        );
    }
    let reloader = Reloader {
        applied: Mutex::new(config.clone()),
        state: state.clone(),
        src: cuecastsrc.clone(),
        osc: osc.clone(),
    };
    let _watcher = watch_config(&config, Arc::new(reloader))?;

    let main_loop = glib::MainLoop::new(None, false);
    let stopping = {
        let (ml, outputs) = (main_loop.clone(), outputs.clone());
        std::thread::Builder::new()
            .name("cuecast-signals".into())
            .spawn(move || {
                if let Some(signal) = crate::wait_for_signal() {
                    tracing::info!("signal {signal}: finishing recordings, closing outputs");
                    outputs.shutdown(Duration::from_secs(8));
                    ml.quit();
                }
            })?
    };
    let failure = Arc::new(Mutex::new(None::<String>));
    let bus = pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    let _watch = {
        let (ml, failure, state) = (main_loop.clone(), failure.clone(), state.clone());
        let src = src.clone();
        bus.add_watch_local(move |_, msg| {
            on_message(msg, &src, &state, &ml, &failure);
            glib::ControlFlow::Continue
        })?
    };
    main_loop.run();
    if handle.status().take.is_some() {
        match handle.stop_take() {
            Ok(t) => tracing::info!(
                "take {:?} complete: {} frames in {}",
                t.name,
                t.frames,
                t.dir.display()
            ),
            Err(e) => tracing::error!("the take could not be finished: {e}"),
        }
    }
    drop(stopping);
    drop(server);
    osc.lock().take();
    outputs.shutdown(Duration::from_secs(8));
    inputs.shutdown();
    audio.shutdown();
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = failure.lock().take() {
        bail!("{e}");
    }
    tracing::info!("show ended");
    Ok(())
}

/// What a newcomer needs once the show is live: where to watch and steer it, where
/// it is recorded, and how to stop it.
fn live_banner(config: &Config, api: SocketAddr, model: &str) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut out = format!(
        "cuecast: the show is live: {} at {}x{}, {} fps\n  control surface  http://{api}/\n  API              http://{api}/api/v1 (OpenAPI: /api/v1/openapi.json, events: /api/v1/events, metrics: /metrics)\n",
        model, config.video.width, config.video.height, config.video.fps
    );
    if let Some(osc) = config.osc_listen {
        out += &format!("  OSC              {osc}\n");
    }
    let mut recorded = false;
    for o in &config.outputs {
        if let OutputKind::Record { path } = &o.kind {
            let path = crate::tidy(path);
            let shown = path.strip_prefix(&cwd).unwrap_or(&path);
            out += &format!("  recording to     {} ({})\n", shown.display(), o.name);
            recorded = true;
        }
    }
    if !recorded {
        out += "  recording to     nowhere: no record output in the config\n";
    }
    out += "  stop             Ctrl-C (finishes the recordings and the take)\n";
    out
}

/// The first error a pipeline's bus holds, as its text.
pub(crate) fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(e.error().to_string());
        }
    }
    None
}

/// `cuecast check-config FILE`: loads everything a start would, without starting.
pub fn check_config(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    for line in config.summary() {
        println!("{line}");
    }
    println!("{}: ok", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_throttled_per_second_and_the_rest_counted() {
        let mut t = Throttle::default();
        let shown: Vec<Option<u32>> = (0..8).map(|_| t.allow()).collect();
        assert_eq!(shown[..5], [Some(0); 5]);
        assert_eq!(shown[5..], [None; 3]);
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(
            t.allow(),
            Some(3),
            "the next one shown says how many were not"
        );
        assert_eq!(t.allow(), Some(0));
    }

    #[test]
    fn control_characters_are_escaped_so_no_line_can_be_forged() {
        assert_eq!(
            escape("/cuecast/x\ncuecast: output recording live"),
            "/cuecast/x\\ncuecast: output recording live"
        );
        assert_eq!(escape("a\u{1b}[31mred\r"), "a\\u{1b}[31mred\\r");
        assert_eq!(escape("prompt \"é\""), "prompt \"é\"");
    }
}
