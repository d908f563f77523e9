//! `cuecast serve`: one show, from its config to its outputs, until SIGINT/SIGTERM.
//!
//! Threads, each with one owner and one way to stop: the main thread runs the show
//! pipeline's bus (GLib main loop); `cuecast-outputs` supervises outputs; `cuecast-api`
//! runs the HTTP API on a small tokio runtime; `cuecast-osc` listens for OSC; the
//! config watcher re-reads the config on change; `cuecast-signals` turns SIGINT and
//! SIGTERM into a clean stop (recordings finished, outputs closed, then the show).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cuecast_control::ControlState;
use cuecast_engine::world::ShowContext;
use cuecast_engine::Cue;
use gst::glib;
use gst::prelude::*;
use serde_json::{json, Value};

use crate::api::{self, AppState, ConfigStatus};
use crate::config::{Config, OutputKind, Show};
use crate::events::Events;
use crate::library::Library;
use crate::lock;
use crate::osc::OscListener;
use crate::outputs::Outputs;
use crate::rundown::Rundown;

/// Runs the show in `config_path` until a stop signal.
/// Runs the show; once it is live, `ready` (when given) gets the addresses bound, so a
/// caller that asked for port 0 learns which one it got.
pub fn serve(config_path: &Path, ready: Option<&Path>) -> Result<()> {
    let config = Config::load(config_path)?;
    for line in config.summary() {
        tracing::info!("{line}");
    }
    gst::init()?;
    gstcuecast::register_static()?;

    let show = &config.show;
    let src = gst::ElementFactory::make("cuecastsrc")
        .name("src")
        .property("backend", &show.backend)
        .property("device", &show.device)
        .property("seed", show.seed)
        .property("prompt", &show.prompt)
        .build()?;
    if let Some(m) = &show.model {
        src.set_property("model", m.to_string_lossy().as_ref());
    }
    if let Some(n) = show.model_threads {
        src.set_property("model-threads", n);
    }
    src.set_property("failure-action", show.on_failure.action.as_str());
    src.set_property("failure-after", show.on_failure.after);
    if let Some(mb) = show.state_limit_mb {
        src.set_property("state-limit-mb", mb);
    }
    let cuecastsrc = src
        .clone()
        .downcast::<gstcuecast::CuecastSrc>()
        .map_err(|_| anyhow!("cuecastsrc is not ours"))?;
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

    // Starting runs the model's warm-up; a model that cannot load fails here.
    if let Err(e) = pipeline.set_state(gst::State::Paused) {
        let reason = first_error(&pipeline).unwrap_or_else(|| e.to_string());
        let _ = pipeline.set_state(gst::State::Null);
        bail!("the show did not start: {reason}");
    }
    let handle = cuecastsrc
        .show()
        .ok_or_else(|| anyhow!("the show did not start"))?;
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
    let token: Option<Arc<str>> = config.api_token.as_ref().map(|t| t.expose().into());
    let state = AppState {
        control: ControlState {
            inbox: handle.inbox().clone(),
            status: handle.status_handle().clone(),
            token: token.clone(),
        },
        show: handle.clone(),
        outputs: outputs.clone(),
        events: events.clone(),
        rundown: Arc::new(Mutex::new(Rundown::new(show.rundown.clone()))),
        scenes: Arc::new(Mutex::new(show.scenes.clone())),
        config: Arc::new(Mutex::new(ConfigStatus {
            path: config.path.display().to_string(),
            show: show.name.clone(),
            ..Default::default()
        })),
        presets: config.presets.clone(),
        recordings: config.recordings.clone(),
        output_secrets: config.api_output_secrets.clone().into(),
        access: Arc::new(config.api_access.clone()),
        wrong_tokens: Arc::default(),
        model_stuck: Arc::default(),
        model_resets_told: Arc::default(),
        model_failing: Arc::default(),
        take_ended: Arc::default(),
        video: config.video,
        token,
        live: Arc::new(Mutex::new(json!({}))),
        library: Library::new(&config),
    };
    let server = ApiServer::start(config.api_listen, state.clone())?;
    let osc = Arc::new(Mutex::new(None));
    if let Some(addr) = config.osc_listen {
        *lock(&osc) = Some(start_osc(addr, config.osc_allow.clone(), show, &state)?);
    }
    if let Some(path) = ready {
        let osc_addr = lock(&osc).as_ref().map(OscListener::local_addr);
        let text = json!({"api": server.addr.to_string(), "osc": osc_addr.map(|a| a.to_string())});
        write_ready(path, &text.to_string())
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
    lock(&osc).take();
    outputs.shutdown(Duration::from_secs(8));
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = lock(&failure).take() {
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

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(e.error().to_string());
        }
    }
    None
}

