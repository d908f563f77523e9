//! The benchmark's document: `docs/benchmarks.md` written from the measured figures
//! (`docs/benchmarks.json`), each section with its method, its figures and its verdict.

use super::*;

/// docs/benchmarks.md from the report.
pub(crate) fn document(r: &Value, quick: bool) -> Result<String> {
    let mut d = String::new();
    writeln!(d, "# Benchmarks\n")?;
    writeln!(d, "Written by `make bench`{}; every figure comes from that one run, and the raw figures are in [benchmarks.json](benchmarks.json).\n", if quick { " with `--quick` (shortened runs: not figures to quote)" } else { "" })?;
    writeln!(d, "- Machine: {}", r["machine"].as_str().unwrap_or(""))?;
    writeln!(d, "- Date: {}", r["date"].as_str().unwrap_or(""))?;
    writeln!(
        d,
        "- Build: release; {}\n",
        r["gstreamer"].as_str().unwrap_or("")
    )?;
    writeln!(d, "The machine is a shared 2-core virtual machine: its timings move by ±10 % from run to run. Compared things are measured alternately in the same run, so the ratios are steadier than the absolute figures.\n")?;

    // 1.
    writeln!(
        d,
        "## 1. Source cost: `cuecastsrc` and `videotestsrc`, not live, into `fakesink`\n"
    )?;
    run_alone(&mut d, "--world", &r["source_run"])?;
    writeln!(d, "RGBx at 30/1 caps, time per frame between the first and the last buffer (so start-up is left out), median of {} alternating runs of 300 frames (16-31 for the procedural world). `null`: a backend whose step does nothing, so what is left is the element (model thread handoff, buffer, timestamps). `tensor-out`: a step that only turns a finished float `[3, H, W]` frame into the buffer, the work every tensor backend adds. `pattern`: a trivial backend that draws a picture into the buffer, like `videotestsrc`. `procedural`: the built-in world, model step included.\n", r["source"][0]["rounds"])?;
    writeln!(d, "| size | null | tensor-out | pattern | procedural | videotestsrc | pattern ÷ videotestsrc (frames/s) |")?;
    writeln!(d, "|---|---|---|---|---|---|---|")?;
    let empty = vec![];
    let source = r["source"].as_array().unwrap_or(&empty);
    for s in source {
        let ms = |k: &str| f(&s[k]["ms"]);
        let cell = |k: &str| format!("{:.3} ms ({:.0}/s)", ms(k), 1e3 / ms(k));
        writeln!(
            d,
            "| {}x{} | {} | {} | {} | {:.1} ms ({:.1}/s) | {} | {:.2}× |",
            s["width"],
            s["height"],
            cell("null"),
            cell("tensor-out"),
            cell("pattern"),
            ms("procedural"),
            1e3 / ms("procedural"),
            cell("videotestsrc"),
            ms("videotestsrc") / ms("pattern")
        )?;
    }
    let hd = source.iter().find(|s| s["width"] == 1280);
    if let Some(hd) = hd {
        let outside = f(&hd["tensor-out"]["ms"]);
        writeln!(d, "\nTarget: per-frame cost outside the model step ≤ 1 ms at 1280x720: **{}** ({outside:.3} ms with the tensor-to-buffer conversion, {:.3} ms without).", verdict(outside <= 1.0), f(&hd["null"]["ms"]))?;
    }
    let worst = source
        .iter()
        .map(|s| f(&s["videotestsrc"]["ms"]) / f(&s["pattern"]["ms"]))
        .fold(f64::INFINITY, f64::min);
    writeln!(d, "Target: source ≥ 0.8× `videotestsrc` with the trivial backend: **{}** (lowest ratio {worst:.2}×).\n", verdict(worst >= 0.8))?;
    world_section(&mut d, &r["world"])?;
    writeln!(d, "![Source cost](bench/source.png)\n")?;

    // 2.
    let s = &r["stepping"];
    writeln!(
        d,
        "## 2. Model stepping: the example TorchScript package, cuecast against a Python loop\n"
    )?;
    writeln!(d, "`models/example/export.py` exported ({}, {}x{}), stepped {} times after 20 warm-up steps, {} alternating rounds, on the CPU. cuecast: the `torchscript` backend's step as the model thread calls it (inputs built, TorchScript `step`, the frame written into the RGBx buffer). Python: `bench/python_loop.py`, the loop Python tools in this field run: `torch.jit.load`, then `model.step` under `torch.inference_mode()`, and the frame turned into the uint8 H×W×3 array a Python tool hands on (PyTorch {}, {} threads). Medians of the per-round medians.\n", s["model"].as_str().unwrap_or(""), s["width"], s["height"], s["steps"], s["rounds"], s["python"]["torch"].as_str().unwrap_or(""), s["python"]["threads"])?;
    writeln!(d, "| | per step |")?;
    writeln!(d, "|---|---|")?;
    writeln!(
        d,
        "| cuecast: step + frame into the buffer | {:.3} ms |",
        f(&s["cuecast_ms"])
    )?;
    writeln!(
        d,
        "| Python loop: step + frame as uint8 array | {:.3} ms |",
        f(&s["python_frame_ms"])
    )?;
    writeln!(
        d,
        "| Python loop: step alone | {:.3} ms |\n",
        f(&s["python_step_ms"])
    )?;
    if let Some(t) = r.get("threads").filter(|t| t.is_object()) {
        writeln!(
            d,
            "### libtorch threads, quiet and beside a busy core
"
        )?;
        writeln!(d, "The same step ({} steps after 10 warm-up steps, {} rounds, medians of the per-round medians) with libtorch's intra-op threads on every core ({}, libtorch's own default) and on cuecast's default (`model_threads` in a show preset, `model-threads` on the element: half the cores, at most 8, one on a machine of up to three), on a quiet machine and beside one spinning thread (the other work a show machine always has).\n", t["steps"], t["rounds"], t["cores"])?;
        writeln!(d, "| threads | quiet | beside a busy core |")?;
        writeln!(d, "|---|---|---|")?;
        let rows = t["rows"].as_array().cloned().unwrap_or_default();
        for label in ["every core", "cuecast's default"] {
            let ms = |busy: bool| {
                rows.iter()
                    .find(|r| r["label"] == label && r["busy"] == busy)
                    .map_or(f64::NAN, |r| f(&r["ms"]))
            };
            let n = rows
                .iter()
                .find(|r| r["label"] == label)
                .map_or(Value::Null, |r| r["threads"].clone());
            writeln!(
                d,
                "| {n} ({label}) | {:.3} ms | {:.3} ms |",
                ms(false),
                ms(true)
            )?;
        }
        writeln!(d)?;
    }
    let ratio = f(&s["cuecast_ms"]) / f(&s["python_frame_ms"]);
    writeln!(d, "Target: cuecast ≤ 1.0× the Python loop's step time: **{}** ({ratio:.2}×; against the Python step alone, without making a frame: {:.2}×).\n", verdict(ratio <= 1.0), f(&s["cuecast_ms"]) / f(&s["python_step_ms"]))?;
    writeln!(d, "![Model stepping](bench/stepping.png)\n")?;

    // 3.
    writeln!(d, "## 3. Pacing: live, procedural world, 640x360\n")?;
    writeln!(d, "`cuecastsrc` live into `fakesink sync=true` while the camera flies a looping path (the world changes every frame). Push: how long after its slot started each buffer left the element. PTS: the largest difference between two buffers' PTS spacing and their duration.\n")?;
    writeln!(d, "| rate | seconds | frames | repeated | step median | step p99 (of per-second maxima) | push median | push p99 | PTS deviation |")?;
    writeln!(d, "|---|---|---|---|---|---|---|---|---|")?;
    let pacing = r["pacing"].as_array().unwrap_or(&empty);
    for p in pacing {
        let x = &p["run"];
        writeln!(
            d,
            "| {} fps | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} ns |",
            p["fps"],
            x["seconds"],
            x["frames"],
            x["repeated"],
            f(&x["step_median_ms"]),
            f(&x["step_p99_ms"]),
            f(&x["push_median_ms"]),
            f(&x["push_p99_ms"]),
            x["pts_max_deviation_ns"]
        )?;
    }
    if let Some(p30) = pacing.iter().find(|p| p["fps"] == 30) {
        let rep = p30["run"]["repeated"].as_u64().unwrap_or(u64::MAX);
        let long = p30["run"]["seconds"].as_u64().unwrap_or(0) >= 60;
        writeln!(
            d,
            "\nTarget: zero repeats at 640x360@30 on the CPU: **{}**.",
            if !long {
                "not measured (quick run)"
            } else {
                verdict(rep == 0)
            }
        )?;
    }
    if let Some(p60) = pacing.iter().find(|p| p["fps"] == 60) {
        let x = &p60["run"];
        writeln!(d, "At 60 fps a frame has 16.7 ms; the procedural world's step on this CPU takes {:.1} ms at the median (with adaptive detail lowering its internal resolution while steps run late), and the element repeats the frames the model could not finish in time ({} of {}): the output keeps its rate. The 60 fps target is the GPU's (1920x1080@60, below).", f(&x["step_median_ms"]), x["repeated"], x["frames"])?;
    }
    writeln!(d, "\n![Pacing](bench/pacing.png)\n")?;

    // 3b.
    let ds = &r["default_show"];
    if !ds.is_null() {
        writeln!(d, "### The default show, quiet and on a busy machine\n")?;
        run_alone(&mut d, "--world", ds)?;
        writeln!(d, "`cuecast serve` with the default config as `scripts/show` runs it (the default show preset, 1280x720 at 30 fps, a recording and a preview), first quiet, then with one core kept busy by a spinning thread beside it (the build or browser a newcomer's laptop always has). Repeats: frame slots filled by repeating the previous frame. Detail: what status reported, sampled every second (1 full; the procedural world draws at 0.75 or 0.5 while its steps run late, and back at full once there is room).\n")?;
        writeln!(d, "| machine | seconds | frames out | repeated | repeats per minute | detail (min / median / max) |")?;
        writeln!(d, "|---|---|---|---|---|---|")?;
        for w in ds["windows"].as_array().unwrap_or(&empty) {
            let mut det: Vec<f64> = w["detail"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(f)
                .collect();
            let (lo, hi) = det
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            writeln!(
                d,
                "| {} | {:.0} | {} | {} | {:.1} | {lo:.2} / {:.2} / {hi:.2} |",
                if w["busy"] == true {
                    "one core busy"
                } else {
                    "quiet"
                },
                f(&w["seconds"]),
                w["frames_out"],
                w["repeated"],
                f(&w["repeats_per_minute"]),
                median(&mut det)
            )?;
        }
        writeln!(d, "\nThe same world (`cuecastsrc` live at 1280x720@30 into `fakesink sync=true`, the camera flying its path) with one core busy, adaptive detail off and on, alternating, {} s each:\n", ds["adaptive"][0]["run"]["seconds"])?;
        writeln!(
            d,
            "| adaptive detail | frames | repeated | repeats per minute | step median |"
        )?;
        writeln!(d, "|---|---|---|---|---|")?;
        let mut per = [Vec::new(), Vec::new()];
        for a in ds["adaptive"].as_array().unwrap_or(&empty) {
            let x = &a["run"];
            let rpm = f(&x["repeated"]) * 60.0 / f(&x["seconds"]);
            per[usize::from(a["adaptive_detail"] == true)].push(rpm);
            writeln!(
                d,
                "| {} | {} | {} | {rpm:.1} | {:.1} ms |",
                if a["adaptive_detail"] == true {
                    "on"
                } else {
                    "off"
                },
                x["frames"],
                x["repeated"],
                f(&x["step_median_ms"])
            )?;
        }
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(d, "\nRepeats per minute with one core busy, round by round: {} with adaptive detail off; {} with it on.\n", list(&per[0]), list(&per[1]))?;
    }

    // 4.
    let l = &r["latency"];
    writeln!(
        d,
        "## 4. Latency: `cuecast serve`, procedural world, 640x360 at 30 fps\n"
    )?;
    if let Some(date) = l["date"].as_str() {
        writeln!(
            d,
            "Run on {date}, {}.\n",
            l["machine"].as_str().unwrap_or("")
        )?;
    }
    writeln!(d, "- **HTTP → frame**: {} `param` cues posted with `?wait=true` at random phases of the frame interval; the figure is the API's own answer, from the request being accepted to the first frame showing the cue being ready (`latency_ms`, the value `/metrics` histograms as `cuecast_cue_latency_seconds`).", l["http"]["n"])?;
    writeln!(d, "- **Cue → SRT receiver**: {} fades to and from black (`duration_s: 0`), each timed from sending the HTTP request to the first frame decoded by a receiver in the benchmark process (`srtsrc` caller, latency 120 ms → `tsdemux` → `avdec_h264`) whose mean luma shows it (black < 20, program > 40). The daemon's SRT output: listener, x264 zerolatency veryfast, 2 Mb/s, MPEG-TS muxed a frame a buffer and cut into 7-packet messages, SRT latency 120 ms.", l["srt"]["n"])?;
    writeln!(d, "- **Cue → control surface**: headless Chromium opens the control surface (preview output as shipped: 640 wide, 15 fps MJPEG); from inside the page {} fades are timed from sending the request until the preview `<img>`, drawn into a canvas every 5 ms, shows it by mean brightness. The preview's own delay is that time less the API's `latency_ms` for the cue.\n", l["preview"]["n"])?;
    writeln!(d, "| path | p50 | p99 |")?;
    writeln!(d, "|---|---|---|")?;
    writeln!(
        d,
        "| HTTP accepted → frame showing the cue | {:.1} ms | {:.1} ms |",
        f(&l["http"]["p50"]),
        f(&l["http"]["p99"])
    )?;
    writeln!(
        d,
        "| cue sent → first decoded frame at the SRT receiver | {:.1} ms | {:.1} ms |",
        f(&l["srt"]["p50"]),
        f(&l["srt"]["p99"])
    )?;
    writeln!(
        d,
        "| cue sent → visible in the control surface | {:.0} ms | {:.0} ms |",
        f(&l["preview"]["visible_p50"]),
        f(&l["preview"]["visible_p99"])
    )?;
    writeln!(
        d,
        "| frame made → visible in the control surface (preview delay) | {:.0} ms | {:.0} ms |\n",
        f(&l["preview"]["preview_p50"]),
        f(&l["preview"]["preview_p99"])
    )?;
    let bound = 1e3 / 30.0 + f(&l["step_p99_bound_ms"]) + 5.0;
    writeln!(d, "Step time p99 from `/metrics` (upper bound of its histogram bucket): ≤ {:.0} ms; frames repeated during the HTTP and SRT runs: {}; during the browser run (Chromium shares the cores): {}.\n", f(&l["step_p99_bound_ms"]), l["repeated"], l["preview"]["repeated"])?;
    writeln!(d, "Target: cue → applied frame p99 ≤ one frame interval + step p99 + 5 ms = {bound:.1} ms: **{}** ({:.1} ms).", verdict(f(&l["http"]["p99"]) <= bound), f(&l["http"]["p99"]))?;
    writeln!(d, "Target (control surface): the preview under half a second behind the show: **{}** (p99 {:.0} ms).\n", verdict(f(&l["preview"]["preview_p99"]) < 500.0), f(&l["preview"]["preview_p99"]))?;
    transport_section(&mut d, &r["transport"])?;
    writeln!(d, "![Latency](bench/latency.png)\n")?;

    // 5.
    let x = &r["resources"];
    writeln!(
        d,
        "## 5. Resources: a {}-minute show\n",
        x["seconds"].as_u64().unwrap_or(0) / 60
    )?;
    writeln!(d, "`cuecast serve`, procedural world at 640x360, 30 fps, with an SRT output (listener, read by an `srt-live-transmit` caller), an RTMP output (into nginx-rtmp on loopback) and an MKV recording, all three fed by one x264 (veryfast, 1.5 Mb/s) + AAC encoder, and a cue a second over the API (the camera's yaw, alternating). RSS, CPU (user + system, % of one core), open files and frames repeated so far sampled every 5 s; warm-up {} s. RSS after warm-up is the median of the samples in the window after it, RSS at the end the median of the last window (a tenth of the run, 15-60 s).\n", x["warmup_s"])?;
    writeln!(d, "| RSS after warm-up | RSS at the end | growth | CPU mean after warm-up | frames repeated |")?;
    writeln!(d, "|---|---|---|---|---|")?;
    writeln!(
        d,
        "| {:.1} MB | {:.1} MB | {:+.2} % | {:.0} % | {} |\n",
        f(&x["rss_after_warmup_mb"]),
        f(&x["rss_end_mb"]),
        f(&x["growth_percent"]),
        f(&x["cpu_mean_percent"]),
        x["repeated"]
    )?;
    if let Some(samples) = x["samples"]
        .as_array()
        .filter(|s| s.len() >= 4 && s[0].as_array().is_some_and(|a| a.len() >= 5))
    {
        writeln!(
            d,
            "Over time ({} cues sent, {} accepted):\n",
            x["cues_sent"], x["cues_accepted"]
        )?;
        writeln!(d, "| minute | RSS | open files | frames repeated so far |")?;
        writeln!(d, "|---|---|---|---|")?;
        let n = samples.len();
        for k in [0, n / 4, n / 2, 3 * n / 4, n - 1] {
            let s = &samples[k];
            writeln!(
                d,
                "| {:.1} | {:.1} MB | {} | {} |",
                f(&s[0]) / 60.0,
                f(&s[1]),
                s[3],
                s[4]
            )?;
        }
        writeln!(d)?;
    }
    let outs: Vec<String> = x["outputs"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|o| {
            format!(
                "{} {} ({:.1} MB)",
                o["name"].as_str().unwrap_or(""),
                o["state"].as_str().unwrap_or(""),
                o["bytes"].as_f64().unwrap_or(0.0) / 1e6
            )
        })
        .collect();
    writeln!(
        d,
        "Outputs at the end: {}; the SRT receiver wrote {:.1} MB.\n",
        outs.join(", "),
        f(&x["srt_received_bytes"]) / 1e6
    )?;
    let long = x["seconds"].as_u64().unwrap_or(0) >= 600;
    writeln!(
        d,
        "Target: RSS growth ≤ 2 % over 10 minutes after warm-up: **{}** ({:+.2} %).\n",
        if long {
            verdict(f(&x["growth_percent"]) <= 2.0)
        } else {
            "not measured (quick run)"
        },
        f(&x["growth_percent"])
    )?;
    writeln!(d, "![Resources](bench/resources.png)\n")?;

    // 6.
    writeln!(d, "## 6. Encode: x264 at 30 fps on this machine\n")?;
    writeln!(d, "`cuecast serve` with the trivial `pattern` backend (so the encoder is what is measured) and one recording: x264 zerolatency veryfast behind the encoder branch's leaky queue. Frames counted into the branch and out of x264 (`cuecast_encoder_frames_*_total`); a frame the encoder cannot take in time is dropped by the queue, never by the show. CPU is the daemon process's over the window.\n")?;
    writeln!(d, "| size | bitrate | seconds | frames in | frames out | dropped | CPU (% of one core) | show repeated |")?;
    writeln!(d, "|---|---|---|---|---|---|---|---|")?;
    for e in r["encode"].as_array().unwrap_or(&empty) {
        writeln!(
            d,
            "| {}x{} | {} kb/s | {} | {} | {} | {} | {:.0} % | {} |",
            e["width"],
            e["height"],
            e["kbps"],
            e["seconds"],
            e["frames_in"],
            e["frames_out"],
            e["dropped"],
            f(&e["cpu_percent"]),
            e["repeated"]
        )?;
    }
    writeln!(
        d,
        "\n(A difference of up to 2 between in and out is frames in flight at the two reads.)\n"
    )?;
    writeln!(d, "![Encode](bench/encode.png)\n")?;
    faults_section(&mut d, r)?;

    // Takes.
    let t = &r["takes"];
    writeln!(d, "## Takes: recording at 720p30, and exporting it\n")?;
    writeln!(d, "`cuecast serve` at 1280x720, 30 fps, `pattern` backend (so the take's cost is what is measured), no outputs. Alternating {}-second windows without and with a take recording.\n", t["window_s"])?;
    writeln!(
        d,
        "| | repeated frames per window | CPU (% of one core, mean) |"
    )?;
    writeln!(d, "|---|---|---|")?;
    writeln!(
        d,
        "| no take | {} | {:.0} % |",
        t["repeated_without"],
        f(&t["cpu_without"])
    )?;
    writeln!(
        d,
        "| take recording | {} | {:.0} % |\n",
        t["repeated_with"],
        f(&t["cpu_with"])
    )?;
    let sum = |k: &str| {
        t[k].as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(Value::as_u64)
            .sum::<u64>()
    };
    writeln!(d, "The last take holds {} frames; frames the disk could not take in time: {}. Target: recording a 720p30 take adds no repeated frames: **{}** ({} with a take, {} without).\n", t["take_frames"], t["lost_frames"], verdict(sum("repeated_with") <= sum("repeated_without")), sum("repeated_with"), sum("repeated_without"))?;
    let e = &t["export"];
    writeln!(d, "Export of that take in every format its model allows (PNG sequence, ProRes 4444, glTF, USD, After Effects and Blender scripts, manifest; no EXR: `pattern` makes no depth), while that show still runs: {} frames in {:.1} s ({:.1} frames/s), {:.0} MB. The export against ffmpeg on a quiet machine is below.\n", e["frames"], f(&e["seconds"]), f(&e["frames"]) / f(&e["seconds"]), f(&e["mb"]))?;

    let x = &r["export"];
    if !x.is_null() {
        let ff = f(&x["ffmpeg_png_s"]) + f(&x["ffmpeg_prores_s"]);
        writeln!(d, "### Export against ffmpeg\n")?;
        writeln!(d, "A take of the default show (procedural world, with depth) at {}x{}, {} recorded frames ({} timeline frames). `cuecast export` in every format (PNG sequence, ProRes 4444, depth EXRs, glTF, USD, After Effects and Blender scripts, checksummed manifest) against `ffmpeg` turning the take's raw frames into a PNG sequence and, separately, a ProRes 4444 plate (`-c:v prores_ks -profile:v 4444`), on the same {} cores, alternating; medians of {} rounds.\n", x["width"], x["height"], x["recorded"], x["frames"], x["cores"], x["rounds"])?;
        writeln!(d, "| | seconds |")?;
        writeln!(d, "|---|---|")?;
        writeln!(
            d,
            "| `cuecast export`, every format | {:.1} |",
            f(&x["cuecast_s"])
        )?;
        writeln!(
            d,
            "| `ffmpeg` PNG sequence | {:.1} |",
            f(&x["ffmpeg_png_s"])
        )?;
        writeln!(
            d,
            "| `ffmpeg` ProRes 4444 | {:.1} |",
            f(&x["ffmpeg_prores_s"])
        )?;
        writeln!(d, "| `ffmpeg` PNG + ProRes | {:.1} |\n", ff)?;
        writeln!(d, "Target: the whole bundle in no more time than ffmpeg's PNG + ProRes: **{}** ({:.2}×).\n", verdict(f(&x["cuecast_s"]) <= ff), f(&x["cuecast_s"]) / ff)?;
    }

    models_section(&mut d, &r["models"])?;
    media_section(&mut d, &r["media"])?;

    // GPU.
    writeln!(d, "## GPU path\n")?;
    let g = &r["gpu"];
    if g.is_null() {
        writeln!(d, "Not measured: the machine that ran this suite has no GPU. On a machine with an NVIDIA GPU the same command adds, with `device=cuda`: the procedural world at 1920x1080 (row 1), the example package stepped by cuecast and by the Python loop (row 2), live 1920x1080@60 pacing (row 3), and the device-to-host copy of a 1080p frame.")?;
    } else {
        writeln!(d, "Device: {}.\n", g["device"].as_str().unwrap_or(""))?;
        writeln!(d, "| | figure |")?;
        writeln!(d, "|---|---|")?;
        writeln!(
            d,
            "| procedural 1920x1080, not live, per frame | {:.2} ms |",
            f(&g["procedural_1080p_ms"])
        )?;
        writeln!(
            d,
            "| example package: cuecast step + frame | {:.3} ms |",
            f(&g["stepping"]["cuecast_ms"])
        )?;
        writeln!(
            d,
            "| example package: Python loop step + frame | {:.3} ms |",
            f(&g["stepping"]["python_frame_ms"])
        )?;
        let p = &g["pacing_1080p60"];
        writeln!(
            d,
            "| live 1920x1080@60 for {} s: frames, repeated | {}, {} |",
            p["seconds"], p["frames"], p["repeated"]
        )?;
        writeln!(
            d,
            "| device-to-host copy of a 1080p frame (u8 RGBx made on the GPU) | {:.2} ms |\n",
            f(&g["download_1080p_ms"])
        )?;
        writeln!(
            d,
            "Target: zero repeats at 1920x1080@60 on the GPU: **{}**.",
            verdict(p["repeated"] == 0)
        )?;
    }
    Ok(d)
}

/// Section 7: recovery times and what `kill -9` costs a recording.
fn faults_section(d: &mut String, r: &Value) -> Result<()> {
    let x = &r["faults"];
    if !x.is_object() {
        return Ok(());
    }
    let stats = |v: &Value| -> (f64, f64, usize) {
        let mut s: Vec<f64> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let worst = s.iter().cloned().fold(f64::NAN, f64::max);
        let n = s.len();
        (if n > 0 { median(&mut s) } else { f64::NAN }, worst, n)
    };
    writeln!(
        d,
        "## 7. Faults: recovery, and what `kill -9` costs a recording\n"
    )?;
    writeln!(d, "`cuecast serve` at 640x360 (1.5 Mb/s veryfast) against real peers on loopback. The peer is taken away, left away 3 s, and brought back; the time is from its return. RTMP uses the default backoff (2 s × 1.5ⁿ, ±20 %), so its figure is mostly the wait for the next attempt; the SRT caller here retries after 1-2 s. A hung model: a TorchScript package whose sixth step never returns; the figure is how long the step had run when the `error` event came (the stall limit is 5 s).\n")?;
    writeln!(d, "| fault | rounds | median | worst |")?;
    writeln!(d, "|---|---|---|---|")?;
    for (label, v) in [
        ("nginx-rtmp back → output `live`", &x["rtmp"]["seconds"]),
        (
            "nginx-rtmp frozen (SIGSTOP) → output no longer `live`",
            &x["rtmp_frozen"]["seconds"],
        ),
        (
            "SRT listener back → bytes at the receiver",
            &x["srt"]["seconds"],
        ),
        (
            "model hang → `error` event (step running for)",
            &x["hang"]["step_running_s"],
        ),
    ] {
        let (m, w, n) = stats(v);
        writeln!(d, "| {label} | {n} | {m:.2} s | {w:.2} s |")?;
    }
    writeln!(d)?;
    writeln!(d, "`kill -9` 3-6 s into a recording at 1280x720 (ultrafast): seconds lost = time since the file's first byte minus what the cut file plays (frames ÷ 30, counted by ffprobe). Recordings are written through and flushed every second; MP4 is fragmented at 1 s, so it keeps whole fragments.\n")?;
    writeln!(
        d,
        "| profile bitrate | actual | container | rounds | lost: median | worst |"
    )?;
    writeln!(d, "|---|---|---|---|---|---|")?;
    for row in x["kill9"].as_array().into_iter().flatten() {
        let (m, w, n) = stats(&row["lost_s"]);
        let (rate, _, _) = stats(&row["mbps"]);
        writeln!(
            d,
            "| {} kb/s | {rate:.1} Mb/s | {} | {n} | {m:.2} s | {w:.2} s |",
            row["kbps"],
            row["container"].as_str().unwrap_or("")
        )?;
    }
    writeln!(d)?;
    Ok(())
}

/// Section 8: python models hosted in a worker process.
fn models_section(d: &mut String, m: &Value) -> Result<()> {
    writeln!(
        d,
        "## 8. Python models: the reference chunked model in a worker process\n"
    )?;
    if m.is_null() {
        writeln!(
            d,
            "Not in this run (`cargo run --release -p cuecast-bench -- --models` adds it).\n"
        )?;
        return Ok(());
    }
    writeln!(d, "Run on its own (`--models`) on {}, {}; the other sections come from the full run named at the top of this page, which may have had another machine of the pool.\n", m["date"].as_str().unwrap_or(""), m["machine"].as_str().unwrap_or(""))?;
    let o = &m["overhead"];
    writeln!(d, "### Worker overhead\n")?;
    writeln!(d, "`models/kv-chunks` (256x144, 4-frame chunks, one torch thread) stepped {} times per round by cuecast through its worker (from asking for a chunk to having its frames in cuecast's buffers: the socket, the step, the copy through shared memory) and by a bare Python loop in the same venv (`models/bench_loop.py`: the step alone), alternating; medians of each round, the first three chunks left out.\n", o["chunks"])?;
    writeln!(d, "| | per chunk |")?;
    writeln!(d, "|---|---|")?;
    writeln!(d, "| bare Python loop | {:.2} ms |", f(&o["bare_ms"]))?;
    writeln!(
        d,
        "| through cuecast's worker | {:.2} ms |",
        f(&o["worker_ms"])
    )?;
    writeln!(
        d,
        "| of which the model's step, timed inside the worker | {:.2} ms |",
        f(&o["worker_step_ms"])
    )?;
    writeln!(
        d,
        "| of which its frames to 8-bit RGB and into cuecast's frames | {:.2} ms |\n",
        f(&o["worker_transfer_ms"])
    )?;
    let ratio = f(&o["ratio"]);
    let ratios: Vec<String> = o["ratios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{:.3}", f(r)))
        .collect();
    writeln!(d, "Target ≤ 1.05×: **{}** ({ratio:.3}×, the median of the rounds' ratios: {}). The rest of the difference from the step is the socket and the two processes' turns on the cores.\n", verdict(ratio <= 1.05), ratios.join(", "))?;
    let hosting = f(&o["worker_ms"]) / f(&o["worker_step_ms"]);
    writeln!(d, "Hosting alone (a chunk through the worker against the same worker's step, the two timed on the same chunks): {hosting:.3}×. When the bare loop's rounds spread as widely as the worker's (see the rounds in benchmarks.json), the round ratio measures this machine's neighbours more than the worker.\n")?;
    writeln!(d, "### Moving a 12-frame 832x480 chunk into cuecast\n")?;
    run_alone(d, "--transfer", &m["transfer_run"])?;
    writeln!(d, "A model that only hands over a chunk it holds, so the move is all that is timed: the worker's write into its slot of shared memory (RGB; from float, rounding to 8 bits too), then either nothing (the frames go on air where they lie: what `cuecastsrc` negotiates for a worker's model, RGB at its size) or cuecast's copy into RGBx (a show that takes only RGBx), chunk by chunk alternately. Medians.\n")?;
    writeln!(
        d,
        "| frames the model returns | into the show | worker write | cuecast copy | total | p99 |"
    )?;
    writeln!(d, "|---|---|---|---|---|---|")?;
    let mut best = f64::INFINITY;
    for row in m["transfer"].as_array().into_iter().flatten() {
        best = best.min(f(&row["transfer_ms"]));
        writeln!(
            d,
            "| {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            row["frames"].as_str().unwrap_or(""),
            row["into"].as_str().unwrap_or("RGBx, copied"),
            f(&row["worker_write_ms"]),
            f(&row["cuecast_copy_ms"]),
            f(&row["transfer_ms"]),
            f(&row["transfer_p99_ms"])
        )?;
    }
    writeln!(d, "\nTarget ≤ 2 ms: **{}** ({best:.2} ms at best). 12 frames at 832x480 are 14.4 MB of RGB: on this machine one pass over that much memory is itself about 2 ms, and the worker's write is that pass.\n", verdict(best <= 2.0))?;
    runtimes_section(d, m)?;
    let p = &m["pacing"];
    writeln!(d, "### Pacing, chunks, restarts and cues\n")?;
    writeln!(d, "| | figure | target |")?;
    writeln!(d, "|---|---|---|")?;
    let chunk_p99 = f(&p["chunk_p99_ms_le"]);
    let held = chunk_p99 < f(&p["chunk_duration_ms"]);
    writeln!(d, "| live 256x144@30 for {} s: frames, repeated, skipped | {}, {}, {} | 0 repeats while chunk p99 < 250 ms: **{}** |", p["seconds"], p["frames"], p["repeated"], p["frames_skipped"], if held { verdict(p["repeated"].as_u64() == Some(0)) } else { "not applicable (chunk p99 over its duration)" })?;
    writeln!(d, "| its chunks, asking to having them: p50, p99 (bucket bounds) | ≤ {:.0} ms, ≤ {chunk_p99:.0} ms | under the chunk's 250 ms |", f(&p["chunk_p50_ms_le"]))?;
    let rs = &m["restart"];
    let restart = f(&rs["median_ms"]);
    writeln!(d, "| `kill -9` of the worker to the first chunk of the next (median of {}) | {restart:.0} ms | ≤ 2000 ms: **{}** |", rs["runs_ms"].as_array().map_or(0, Vec::len), verdict(restart <= 2000.0))?;
    let l = &m["latency"];
    let bound = f(&l["bound_ms"]);
    writeln!(d, "| cue arrival to the first frame showing it: p50, p99 ({} cues) | {:.0} ms, {:.0} ms | ≤ chunk + step + frame = {bound:.0} ms: **{}** |\n", l["shown"], f(&l["p50_ms"]), f(&l["p99_ms"]), verdict(f(&l["p99_ms"]) <= bound))?;
    let sb = &m["sandbox"];
    writeln!(d, "### The sandbox's cost\n")?;
    if sb.is_null() {
        writeln!(d, "Not in this run.\n")?;
    } else if let Some(why) = sb["unavailable"].as_str() {
        writeln!(
            d,
            "Not measured: no sandbox could be made on this machine ({why}).\n"
        )?;
    } else {
        writeln!(d, "`models/kv-chunks` started and stepped {} chunks a round in the sandbox (bubblewrap) and without it, alternating, {} rounds: the worker's start (process, imports, load, reset, until it can step) and each chunk's overhead (its wall time less the model's own step: the socket, the two processes' turns, the copy). Medians, and the median of each adjacent pair's ratio.\n", sb["chunks"], sb["start_ratios"].as_array().map_or(0, Vec::len))?;
        writeln!(d, "| | worker start | per-chunk overhead |")?;
        writeln!(d, "|---|---|---|")?;
        for (label, key) in [("in the sandbox", "sandboxed"), ("without it", "bare")] {
            writeln!(
                d,
                "| {label} | {:.0} ms | {:.2} ms |",
                f(&sb[key]["start_ms"]),
                f(&sb[key]["chunk_overhead_ms"])
            )?;
        }
        writeln!(
            d,
            "| ratio | {:.3}× | {:.3}× |\n",
            f(&sb["start_ratio"]),
            f(&sb["chunk_ratio"])
        )?;
    }
    writeln!(d, "### On a GPU\n")?;
    let g = &m["gpu"];
    if g.is_null() {
        writeln!(d, "Not measured: no GPU on the machine that ran this section. With one, the same command adds the reference model at 832x480 on CUDA through the worker: chunk time, step, transfer and a minute of live pacing.\n")?;
    } else {
        writeln!(d, "{}, {}: chunk {:.1} ms, step {:.1} ms, transfer {:.2} ms; live for {} s: {} frames, {} repeated.\n", g["device"].as_str().unwrap_or(""), g["size"].as_str().unwrap_or(""), f(&g["chunk_ms"]), f(&g["step_ms"]), f(&g["transfer_ms"]), g["pacing"]["seconds"], g["pacing"]["frames"], g["pacing"]["repeated"])?;
    }
    Ok(())
}

