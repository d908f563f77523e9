//! Renders stills of a backend to PPM files and prints the median step time.
//!
//! `cargo run --release -p cuecast-engine --example still -- [--backend procedural]
//!  [--model DIR] [--prompt TEXT] [--size WxH] [--frames N] [--out DIR] [--cue JSON]...`
use std::time::Instant;

use cuecast_engine::{Cue, DeviceSpec, Engine, EngineConfig, Fps, Picture};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = EngineConfig {
        settings: cuecast_engine::engine::ModelSettings {
            device: DeviceSpec::Cpu,
            ..Default::default()
        },
        ..Default::default()
    };
    let (mut w, mut h, mut frames, mut out) = (640usize, 360usize, 30u64, None);
    let mut cues = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--backend" => config.settings.backend = v()?.parse()?,
            "--prompt" => config.settings.prompt = v()?,
            "--model" => config.settings.model = Some(v()?.into()),
            "--seed" => config.settings.seed = v()?.parse()?,
            "--device" => config.settings.device = v()?.parse()?,
            "--frames" => frames = v()?.parse()?,
            "--out" => out = Some(v()?),
            "--cue" => cues.push(Cue::from_json(&v()?)?),
            "--size" => {
                let s = v()?;
                let (a, b) = s.split_once('x').ok_or("--size WxH")?;
                (w, h) = (a.parse()?, b.parse()?);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (engine, rx) = Engine::start_with_channel(config)?;
    engine.set_output(w, h, Fps::new(30, 1));
    if !cues.is_empty() {
        engine.inbox().submit(cues, None)?;
    }
    let mut times = Vec::new();
    for n in 0..frames {
        let t = Instant::now();
        engine.render(n)?;
        let r = rx.recv()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if let (Some(dir), Picture::New(f) | Picture::Held(f)) = (&out, &r.picture) {
            if n + 1 == frames || n % 30 == 0 {
                std::fs::create_dir_all(dir)?;
                let mut ppm = format!("P6 {} {} 255\n", f.width(), f.height()).into_bytes();
                ppm.extend(f.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]));
                std::fs::write(format!("{dir}/frame{n:04}.ppm"), ppm)?;
            }
        }
        if let Picture::Failed(e) = r.picture {
            eprintln!("frame {n}: {e}");
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{w}x{h}: median {:.2} ms, p90 {:.2} ms, max {:.2} ms over {frames} frames",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    Ok(())
}
