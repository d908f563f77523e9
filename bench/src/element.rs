//! Benchmarks of the element and the model step, in this process: the source's cost
//! against `videotestsrc`, the TorchScript example stepped by cuecast against a Python
//! loop, and live pacing.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cuecast_engine::generator::{
    create_generator, register_backend, write_image, BackendConfig, Fps, FrameInput, Generator,
    Image, ModelInfo, PromptState, StepError,
};
use gst::prelude::*;
use serde_json::{json, Value};

use crate::{median, percentile};

/// The three sizes of the source rows.
pub const SIZES: [(u32, u32); 3] = [(640, 360), (1280, 720), (1920, 1080)];

/// A backend with no model. With no frame it does nothing, so what remains is everything
/// around the model; with a finished float frame it only converts that into the output
/// buffer, the tensor-to-buffer work every tensor backend does.
struct NoModel(ModelInfo, Option<tch::Tensor>);

impl Generator for NoModel {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn device(&self) -> tch::Device {
        tch::Device::Cpu
    }
    fn reset(&mut self, _: u64, _: &str) -> Result<(), StepError> {
        Ok(())
    }
    fn step(&mut self, _: &FrameInput, out: &mut Image) -> Result<(), StepError> {
        match &self.1 {
            Some(frame) => write_image(out, frame),
            None => Ok(()),
        }
    }
}

/// Registers `null-WxH` (no step at all) and `tensor-out-WxH` (a ready float frame
/// converted into the buffer) for each size.
pub fn register_backends() {
    for (w, h) in SIZES {
        let info = ModelInfo::simple("no-model", w, h, Fps::new(30, 1));
        let i = info.clone();
        register_backend(&format!("null-{w}x{h}"), move |_| {
            Ok(Box::new(NoModel(i.clone(), None)))
        });
        register_backend(&format!("tensor-out-{w}x{h}"), move |_| {
            let frame = tch::Tensor::rand(
                [3, h as i64, w as i64],
                (tch::Kind::Float, tch::Device::Cpu),
            );
            Ok(Box::new(NoModel(info.clone(), Some(frame))))
        });
    }
}

/// Runs `desc` (its source named `src`) to EOS, not live; returns the time per frame
/// between the first and the last buffer, so start-up (model loading, the procedural
/// world's terrain) is left out.
pub fn per_frame_ms(desc: &str) -> Result<f64> {
    let p = gst::parse::launch(desc)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = p.by_name("src").context("a source named src")?;
    // First and last buffer, and how many.
    type Seen = (Option<Instant>, Option<Instant>, u64);
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    src.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let mut s = s.lock();
            let now = Instant::now();
            s.0.get_or_insert(now);
            s.1 = Some(now);
            s.2 += 1;
            gst::PadProbeReturn::Ok
        });
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing)?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => bail!("{desc}: {}", e.error()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null)?;
    let (first, last, n) = *seen.lock();
    match (first, last) {
        (Some(a), Some(b)) if n > 1 => Ok((b - a).as_secs_f64() * 1e3 / (n - 1) as f64),
        _ => bail!("{desc}: fewer than 2 buffers"),
    }
}

/// Row 1, one size: per-frame ms of each source, medians of alternating rounds.
pub fn source_cost(w: u32, h: u32, rounds: usize) -> Result<Value> {
    let caps = format!("video/x-raw,format=RGBx,width={w},height={h},framerate=30/1");
    // Frames per run: enough to swamp the probe's granularity, few for the real model.
    let n = 300;
    let n_model = if w >= 1920 { 16 } else { 31 };
    let sources = [
        ("null", format!("cuecastsrc name=src backend=null-{w}x{h} is-live=false num-buffers={n} ! {caps} ! fakesink")),
        ("tensor-out", format!("cuecastsrc name=src backend=tensor-out-{w}x{h} is-live=false num-buffers={n} ! {caps} ! fakesink")),
        ("pattern", format!("cuecastsrc name=src backend=pattern is-live=false num-buffers={n} ! {caps} ! fakesink")),
        ("procedural", format!("cuecastsrc name=src backend=procedural prompt=\"rolling green hills\" is-live=false num-buffers={n_model} ! {caps} ! fakesink")),
        ("videotestsrc", format!("videotestsrc name=src num-buffers={n} ! {caps} ! fakesink")),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sources.len()];
    for _ in 0..rounds {
        for (i, (_, desc)) in sources.iter().enumerate() {
            times[i].push(per_frame_ms(desc)?);
        }
    }
    let mut out = json!({"width": w, "height": h, "rounds": rounds});
    for ((name, _), mut t) in sources.iter().zip(times) {
        out[*name] = json!({"ms": median(&mut t), "runs": t});
    }
    Ok(out)
}