/// Section 9: media in and out through the daemon.
fn media_section(d: &mut String, m: &Value) -> Result<()> {
    writeln!(
        d,
        "## 9. Media in and out: video into a model, sound out with the picture\n"
    )?;
    if m.is_null() {
        writeln!(
            d,
            "Not in this run (`cargo run --release -p cuecast-bench -- --media` adds it).\n"
        )?;
        return Ok(());
    }
    writeln!(d, "Run on its own (`--media`) on {}, {}{}; the other sections come from the full run named at the top of this page, which may have had another machine of the pool.\n", m["date"].as_str().unwrap_or(""), m["machine"].as_str().unwrap_or(""), if m["quick"] == true { ", **quick** (shortened runs)" } else { "" })?;
    let g = &m["glass_to_glass"];
    let budget = |x: &Value| {
        f(&x["lag_ms"]) + 2.0 * 1000.0 / f(&x["show_fps"]) + 2.0 * f(&x["srt_latency_ms"])
    };
    writeln!(d, "### Glass to glass through a video-to-video model\n")?;
    writeln!(d, "A camera (a GStreamer pipeline in the benchmark: {} fps, 160x90, H.264 over SRT with {} ms latency) into the daemon's SRT listener input, which feeds `models/restyle` ({} fps, its lag one of its frames: {:.0} ms) in its worker; the show at 640x360@30 out over SRT ({} ms latency) to a receiver that decodes it. The camera's picture turns black or white {} times over {:.0} s; each change is timed from the moment its first frame is handed to the camera's encoder to the first decoded frame at the receiver whose mean luma is past the midpoint of the model's black ({:.0}) and white ({:.0}) outputs.\n", g["input_fps"], g["srt_latency_ms"], g["model_fps"], f(&g["lag_ms"]), g["srt_latency_ms"], g["n"], f(&g["seconds"]), f(&g["black"]), f(&g["white"]))?;
    writeln!(d, "| | p50 | p99 |")?;
    writeln!(d, "|---|---|---|")?;
    writeln!(
        d,
        "| camera → restyled frame decoded at the receiver | {:.0} ms | {:.0} ms |\n",
        f(&g["p50_ms"]),
        f(&g["p99_ms"])
    )?;
    let b = budget(g);
    writeln!(d, "Target: at most the model's lag + 2 frames of the show + both SRT latencies = {:.0} ms: p50 **{}**, p99 **{}**.\n", b, crate::verdict(f(&g["p50_ms"]) <= b), crate::verdict(f(&g["p99_ms"]) <= b))?;

    let o = &m["overrun"];
    writeln!(d, "### A 30 fps input into a 10 fps model\n")?;
    writeln!(d, "The same chain with the model at 10 fps (so two input frames in three have no step to take them), for {:.0} s; a change every 4 s or so timed as above, the daemon's memory (its process and the model's worker) and its video input's counts read every 10 s.\n", f(&o["seconds"]))?;
    writeln!(d, "| | figure |")?;
    writeln!(d, "|---|---|")?;
    writeln!(
        d,
        "| glass to glass, p50 over the whole run ({} changes) | {:.0} ms |",
        o["n"],
        f(&o["p50_ms"])
    )?;
    writeln!(d, "| glass to glass, p99 | {:.0} ms |", f(&o["p99_ms"]))?;
    writeln!(
        d,
        "| p50 in the first {:.0} s → in the last {:.0} s | {:.0} → {:.0} ms |",
        f(&o["window_s"]),
        f(&o["window_s"]),
        f(&o["first_window_p50_ms"]),
        f(&o["last_window_p50_ms"])
    )?;
    writeln!(
        d,
        "| input frames received / taken by the model / dropped (counted) | {} / {} / {} |",
        o["received"], o["used"], o["dropped"]
    )?;
    writeln!(
        d,
        "| steps given the last frame again (no new one had come) | {} |",
        o["repeated_inputs"]
    )?;
    writeln!(d, "| frames the show repeated | {} |", o["show_repeated"])?;
    writeln!(
        d,
        "| RSS (daemon + worker) at the start → end | {:.1} → {:.1} MB |\n",
        f(&o["rss_first_mb"]),
        f(&o["rss_last_mb"])
    )?;
    let flat_latency =
        f(&o["last_window_p50_ms"]) <= f(&o["first_window_p50_ms"]) + 1000.0 / f(&o["model_fps"]);
    let growth = (f(&o["rss_last_mb"]) - f(&o["rss_first_mb"])) / f(&o["rss_first_mb"]) * 100.0;
    writeln!(d, "Targets: latency flat (the last window's p50 within one model frame of the first's): **{}**; drops counted ({} dropped of {} received): **{}**; RSS flat ({:+.1} %, within 5 %): **{}**.\n", crate::verdict(flat_latency), o["dropped"], o["received"], crate::verdict(o["dropped"].as_u64().unwrap_or(0) > 0), growth, crate::verdict(growth.abs() <= 5.0))?;

    let a = &m["av_offset"];
    writeln!(d, "### Sound against picture at an SRT receiver\n")?;
    writeln!(d, "`models/click` (a flash and a click together every half second, its sound at 16 kHz mixed into the program at 48 kHz) out over SRT to `srt-live-transmit` writing what it receives, for {:.0} s; the file read afterwards by `ffprobe`/`ffmpeg` on its own time stamps (`cuecast_tests::sync`): each click's onset less the nearest flash's frame time.\n", f(&a["seconds"]))?;
    writeln!(d, "| | figure |")?;
    writeln!(d, "|---|---|")?;
    writeln!(d, "| clicks paired with flashes | {} |", a["n"])?;
    writeln!(
        d,
        "| offset p50 (sound after picture) | {:+.1} ms |",
        f(&a["p50_ms"])
    )?;
    writeln!(
        d,
        "| offset p99 / max, either way | {:.1} / {:.1} ms |",
        f(&a["abs_p99_ms"]),
        f(&a["abs_max_ms"])
    )?;
    writeln!(
        d,
        "| p50 in the first {:.0} s → in the last {:.0} s | {:+.1} → {:+.1} ms |",
        f(&a["window_s"]),
        f(&a["window_s"]),
        f(&a["first_window_p50_ms"]),
        f(&a["last_window_p50_ms"])
    )?;
    writeln!(
        d,
        "| frames the show repeated; the mix's underruns | {}; {} |\n",
        a["show_repeated"], a["audio_underruns"]
    )?;
    let frame = f(&a["frame_ms"]);
    let drift = (f(&a["last_window_p50_ms"]) - f(&a["first_window_p50_ms"])).abs();
    writeln!(d, "Targets: within one frame ({:.1} ms) throughout: **{}**; no drift (first and last windows within 5 ms): **{}** ({:.1} ms). The offset that is there is the AAC encoder's priming (1024 samples, 21.3 ms at 48 kHz), which the stream does not signal.\n", frame, crate::verdict(f(&a["abs_max_ms"]) <= frame), crate::verdict(drift <= 5.0), drift)?;
    Ok(())
}

