//! Section 8: python models (contract 2) hosted in a worker process.
//!
//! - Worker overhead: the reference chunked model (`models/kv-chunks`) stepped through
//!   cuecast's worker against the same model stepped by a bare Python loop in the same
//!   venv (`models/bench_loop.py`), alternating, one torch thread each.
//! - Transfer: a 12-frame 832x480 chunk from the worker into cuecast's frames, for a
//!   model that returns uint8 frames (numpy) and one that returns float frames (torch).
//! - Pacing: the element live at 30 fps for a minute with the reference model.
//! - Restart: `kill -9` of the worker to the first chunk of the next one.
//! - Cue latency: cue arrival to the first frame showing it.
//! - The sandbox's cost: worker start-up and the per-chunk overhead (a chunk's wall time
//!   less the model's step) with the sandbox and without it, alternating.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cuecast_engine::frame::{FramePool, Pixels};
use cuecast_engine::generator::package::Package;
use cuecast_engine::generator::FrameInput;
use cuecast_engine::worker::{Worker, WorkerEvent, WorkerOptions};
use gst::prelude::*;
use serde_json::{json, Value};

use crate::{median, percentile};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn options(python: &str) -> WorkerOptions {
    options_in(python, true)
}

fn options_in(python: &str, sandbox: bool) -> WorkerOptions {
    WorkerOptions {
        python: Some(python.into()),
        device: tch::Device::Cpu,
        threads: 1,
        seed: 1,
        prompt: "a quiet valley".into(),
        image: None,
        restart_max_s: 0.0,
        sandbox,
        ..WorkerOptions::default()
    }
}

/// Inputs of `n` frames for `p`'s model: nothing held, the default camera, default
/// params.
fn inputs(p: &Package, from: u64, n: u32) -> Vec<FrameInput> {
    let i = &p.info;
    let params: Vec<f64> = i.params.iter().map(|p| p.default).collect();
    (0..u64::from(n))
        .map(|k| FrameInput::still(from + k, i.fps, params.clone()))
        .collect()
}

struct Hosted {
    worker: Worker,
    events: mpsc::Receiver<WorkerEvent>,
    package: Package,
    pool: FramePool,
    next: u64,
}

impl Hosted {
    fn start(python: &str, dir: &Path) -> Result<Hosted> {
        Hosted::start_in(python, dir, true)
    }

    fn start_in(python: &str, dir: &Path, sandbox: bool) -> Result<Hosted> {
        let package = Package::load(dir)?;
        let (tx, events) = mpsc::channel();
        let worker = Worker::start(&package, options_in(python, sandbox), move |e| {
            let _ = tx.send(e);
        })?;
        let c = package.info.chunking;
        let keep = 3 * c.frames_per_step.max(c.first_step_frames) as usize + 8;
        let pool = FramePool::keeping(
            package.info.width as usize,
            package.info.height as usize,
            keep,
        );
        Ok(Hosted {
            worker,
            events,
            package,
            pool,
            next: 0,
        })
    }

    /// One chunk, waited for: (wall, step, transfer, write, copy).
    fn chunk(&mut self, first: bool) -> Result<cuecast_engine::worker::Chunk> {
        let c = self.package.info.chunking;
        let n = if first {
            c.first_step_frames
        } else {
            c.frames_per_step
        };
        self.worker.step(
            inputs(&self.package, self.next, n),
            Default::default(),
            self.pool.clone(),
        );
        self.next += u64::from(n);
        loop {
            match self.events.recv_timeout(Duration::from_secs(60))? {
                WorkerEvent::Chunk(Ok(c)) => return Ok(c),
                WorkerEvent::Chunk(Err((_, e))) => bail!("a step failed: {e}"),
                _ => {}
            }
        }
    }
}