/// Exports the example TorchScript package (tiny-world) with the venv's Python.
pub fn example_package(python: &str, dir: &Path) -> Result<PathBuf> {
    let out = dir.join("tiny-world");
    if !out.join("model.pt").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/example/export.py");
        let status = std::process::Command::new(python)
            .arg(script)
            .arg("--out")
            .arg(&out)
            .status()
            .context("running models/example/export.py")?;
        if !status.success() {
            bail!("models/example/export.py failed");
        }
    }
    Ok(out)
}

/// Per-step seconds of `steps` steps of `package` by cuecast's torchscript backend, each
/// step including its frame written into the RGBx buffer.
fn cuecast_steps(
    package: &Path,
    device: tch::Device,
    steps: usize,
    warmup: usize,
) -> Result<(Vec<f64>, ModelInfo)> {
    // As on the model thread: no autograd bookkeeping.
    let _no_grad = tch::no_grad_guard();
    let prompt = "rolling green hills";
    let mut gen = create_generator(&BackendConfig {
        backend: "torchscript".into(),
        model: Some(package.to_owned()),
        device,
        seed: 7,
        prompt: prompt.into(),
    })?;
    let info = gen.info().clone();
    gen.reset(7, prompt)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let mut data = vec![0u8; w * h * 4];
    let params: Vec<f64> = info.params.iter().map(|p| p.default).collect();
    let prompt_state = PromptState {
        text: prompt.into(),
        previous: None,
        mix: 1.0,
    };
    let mut times = Vec::new();
    for frame in 0..(warmup + steps) as u64 {
        // Read each frame, as the model thread reads the world's.
        let input = FrameInput {
            action: [0.5, 0.0, 0.0, 0.0, 0.0],
            prompt: prompt_state.clone(),
            seed: 7,
            ..FrameInput::still(frame, info.fps, params.clone())
        };
        let mut image = Image {
            width: w,
            height: h,
            data: &mut data,
        };
        let t0 = Instant::now();
        gen.step(&input, &mut image)?;
        if frame as usize >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok((times, info))
}

/// Row 2: the example package stepped by cuecast and by a plain Python loop, in
/// alternating rounds.
pub fn stepping(
    python: &str,
    package: &Path,
    device: tch::Device,
    rounds: usize,
    steps: usize,
) -> Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python_loop.py");
    let (mut ours, mut py_step, mut py_frame) = (Vec::new(), Vec::new(), Vec::new());
    let mut info = None;
    let mut meta = Value::Null;
    for _ in 0..rounds {
        let (t, i) = cuecast_steps(package, device, steps, 20)?;
        ours.push(median(&mut t.clone()) * 1e3);
        let params: Vec<String> = i.params.iter().map(|p| p.default.to_string()).collect();
        let out = std::process::Command::new(python)
            .arg(&script)
            .arg(package)
            .arg(steps.to_string())
            .arg("20")
            .arg(i.actions.len().to_string())
            .arg(params.join(","))
            .arg("rolling green hills")
            .arg(if device.is_cuda() { "cuda" } else { "cpu" })
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running python_loop.py")?;
        if !out.status.success() {
            bail!("python_loop.py failed");
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let ms = |f: &str| -> f64 {
            let mut s: Vec<f64> = v[f]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            median(&mut s) * 1e3
        };
        py_step.push(ms("step_s"));
        py_frame.push(ms("frame_s"));
        meta = json!({"threads": v["threads"], "torch": v["torch"]});
        info = Some(i);
    }
    let info = info.context("no rounds")?;
    Ok(json!({
        "model": info.name, "width": info.width, "height": info.height,
        "steps": steps, "rounds": rounds, "python": meta,
        "cuecast_ms": median(&mut ours.clone()), "cuecast_runs": ours,
        "python_step_ms": median(&mut py_step.clone()), "python_step_runs": py_step,
        "python_frame_ms": median(&mut py_frame.clone()), "python_frame_runs": py_frame,
    }))
}

/// Row 3: a live run: every buffer's push time after its slot started, the PTS spacing,
/// and the element's own counts of repeated frames and step times.
pub fn pacing(desc: &str, seconds: u64) -> Result<Value> {
    let p = gst::parse::launch(desc)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = p.by_name("src").context("a cuecastsrc named src")?;
    // Push offsets (ms), PTS spacing errors (ns), the last PTS.
    type Seen = (Vec<f64>, Vec<i64>, Option<u64>);
    let arrivals: Arc<Mutex<Seen>> = Arc::default();
    let a = arrivals.clone();
    let pipeline = p.downgrade();
    src.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(buf), Some(p)) = (info.buffer(), pipeline.upgrade()) {
                if let (Some(now), Some(pts)) = (p.current_running_time(), buf.pts()) {
                    let mut a = a.lock();
                    a.0.push((now.nseconds() as f64 - pts.nseconds() as f64) / 1e6);
                    // PTS spacing against the buffer's own duration.
                    if let (Some(prev), Some(d)) = (a.2, buf.duration()) {
                        let gap = pts.nseconds() as i64 - prev as i64;
                        a.1.push(gap - d.nseconds() as i64);
                    }
                    a.2 = Some(pts.nseconds());
                }
            }
            gst::PadProbeReturn::Ok
        });
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing)?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut means, mut maxima) = (Vec::new(), Vec::new());
    let mut last = None;
    while Instant::now() < end {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Error(e) => bail!("{desc}: {}", e.error()),
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "cuecast-stats") {
                        means.push(s.get::<f64>("step-ms-mean")?);
                        maxima.push(s.get::<f64>("step-ms-max")?);
                        last = Some(s.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    p.set_state(gst::State::Null)?;
    let last = last.context("no stats message")?;
    let (mut arrivals, gaps, _) = std::mem::take(&mut *arrivals.lock());
    let pts_dev_ns = gaps.iter().map(|g| g.unsigned_abs()).max().unwrap_or(0);
    let samples = arrivals.clone();
    Ok(json!({
        "seconds": seconds,
        "frames": last.get::<u64>("frames")?,
        "repeated": last.get::<u64>("repeated")?,
        "step_median_ms": median(&mut means),
        "step_p99_ms": percentile(&mut maxima, 0.99),
        "push_median_ms": median(&mut arrivals.clone()),
        "push_p99_ms": percentile(&mut arrivals, 0.99),
        "pts_max_deviation_ns": pts_dev_ns,
        "push_ms": samples,
    }))
}

/// GPU: the device-to-host copy of a finished 1920x1080 frame, as cuecast makes it (the
/// float frame turned to u8 RGBx on the GPU, then one copy to the host), median of `n`.
pub fn download_ms(n: usize) -> Result<f64> {
    let dev = tch::Device::Cuda(0);
    let frame = tch::Tensor::rand([3, 1080, 1920], (tch::Kind::Float, dev));
    let mut out = vec![0u8; 1920 * 1080 * 4];
    let mut times = Vec::new();
    for i in 0..n + 5 {
        tch::Cuda::synchronize(0);
        let t0 = Instant::now();
        write_image(
            &mut Image {
                width: 1920,
                height: 1080,
                data: &mut out,
            },
            &frame,
        )?;
        if i >= 5 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(&mut times))
}

/// A cue file that keeps the camera moving for the whole run.
pub fn flight_cues() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("cuecast-bench-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "cues:\n  - type: camera_path\n    loop: true\n    points:\n\
         \x20     - {t: 0, pos: [0, 80, 0], yaw: 0, pitch: -5}\n\
         \x20     - {t: 10, pos: [0, 90, -400], yaw: 40, pitch: -10}\n\
         \x20     - {t: 20, pos: [-300, 120, -500], yaw: 120, pitch: 0}\n\
         \x20     - {t: 30, pos: [0, 80, 0], yaw: 0, pitch: -5}\n",
    )?;
    Ok(path)
}

/// Row 2b: the example package's step with libtorch on every core (its own default)
/// and on the engine's default threads, on a quiet machine and beside one busy core.
pub fn threads_beside_load(package: &Path, rounds: usize, steps: usize) -> Result<Value> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ours = cuecast_engine::engine::default_model_threads();
    let mut rows = Vec::new();
    for (label, threads) in [("every core", cores), ("cuecast's default", ours)] {
        for busy in [false, true] {
            tch::set_num_threads(threads as i32);
            let mut runs = Vec::new();
            for _ in 0..rounds {
                let _load = busy.then(crate::show::BusyCore::start);
                let (mut t, _) = cuecast_steps(package, tch::Device::Cpu, steps, 10)?;
                runs.push(median(&mut t) * 1e3);
            }
            rows.push(json!({
                "threads": threads, "label": label, "busy": busy,
                "ms": median(&mut runs.clone()), "runs": runs,
            }));
        }
    }
    tch::set_num_threads(cores as i32);
    Ok(json!({"cores": cores, "steps": steps, "rounds": rounds, "rows": rows}))
}