/// The procedural world's own cost, in section 1.
fn world_section(d: &mut String, w: &Value) -> Result<()> {
    writeln!(
        d,
        "\n### The procedural world alone, on one core and on all\n"
    )?;
    if w.is_null() {
        writeln!(
            d,
            "Not in this run (`cargo run --release -p cuecast-bench -- --world` adds it).\n"
        )?;
        return Ok(());
    }
    writeln!(d, "Run on {}, {}. The world's generator stepped directly (no element, no pipeline) at {}x{}, full detail, no depth (as on air with no take recording), the camera flying 25 m over the hills; {} frames a round after three, {} alternating rounds on one core (the process pinned to it, so the renderer runs one thread) and on all {}; medians of the rounds' medians.\n", w["date"].as_str().unwrap_or(""), w["machine"].as_str().unwrap_or(""), w["width"], w["height"], w["frames"], w["rounds"], w["cores"])?;
    writeln!(d, "| camera | one core | all cores |")?;
    writeln!(d, "|---|---|---|")?;
    for row in w["rows"].as_array().into_iter().flatten() {
        let pitch = f(&row["pitch"]);
        let label = if pitch == 0.0 {
            "level".to_owned()
        } else {
            format!("pitched {pitch:.0}°")
        };
        writeln!(
            d,
            "| {label} | {:.1} ms | {:.1} ms |",
            f(&row["one_core_ms"]),
            f(&row["all_cores_ms"])
        )?;
    }
    let level = w["rows"][0]["one_core_ms"].as_f64().unwrap_or(f64::NAN);
    writeln!(
        d,
        "\nTarget: ≤ 8 ms a 1280x720 frame on one core: **{}** ({level:.1} ms level).\n",
        verdict(level <= 8.0)
    )?;
    Ok(())
}