/// Worker against a bare Python loop, alternating: per-chunk medians of each round, and
/// the ratio of each adjacent pair (this machine's noise moves both of a pair alike far
/// more than it moves rounds apart).
fn overhead(python: &str, rounds: usize, chunks: usize) -> Result<Value> {
    let pkg = repo().join("models/kv-chunks");
    let (mut bare, mut hosted, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut steps, mut transfers) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let out = std::process::Command::new(python)
            .arg(repo().join("models/bench_loop.py"))
            .arg(&pkg)
            .args(["--chunks", &chunks.to_string(), "--threads", "1"])
            .output()?;
        if !out.status.success() {
            bail!("bench_loop.py: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        // The first chunks warm up (allocation, first calls): left out of both.
        let mut ms: Vec<f64> = v["chunk_ms"].as_array().context("chunk_ms")?[3..]
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let b = median(&mut ms);
        bare.push(b);
        let mut h = Hosted::start(python, &pkg)?;
        let (mut ms, mut step, mut transfer) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..chunks {
            let c = h.chunk(i == 0)?;
            if i >= 3 {
                ms.push(c.wall.as_secs_f64() * 1e3);
                step.push(c.step.as_secs_f64() * 1e3);
                transfer.push(c.transfer.as_secs_f64() * 1e3);
            }
        }
        let w = median(&mut ms);
        hosted.push(w);
        ratios.push(w / b);
        steps.push(median(&mut step));
        transfers.push(median(&mut transfer));
    }
    let (b, w) = (median(&mut bare.clone()), median(&mut hosted.clone()));
    Ok(json!({
        "model": "kv-chunks", "size": "256x144", "frames_per_chunk": 4, "chunks": chunks,
        "bare_ms": b, "worker_ms": w, "ratio": median(&mut ratios.clone()), "ratios": ratios,
        "bare_rounds": bare, "worker_rounds": hosted,
        "worker_step_ms": median(&mut steps), "worker_transfer_ms": median(&mut transfers),
    }))
}

/// A package whose step does nothing but hand over a 12-frame 832x480 chunk it holds,
/// as uint8 (numpy) or float (torch): what moving a chunk costs, alone.
fn transfer_package(work: &Path, float: bool) -> Result<PathBuf> {
    let dir = work.join(if float {
        "transfer-float"
    } else {
        "transfer-u8"
    });
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("cuecast-model.yaml"),
        "contract: 2\nname: transfer\nruntime: python\nentry: model:Hold\nwidth: 832\nheight: 480\nfps: 16\nframes_per_step: 12\nprompt: none\n",
    )?;
    let model = if float {
        "import torch\nclass Hold:\n    def __init__(self, **k):\n        g = torch.Generator().manual_seed(1)\n        self.f = torch.rand((12, 3, 480, 832), generator=g)\n    def reset(self, seed, prompt, image): pass\n    def step(self, inputs): return {'rgb': self.f}\n"
    } else {
        "import numpy as np\nclass Hold:\n    def __init__(self, **k):\n        self.f = np.random.default_rng(1).integers(0, 255, (12, 480, 832, 3), dtype=np.uint8)\n    def reset(self, seed, prompt, image): pass\n    def step(self, inputs): return {'rgb': self.f}\n"
    };
    std::fs::write(dir.join("model.py"), model)?;
    Ok(dir)
}

/// Each package's chunks into frames shown where the worker wrote them (an RGB show at
/// the model's size, what `cuecastsrc` negotiates for it) and into RGBx copies (what a
/// show that takes only RGBx gets), alternating chunk by chunk.
pub(crate) fn transfer(python: &str, work: &Path, chunks: usize) -> Result<Value> {
    let mut rows = Vec::new();
    for float in [false, true] {
        let mut h = Hosted::start(python, &transfer_package(work, float)?)?;
        let rgb = h.pool.clone().with_pixels(Pixels::Rgb);
        let rgbx = h.pool.clone();
        let mut figures: [[Vec<f64>; 3]; 2] = Default::default();
        for i in 0..2 * chunks {
            let layout = i % 2;
            h.pool = [&rgb, &rgbx][layout].clone();
            let c = h.chunk(i == 0)?;
            if i >= 4 {
                let f = &mut figures[layout];
                f[0].push(c.transfer.as_secs_f64() * 1e3);
                f[1].push(c.write.as_secs_f64() * 1e3);
                f[2].push(c.copy.as_secs_f64() * 1e3);
            }
        }
        for (layout, [total, write, copy]) in
            ["RGB, not copied", "RGBx, copied"].iter().zip(&mut figures)
        {
            rows.push(json!({
                "frames": if float { "float32 [12, 3, 480, 832] (torch, CPU)" } else { "uint8 [12, 480, 832, 3] (numpy)" },
                "into": layout,
                "transfer_ms": median(total), "worker_write_ms": median(write), "cuecast_copy_ms": median(copy),
                "transfer_p99_ms": percentile(total, 0.99),
            }));
        }
    }
    Ok(json!(rows))
}