/// The show bus: cue reports become events, 1 Hz stats are kept for status and
/// metrics, the generator's errors end the show, anything else is a warning.
/// Tells once, as an error event and in the log, when the model's step has run past
/// [`STEP_STALL`](cuecast_engine::engine::STEP_STALL) (frames are held meanwhile), and
/// once when it answers again.
fn report_stuck_model(state: &AppState, status: &cuecast_engine::Status) {
    use std::sync::atomic::Ordering;
    let stall = cuecast_engine::engine::STEP_STALL.as_secs_f64();
    let running = status.step_running_s.filter(|s| *s >= stall);
    let was = state.model_stuck.swap(running.is_some(), Ordering::Relaxed);
    match (was, running) {
        (false, Some(s)) => {
            let message = format!(
                "the model is not responding: its step has been running for {s:.1} s; the picture is held"
            );
            tracing::error!("{message}");
            state
                .events
                .send(json!({"type": "error", "message": message}));
        }
        (true, None) => {
            tracing::info!("the model is responding again");
            state
                .events
                .send(json!({"type": "warning", "message": "the model is responding again"}));
        }
        _ => {}
    }
}

/// Tells, as `error` events, when the model's steps keep failing (once per run of
/// failures, from a second of them on) and each time the model was started over.
fn report_failing_model(state: &AppState, status: &cuecast_engine::Status) {
    use std::sync::atomic::Ordering;
    let fps = status.fps.as_f64().max(1.0);
    let failing = status.failing_steps as f64 >= fps;
    if failing && !state.model_failing.swap(true, Ordering::Relaxed) {
        state.events.send(json!({
            "type": "error",
            "message": format!("the model's steps keep failing ({} in a row); the last good picture is held", status.failing_steps),
        }));
    } else if !failing && status.failing_steps == 0 {
        state.model_failing.store(false, Ordering::Relaxed);
    }
    let told = state
        .model_resets_told
        .swap(status.model_resets, Ordering::Relaxed);
    if status.model_resets > told {
        state.events.send(json!({
            "type": "error",
            "message": format!(
                "the model was started over: {}",
                status.last_reset.as_deref().unwrap_or("")
            ),
            "model_resets": status.model_resets,
        }));
    }
}

/// Tells once, as a `take` event, when a take ended by itself (its files could not be
/// written: a full disk).
fn report_take_ended(state: &AppState, status: &cuecast_engine::Status) {
    let Some(ended) = &status.take_ended else {
        return;
    };
    let mut told = lock(&state.take_ended);
    if told.as_deref() == Some(ended.name.as_str()) {
        return;
    }
    *told = Some(ended.name.clone());
    state.events.send(json!({
        "type": "take", "state": "stopped", "take": ended.name,
        "frames": ended.frames, "error": ended.reason,
    }));
}