/// SRT alone, in section 4: what a cue's way to the receiver costs without cuecast.
fn transport_section(d: &mut String, t: &Value) -> Result<()> {
    writeln!(d, "\n### SRT alone, no cuecast\n")?;
    if t.is_null() {
        writeln!(
            d,
            "Not in this run (`cargo run --release -p cuecast-bench -- --transport` adds it).\n"
        )?;
        return Ok(());
    }
    writeln!(d, "Run on {}, {}. A camera in the benchmark process (640x360 at 30 fps, black or white on demand) encoded with the daemon's own output settings (x264 zerolatency veryfast, 2 Mb/s, MPEG-TS muxed a frame a buffer and cut into 7-packet SRT messages, an SRT listener at {} ms) straight to the same receiver as above; each change timed from its first frame entering the encoder to its first decoded frame. What a cue's time to the SRT receiver costs beyond this is cuecast's.\n", t["date"].as_str().unwrap_or(""), t["machine"].as_str().unwrap_or(""), t["srt_latency_ms"])?;
    writeln!(d, "| receiver's decoder | changes | p50 | p99 |")?;
    writeln!(d, "|---|---|---|---|")?;
    for row in t["rows"].as_array().into_iter().flatten() {
        writeln!(
            d,
            "| `{}` | {} | {:.0} ms | {:.0} ms |",
            row["decoder"].as_str().unwrap_or(""),
            row["n"],
            f(&row["p50_ms"]),
            f(&row["p99_ms"])
        )?;
    }
    writeln!(
        d,
        "\nThe SRT latency is {} ms of it.\n",
        t["srt_latency_ms"]
    )?;
    let stages = t["stages"]["rows"].as_array();
    if let Some(rows) = stages {
        writeln!(
            d,
            "#### Where the milliseconds go
"
        )?;
        writeln!(d, "The same camera and the same timing, one stage a row (in one process, then over SRT on loopback), all in this run: a row that starts with + adds a stage to the last such row, and its cost is the difference; a row that starts \"the same\" changes one thing in the row just before it, and its cost is the difference to that row.\n")?;
        writeln!(d, "| path | changes | p50 | its cost (p50) | p99 |")?;
        writeln!(d, "|---|---|---|---|---|")?;
        // A "the same" row changes the row before it; any other row adds a stage to
        // the last row that was not a "the same" one.
        let (mut base, mut prev): (Option<f64>, Option<f64>) = (None, None);
        for row in rows {
            let p50 = f(&row["p50_ms"]);
            let stage = row["stage"].as_str().unwrap_or("");
            let variant = stage.starts_with("the same");
            let against = if variant { prev } else { base };
            writeln!(
                d,
                "| {stage} | {} | {p50:.0} ms | {} | {:.0} ms |",
                row["n"],
                against.map_or("".into(), |b| format!("{:+.0} ms", p50 - b)),
                f(&row["p99_ms"])
            )?;
            if !variant {
                base = Some(p50);
            }
            prev = Some(p50);
        }
        writeln!(d)?;
    }
    Ok(())
}

