//! What the show tells: the engine's typed events become the event stream's
//! ([`follow_engine`]); on the pipeline's bus, once-a-second stats become metrics and log
//! lines, a stuck or failing model is told once, the generator's errors end the show and
//! anything else is a warning.

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

/// Tells, as an `error` event, when the model's steps keep failing (once per run of
/// failures, from a second of them on). Each start over is told by the engine itself
/// ([`follow_engine`]).
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
}

/// The engine's events, typed, as the daemon's event stream tells them: a cue applied,
/// the model started over, a python model's process down and up, a take that ended by
/// itself. Runs until the engine stops (its queue closes).
pub(super) fn follow_engine(events: std::sync::mpsc::Receiver<EngineEvent>, state: AppState) {
    for e in events {
        let event = match e {
            EngineEvent::CueApplied(a) => {
                // The program's sound follows its cue as the pictures do theirs.
                if let (
                    cuecast_engine::CueKind::Audio {
                        source,
                        gain_db,
                        mute,
                        ramp_s,
                    },
                    Some(audio),
                ) = (&a.cue.kind, &state.audio)
                {
                    audio.cue(source, *gain_db, *mute, *ramp_s);
                }
                Event::CueApplied {
                    id: a.id,
                    cue: a.cue.to_value(),
                    frame: a.frame,
                    shown_frame: a.shown_frame,
                    latency_ms: a.latency_ms,
                }
            }
            EngineEvent::ModelReset { resets, why } => Event::Error {
                message: format!("the model was started over: {why}"),
                model_resets: Some(resets),
            },
            EngineEvent::ProcessDown { restarts, reason } => Event::Model {
                state: ModelState::Restarting,
                restarts,
                reason: Some(reason),
            },
            EngineEvent::ProcessUp { restarts, .. } => Event::Model {
                state: ModelState::Running,
                restarts,
                reason: None,
            },
            EngineEvent::TakeEnded(ended) => Event::Take {
                state: TakeState::Stopped,
                take: ended.name,
                start_frame: None,
                frames: Some(ended.frames),
                error: Some(ended.reason),
            },
        };
        state.events.send(event);
    }
}

/// The show bus: 1 Hz stats are kept for status and metrics, the generator's errors end
/// the show, anything else is a warning.
pub(super) fn on_message(
    msg: &gst::Message,
    src: &gst::Element,
    state: &AppState,
    main_loop: &glib::MainLoop,
    failure: &Mutex<Option<String>>,
) {
    match msg.view() {
        gst::MessageView::Element(e) => {
            let Some(s) = e.structure().filter(|s| s.name() == "cuecast-stats") else {
                return;
            };
            let u = |f: &str| s.get::<u64>(f).unwrap_or(0);
            let f = |f: &str| s.get::<f64>(f).unwrap_or(0.0);
            let live = LiveStats {
                frames: u("frames"),
                rendered: u("rendered"),
                repeated: u("repeated"),
                failed: u("failed"),
                fps: f("fps"),
                repeated_last_second: u("repeated-last-second"),
                step_ms_mean: f("step-ms-mean"),
                step_ms_max: f("step-ms-max"),
            };
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
            *state.live.lock() = Some(live);
            let status = state.show.status();
            report_stuck_model(state, &status);
            report_failing_model(state, &status);
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