/// The element live with the reference model for `seconds`: repeats, and the chunk
/// times against the chunk's duration.
fn pacing(python: &str, seconds: u64) -> Result<Value> {
    let desc = format!(
        "cuecastsrc name=src backend=python model={} python={python} model-threads=1 ! video/x-raw,width=256,height=144,framerate=30/1 ! fakesink sync=true",
        repo().join("models/kv-chunks").display()
    );
    let p = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = p.by_name("src").context("src")?;
    p.set_state(gst::State::Playing)?;
    let bus = p.bus().unwrap();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut show = None;
    while Instant::now() < end {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            if let gst::MessageView::Error(e) = msg.view() {
                bail!("{desc}: {}", e.error());
            }
        }
        if show.is_none() {
            show = src
                .clone()
                .downcast::<gstcuecast::CuecastSrc>()
                .ok()
                .and_then(|s| s.show());
        }
    }
    let show = show.context("the element's show")?;
    let c = show.counters();
    let chunks = c.chunk_ms.snapshot();
    let frames = src.property::<u64>("frames");
    let repeated = src.property::<u64>("repeated");
    let status = show.status();
    p.set_state(gst::State::Null)?;
    Ok(json!({
        "seconds": seconds, "frames": frames, "repeated": repeated,
        "chunks": chunks.count, "chunk_p50_ms_le": chunks.quantile_bound(0.5), "chunk_p99_ms_le": chunks.quantile_bound(0.99).unwrap_or(f64::NAN),
        "chunk_duration_ms": 250.0, "frames_skipped": status.frames_skipped,
    }))
}

/// `kill -9` of the worker to the first chunk from its successor.
fn restart(python: &str, rounds: usize) -> Result<Value> {
    let mut h = Hosted::start(python, &repo().join("models/kv-chunks"))?;
    let mut ms = Vec::new();
    for r in 0..rounds {
        h.chunk(r == 0)?;
        let pid = h.worker.status().pid.context("a pid")?;
        let killed = Instant::now();
        // SAFETY: kill(2) on the worker process this benchmark started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        loop {
            match h.events.recv_timeout(Duration::from_secs(60))? {
                WorkerEvent::Up { .. } => break,
                _ => continue,
            }
        }
        h.chunk(true)?;
        ms.push(killed.elapsed().as_secs_f64() * 1e3);
        // Healthy for a while, so the next restart is not held back by its backoff.
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(json!({"model": "kv-chunks", "median_ms": median(&mut ms.clone()), "runs_ms": ms}))
}

