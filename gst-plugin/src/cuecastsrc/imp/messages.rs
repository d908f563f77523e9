//! What the element posts on the bus for applications (`gst-launch-1.0` users, or any
//! program that reads its bus): each cue applied, once a second its counters, and what
//! the engine tells of the model (started over, its process down and up) and of a take
//! that ended by itself.

use super::*;

impl CuecastSrc {
    pub(super) fn post_cue_applied(&self, rendered: &Rendered, t0: gst::ClockTime, video: &Video) {
        for a in &rendered.applied {
            let s = gst::Structure::builder("cuecast-cue-applied")
                .field("id", a.id)
                .field("type", a.cue.type_name())
                .field("frame", a.frame)
                .field("shown-frame", a.shown_frame)
                .field("pts", t0 + video.offset(a.frame))
                .field("latency-ms", a.latency_ms)
                .field("cue", a.cue.to_value().to_string())
                .build();
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
    }

    /// The engine's events since the last frame, as element messages: `cuecast-model-reset`
    /// (`resets`, `reason`), `cuecast-model-process` (`state` restarting or running,
    /// `restarts`, and `reason` or `resumed`), `cuecast-take-ended` (`take`, `reason`,
    /// `frames`). Applied cues are posted with their frame's time instead (above).
    pub(super) fn post_engine_events(&self, state: &State) {
        let Some(events) = &state.events else { return };
        for event in events.try_iter() {
            let s = match event {
                EngineEvent::CueApplied(_) => continue,
                EngineEvent::ModelReset { resets, why } => {
                    gst::Structure::builder("cuecast-model-reset")
                        .field("resets", resets)
                        .field("reason", why)
                        .build()
                }
                EngineEvent::ProcessDown { restarts, reason } => {
                    gst::Structure::builder("cuecast-model-process")
                        .field("state", "restarting")
                        .field("restarts", restarts)
                        .field("reason", reason)
                        .build()
                }
                EngineEvent::ProcessUp { restarts, resumed } => {
                    gst::Structure::builder("cuecast-model-process")
                        .field("state", "running")
                        .field("restarts", restarts)
                        .field("resumed", resumed)
                        .build()
                }
                EngineEvent::TakeEnded(ended) => gst::Structure::builder("cuecast-take-ended")
                    .field("take", ended.name)
                    .field("reason", ended.reason)
                    .field("frames", ended.frames)
                    .build(),
            };
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
    }

    /// Posts the stats of the frames pushed in the second (or more) before `pts`, once a
    /// second has passed, and starts the next window at `pts`.
    pub(super) fn maybe_post_stats(&self, state: &mut State, pts: gst::ClockTime) {
        let start = *state.window.start.get_or_insert(pts);
        let span = pts.saturating_sub(start);
        if span < gst::ClockTime::SECOND {
            return;
        }
        let Some(engine) = &state.engine else { return };
        let counters = engine.counters();
        let w = std::mem::take(&mut state.window);
        let mean = if w.step_ms.is_empty() {
            0.0
        } else {
            w.step_ms.iter().sum::<f64>() / w.step_ms.len() as f64
        };
        let max = w.step_ms.iter().copied().fold(0.0, f64::max);
        let s = gst::Structure::builder("cuecast-stats")
            .field("frames", state.pushed)
            .field("rendered", counters.rendered.load(Ordering::Relaxed))
            .field("repeated", counters.repeated.load(Ordering::Relaxed))
            .field("failed", counters.failed.load(Ordering::Relaxed))
            .field("fps", w.pushed as f64 / span.seconds_f64())
            .field("repeated-last-second", w.repeated)
            .field("step-ms-mean", mean)
            .field("step-ms-max", max)
            .build();
        state.window.start = Some(pts);
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}