fn on_message(
    msg: &gst::Message,
    src: &gst::Element,
    state: &AppState,
    main_loop: &glib::MainLoop,
    failure: &Mutex<Option<String>>,
) {
    match msg.view() {
        gst::MessageView::Element(e) => {
            let Some(s) = e.structure() else { return };
            match s.name().as_str() {
                "cuecast-cue-applied" => {
                    let cue: Value = s
                        .get::<String>("cue")
                        .ok()
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or(Value::Null);
                    state.events.send(json!({
                        "type": "cue_applied",
                        "id": s.get::<u64>("id").unwrap_or(0),
                        "cue": cue,
                        "frame": s.get::<u64>("frame").unwrap_or(0),
                        "shown_frame": s.get::<u64>("shown-frame").unwrap_or(0),
                        "latency_ms": s.get::<f64>("latency-ms").unwrap_or(0.0),
                    }));
                }
                "cuecast-stats" => {
                    let u = |f: &str| s.get::<u64>(f).unwrap_or(0);
                    let f = |f: &str| s.get::<f64>(f).unwrap_or(0.0);
                    let live = json!({
                        "frames": u("frames"), "rendered": u("rendered"),
                        "repeated": u("repeated"), "failed": u("failed"),
                        "fps": f("fps"), "repeated_last_second": u("repeated-last-second"),
                        "step_ms_mean": f("step-ms-mean"), "step_ms_max": f("step-ms-max"),
                    });
                    if u("repeated-last-second") > 0 {
                        tracing::warn!(
                            "{} frames repeated in the last second (step up to {:.1} ms)",
                            u("repeated-last-second"),
                            f("step-ms-max")
                        );
                    }
                    state.events.send(json!({"type": "stats", "stats": live}));
                    *lock(&state.live) = live;
                    let status = state.show.status();
                    report_stuck_model(state, &status);
                    report_failing_model(state, &status);
                    report_take_ended(state, &status);
                }
                _ => {}
            }
        }
        gst::MessageView::Error(e) => {
            let from_source = msg
                .src()
                .is_some_and(|o| o == src.upcast_ref::<gst::Object>());
            let text = format!(
                "{}: {}",
                msg.src().map(|o| o.name().to_string()).unwrap_or_default(),
                e.error()
            );
            state.events.send(json!({"type": "error", "message": text}));
            if from_source {
                *lock(failure) = Some(text);
                main_loop.quit();
            } else {
                tracing::warn!("{text}");
            }
        }
        gst::MessageView::Warning(w) => {
            let text = w.error().to_string();
            tracing::warn!("{text}");
            state
                .events
                .send(json!({"type": "warning", "message": text}));
        }
        gst::MessageView::Latency(_) => {
            if let Some(p) = src.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
                let _ = p.recalculate_latency();
            }
        }
        _ => {}
    }
}

/// Checks a show preset against the running model: scene params, rundown and OSC map.
fn check_show(context: &ShowContext, show: &Show) -> Result<(), String> {
    let mut context = context.clone();
    context.scenes = show.scenes.iter().map(|s| s.name.clone()).collect();
    for scene in &show.scenes {
        context.check_scene(scene).map_err(|e| e.to_string())?;
    }
    for (i, item) in show.rundown.iter().enumerate() {
        for (j, cue) in item.cues.iter().enumerate() {
            context
                .check(cue)
                .map_err(|e| e.within(&format!("rundown[{i}].cues[{j}]")).to_string())?;
        }
    }
    for (address, value) in &show.osc_map {
        for cue in Cue::list_from_value(value).map_err(|e| e.to_string())? {
            context
                .check(&cue)
                .map_err(|e| e.within(&format!("osc.map.{address}")).to_string())?;
        }
    }
    Ok(())
}

/// Serves the API on its own thread and runtime until dropped.
struct ApiServer {
    addr: std::net::SocketAddr,
    _server: cuecast_control::server::HttpServer,
}

impl ApiServer {
    /// Event streams and previews never end on their own: stopping ends them at once.
    fn start(addr: std::net::SocketAddr, state: AppState) -> Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        let server = cuecast_control::server::HttpServer::start(
            listener,
            api::router(state),
            "cuecast-api",
            cuecast_control::server::Limits::default(),
            Duration::ZERO,
        )?;
        Ok(ApiServer {
            addr: server.local_addr(),
            _server: server,
        })
    }
}

/// OSC messages become cues (or rundown steps) through the same checked inbox.
/// At most [`Throttle::PER_S`] warnings a second from one source; the rest are counted
/// and reported with the next one let through (one UDP bundle can hold thousands).
#[derive(Default)]
struct Throttle {
    second: Option<std::time::Instant>,
    shown: u32,
    dropped: u32,
}

impl Throttle {
    const PER_S: u32 = 5;

