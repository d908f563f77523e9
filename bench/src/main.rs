//! cuecast's benchmarks: `make bench` (or `cargo run --release -p cuecast-bench`) runs
//! the suite and writes `docs/benchmarks.md`, the raw figures in
//! `docs/benchmarks.json` and PNG plots in `docs/bench/`, each naming the machine and
//! the date. `--quick` shortens every run (for trying the harness, not for figures).
//!
//! Every figure is a median or percentile over repeated runs made in this one process,
//! alternating the things compared so machine noise hits them alike; each comparison is
//! with what a user would otherwise pick, measured in the same run. Nothing here is a
//! pass/fail test: the document says which targets were met and which were not.
//!
//! 1. Source cost ([`element`]): `cuecastsrc` against `videotestsrc` at three sizes,
//!    not live, into `fakesink`; with no model step, with the tensor-to-buffer copy, with
//!    a trivial picture and with the procedural world.
//! 2. Model stepping: the example TorchScript package stepped by cuecast against a plain
//!    Python + PyTorch loop (`python_loop.py`).
//! 3. Pacing: live 30 and 60 fps for 60 s.
//! 4. Latency ([`show`]): HTTP cue → frame, cue → SRT receiver, cue → control surface.
//! 5. Resources: CPU and RSS of a 10-minute show with SRT, RTMP and a recording.
//! 6. Encode: 720p30 and 1080p30 x264.
//! 9. Media ([`media`]): glass to glass through a video-to-video model, a fast input into
//!    a slow model for ten minutes, and sound against picture at an SRT receiver.
//!
//! Plus the cost of recording a take and exporting it, and the GPU path when there is
//! a GPU (rows 1-3 with `device=cuda`, and the device-to-host copy per frame).
//!
//! Why one file of about a thousand lines: it is the report. Each section of
//! `docs/benchmarks.md` is written next to the runs it reports on, so a figure and the
//! words that explain it cannot drift apart; the runs themselves live in the modules.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

mod element;
mod faults;
mod media;
mod models;
mod report;
mod show;
mod world;

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, {}", gpu())
}

pub(crate) fn gpu() -> String {
    if !tch::Cuda::is_available() {
        return "no GPU".into();
    }
    let name = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "CUDA device".into());
    format!("GPU: {name}")
}

