//! The procedural world's own cost: its generator stepped directly (no element, no
//! pipeline) at 1280x720 and full detail, the camera flying low over the hills, looking
//! level and pitched down, on one core (the process pinned to it, so the renderer runs
//! one thread) and on all of them, alternating.

use std::time::Instant;

use anyhow::{ensure, Result};
use cuecast_engine::camera::Pose;
use cuecast_engine::generator::procedural::Procedural;
use cuecast_engine::generator::{Fps, FrameInput, Generator, Image, PromptState};
use serde_json::{json, Value};

use crate::median;

/// Runs `f` with this process's threads allowed only on `cpus` (all when `None`).
fn pinned<T>(cpus: Option<usize>, f: impl FnOnce() -> T) -> T {
    // SAFETY: sched_{get,set}affinity on this thread with a properly sized cpu_set_t.
    unsafe {
        let mut saved: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved);
        if let Some(n) = cpus {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for cpu in (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &saved))
                .take(n)
            {
                libc::CPU_SET(cpu, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
        let out = f();
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &saved);
        out
    }
}

/// Milliseconds per frame of `frames` frames along the flight, the median frame, looking
/// level and looking `pitch` degrees down.
fn flight(width: usize, height: usize, frames: usize, pitch: f64) -> Result<f64> {
    let mut world = Procedural::new(tch::Device::Cpu, 7, "rolling green hills", false);
    let mut data = vec![0u8; width * height * 4];
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames + 3 {
        let t = i as f64 / 30.0;
        let (x, z) = (40.0 * t, -120.0 * t);
        let ground = world.ground_height(x, z).unwrap_or(0.0);
        let pose = Pose {
            pos: [x, ground + 25.0, z],
            yaw: 10.0 * (t * 0.7).sin(),
            pitch,
            fov: 70.0,
        };
        let input = FrameInput {
            camera: pose,
            prompt: PromptState {
                text: "rolling green hills".into(),
                previous: None,
                mix: 1.0,
            },
            seed: 7,
            detail: 1.0,
            // As on air with no take recording: no depth.
            depth: false,
            ..FrameInput::still(i as u64, Fps::new(30, 1), vec![10.0, 0.2, 1.0])
        };
        let start = Instant::now();
        world
            .step(
                &input,
                &mut Image {
                    width,
                    height,
                    data: &mut data,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        // The first frames build the terrain.
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    ensure!(data.iter().any(|&b| b != 0), "the world drew nothing");
    Ok(median(&mut times))
}

/// The world at 1280x720, full detail, on one core and on all, `rounds` alternating
/// rounds of `frames` frames; medians of the rounds' medians.
pub fn cost(rounds: usize, frames: usize) -> Result<Value> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for pitch in [0.0, -12.0] {
        let (mut one, mut all) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            one.push(pinned(Some(1), || flight(1280, 720, frames, pitch))?);
            all.push(pinned(None, || flight(1280, 720, frames, pitch))?);
        }
        rows.push(json!({
            "pitch": pitch,
            "one_core_ms": median(&mut one.clone()), "all_cores_ms": median(&mut all.clone()),
            "one_core_runs": one, "all_cores_runs": all,
        }));
    }
    Ok(json!({
        "width": 1280, "height": 720, "frames": frames, "rounds": rounds, "cores": cores,
        "rows": rows,
    }))
}
