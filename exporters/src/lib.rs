//! Export bundles of a take: the plate, depth and camera in the files that Blender,
//! Unreal, After Effects and compositors open.
//!
//! [`export`] turns a recorded [`Take`] into a folder:
//!
//! ```text
//! <out>/
//!   manifest.json            rate, frame range, size, units, axes, sha256 of every file
//!   markers.json
//!   camera/scene.glb         glTF 2.0: animated camera + first frame's depth points
//!   camera/camera.usda       USD: camera time samples (Z up, cm)
//!   plate/rgb.####.png       plate/plate.mov (ProRes 4444)
//!   depth/depth.####.exr     float depth in metres, channel Z
//!   ae/import_scene.jsx      After Effects: comp, plate, camera keys, markers
//!   blender/import_scene.py  Blender: camera keys, plate, markers, depth points
//!   audio/program.wav        the program's sound from the take's start (when it had any)
//! ```
//!
//! The take has one camera convention; [`convert`] turns it into each tool's, as pure
//! functions tested against hand-computed poses. Exported frames follow the take's
//! timeline (every show frame from its first to its last, gaps holding the picture on
//! air) and are numbered from [`FIRST_FRAME`].
//!
//! An export is all or nothing: it is written into a hidden sibling folder and renamed
//! into place at the end, so a failed export leaves nothing half-written, and an
//! existing bundle is only replaced when asked to (`force`). `docs/exports.md` says how
//! to open each file.
//!
//! Why one file over 600 lines: it is the export's one pipeline, stage by stage (checks,
//! frames, plates, camera files, manifest, placing the bundle) with the progress and
//! checksums every stage shares; each writer with a format of its own is its own module.

pub mod convert;
mod error;
mod format;
mod timeline;

mod ae;
mod blender;
mod depth_exr;
mod gltf;
mod images;
mod prores;
mod text;
mod usd;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cuecast_engine::Take;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

pub use error::ExportError;
pub use format::Format;
pub use gltf::{MAX_POINTS, POINT_MAX_DEPTH_M};
pub use timeline::FIRST_FRAME;

use timeline::Timeline;

/// The `format` field of `manifest.json`.
pub const BUNDLE_FORMAT: &str = "cuecast-export/1";

/// What to export and whether an existing bundle may be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub formats: BTreeSet<Format>,
    /// Replace `out` if it exists (otherwise that is an error and nothing changes).
    pub force: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            formats: Format::all(),
            force: false,
        }
    }
}

/// How far an export is: `done` of `total` steps of `stage` (`frames`, `camera`,
/// `checksums`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub stage: &'static str,
    pub done: u64,
    pub total: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The bundle's folder.
    pub out: PathBuf,
    /// Every file in it, relative to `out` with `/` separators, sorted.
    pub files: Vec<String>,
    /// Frames on the exported timeline.
    pub frames: u64,
    /// How long the export took, seconds.
    pub seconds: f64,
    /// The timeline's length, seconds.
    pub duration_s: f64,
}