pub(crate) fn today() -> String {
    let out = std::process::Command::new("date").arg("+%Y-%m-%d").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// Bytes in the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

pub(crate) fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    // The daemon benchmarks run `cuecast serve` as a process: this same binary.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, config, ready] = args.as_slice() {
        if flag == "--serve" {
            std::process::exit(cuecast::run(&[
                "serve".into(),
                "--config".into(),
                config.clone(),
                "--ready-file".into(),
                ready.clone(),
            ]));
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out_path = PathBuf::from(
        args.iter()
            .skip_while(|a| *a != "--out")
            .nth(1)
            .cloned()
            .unwrap_or_else(|| "docs/benchmarks.md".into()),
    );
    let python = std::env::var("CUECAST_PYTHON").context("CUECAST_PYTHON: run scripts/setup")?;
    // `--render FILE`: the document and plots again from a run's JSON, measuring nothing.
    if let Some(json) = args.iter().skip_while(|a| *a != "--render").nth(1) {
        let report: Value = serde_json::from_str(&std::fs::read_to_string(json)?)?;
        return render(&report, &out_path, &python);
    }
    gst::init()?;
    gstcuecast::register_static()?;
    element::register_backends();
    // `--faults`: section 7 alone, one round each, its JSON on stdout (a check of the
    // fault benchmarks themselves; the document is not touched).
    if args.iter().any(|a| a == "--faults") {
        let work = std::env::temp_dir().join(format!("cuecast-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        println!("{}", measure_faults(&python, &work, 1)?);
        return Ok(());
    }
    // A section measured alone: merged into the report already at `--out`'s JSON, and
    // the document written again from it. Each names its date and machine.
    let merge = |update: &dyn Fn(&mut Value, &Path) -> Result<()>| -> Result<()> {
        let json_path = out_path.with_extension("json");
        let mut report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path)?)
            .with_context(|| format!("reading {}", json_path.display()))?;
        let work = std::env::temp_dir().join(format!("cuecast-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let updated = update(&mut report, &work);
        let _ = std::fs::remove_dir_all(&work);
        updated?;
        render(&report, &out_path, &python)
    };
    // `--models`: section 8 alone (python models).
    if args.iter().any(|a| a == "--models") {
        return merge(&|report, work| {
            report["models"] = models::measure(&python, work, quick)?;
            Ok(())
        });
    }
    // `--transfer`: section 8's chunk move alone.
    if args.iter().any(|a| a == "--transfer") {
        return merge(&|report, work| {
            report["models"]["transfer"] =
                models::transfer(&python, work, if quick { 10 } else { 40 })?;
            report["models"]["transfer_run"] = json!({"date": today(), "machine": machine()});
            Ok(())
        });
    }
    // `--runtimes`: section 8's one-frame model in each runtime.
    if args.iter().any(|a| a == "--runtimes") {
        return merge(&|report, work| {
            let (rounds, steps) = if quick { (3, 20) } else { (9, 60) };
            report["models"]["runtimes"] = models::runtimes(&python, work, rounds, steps)?;
            report["models"]["runtimes_run"] = json!({"date": today(), "machine": machine()});
            Ok(())
        });
    }
    // `--media`: section 9 alone (video in, sound out).
    if args.iter().any(|a| a == "--media") {
        return merge(&|report, work| {
            report["media"] = measure_media(work, quick)?;
            Ok(())
        });
    }
    // `--world`: the procedural world's own cost, section 1's table and the default show.
    if args.iter().any(|a| a == "--world") {
        return merge(&|report, _| {
            report["world"] = measure_world(quick)?;
            report["source"] = measure_source(if quick { 2 } else { 5 })?;
            report["source_run"] = json!({"date": today(), "machine": machine()});
            report["default_show"] = measure_default_show(&element::flight_cues()?, quick)?;
            report["default_show"]["date"] = json!(today());
            report["default_show"]["machine"] = json!(machine());
            Ok(())
        });
    }
    // `--latency`: section 4 alone (a cue's way to the frame, the SRT receiver and the
    // control surface; SRT alone and taken apart).
    if args.iter().any(|a| a == "--latency") {
        return merge(&|report, _| {
            report["latency"] = measure_latency(quick)?;
            report["transport"] = measure_transport(quick)?;
            Ok(())
        });
    }
    // `--transport`: SRT alone, no cuecast (in section 4).
    if args.iter().any(|a| a == "--transport") {
        return merge(&|report, _| {
            report["transport"] = measure_transport(quick)?;
            Ok(())
        });
    }
    // `--stages`: the encode and SRT path taken apart, its JSON on stdout.
    if args.iter().any(|a| a == "--stages") {
        println!("{}", media::stages(if quick { 10 } else { 40 })?);
        return Ok(());
    }
    // `--export`: the export comparison alone, one round, its JSON on stdout.
    if args.iter().any(|a| a == "--export") {
        println!("{}", measure_export(1)?);
        return Ok(());
    }
    let rounds = if quick { 2 } else { 5 };
    let pacing_s = if quick { 10 } else { 60 };
    let (resources_s, warmup_s) = if quick { (60, 15) } else { (600, 60) };
    let encode_s = if quick { 10 } else { 60 };
    let work = std::env::temp_dir().join(format!("cuecast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut report = json!({
        "machine": machine(), "date": today(), "quick": quick,
        "gstreamer": gst::version_string().to_string(),
    });

    // 1. Source cost, and the procedural world's own.
    report["world"] = measure_world(quick)?;
    report["source"] = measure_source(rounds)?;

    // 2. Model stepping.
    let package = element::example_package(&python, &work)?;
    let steps = if quick { 100 } else { 300 };
    let stepping = element::stepping(&python, &package, tch::Device::Cpu, rounds, steps)?;
    eprintln!(
        "stepping {}: cuecast {:.3} ms, python step {:.3} ms, python step+frame {:.3} ms",
        stepping["model"],
        f(&stepping["cuecast_ms"]),
        f(&stepping["python_step_ms"]),
        f(&stepping["python_frame_ms"])
    );
    report["stepping"] = stepping;
    let threads = element::threads_beside_load(&package, rounds, if quick { 30 } else { 60 })?;
    for row in threads["rows"].as_array().into_iter().flatten() {
        eprintln!(
            "stepping on {} thread(s) ({}), {}: {:.3} ms",
            row["threads"],
            row["label"].as_str().unwrap_or(""),
            if row["busy"] == true {
                "busy core beside"
            } else {
                "quiet"
            },
            f(&row["ms"])
        );
    }
    report["threads"] = threads;

    // 3. Pacing.
    let cues = element::flight_cues()?;
    let mut pacing = Vec::new();
    for fps in [30, 60] {
        let row = element::pacing(
            &format!(
                "cuecastsrc name=src prompt=\"rolling green hills\" cues={} ! video/x-raw,width=640,height=360,framerate={fps}/1 ! fakesink sync=true",
                cues.display()
            ),
            pacing_s,
        )?;
        eprintln!(
            "pacing 640x360@{fps}: {} frames, {} repeated",
            row["frames"], row["repeated"]
        );
        pacing.push(json!({"fps": fps, "width": 640, "height": 360, "run": row}));
    }
    report["pacing"] = json!(pacing);

    // 3b. The default show, quiet and beside a busy core; adaptive detail off and on.
    report["default_show"] = measure_default_show(&cues, quick)?;

    // 4. Latency.
    report["latency"] = measure_latency(quick)?;
    report["transport"] = measure_transport(quick)?;

    // 5. Resources over a long show.
    let res = show::resources(resources_s, warmup_s)?;
    let growth = (res.rss_end - res.rss_after_warmup) / res.rss_after_warmup * 100.0;
    eprintln!(
        "resources {} s: RSS {:.1} → {:.1} MB ({growth:+.2} %), CPU {:.0} %",
        res.seconds, res.rss_after_warmup, res.rss_end, res.cpu_mean
    );
    report["resources"] = json!({
        "seconds": res.seconds, "warmup_s": res.warmup_s,
        "rss_after_warmup_mb": res.rss_after_warmup, "rss_end_mb": res.rss_end,
        "growth_percent": growth, "cpu_mean_percent": res.cpu_mean, "repeated": res.repeated,
        "outputs": res.outputs.iter().map(|(n, s, b)| json!({"name": n, "state": s, "bytes": b})).collect::<Vec<_>>(),
        "srt_received_bytes": res.srt_received,
        "cues_sent": res.cues_sent, "cues_accepted": res.cues_accepted,
        "samples": res.samples.iter().map(|(t, r, c, fds, rep)| json!([t, r, c, fds, rep])).collect::<Vec<_>>(),
    });

    // 6. Encode.
    let mut encode = Vec::new();
    for (w, h, kbps) in [(1280, 720, 4500), (1920, 1080, 6000)] {
        let e = show::encode(w, h, kbps, encode_s)?;
        eprintln!(
            "{w}x{h}p30 x264 for {} s: {} in, {} out, CPU {:.0} %",
            e.seconds, e.frames_in, e.frames_out, e.cpu_percent
        );
        encode.push(json!({
            "width": e.width, "height": e.height, "kbps": e.kbps, "seconds": e.seconds,
            "frames_in": e.frames_in, "frames_out": e.frames_out,
            "dropped": e.frames_in.saturating_sub(e.frames_out),
            "cpu_percent": e.cpu_percent, "repeated": e.repeated,
        }));
    }
    report["encode"] = json!(encode);

    // Takes: what recording costs the live show, and exporting what it recorded.
    let takes = show::take_cost(10, if quick { 1 } else { 3 })?;
    let take = cuecast_engine::Take::open(&takes.take_dir)?;
    let export_dir = takes.daemon.dir.join("export");
    // The pattern backend makes no depth maps: every format but EXR then.
    let mut formats = cuecast_exporters::Format::all();
    if take.manifest.depth.is_none() {
        formats.remove(&cuecast_exporters::Format::Exr);
    }
    let options = cuecast_exporters::ExportOptions {
        formats,
        force: true,
    };
    let export = cuecast_exporters::export(&take, &export_dir, &options, &mut |_| {})?;
    report["takes"] = json!({
        "window_s": takes.window_s, "repeated_without": takes.repeated_without,
        "repeated_with": takes.repeated_with, "cpu_without": takes.cpu_without,
        "cpu_with": takes.cpu_with, "take_frames": takes.take_frames, "lost_frames": takes.lost_frames,
        "export": {"frames": export.frames, "seconds": export.seconds,
                   "mb": dir_bytes(&export_dir) as f64 / 1e6},
    });
    drop(takes.daemon);

    // Export against ffmpeg, side by side: the whole bundle of a procedural take (so
    // with depth EXRs) against ffmpeg making a PNG sequence and a ProRes 4444 plate of
    // the same recorded frames.
    report["export"] = measure_export(if quick { 1 } else { 3 })?;

    // 7. Faults.
    report["faults"] = measure_faults(&python, &work, if quick { 1 } else { 3 })?;

    // 8. Python models.
    report["models"] = models::measure(&python, &work, quick)?;

    // 9. Media in and out.
    report["media"] = measure_media(&work, quick)?;

    // The GPU path.
    if tch::Cuda::is_available() {
        let gpu_rounds = rounds;
        let mut proc = Vec::new();
        for _ in 0..gpu_rounds {
            proc.push(element::per_frame_ms(
                "cuecastsrc name=src backend=procedural device=cuda prompt=\"rolling green hills\" is-live=false num-buffers=300 ! video/x-raw,format=RGBx,width=1920,height=1080,framerate=60/1 ! fakesink",
            )?);
        }
        let step_gpu = element::stepping(&python, &package, tch::Device::Cuda(0), rounds, steps)?;
        let pace = element::pacing(
            &format!(
                "cuecastsrc name=src device=cuda prompt=\"rolling green hills\" cues={} ! video/x-raw,width=1920,height=1080,framerate=60/1 ! fakesink sync=true",
                cues.display()
            ),
            pacing_s,
        )?;
        report["gpu"] = json!({
            "device": gpu(),
            "procedural_1080p_ms": median(&mut proc.clone()), "procedural_1080p_runs": proc,
            "stepping": step_gpu,
            "pacing_1080p60": pace,
            "download_1080p_ms": element::download_ms(200)?,
        });
    }

    let _ = std::fs::remove_dir_all(&work);
    if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    render(&report, &out_path, &python)
}

/// Writes the document, its JSON beside it, and the plots into `bench/` there.
fn render(report: &Value, out_path: &Path, python: &str) -> Result<()> {
    let quick = report["quick"].as_bool().unwrap_or(false);
    let doc = report::document(report, quick)?;
    std::fs::write(out_path, doc).with_context(|| format!("writing {}", out_path.display()))?;
    let json_path = out_path.with_extension("json");
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?)?;
    let plots = out_path.parent().unwrap_or(Path::new(".")).join("bench");
    let status = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("plot.py"))
        .arg(&json_path)
        .arg(&plots)
        .status()
        .context("running bench/plot.py")?;
    anyhow::ensure!(status.success(), "bench/plot.py failed");
    eprintln!(
        "wrote {}, {} and plots in {}",
        out_path.display(),
        json_path.display(),
        plots.display()
    );
    Ok(())
}

fn measure_faults(python: &str, work: &Path, rounds: usize) -> Result<Value> {
    let rtmp = faults::rtmp_back(rounds, 3.0)?;
    let frozen = faults::rtmp_frozen(rounds)?;
    let srt = faults::srt_back(rounds, 3.0)?;
    let hang = faults::hang_told(python, work, rounds)?;
    let mut loss = Vec::new();
    for kbps in [1000, 6000] {
        for ext in ["mkv", "mp4"] {
            loss.push(faults::kill9_loss(kbps, ext, rounds)?);
        }
    }
    eprintln!("faults: rtmp {rtmp}, srt {srt}, hang {hang}, kill -9 {loss:?}");
    Ok(json!({"rtmp": rtmp, "rtmp_frozen": frozen, "srt": srt, "hang": hang, "kill9": loss}))
}

/// The default show (`scripts/show`'s config) quiet and beside a busy core, and the
/// world in `cuecastsrc` with adaptive detail off and on beside a busy core.
fn measure_default_show(cues: &Path, quick: bool) -> Result<Value> {
    let show_s = if quick { 20 } else { 60 };
    let windows = show::default_show(show_s)?;
    for w in &windows {
        eprintln!(
            "default show {}: {:.1} repeats/min, detail {:?}",
            if w.busy { "busy" } else { "quiet" },
            w.repeats_per_minute,
            w.detail
        );
    }
    let mut adaptive = Vec::new();
    for round in 0..2 {
        for on in [false, true] {
            let _load = show::BusyCore::start();
            let row = element::pacing(
                &format!(
                    "cuecastsrc name=src adaptive-detail={on} prompt=\"rolling green hills\" cues={} ! video/x-raw,width=1280,height=720,framerate=30/1 ! fakesink sync=true",
                    cues.display()
                ),
                show_s,
            )?;
            eprintln!(
                "busy 1280x720@30, adaptive detail {on} (round {round}): {} frames, {} repeated",
                row["frames"], row["repeated"]
            );
            adaptive.push(json!({"adaptive_detail": on, "run": row}));
        }
    }
    Ok(json!({
        "windows": windows.iter().map(|w| json!({
            "busy": w.busy, "seconds": w.seconds, "frames_out": w.frames_out,
            "repeated": w.repeated, "repeats_per_minute": w.repeats_per_minute, "detail": w.detail,
        })).collect::<Vec<_>>(),
        "adaptive": adaptive,
    }))
}

/// Section 4: a cue's way to the frame, to an SRT receiver and to the control surface.
fn measure_latency(quick: bool) -> Result<Value> {
    let lat = show::latency(quick)?;
    eprintln!(
        "cue latency: HTTP p50 {:.1} ms p99 {:.1} ms; SRT p50 {:.1} ms p99 {:.1} ms",
        lat.http_p50, lat.http_p99, lat.srt_p50, lat.srt_p99
    );
    let preview = show::preview_delay(quick)?;
    eprintln!(
        "preview: cue → page p50 {:.0} ms p99 {:.0} ms; frame → page p50 {:.0} ms p99 {:.0} ms",
        preview.visible_p50, preview.visible_p99, preview.preview_p50, preview.preview_p99
    );
    Ok(json!({
        "http": {"n": lat.http.len(), "p50": lat.http_p50, "p99": lat.http_p99, "samples": lat.http},
        "step_p99_bound_ms": lat.step_p99_bound,
        "srt": {"n": lat.srt.len(), "p50": lat.srt_p50, "p99": lat.srt_p99, "samples": lat.srt},
        "repeated": lat.repeated,
        "preview": {"n": preview.visible.len(), "visible_p50": preview.visible_p50, "visible_p99": preview.visible_p99,
                    "preview_p50": preview.preview_p50, "preview_p99": preview.preview_p99,
                    "visible_samples": preview.visible, "repeated": preview.repeated},
        "date": today(), "machine": machine(),
    }))
}

/// SRT alone from a camera to a viewer, the daemon's encoder settings, no cuecast.
fn measure_transport(quick: bool) -> Result<Value> {
    let mut t = media::transport(if quick { 10 } else { 60 })?;
    for row in t["rows"].as_array().into_iter().flatten() {
        eprintln!(
            "SRT alone, {}: p50 {:.0} ms, p99 {:.0} ms",
            row["decoder"].as_str().unwrap_or(""),
            f(&row["p50_ms"]),
            f(&row["p99_ms"])
        );
    }
    t["stages"] = media::stages(if quick { 10 } else { 40 })?;
    t["machine"] = json!(machine());
    t["date"] = json!(today());
    Ok(t)
}

/// Section 1's table: each source at each size, `rounds` alternating runs.
fn measure_source(rounds: usize) -> Result<Value> {
    let mut source = Vec::new();
    for (w, h) in element::SIZES {
        let row = element::source_cost(w, h, rounds)?;
        eprintln!(
            "source {w}x{h}: null {:.3} ms, tensor-out {:.3} ms, pattern {:.3} ms, procedural {:.1} ms, videotestsrc {:.3} ms",
            f(&row["null"]["ms"]), f(&row["tensor-out"]["ms"]), f(&row["pattern"]["ms"]),
            f(&row["procedural"]["ms"]), f(&row["videotestsrc"]["ms"])
        );
        source.push(row);
    }
    Ok(json!(source))
}

/// The procedural world stepped directly, on one core and on all.
fn measure_world(quick: bool) -> Result<Value> {
    let mut w = world::cost(if quick { 1 } else { 5 }, if quick { 30 } else { 90 })?;
    for row in w["rows"].as_array().into_iter().flatten() {
        eprintln!(
            "world 1280x720, pitch {}: one core {:.1} ms, all cores {:.1} ms",
            row["pitch"],
            f(&row["one_core_ms"]),
            f(&row["all_cores_ms"])
        );
    }
    w["machine"] = json!(machine());
    w["date"] = json!(today());
    Ok(w)
}

/// Section 9: glass to glass through a video-to-video model, a fast input into a slow
/// model for ten minutes, and sound against picture at an SRT receiver for ten.
fn measure_media(work: &Path, quick: bool) -> Result<Value> {
    let long_s = if quick { 60 } else { 600 };
    let g2g = media::v2v(
        work,
        15,
        if quick { 30 } else { 120 },
        std::time::Duration::from_millis(700),
    )?;
    eprintln!(
        "v2v glass to glass (15 fps model): p50 {:.0} ms, p99 {:.0} ms",
        f(&g2g["p50_ms"]),
        f(&g2g["p99_ms"])
    );
    let overrun = media::v2v(work, 10, long_s, std::time::Duration::from_secs(4))?;
    eprintln!(
        "30 fps into 10 fps for {:.0} s: p50 {:.0} → {:.0} ms, dropped {}, RSS {:.1} → {:.1} MB",
        f(&overrun["seconds"]),
        f(&overrun["first_window_p50_ms"]),
        f(&overrun["last_window_p50_ms"]),
        overrun["dropped"],
        f(&overrun["rss_first_mb"]),
        f(&overrun["rss_last_mb"])
    );
    let av = media::av_offset(long_s)?;
    eprintln!(
        "A/V at the SRT receiver for {:.0} s: p50 {:.1} ms, |p99| {:.1} ms, first {:.1} → last {:.1} ms",
        f(&av["seconds"]),
        f(&av["p50_ms"]),
        f(&av["abs_p99_ms"]),
        f(&av["first_window_p50_ms"]),
        f(&av["last_window_p50_ms"])
    );
    Ok(json!({
        "machine": machine(), "date": today(), "quick": quick,
        "glass_to_glass": g2g, "overrun": overrun, "av_offset": av,
    }))
}

/// `cuecast export` of a 1280x720 procedural take against `ffmpeg` on the same frames,
/// alternating, `rounds` times each; medians.
fn measure_export(rounds: usize) -> Result<Value> {
    let work =
        std::env::temp_dir().join(format!("cuecast-bench-export-work-{}", std::process::id()));
    let take_dir = show::procedural_take(9, &work.join("takes"))?;
    let take = cuecast_engine::Take::open(&take_dir)?;
    let (w, h) = (take.manifest.width, take.manifest.height);
    let fps = take.fps();
    let out = work.join("export-out");
    let ff = work.join("ffmpeg-out");
    let options = cuecast_exporters::ExportOptions {
        formats: cuecast_exporters::Format::all(),
        force: true,
    };
    let ffmpeg = |args: &[&str]| -> Result<f64> {
        let t = std::time::Instant::now();
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb0", "-s",
            ])
            .arg(format!("{w}x{h}"))
            .arg("-r")
            .arg(format!("{}/{}", fps.num, fps.den))
            .arg("-i")
            .arg(take_dir.join("rgb.raw"))
            .args(args)
            .status()?;
        anyhow::ensure!(status.success(), "ffmpeg {args:?} failed");
        Ok(t.elapsed().as_secs_f64())
    };
    let (mut ours, mut png, mut prores, mut frames) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        let e = cuecast_exporters::export(&take, &out, &options, &mut |_| {})?;
        frames = e.frames;
        ours.push(e.seconds);
        let _ = std::fs::remove_dir_all(&ff);
        std::fs::create_dir_all(&ff)?;
        let pattern = ff.join("rgb.%04d.png");
        png.push(ffmpeg(&[
            "-start_number",
            "0",
            pattern.to_str().unwrap_or_default(),
        ])?);
        let mov = ff.join("plate.mov");
        prores.push(ffmpeg(&[
            "-c:v",
            "prores_ks",
            "-profile:v",
            "4444",
            mov.to_str().unwrap_or_default(),
        ])?);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mb = dir_bytes(&out) as f64 / 1e6;
    let _ = std::fs::remove_dir_all(&work);
    Ok(json!({
        "recorded": take.frames.len(), "frames": frames, "width": w, "height": h, "rounds": rounds,
        "cuecast_s": med(&mut ours), "ffmpeg_png_s": med(&mut png), "ffmpeg_prores_s": med(&mut prores),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "mb": mb,
    }))
}
