//! `/metrics`: Prometheus text exposition of the show's counters and histograms.

#[allow(unused_imports)]
use super::*;

/// Prometheus text exposition.
pub fn metrics(s: &AppState) -> String {
    let status = s.show.status();
    let c = s.show.counters();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    use std::sync::atomic::Ordering::Relaxed;
    counter(
        "cuecast_frames_generated_total",
        "Frames the model rendered.",
        c.rendered.load(Relaxed),
    );
    counter(
        "cuecast_frames_repeated_total",
        "Frame slots filled by repeating the previous frame (a step missed its deadline).",
        c.repeated.load(Relaxed),
    );
    counter(
        "cuecast_steps_failed_total",
        "Model steps that failed.",
        c.failed.load(Relaxed),
    );
    let cfg = lock(&s.config).clone();
    counter(
        "cuecast_config_reloads_applied_total",
        "Config edits applied live.",
        cfg.reloads_applied,
    );
    counter(
        "cuecast_config_reloads_rejected_total",
        "Config edits rejected (the show kept its config).",
        cfg.reloads_rejected,
    );
    let frames_out = lock(&s.live)["frames"].as_u64().unwrap_or(0);
    let _ = writeln!(out, "# HELP cuecast_frames_out_total Frames sent downstream (rendered or repeated).\n# TYPE cuecast_frames_out_total counter\ncuecast_frames_out_total {frames_out}");
    let _ = writeln!(
        out,
        "# HELP cuecast_frame Current frame index.\n# TYPE cuecast_frame gauge\ncuecast_frame {}",
        status.frame
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_detail The detail frames are drawn at (1 full; lower while steps run late).\n# TYPE cuecast_detail gauge\ncuecast_detail {}",
        status.detail
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_state_bytes Bytes the model's state holds.\n# TYPE cuecast_model_state_bytes gauge\ncuecast_model_state_bytes {}",
        status.state_bytes
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_failing_steps Model steps failed in a row now.\n# TYPE cuecast_model_failing_steps gauge\ncuecast_model_failing_steps {}",
        status.failing_steps
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_resets_total Times the model was started over (failing steps, state over its limit).\n# TYPE cuecast_model_resets_total counter\ncuecast_model_resets_total {}",
        status.model_resets
    );
    histogram(
        &mut out,
        "cuecast_step_seconds",
        "Time in the model's step per rendered frame.",
        &c.step_ms.snapshot(),
    );
    histogram(
        &mut out,
        "cuecast_cue_latency_seconds",
        "From a cue's arrival to the first frame showing it.",
        &c.cue_latency_ms.snapshot(),
    );
    let outputs = s.outputs.list();
    let _ = writeln!(out, "# HELP cuecast_output_state 1 for the state each output is in.\n# TYPE cuecast_output_state gauge");
    for o in &outputs {
        for st in ["connecting", "live", "retrying", "failed", "stopped"] {
            let now = json!(o.state) == json!(st);
            let _ = writeln!(
                out,
                "cuecast_output_state{{output=\"{}\",state=\"{st}\"}} {}",
                label(&o.name),
                u8::from(now)
            );
        }
    }
    let _ = writeln!(out, "# HELP cuecast_output_bytes_total Bytes handed to each output's sink.\n# TYPE cuecast_output_bytes_total counter");
    for o in &outputs {
        let _ = writeln!(
            out,
            "cuecast_output_bytes_total{{output=\"{}\"}} {}",
            label(&o.name),
            o.bytes
        );
    }
    let encoders = s.outputs.encoders();
    let _ = writeln!(out, "# HELP cuecast_encoder_frames_in_total Frames into each encoder branch.\n# TYPE cuecast_encoder_frames_in_total counter");
    for e in &encoders {
        let _ = writeln!(
            out,
            "cuecast_encoder_frames_in_total{{profile=\"{}\"}} {}",
            label(&e.profile),
            e.frames_in
        );
    }
    let _ = writeln!(out, "# HELP cuecast_encoder_frames_out_total Frames out of each encoder (in - out = dropped while behind, plus a few in flight).\n# TYPE cuecast_encoder_frames_out_total counter");
    for e in &encoders {
        let _ = writeln!(
            out,
            "cuecast_encoder_frames_out_total{{profile=\"{}\"}} {}",
            label(&e.profile),
            e.frames_out
        );
    }
    let _ = writeln!(out, "# HELP cuecast_output_reconnects_total Restarts after a failure.\n# TYPE cuecast_output_reconnects_total counter");
    for o in &outputs {
        let _ = writeln!(
            out,
            "cuecast_output_reconnects_total{{output=\"{}\"}} {}",
            label(&o.name),
            o.reconnects
        );
    }
    out
}

pub(super) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, n) in &h.buckets {
        let le = if bound.is_infinite() {
            "+Inf".to_owned()
        } else {
            format!("{}", bound / 1e3)
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum / 1e3, h.count);
}
