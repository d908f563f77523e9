//! `/metrics`: the show's numbers in the OpenMetrics text format (which Prometheus
//! scrapes), encoded by `prometheus-client`.
//!
//! The numbers are kept where they are counted: the engine's atomic counters and
//! histograms, the output supervisor's table, the config status. A [`Collector`] reads
//! them at each scrape, so nothing is counted twice and nothing here can drift from what
//! status shows.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::outputs::OutputState;
use cuecast_engine::metrics::HistogramSnapshot;

/// The media type of [`metrics`]' answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The show's metrics, OpenMetrics text.
pub fn metrics(s: &AppState) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Show(s.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

struct Show(AppState);

impl fmt::Debug for Show {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Show")
    }
}

impl Collector for Show {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let status = s.show.status();
        let c = s.show.counters();
        let cfg = s.config.lock().clone();
        let frames_out = s.live.lock().as_ref().map_or(0, |l| l.frames);
        for (name, help, v) in [
            (
                "cuecast_frames_generated",
                "Frames the model rendered.",
                c.rendered.load(Relaxed),
            ),
            (
                "cuecast_frames_repeated",
                "Frame slots filled by repeating the previous frame (a step missed its deadline).",
                c.repeated.load(Relaxed),
            ),
            (
                "cuecast_steps_failed",
                "Model steps that failed.",
                c.failed.load(Relaxed),
            ),
            (
                "cuecast_config_reloads_applied",
                "Config edits applied live.",
                cfg.reloads_applied,
            ),
            (
                "cuecast_config_reloads_rejected",
                "Config edits rejected (the show kept its config).",
                cfg.reloads_rejected,
            ),
            (
                "cuecast_frames_out",
                "Frames sent downstream (rendered or repeated).",
                frames_out,
            ),
            (
                "cuecast_model_resets",
                "Times the model was started over (failing steps, state over its limit).",
                status.model_resets,
            ),
        ] {
            one(&mut e, name, help, &ConstCounter::new(v))?;
        }
        one(
            &mut e,
            "cuecast_frame",
            "Current frame index.",
            &ConstGauge::new(status.frame),
        )?;
        one(
            &mut e,
            "cuecast_detail",
            "The detail frames are drawn at (1 full; lower while steps run late).",
            &ConstGauge::new(f64::from(status.detail)),
        )?;
        one(
            &mut e,
            "cuecast_model_state_bytes",
            "Bytes the model's state holds.",
            &ConstGauge::new(status.state_bytes),
        )?;
        one(
            &mut e,
            "cuecast_model_failing_steps",
            "Model steps failed in a row now.",
            &ConstGauge::new(status.failing_steps),
        )?;
        one(
            &mut e,
            "cuecast_step_seconds",
            "Time in the model's step per rendered frame.",
            &Seconds(c.step_ms.snapshot()),
        )?;
        one(
            &mut e,
            "cuecast_cue_latency_seconds",
            "From a cue's arrival to the first frame showing it.",
            &Seconds(c.cue_latency_ms.snapshot()),
        )?;
        if let Some(p) = &status.model_process {
            one(
                &mut e,
                "cuecast_model_restarts",
                "Times a python model's process was started again after dying or hanging.",
                &ConstCounter::new(p.restarts),
            )?;
            one(
                &mut e,
                "cuecast_model_up",
                "1 while a python model's process is running, 0 while it starts or restarts.",
                &ConstGauge::new(u64::from(
                    p.state == cuecast_engine::worker::ProcessState::Running,
                )),
            )?;
            one(
                &mut e,
                "cuecast_chunk_seconds",
                "A chunked model's chunks, from asking for one to having it.",
                &Seconds(c.chunk_ms.snapshot()),
            )?;
            one(
                &mut e,
                "cuecast_chunk_transfer_seconds",
                "Moving a chunk's frames from the model's process into cuecast.",
                &Seconds(c.transfer_ms.snapshot()),
            )?;
            for (name, help, v) in [
                (
                    "cuecast_frames_skipped",
                    "A chunked model's frames never shown (they came after their time).",
                    status.frames_skipped,
                ),
                (
                    "cuecast_fallback_frames",
                    "Frames the fallback drew while a python model's process was down.",
                    status.fallback_frames,
                ),
                (
                    "cuecast_chunks_copied",
                    "Chunks whose frames were copied out of shared memory instead of going on air where the model wrote them.",
                    p.copied_chunks,
                ),
            ] {
                one(&mut e, name, help, &ConstCounter::new(v))?;
            }
        }

