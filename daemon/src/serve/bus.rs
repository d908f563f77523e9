//! The show pipeline's bus: cue reports become events, once-a-second stats become
//! metrics and log lines, a stuck or failing model is told once, the generator's errors
//! end the show and anything else is a warning.

#[allow(unused_imports)]
use super::*;

/// Tells once, as an error event and in the log, when the model's step has run past
/// [`STEP_STALL`](cuecast_engine::engine::STEP_STALL) (frames are held meanwhile), and
/// once when it answers again.
pub(super) fn report_stuck_model(state: &AppState, status: &cuecast_engine::Status) {
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
            state.events.send(Event::error(message));
        }
        (true, None) => {
            tracing::info!("the model is responding again");
            state
                .events
                .send(Event::warning("the model is responding again"));
        }
        _ => {}
    }
}

/// Tells, as `error` events, when the model's steps keep failing (once per run of
/// failures, from a second of them on) and each time the model was started over.
pub(super) fn report_failing_model(state: &AppState, status: &cuecast_engine::Status) {
    use std::sync::atomic::Ordering;
    let fps = status.fps.as_f64().max(1.0);
    let failing = status.failing_steps as f64 >= fps;
    if failing && !state.model_failing.swap(true, Ordering::Relaxed) {
        state.events.send(Event::error(format!(
            "the model's steps keep failing ({} in a row); the last good picture is held",
            status.failing_steps
        )));
    } else if !failing && status.failing_steps == 0 {
        state.model_failing.store(false, Ordering::Relaxed);
    }
    let told = state
        .model_resets_told
        .swap(status.model_resets, Ordering::Relaxed);
    if status.model_resets > told {
        state.events.send(Event::Error {
            message: format!(
                "the model was started over: {}",
                status.last_reset.as_deref().unwrap_or("")
            ),
            model_resets: Some(status.model_resets),
        });
    }
}

/// Tells, as `model` events, when a python model's process went down (each restart,
/// with how it ended) and when it runs again.
pub(super) fn report_model_process(state: &AppState, status: &cuecast_engine::Status) {
    let Some(p) = &status.model_process else {
        return;
    };
    use cuecast_engine::worker::ProcessState;
    let mut told = state.model_process_told.lock();
    let down = p.state != ProcessState::Running;
    if p.restarts > told.0 {
        state.events.send(Event::Model {
            state: "restarting".into(),
            restarts: p.restarts,
            reason: p.last_exit.clone(),
        });
        told.1 = true;
    }
    if told.1 && !down {
        state.events.send(Event::Model {
            state: "running".into(),
            restarts: p.restarts,
            reason: None,
        });
        told.1 = false;
    }
    told.0 = p.restarts;
}

/// Tells once, as a `take` event, when a take ended by itself (its files could not be
/// written: a full disk).
pub(super) fn report_take_ended(state: &AppState, status: &cuecast_engine::Status) {
    let Some(ended) = &status.take_ended else {
        return;
    };
    let mut told = state.take_ended.lock();
    if told.as_deref() == Some(ended.name.as_str()) {
        return;
    }
    *told = Some(ended.name.clone());
    state.events.send(Event::Take {
        state: TakeState::Stopped,
        take: ended.name.clone(),
        start_frame: None,
        frames: Some(ended.frames),
        error: Some(ended.reason.clone()),
    });
}

/// The show bus: cue reports become events, 1 Hz stats are kept for status and
/// metrics, the generator's errors end the show, anything else is a warning.
pub(super) fn on_message(
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
                    state.events.send(Event::CueApplied {
                        id: s.get::<u64>("id").unwrap_or(0),
                        cue,
                        frame: s.get::<u64>("frame").unwrap_or(0),
                        shown_frame: s.get::<u64>("shown-frame").unwrap_or(0),
                        latency_ms: s.get::<f64>("latency-ms").unwrap_or(0.0),
                    });
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
                    state.events.send(Event::Stats {
                        stats: live.clone(),
                    });
                    *state.live.lock() = live;
                    let status = state.show.status();
                    report_stuck_model(state, &status);
                    report_failing_model(state, &status);
                    report_take_ended(state, &status);
                    report_model_process(state, &status);
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
            state.events.send(Event::error(text.clone()));
            if from_source {
                *failure.lock() = Some(text);
                main_loop.quit();
            } else {
                tracing::warn!("{text}");
            }
        }
        gst::MessageView::Warning(w) => {
            let text = w.error().to_string();
            tracing::warn!("{text}");
            state.events.send(Event::warning(text.clone()));
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
pub(super) fn check_show(context: &ShowContext, show: &Show) -> Result<(), String> {
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