    /// `Some(dropped since the last one shown)` when this one may be shown.
    fn allow(&mut self) -> Option<u32> {
        let now = std::time::Instant::now();
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.second = Some(now);
            self.shown = 0;
        }
        if self.shown >= Self::PER_S {
            self.dropped += 1;
            return None;
        }
        self.shown += 1;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so nothing a sender writes
/// can forge a log line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn start_osc(
    addr: std::net::SocketAddr,
    allow: Vec<std::net::IpAddr>,
    show: &Show,
    state: &AppState,
) -> Result<OscListener> {
    let state = state.clone();
    let warnings = Mutex::new(Throttle::default());
    let listener = OscListener::start(
        &addr.to_string(),
        show.osc_prefix.clone(),
        show.osc_map.clone(),
        allow,
        move |address, cue| {
            let result = cue
                .map_err(|e| e.to_string())
                .and_then(|value| osc_cue(&state, &value));
            if let Err(e) = result {
                let Some(dropped) = lock(&warnings).allow() else {
                    return;
                };
                let mut message = format!("OSC {}: {}", escape(address), escape(&e));
                if dropped > 0 {
                    message += &format!(" ({dropped} more OSC warnings in the last second)");
                }
                tracing::warn!("{message}");
                state
                    .events
                    .send(json!({"type": "warning", "message": message}));
            }
        },
    )
    .with_context(|| format!("cannot listen for OSC on {addr}"))?;
    tracing::info!("OSC on udp://{}{}", listener.local_addr(), show.osc_prefix);
    Ok(listener)
}