        let inputs = s.inputs.list();
        let input_states = inputs.iter().flat_map(|i| {
            crate::inputs::InputState::ALL.iter().map(move |st| {
                let labels = vec![("input", i.name.clone()), ("state", st.as_str().to_owned())];
                (labels, ConstGauge::new(u64::from(i.state == *st)))
            })
        });
        family(
            &mut e,
            "cuecast_input_state",
            "1 for the state each input is in.",
            input_states,
        )?;
        let per_input = |v: fn(&crate::inputs::InputStatus) -> u64| {
            inputs
                .iter()
                .map(move |i| (vec![("input", i.name.clone())], ConstCounter::new(v(i))))
        };
        family(
            &mut e,
            "cuecast_input_frames",
            "Frames each input decoded.",
            per_input(|i| i.frames),
        )?;
        family(
            &mut e,
            "cuecast_input_reconnects",
            "Times each input was started again after a failure.",
            per_input(|i| i.reconnects),
        )?;
        if let Some(v) = status.video_in {
            for (name, help, n) in [
                ("cuecast_video_in_received", "Video frames fed to the model's video input.", v.received),
                ("cuecast_video_in_used", "Input video frames the model took.", v.used),
                (
                    "cuecast_video_in_dropped",
                    "Input video frames dropped unseen (the model was slower than its input, or a flush).",
                    v.dropped,
                ),
                (
                    "cuecast_video_in_repeated",
                    "Input video frames given to the model again (no newer one had come).",
                    v.repeated,
                ),
            ] {
                one(&mut e, name, help, &ConstCounter::new(n))?;
            }
        }

        let outputs = s.outputs.list();
        let states = outputs.iter().flat_map(|o| {
            OutputState::ALL.iter().map(move |st| {
                let labels = vec![
                    ("output", o.name.clone()),
                    ("state", st.as_str().to_owned()),
                ];
                (labels, ConstGauge::new(u64::from(o.state == *st)))
            })
        });
        family(
            &mut e,
            "cuecast_output_state",
            "1 for the state each output is in.",
            states,
        )?;
        let per_output = |v: fn(&crate::outputs::OutputStatus) -> u64| {
            outputs
                .iter()
                .map(move |o| (vec![("output", o.name.clone())], ConstCounter::new(v(o))))
        };
        family(
            &mut e,
            "cuecast_output_bytes",
            "Bytes delivered by each output (acknowledged, for SRT).",
            per_output(|o| o.bytes),
        )?;
        family(
            &mut e,
            "cuecast_output_reconnects",
            "Restarts after a failure.",
            per_output(|o| o.reconnects),
        )?;
        let encoders = s.outputs.encoders();
        let per_encoder = |v: fn(&crate::outputs::EncoderStatus) -> u64| {
            encoders.iter().map(move |x| {
                (
                    vec![("profile", x.profile.clone())],
                    ConstCounter::new(v(x)),
                )
            })
        };
        family(
            &mut e,
            "cuecast_encoder_frames_in",
            "Frames into each encoder branch.",
            per_encoder(|x| x.frames_in),
        )?;
        family(
            &mut e,
            "cuecast_encoder_frames_out",
            "Frames out of each encoder (in - out = dropped while behind, plus a few in flight).",
            per_encoder(|x| x.frames_out),
        )?;
        Ok(())
    }
}

/// One metric without labels.
fn one(e: &mut DescriptorEncoder, name: &str, help: &str, m: &impl EncodeMetric) -> fmt::Result {
    m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
}

/// One metric per label set, under one name.
fn family<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Vec<(&'static str, String)>, M)>,
) -> fmt::Result {
    let mut rows = rows.peekable();
    let Some(ty) = rows.peek().map(|(_, m)| m.metric_type()) else {
        return Ok(());
    };
    let mut family = e.encode_descriptor(name, help, None, ty)?;
    for (labels, m) in rows {
        m.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// An engine histogram (milliseconds, cumulative buckets) as seconds.
struct Seconds(HistogramSnapshot);

impl EncodeMetric for Seconds {
    fn encode(&self, mut e: MetricEncoder) -> fmt::Result {
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let n = cumulative - below;
                below = cumulative;
                // The last bound is +Inf, which the encoder writes as "+Inf".
                (bound / 1e3, n)
            })
            .collect();
        e.encode_histogram::<NoLabelSet>(self.0.sum / 1e3, self.0.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