/// Cues every 0.6 s or so, at changing phases of the chunk, for `seconds`: arrival to
/// the first frame showing each.
fn cue_latency(python: &str, seconds: u64) -> Result<Value> {
    let desc = format!(
        "cuecastsrc name=src backend=python model={} python={python} model-threads=1 ! video/x-raw,width=256,height=144,framerate=30/1 ! fakesink sync=true",
        repo().join("models/kv-chunks").display()
    );
    let p = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = p.by_name("src").context("src")?;
    p.set_state(gst::State::Playing)?;
    std::thread::sleep(Duration::from_secs(2));
    let show = src
        .clone()
        .downcast::<gstcuecast::CuecastSrc>()
        .ok()
        .and_then(|s| s.show())
        .context("the element's show")?;
    let (tx, rx) = mpsc::channel();
    let watcher: cuecast_engine::schedule::Watcher = Arc::new(move |a| {
        let _ = tx.send(a.latency_ms);
    });
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut i = 0u64;
    while Instant::now() < end {
        let keys: Vec<String> = if i % 2 == 0 {
            vec!["KeyW".into()]
        } else {
            vec![]
        };
        let cue =
            cuecast_engine::Cue::now(cuecast_engine::CueKind::Input(cuecast_engine::cue::Input {
                keys: Some(keys),
                mouse: None,
            }));
        show.inbox().submit(vec![cue], Some(watcher.clone()))?;
        i += 1;
        std::thread::sleep(Duration::from_millis(600 + (i * 37) % 100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut ms: Vec<f64> = rx.try_iter().collect();
    let step = show
        .counters()
        .step_ms
        .snapshot()
        .quantile_bound(0.5)
        .unwrap_or(f64::NAN);
    p.set_state(gst::State::Null)?;
    let n = ms.len();
    Ok(json!({
        "cues": i, "shown": n, "p50_ms": median(&mut ms.clone()), "p99_ms": percentile(&mut ms, 0.99),
        "bound_ms": 250.0 + step + 1000.0 / 30.0, "step_p50_ms_le": step,
    }))
}

/// The sandbox's cost, with it and without it in alternating rounds: the start of the
/// worker (process, import, load, reset: `Worker::start`) and each chunk's overhead
/// (its wall time less the model's own step), medians; and the ratio of each adjacent
/// pair.
fn sandbox(python: &str, rounds: usize, chunks: usize) -> Result<Value> {
    let pkg = repo().join("models/kv-chunks");
    if let Err(why) = cuecast_engine::worker::sandbox::sandbox() {
        return Ok(json!({"unavailable": why}));
    }
    let mut rows = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let (mut start_ratios, mut chunk_ratios) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut pair = [(0.0, 0.0); 2];
        for (i, sandboxed) in [true, false].into_iter().enumerate() {
            let t = Instant::now();
            let mut h = Hosted::start_in(python, &pkg, sandboxed)?;
            let start_ms = t.elapsed().as_secs_f64() * 1e3;
            let mut over = Vec::new();
            for c in 0..chunks {
                let chunk = h.chunk(c == 0)?;
                if c >= 3 {
                    over.push((chunk.wall.saturating_sub(chunk.step)).as_secs_f64() * 1e3);
                }
            }
            pair[i] = (start_ms, median(&mut over));
            rows[i].0.push(start_ms);
            rows[i].1.push(pair[i].1);
        }
        start_ratios.push(pair[0].0 / pair[1].0);
        chunk_ratios.push(pair[0].1 / pair[1].1);
    }
    let row = |(start, chunk): &(Vec<f64>, Vec<f64>)| {
        json!({"start_ms": median(&mut start.clone()), "chunk_overhead_ms": median(&mut chunk.clone()),
               "start_rounds": start, "chunk_rounds": chunk})
    };
    Ok(json!({
        "model": "kv-chunks", "chunks": chunks,
        "sandboxed": row(&rows[0]), "bare": row(&rows[1]),
        "start_ratio": median(&mut start_ratios.clone()), "chunk_ratio": median(&mut chunk_ratios.clone()),
        "start_ratios": start_ratios, "chunk_ratios": chunk_ratios,
    }))
}

/// Section 8's figures.
pub fn measure(python: &str, work: &Path, quick: bool) -> Result<Value> {
    let overhead = overhead(
        python,
        if quick { 3 } else { 11 },
        if quick { 15 } else { 30 },
    )?;
    eprintln!(
        "python overhead: bare {:.1} ms, worker {:.1} ms per chunk ({:.3}x)",
        crate::f(&overhead["bare_ms"]),
        crate::f(&overhead["worker_ms"]),
        crate::f(&overhead["ratio"])
    );
    let transfer = transfer(python, work, if quick { 10 } else { 40 })?;
    eprintln!("python transfer: {transfer}");
    let pacing = pacing(python, if quick { 15 } else { 60 })?;
    eprintln!("python pacing: {pacing}");
    let restart = restart(python, if quick { 2 } else { 5 })?;
    eprintln!("python restart: {restart}");
    let latency = cue_latency(python, if quick { 10 } else { 30 })?;
    eprintln!("python cue latency: {latency}");
    let sandbox = sandbox(
        python,
        if quick { 3 } else { 9 },
        if quick { 15 } else { 30 },
    )?;
    eprintln!("python sandbox: {sandbox}");
    Ok(json!({
        "machine": crate::machine(), "date": crate::today(),
        "overhead": overhead, "transfer": transfer, "pacing": pacing, "restart": restart, "latency": latency,
        "sandbox": sandbox,
        "gpu": if tch::Cuda::is_available() { gpu(python, work, quick)? } else { Value::Null },
    }))
}

/// The reference chunked model at 832x480 on CUDA through the worker: chunk time, the
/// model's step, the transfer of its frames, and live pacing.
fn gpu(python: &str, work: &Path, quick: bool) -> Result<Value> {
    let src = repo().join("models/kv-chunks");
    let dir = work.join("kv-chunks-832");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(src.join("model.py"), dir.join("model.py"))?;
    let manifest = std::fs::read_to_string(src.join("cuecast-model.yaml"))?
        .replace("width: 256", "width: 832")
        .replace("height: 144", "height: 480");
    std::fs::write(dir.join("cuecast-model.yaml"), manifest)?;
    let package = Package::load(&dir)?;
    let (tx, events) = mpsc::channel();
    let worker = Worker::start(
        &package,
        WorkerOptions {
            device: tch::Device::Cuda(0),
            ..options(python)
        },
        move |e| {
            let _ = tx.send(e);
        },
    )?;
    let pool = FramePool::keeping(832, 480, 20);
    let mut h = Hosted {
        worker,
        events,
        package,
        pool,
        next: 0,
    };
    let (mut wall, mut step, mut transfer) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..if quick { 20 } else { 60 } {
        let c = h.chunk(i == 0)?;
        if i >= 3 {
            wall.push(c.wall.as_secs_f64() * 1e3);
            step.push(c.step.as_secs_f64() * 1e3);
            transfer.push(c.transfer.as_secs_f64() * 1e3);
        }
    }
    drop(h);
    let desc = format!(
        "cuecastsrc name=src backend=python device=cuda:0 model={} python={python} ! video/x-raw,width=832,height=480,framerate=30/1 ! fakesink sync=true",
        dir.display()
    );
    let pace = crate::element::pacing(&desc, if quick { 15 } else { 60 })?;
    Ok(json!({
        "device": crate::gpu(), "size": "832x480", "frames_per_chunk": 4,
        "chunk_ms": median(&mut wall), "step_ms": median(&mut step), "transfer_ms": median(&mut transfer),
        "pacing": {"seconds": pace["seconds"], "frames": pace["frames"], "repeated": pace["repeated"]},
    }))
}

/// The same one-frame model (`tiny-world`, from `models/compiled/export.py`) three ways,
/// per step, rounds alternating: the `aoti` runtime (its `.pt2` in this process), the
/// `torchscript` runtime (contract 2, in this process) and the `python` runtime (eager
/// PyTorch in the worker). In process a step is timed from its inputs to its frame in an
/// RGBx buffer; through the worker, from asking for the chunk to having its frame in
/// cuecast's buffer. One torch thread each.
pub(crate) fn runtimes(python: &str, work: &Path, rounds: usize, steps: usize) -> Result<Value> {
    use cuecast_engine::generator::inprocess::InProcessModel;
    use cuecast_engine::generator::{write_image, Image};
    let dir = work.join("compiled");
    let out = std::process::Command::new(python)
        .arg(repo().join("models/compiled/export.py"))
        .args(["--models", "tiny-world", "--out"])
        .arg(&dir)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .context("exporting tiny-world")?;
    if !out.status.success() {
        bail!(
            "exporting tiny-world: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tch::set_num_threads(1);
    let _guard = tch::no_grad_guard();
    let mut compiled = Vec::new();
    for runtime in ["aoti", "torchscript"] {
        let package = Package::load(&dir.join(format!("tiny-world-{runtime}")))?;
        compiled.push(InProcessModel::load(&package, tch::Device::Cpu, 1, None)?);
    }
    let mut hosted = Hosted::start(python, &dir.join("tiny-world-python"))?;
    let (w, h) = (256, 144);
    let mut buf = vec![0u8; w * h * 4];
    let mut next = 0u64;
    let mut figures: [Vec<f64>; 3] = Default::default();
    let mut steps_ms: [Vec<f64>; 3] = Default::default();
    let mut ratios = Vec::new();
    for round in 0..rounds + 1 {
        let mut round_ms: [Vec<f64>; 3] = Default::default();
        for (i, model) in compiled.iter_mut().enumerate() {
            let p = model.package().clone();
            for _ in 0..steps {
                let frames = inputs(&p, next, 1);
                next += 1;
                let t = Instant::now();
                let made = model.step(&frames).map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut image = Image {
                    width: w,
                    height: h,
                    data: &mut buf,
                };
                write_image(&mut image, &made.rgb.get(0)).map_err(|e| anyhow::anyhow!("{e}"))?;
                round_ms[i].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        for _ in 0..steps {
            let c = hosted.chunk(false)?;
            round_ms[2].push(c.wall.as_secs_f64() * 1e3);
            steps_ms[2].push(c.step.as_secs_f64() * 1e3);
        }
        // The first round warms every runtime up and is left out.
        if round == 0 {
            continue;
        }
        let medians: Vec<f64> = round_ms.iter_mut().map(|v| median(v)).collect();
        ratios.push(medians[0] / medians[1]);
        for (all, m) in figures.iter_mut().zip(medians) {
            all.push(m);
        }
    }
    Ok(json!({
        "model": "256x144, one frame a step, with depth",
        "rounds": rounds, "steps": steps,
        "aoti_ms": median(&mut figures[0]),
        "torchscript_ms": median(&mut figures[1]),
        "python_worker_ms": median(&mut figures[2]),
        "python_step_ms": median(&mut steps_ms[2]),
        "aoti_over_torchscript": median(&mut ratios.clone()),
        "ratios": ratios,
        "device": "cpu",
    }))
}