fn osc_cue(state: &AppState, value: &Value) -> Result<(), String> {
    match value["type"].as_str() {
        Some(step @ ("go" | "back")) => state
            .rundown_step(step == "go")
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => {
            let cues = Cue::list_from_value(value).map_err(|e| e.to_string())?;
            state
                .show
                .inbox()
                .submit(cues, None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

/// Applies config edits while the show runs.
struct Reloader {
    applied: Mutex<Config>,
    state: AppState,
    src: gstcuecast::CuecastSrc,
    osc: Arc<Mutex<Option<OscListener>>>,
}

impl Reloader {
    fn reload(&self) {
        let path = lock(&self.applied).path.clone();
        let had_outputs = !lock(&self.applied).outputs.is_empty();
        let result = edit_settled(&path)
            .and_then(|text| {
                let new = Config::load(&path).map_err(|e| e.to_string())?;
                if had_outputs && new.outputs.is_empty() && !names_outputs(&text) {
                    return Err(format!(
                        "{}: the edit has no outputs: write `outputs: []` to stop every output",
                        path.display()
                    ));
                }
                Ok(new)
            })
            .and_then(|new| {
                check_show(&self.state.show.inbox().context(), &new.show).map_err(|e| {
                    format!(
                        "{}: {e}",
                        new.show_path.as_deref().unwrap_or(&path).display()
                    )
                })?;
                Ok(new)
            });
        let new = match result {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!("config edit rejected, the show keeps its config: {e}");
                let mut c = lock(&self.state.config);
                c.reloads_rejected += 1;
                c.last_error = Some(e.clone());
                self.state
                    .events
                    .send(json!({"type": "config", "ok": false, "error": e}));
                return;
            }
        };
        let mut applied = lock(&self.applied);
        if *applied == new {
            return;
        }
        let mut changes = Vec::new();
        let mut restart = Vec::new();
        if applied.outputs != new.outputs {
            self.state.outputs.apply(new.outputs.clone());
            changes.push("outputs");
        }
        let (old_show, new_show) = (&applied.show, &new.show);
        if old_show.scenes != new_show.scenes {
            if let Err(e) = self.src.set_scenes(new_show.scenes.clone()) {
                tracing::warn!("scenes not applied: {e}");
            } else {
                *lock(&self.state.scenes) = new_show.scenes.clone();
                changes.push("scenes");
            }
        }
        if old_show.rundown != new_show.rundown {
            lock(&self.state.rundown).replace(new_show.rundown.clone());
            changes.push("rundown");
        }
        if (&old_show.osc_prefix, &old_show.osc_map) != (&new_show.osc_prefix, &new_show.osc_map)
            || applied.osc_listen != new.osc_listen
            || applied.osc_allow != new.osc_allow
        {
            let mut osc = lock(&self.osc);
            osc.take();
            if let Some(addr) = new.osc_listen {
                match start_osc(addr, new.osc_allow.clone(), new_show, &self.state) {
                    Ok(l) => *osc = Some(l),
                    Err(e) => tracing::error!("OSC not restarted: {e:#}"),
                }
            }
            changes.push("osc");
        }
        for (what, differs) in [
            ("video", applied.video != new.video),
            (
                "api",
                applied.api_listen != new.api_listen || applied.api_token != new.api_token,
            ),
            (
                "model",
                (
                    &old_show.backend,
                    &old_show.model,
                    &old_show.device,
                    old_show.seed,
                    &old_show.prompt,
                    old_show.model_threads,
                    (old_show.on_failure, old_show.state_limit_mb),
                ) != (
                    &new_show.backend,
                    &new_show.model,
                    &new_show.device,
                    new_show.seed,
                    &new_show.prompt,
                    new_show.model_threads,
                    (new_show.on_failure, new_show.state_limit_mb),
                ),
            ),
        ] {
            if differs {
                restart.push(what.to_owned());
            }
        }
        if !restart.is_empty() {
            tracing::warn!(
                "config: {} change(s) apply at the next start",
                restart.join(", ")
            );
        }
        tracing::info!("config edit applied: {}", changes.join(", "));
        {
            let mut c = lock(&self.state.config);
            c.reloads_applied += 1;
            c.last_error = None;
            c.pending_restart = restart.clone();
        }
        self.state.events.send(json!({
            "type": "config", "ok": true, "changed": changes, "pending_restart": restart,
        }));
        // What needs a restart stays as it runs; the rest is now the new config.
        let mut kept = new.clone();
        kept.video = applied.video;
        kept.api_listen = applied.api_listen;
        kept.api_token = applied.api_token.clone();
        kept.show.backend = applied.show.backend.clone();
        kept.show.model = applied.show.model.clone();
        kept.show.device = applied.show.device.clone();
        kept.show.seed = applied.show.seed;
        kept.show.prompt = applied.show.prompt.clone();
        kept.show.model_threads = applied.show.model_threads;
        kept.show.on_failure = applied.show.on_failure;
        kept.show.state_limit_mb = applied.show.state_limit_mb;
        *applied = kept;
    }
}

/// Watches the folders of the config and show preset; any change there re-reads the
/// config (after a short settle, since editors write files in several steps). An
/// unchanged result changes nothing.
/// The config file's text once an edit has settled: the same size and time twice,
/// 100 ms apart (editors that truncate and then write pass through an empty file).
/// An empty file is refused.
fn edit_settled(path: &Path) -> Result<String, String> {
    let stamp = || {
        std::fs::metadata(path)
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))
    };
    let mut last = stamp()?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = stamp()?;
        if now == last {
            break;
        }
        last = now;
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!(
            "{}: the file is empty (an editor may be part-way through saving it)",
            path.display()
        ));
    }
    Ok(text)
}

/// Whether a config's text has an `outputs` key of its own.
fn names_outputs(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.get("outputs").cloned())
        .is_some()
}

fn watch_config(config: &Config, reloader: Arc<Reloader>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })
    .context("cannot watch the config")?;
    let mut dirs: Vec<PathBuf> = vec![config.path.clone()];
    dirs.extend(config.show_path.clone());
    let mut watched = Vec::new();
    for file in dirs {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        if !watched.contains(&dir) {
            watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
            watched.push(dir);
        }
    }
    std::thread::Builder::new()
        .name("cuecast-config".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                while rx.try_recv().is_ok() {}
                reloader.reload();
            }
        })?;
    Ok(watcher)
}

/// `cuecast check-config FILE`: loads everything a start would, without starting.
/// Writes the ready file whole or not at all (a reader polling for it never sees half).
fn write_ready(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

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