/// Exports `take` into the folder `out`, calling `progress` as it goes.
///
/// `out` must not exist unless `options.force` is set, in which case it is replaced
/// once the new bundle is complete. Errors name the file or folder at fault (under
/// `out`, never the temporary folder the bundle is assembled in).
pub fn export(
    take: &Take,
    out: &Path,
    options: &ExportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportSummary, ExportError> {
    let started = Instant::now();
    if options.formats.is_empty() {
        return Err(ExportError::NoFormats {
            known: Format::all()
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if options.formats.contains(&Format::Exr) && take.manifest.depth.is_none() {
        return Err(ExportError::Take {
            path: take.dir.clone(),
            message: format!(
                "it has no depth maps (model {:?} makes none): export without exr",
                take.manifest.model.name
            ),
        });
    }
    let timeline = Timeline::of(take)?;
    if out.exists() && !options.force {
        return Err(ExportError::Exists {
            path: out.to_owned(),
        });
    }
    let name = out.file_name().ok_or_else(|| {
        ExportError::io(
            out,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a folder name"),
        )
    })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| ExportError::io(&parent, e))?;
    let hidden = |what: &str| {
        parent.join(format!(
            ".{}.{what}-{}",
            name.to_string_lossy(),
            std::process::id()
        ))
    };
    let partial = hidden("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir(&partial).map_err(|e| ExportError::io(out, e))?;

    let written = write_bundle(take, &timeline, &partial, &options.formats, progress)
        .and_then(|files| place(&partial, out, options.force, &hidden("old")).map(|()| files));
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(relocate(e, &partial, out));
        }
    };
    Ok(ExportSummary {
        out: out.to_owned(),
        files,
        frames: timeline.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        duration_s: timeline.duration_s(),
    })
}

/// Moves the finished bundle to `out`, replacing what is there when `force`.
fn place(partial: &Path, out: &Path, force: bool, old: &Path) -> Result<(), ExportError> {
    swap_in(partial, out, force, old)?;
    // The rename is durable once the folder holding it is synced.
    cuecast_engine::files::sync_dir(cuecast_engine::files::parent(out))
        .map_err(|e| ExportError::io(out, e))
}

fn swap_in(partial: &Path, out: &Path, force: bool, old: &Path) -> Result<(), ExportError> {
    if out.exists() {
        if !force {
            return Err(ExportError::Exists {
                path: out.to_owned(),
            });
        }
        let _ = fs::remove_dir_all(old);
        fs::rename(out, old).map_err(|e| ExportError::io(out, e))?;
        if let Err(e) = fs::rename(partial, out) {
            let _ = fs::rename(old, out);
            return Err(ExportError::io(out, e));
        }
        // The new bundle is in place: failing to delete the old one leaves a hidden
        // folder behind but does not undo the export.
        let _ = if old.is_dir() {
            fs::remove_dir_all(old)
        } else {
            fs::remove_file(old)
        };
        Ok(())
    } else {
        fs::rename(partial, out).map_err(|e| ExportError::io(out, e))
    }
}

/// Errors name files where they will be, not in the temporary folder.
fn relocate(e: ExportError, from: &Path, to: &Path) -> ExportError {
    let moved = |p: PathBuf| match p.strip_prefix(from) {
        Ok(rest) if rest.as_os_str().is_empty() => to.to_owned(),
        Ok(rest) => to.join(rest),
        Err(_) => p,
    };
    match e {
        ExportError::Io { path, source } => ExportError::Io {
            path: moved(path),
            source,
        },
        ExportError::Encode { path, message } => ExportError::Encode {
            path: moved(path),
            message,
        },
        other => other,
    }
}

/// Writes every file of the bundle into `dir`; returns their relative paths.
fn write_bundle(
    take: &Take,
    t: &Timeline,
    dir: &Path,
    formats: &BTreeSet<Format>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<String>, ExportError> {
    let has = |f: Format| formats.contains(&f);
    let mut files: Vec<String> = Vec::new();
    // Checksums of files hashed as they were written; the rest are read back at the end.
    let mut sums = BTreeMap::new();
    let folder = |name: &str| -> Result<PathBuf, ExportError> {
        let p = dir.join(name);
        fs::create_dir_all(&p).map_err(|e| ExportError::io(&p, e))?;
        Ok(p)
    };
    let name = take.manifest.name.as_str();
    let generator = format!("cuecast-exporters {}", env!("CARGO_PKG_VERSION"));

    if has(Format::Png) || has(Format::Exr) || has(Format::Prores) {
        write_frames(take, t, dir, formats, &mut files, &mut sums, progress)?;
    }

    let camera_files = [Format::Gltf, Format::Usd, Format::Ae, Format::Blender]
        .into_iter()
        .filter(|f| has(*f))
        .count() as u64;
    let mut step = 0;
    let mut camera_step = |progress: &mut dyn FnMut(Progress)| {
        step += 1;
        progress(Progress {
            stage: "camera",
            done: step,
            total: camera_files,
        });
    };
    let png_first = has(Format::Png).then(|| format!("plate/{}", t.file_name("rgb", 0, "png")));
    let mov = has(Format::Prores).then(|| "plate/plate.mov".to_owned());

    if has(Format::Gltf) {
        let camera = folder("camera")?;
        let k = t.on_air[0];
        let depth = take.depth(k)?;
        let rgb = take.rgb(k)?;
        let first = depth.as_ref().map(|(size, values)| gltf::FirstFrame {
            depth_size: *size,
            depth: values,
            rgbx: &rgb,
        });
        let bytes = gltf::scene_glb(t, name, &generator, first);
        write_file(&camera.join("scene.glb"), &bytes)?;
        files.push("camera/scene.glb".into());
        camera_step(progress);
    }
    if has(Format::Usd) {
        let camera = folder("camera")?;
        let backplate = if has(Format::Png) {
            Some(format!("../plate/{}", t.pattern("rgb", "png")))
        } else {
            mov.as_ref().map(|m| format!("../{m}"))
        };
        let text = usd::camera_usda(
            t,
            &usd::UsdInputs {
                take_name: name,
                generator: &generator,
                backplate,
            },
        );
        write_file(&camera.join("camera.usda"), text.as_bytes())?;
        files.push("camera/camera.usda".into());
        camera_step(progress);
    }
    if has(Format::Ae) {
        let ae_dir = folder("ae")?;
        let plate = match (&png_first, &mov) {
            (Some(png), _) => Some((png.clone(), true)),
            (None, Some(mov)) => Some((mov.clone(), false)),
            (None, None) => None,
        };
        let text = ae::import_scene_jsx(
            t,
            &ae::AeInputs {
                take_name: name,
                plate,
            },
        );
        write_file(&ae_dir.join("import_scene.jsx"), text.as_bytes())?;
        files.push("ae/import_scene.jsx".into());
        camera_step(progress);
    }
    if has(Format::Blender) {
        let blender_dir = folder("blender")?;
        let text = blender::import_scene_py(
            t,
            &blender::BlenderInputs {
                take_name: name,
                plate: png_first.clone().or(mov.clone()),
                points: has(Format::Gltf).then(|| "camera/scene.glb".to_owned()),
            },
        );
        write_file(&blender_dir.join("import_scene.py"), text.as_bytes())?;
        files.push("blender/import_scene.py".into());
        camera_step(progress);
    }

    let markers = json!({
        "take": name,
        "fps": { "num": t.fps.num, "den": t.fps.den },
        "markers": t.markers.iter().map(|m| json!({
            "label": m.label,
            "frame": t.number(m.offset as usize),
            "time_s": t.time_s(m.offset),
            "show_frame": m.frame,
        })).collect::<Vec<_>>(),
    });
    write_json(&dir.join("markers.json"), &markers)?;
    files.push("markers.json".into());

    // The program's sound, as the take recorded it.
    let sound = take.dir.join(cuecast_engine::take::AUDIO_FILE);
    if sound.is_file() {
        let audio_dir = dir.join("audio");
        fs::create_dir_all(&audio_dir).map_err(|e| ExportError::io(&audio_dir, e))?;
        let to = audio_dir.join("program.wav");
        fs::copy(&sound, &to).map_err(|e| ExportError::io(&to, e))?;
        files.push("audio/program.wav".into());
    }

    files.sort();
    for (i, chunk) in files.chunks(64).enumerate() {
        use rayon::prelude::*;
        let done = chunk
            .par_iter()
            .filter(|f| !sums.contains_key(f.as_str()))
            .map(|f| {
                let path = dir.join(f);
                Ok((
                    f.clone(),
                    json!({ "sha256": sha256_file(&path)?, "bytes": file_len(&path)? }),
                ))
            })
            .collect::<Result<Vec<_>, ExportError>>()?;
        sums.extend(done);
        progress(Progress {
            stage: "checksums",
            done: (i * 64 + chunk.len()) as u64,
            total: files.len() as u64,
        });
    }
    let manifest = manifest(take, t, formats, &generator, sums);
    write_json(&dir.join("manifest.json"), &manifest)?;
    files.push("manifest.json".into());
    files.sort();
    Ok(files)
}

/// One pass over the timeline: each recorded frame is read once however many files
/// it goes into.
fn write_frames(
    take: &Take,
    t: &Timeline,
    dir: &Path,
    formats: &BTreeSet<Format>,
    files: &mut Vec<String>,
    sums: &mut BTreeMap<String, serde_json::Value>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ExportError> {
    let has = |f: Format| formats.contains(&f);
    let folder = |name: &str| -> Result<PathBuf, ExportError> {
        let p = dir.join(name);
        fs::create_dir_all(&p).map_err(|e| ExportError::io(&p, e))?;
        Ok(p)
    };
    let plate = if has(Format::Png) || has(Format::Prores) {
        Some(folder("plate")?)
    } else {
        None
    };
    let depth_dir = if has(Format::Exr) {
        Some(folder("depth")?)
    } else {
        None
    };
    let mut mov = match &plate {
        Some(p) if has(Format::Prores) => Some(prores::ProresWriter::create(
            &p.join("plate.mov"),
            t.width,
            t.height,
            t.fps,
        )?),
        _ => None,
    };
    // Frames go in batches: the batch's PNGs and EXRs are written on every core while
    // this thread feeds the same frames, in order, to the ProRes encoder (itself frame-
    // threaded). A batch holds a few frames per core, so memory stays bounded.
    let total = t.len() as u64;
    let batch = 4 * rayon::current_num_threads().max(1);
    let mut done = 0u64;
    let mut cached: Option<(usize, std::sync::Arc<Vec<u8>>)> = None;
    let on_air: Vec<(usize, usize)> = t.on_air.iter().copied().enumerate().collect();
    for chunk in on_air.chunks(batch) {
        // Each recorded frame is read once, however many timeline frames repeat it.
        // A frame that cannot be read ends the export after the frames before it are
        // written, so progress says how far it got.
        let mut frames = Vec::with_capacity(chunk.len());
        let mut unreadable = None;
        for &(k, index) in chunk {
            let rgb = match &cached {
                Some((i, rgb)) if *i == index => rgb.clone(),
                _ => match take.rgb(index) {
                    Ok(rgb) => std::sync::Arc::new(rgb),
                    Err(e) => {
                        unreadable = Some(e);
                        break;
                    }
                },
            };
            cached = Some((index, rgb.clone()));
            frames.push((k, index, rgb));
        }
        let write_images = || -> Result<Vec<(String, Sum)>, ExportError> {
            use rayon::prelude::*;
            let names: Vec<Vec<(String, Sum)>> = frames
                .par_iter()
                .map(|(k, index, rgb)| {
                    let mut names = Vec::new();
                    if let (Some(plate), true) = (&plate, has(Format::Png)) {
                        let name = t.file_name("rgb", *k, "png");
                        let sum = images::write_png(&plate.join(&name), rgb, t.width, t.height)?;
                        names.push((format!("plate/{name}"), sum));
                    }
                    if let Some(depth_dir) = &depth_dir {
                        let (size, values) =
                            take.depth(*index)?.ok_or_else(|| ExportError::Take {
                                path: take.dir.clone(),
                                message: format!("recorded frame {index} has no depth map"),
                            })?;
                        let name = t.file_name("depth", *k, "exr");
                        let sum = depth_exr::write_z(
                            &depth_dir.join(&name),
                            size.width,
                            size.height,
                            &values,
                        )?;
                        names.push((format!("depth/{name}"), sum));
                    }
                    Ok(names)
                })
                .collect::<Result<_, ExportError>>()?;
            Ok(names.into_iter().flatten().collect())
        };
        let encode = |mov: &mut Option<prores::ProresWriter>| -> Result<(), ExportError> {
            if let Some(mov) = mov {
                for (_, _, rgb) in &frames {
                    mov.push(rgb)?;
                }
            }
            Ok(())
        };
        // The encoder is not `Send`: it stays on this thread, the images go to the pool.
        let names = std::thread::scope(|scope| {
            let images = scope.spawn(write_images);
            let encoded = encode(&mut mov);
            let names = images.join().unwrap_or_else(|_| {
                Err(ExportError::encode(
                    dir,
                    "an image writer failed unexpectedly",
                ))
            });
            encoded.and(names)
        })?;
        for (name, sum) in names {
            sums.insert(name.clone(), sum.json());
            files.push(name);
        }
        for _ in &frames {
            done += 1;
            progress(Progress {
                stage: "frames",
                done,
                total,
            });
        }
        if let Some(e) = unreadable {
            return Err(e.into());
        }
    }
    if let Some(mov) = mov {
        mov.finish()?;
        files.push("plate/plate.mov".into());
    }
    Ok(())
}

fn manifest(
    take: &Take,
    t: &Timeline,
    formats: &BTreeSet<Format>,
    generator: &str,
    files: BTreeMap<String, serde_json::Value>,
) -> serde_json::Value {
    let m = &take.manifest;
    let first_show = take.frames.first().map_or(m.start_frame, |f| f.frame);
    // Timeline frames that repeat an earlier picture (the show skipped, the disk lost).
    let held: Vec<u64> = t
        .on_air
        .iter()
        .enumerate()
        .filter(|&(k, &index)| take.frames[index].frame != first_show + k as u64)
        .map(|(k, _)| t.number(k))
        .collect();
    json!({
        "format": BUNDLE_FORMAT,
        "take": m.name,
        "take_complete": take.complete,
        "generator": {
            "exporter": generator,
            "cuecast": m.software.cuecast,
            "model": { "name": m.model.name, "hash": m.model.hash, "backend": m.model.backend },
        },
        "formats": formats.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "fps": { "num": t.fps.num, "den": t.fps.den, "rate": t.fps.as_f64() },
        "frames": {
            "first": t.number(0),
            "last": t.last_number(),
            "count": t.len(),
            "duration_s": t.duration_s(),
            "show_first": first_show,
            "show_last": first_show + t.len() as u64 - 1,
            "recorded": take.frames.len(),
            "held": held,
        },
        "size": { "width": t.width, "height": t.height },
        "audio": take.dir.join(cuecast_engine::take::AUDIO_FILE).is_file().then(|| json!({
            "file": "audio/program.wav",
            "rate": 48000,
            "channels": 2,
            "starts": "at the take's first frame",
        })),
        "depth_size": m.depth.map(|d| json!({ "width": d.width, "height": d.height })),
        "camera": {
            "sensor_width_mm": convert::SENSOR_WIDTH_MM,
            "sensor_height_mm": convert::sensor_height_mm(t.width, t.height),
            "field_of_view": "horizontal; animated as focal length on a fixed sensor",
        },
        "units": {
            "take": "metres, degrees",
            "camera/scene.glb": "metres",
            "camera/camera.usda": "metres (metersPerUnit 1); focal length and apertures in tenths of a metre, USD's lens units (x 100 = mm)",
            "ae/import_scene.jsx": format!("pixels, {} per metre; zoom in pixels", convert::AE_PIXELS_PER_METRE),
            "blender/import_scene.py": "metres; lens in mm",
            "depth/depth.####.exr": "metres along the view axis",
        },
        "axes": {
            "take": "right-handed, Y up; camera looks down -Z at yaw 0, +X to its right; yaw turns left, pitch up",
            "camera/scene.glb": "right-handed, Y up (the take's own axes)",
            "camera/camera.usda": "right-handed, Z up: (x, y, z) -> 100 * (x, -z, y); rotateXYZ = (90 + pitch, 0, yaw)",
            "blender/import_scene.py": "right-handed, Z up: (x, y, z) -> (x, -z, y); Euler XYZ = (90 + pitch, 0, yaw)",
            "unreal": "left-handed, Z up, X forward: (x, y, z) -> 100 * (-z, x, y); pitch = pitch, yaw = -yaw, roll = 0",
            "ae/import_scene.jsx": "Y down, Z into the screen: (x, y, z) -> (w/2 + 100x, h/2 - 100y, -100z); two-node camera",
        },
        "files": files,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs::write(path, bytes).map_err(|e| ExportError::io(path, e))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ExportError> {
    let mut text = serde_json::to_vec_pretty(value).expect("JSON serialises");
    text.push(b'\n');
    write_file(path, &text)
}

fn file_len(path: &Path) -> Result<u64, ExportError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| ExportError::io(path, e))
}

/// A file's checksum and length, as the manifest lists them.
pub(crate) struct Sum {
    pub sha256: String,
    pub bytes: u64,
}

impl Sum {
    fn json(&self) -> serde_json::Value {
        json!({ "sha256": self.sha256, "bytes": self.bytes })
    }
}

/// A writer that checksums what passes through it, so a file written from memory is
/// not read back to be hashed.
pub(crate) struct Hashed<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: std::io::Write> Hashed<W> {
    pub fn new(inner: W) -> Self {
        Hashed {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes the writer; the checksum of everything written.
    pub fn finish(mut self) -> std::io::Result<Sum> {
        self.inner.flush()?;
        Ok(Sum {
            sha256: hex(&self.hasher.finalize()),
            bytes: self.bytes,
        })
    }
}

impl<W: std::io::Write> std::io::Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<String, ExportError> {
    let mut file = fs::File::open(path).map_err(|e| ExportError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| ExportError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
