//! What a model may hold: the memory its manifest says it needs, checked before it
//! loads and, with a margin, capped while it runs; and what its files in its folders
//! take (tmpfs: memory that outlives its processes).

use std::path::Path;

use tch::Device;

use crate::generator::package::Package;

/// The machine memory a model says it needs, in GB, and the manifest field that says
/// so: `memory_gb`, or on the CPU `vram_gb` (there the device's memory is the machine's).
pub(super) fn memory_need(package: &Package, device: Device) -> Option<(f64, &'static str)> {
    if package.memory_gb > 0.0 {
        Some((package.memory_gb, "memory_gb"))
    } else if package.vram_gb > 0.0 && device == Device::Cpu {
        Some((package.vram_gb, "vram_gb"))
    } else {
        None
    }
}

/// The most memory the model's processes may hold: what it says it needs, with a
/// margin (a quarter more, and at least 1 GB more), so a model that grows past what it
/// said is killed and started again before it takes the machine's memory from the
/// show. None when the manifest gives no figure.
pub(super) fn memory_cap(package: &Package, device: Device) -> Option<u64> {
    let (gb, _) = memory_need(package, device)?;
    Some(((gb * 1.25).max(gb + 1.0) * 1e9) as u64)
}

/// The memory a model needs is checked here (on CUDA the worker checks the device's
/// free memory before the model loads).
pub(super) fn check_memory(package: &Package, device: Device) -> Result<(), String> {
    let Some((gb, field)) = memory_need(package, device) else {
        return Ok(());
    };
    let Some(available) = mem_available() else {
        return Ok(());
    };
    if gb * 1e9 > available as f64 {
        return Err(format!(
            "needs {gb} GB of memory ({field}); this machine has {:.1} GB available",
            available as f64 / 1e9
        ));
    }
    Ok(())
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes the files under `dir` take (blocks, not lengths), links not followed; at most
/// the first 10,000 entries are looked at, so a model that makes a million files costs
/// a bounded walk.
pub(super) fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let (mut total, mut seen, mut stack) = (0u64, 0usize, vec![dir.to_path_buf()]);
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            seen += 1;
            if seen > 10_000 {
                return total;
            }
            if let Ok(m) = e.metadata() {
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
}