/// Section 8's one-frame model in each runtime: aoti, TorchScript, the python worker.
fn runtimes_section(d: &mut String, m: &Value) -> Result<()> {
    writeln!(
        d,
        "### One model, three runtimes: aoti, TorchScript, python\n"
    )?;
    let r = &m["runtimes"];
    if r.is_null() {
        writeln!(
            d,
            "Not in this run (`cargo run --release -p cuecast-bench -- --runtimes` adds it).\n"
        )?;
        return Ok(());
    }
    run_alone(d, "--runtimes", &m["runtimes_run"])?;
    writeln!(d, "`tiny-world` ({}) exported by `models/compiled/export.py` three ways and stepped {} times a round by each, rounds alternating, {} rounds after one to warm up, one torch thread each, on the CPU. In process (`aoti`: its `.pt2`; `torchscript`: its `model.pt`) a step is timed from its inputs to its frame in an RGBx buffer; through the worker (`python`: the same model in eager PyTorch), from asking for the frame to having it in cuecast's buffer. Medians of the rounds' medians.\n", r["model"].as_str().unwrap_or(""), r["steps"], r["rounds"])?;
    writeln!(d, "| runtime | per step |")?;
    writeln!(d, "|---|---|")?;
    writeln!(d, "| `aoti` (in process) | {:.2} ms |", f(&r["aoti_ms"]))?;
    writeln!(
        d,
        "| `torchscript` (in process) | {:.2} ms |",
        f(&r["torchscript_ms"])
    )?;
    writeln!(
        d,
        "| `python` (worker; its step alone {:.2} ms) | {:.2} ms |\n",
        f(&r["python_step_ms"]),
        f(&r["python_worker_ms"])
    )?;
    let ratio = f(&r["aoti_over_torchscript"]);
    writeln!(
        d,
        "Target aoti ≤ TorchScript: **{}** ({ratio:.2}×, the median of the rounds' ratios).\n",
        verdict(ratio <= 1.0)
    )?;
    Ok(())
}

/// "Run on its own (`FLAG`) on DATE, MACHINE.", for a part measured apart from the full
/// run (`run` has its `date` and `machine`; nothing is said without a date).
fn run_alone(d: &mut String, flag: &str, run: &Value) -> Result<()> {
    if let Some(date) = run["date"].as_str() {
        writeln!(
            d,
            "Run on its own (`{flag}`) on {date}, {}.\n",
            run["machine"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}
