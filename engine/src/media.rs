//! Images a show starts a model from: files in the show's media folder (uploads land
//! there too), read as PNG or JPEG and scaled to the model's native size.
//!
//! Everything is bounded before it is decoded: the file's size, the picture's size
//! (a small PNG can claim to be 100 000 pixels square), and the decoder's memory, so no
//! file can stall the model thread or exhaust memory. A file is opened without following
//! links (a link in the media folder could name `/proc/self/pagemap`, an endless file, or
//! a picture outside the folder) and read only up to its bound. One image is decoded at a
//! time in the whole process (uploads and cues alike), so eight large uploads at once
//! cost one decoder's memory, not eight.
//!
//! The model thread never decodes: [`Images`] decodes an image once, on a thread of its
//! own, and keeps it at the model's size for every later cue that starts from it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tch::{Device, Kind, Tensor};

use crate::cue::is_image_name;
use crate::worker::RgbImage;

/// The largest image file read, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;
/// The largest picture side, in pixels.
pub const MAX_IMAGE_SIDE: usize = 8192;

/// Held while an image is decoded: one at a time in the process.
static DECODING: Mutex<()> = Mutex::new(());
/// Images decoded since the process started.
static DECODED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many images this process has decoded (each costs a decoder's time and memory).
pub fn decoded() -> u64 {
    DECODED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Opens `name` in `media` as a plain file (not a link, not a device), and reads it up to
/// [`MAX_IMAGE_BYTES`]; the error says what was wrong.
pub fn read(media: &Path, name: &str) -> Result<(Vec<u8>, FileId), String> {
    if !is_image_name(name) {
        return Err(format!("{name:?} is not the name of a .png or .jpg file"));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(media.join(name))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("{name}: a link, not a file in the media folder"),
            _ => format!("{name}: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name}: not a file"));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "{name}: {} MB, over the {} MB an image may be",
            meta.len() >> 20,
            MAX_IMAGE_BYTES >> 20
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("{name}: {e}"))?;
    if data.len() as u64 > MAX_IMAGE_BYTES {
        return Err(format!(
            "{name}: it grew past {} MB while read",
            MAX_IMAGE_BYTES >> 20
        ));
    }
    Ok((data, FileId::of(&meta)))
}

/// Reads image `name` from the folder `media` and scales it to `width` x `height`.
/// The error says what was wrong with the file.
pub fn load(media: &Path, name: &str, width: usize, height: usize) -> Result<RgbImage, String> {
    let (data, _) = read(media, name)?;
    decode_to(&data, width, height).map_err(|e| format!("{name}: {e}"))
}

/// Decodes and scales to `width` x `height`, the full-size picture freed before the
/// next decode may start.
pub fn decode_to(data: &[u8], width: usize, height: usize) -> Result<RgbImage, String> {
    let _one = DECODING.lock();
    decode_unlocked(data).map(|i| scale(&i, width, height))
}

/// Which version of a file: a file replaced (an upload with `force`) is another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    inode: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            inode: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// The file's version as it is now, without following a link.
    fn now(path: &Path) -> Option<FileId> {
        std::fs::symlink_metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| FileId::of(&m))
    }
}

/// Decodes PNG or JPEG bytes to RGB, by their signature.
pub fn decode(data: &[u8]) -> Result<RgbImage, String> {
    let _one = DECODING.lock();
    decode_unlocked(data)
}

fn decode_unlocked(data: &[u8]) -> Result<RgbImage, String> {
    DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(data)
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(data)
    } else {
        Err("not a PNG or JPEG image".into())
    }
}

/// Checks that bytes are a whole, readable PNG or JPEG within the bounds, and gives its
/// size: a PNG is read a row at a time and the rows dropped, so checking costs a row's
/// memory, not the picture's.
pub fn check(data: &[u8]) -> Result<(usize, usize), String> {
    let _one = DECODING.lock();
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        let mut reader = png_reader(data)?;
        let size = (reader.info().width as usize, reader.info().height as usize);
        while reader
            .next_row()
            .map_err(|e| format!("not a readable PNG: {e}"))?
            .is_some()
        {}
        Ok(size)
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(data).map(|i| (i.width, i.height))
    } else {
        Err("not a PNG or JPEG image".into())
    }
}

fn check_size(w: usize, h: usize) -> Result<(), String> {
    if w == 0 || h == 0 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(format!(
            "{w}x{h} pixels; an image may be at most {MAX_IMAGE_SIDE} on each side"
        ));
    }
    Ok(())
}

fn png_reader(data: &[u8]) -> Result<png::Reader<std::io::Cursor<&[u8]>>, String> {
    let limits = png::Limits {
        bytes: MAX_IMAGE_SIDE * MAX_IMAGE_SIDE * 4,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(data), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    check_size(reader.info().width as usize, reader.info().height as usize)?;
    Ok(reader)
}

/// A PNG as RGB: a row at a time into the RGB picture (no full-size RGBA or 16-bit copy
/// of it first), or, interlaced, through one frame buffer.
fn decode_png(data: &[u8]) -> Result<RgbImage, String> {
    let mut reader = png_reader(data)?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    let channels = match reader.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("an indexed PNG that did not expand".into()),
    };
    let mut rgb = Vec::with_capacity(w * h * 3);
    let mut push_row = |row: &[u8]| {
        for px in row.chunks_exact(channels).take(w) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    };
    let bad = |e: png::DecodingError| format!("not a readable PNG: {e}");
    if reader.info().interlaced {
        let size = reader
            .output_buffer_size()
            .ok_or("a PNG too large to read")?;
        let mut buf = vec![0; size];
        let out = reader.next_frame(&mut buf).map_err(bad)?;
        for row in buf.chunks(out.line_size).take(h) {
            push_row(row);
        }
    } else {
        while let Some(row) = reader.next_row().map_err(bad)? {
            push_row(row.data());
        }
    }
    if rgb.len() != w * h * 3 {
        return Err("a PNG whose rows ended early".into());
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data: rgb,
    })
}

fn decode_jpeg(data: &[u8]) -> Result<RgbImage, String> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(MAX_IMAGE_SIDE)
        .set_max_height(MAX_IMAGE_SIDE);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(data, options);
    decoder
        .decode_headers()
        .map_err(|e| format!("not a readable JPEG: {e:?}"))?;
    let info = decoder.info().ok_or("not a readable JPEG")?;
    let (w, h) = (info.width as usize, info.height as usize);
    check_size(w, h)?;
    let pixels = decoder
        .decode()
        .map_err(|e| format!("not a readable JPEG: {e:?}"))?;
    if pixels.len() != w * h * 3 {
        return Err("a JPEG that did not decode to RGB".into());
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data: pixels,
    })
}

/// Bilinear scaling (antialiased when shrinking) to `width` x `height`. A picture
/// many times the size is first averaged down by a whole factor in 8 bits, so the
/// float copy the scaling makes is a few times the model's size, not the picture's.
pub fn scale(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if (image.width, image.height) == (width, height) {
        return image.clone();
    }
    let factor = (image.width / width.max(1)).min(image.height / height.max(1)) / 2;
    if factor >= 2 {
        return scale(&reduce(image, factor), width, height);
    }
    let t = Tensor::from_slice(&image.data)
        .view([image.height as i64, image.width as i64, 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        .unsqueeze(0);
    let size = [height as i64, width as i64];
    let shrinking = image.width > width || image.height > height;
    let scaled = if shrinking {
        t.internal_upsample_bilinear2d_aa(size, false, None, None)
    } else {
        t.upsample_bilinear2d(size, false, None, None)
    };
    let bytes = scaled
        .squeeze_dim(0)
        .clamp(0.0, 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .to_device(Device::Cpu);
    RgbImage {
        width,
        height,
        data: Vec::<u8>::try_from(bytes.view([-1])).unwrap_or_default(),
    }
}

/// The picture averaged over `f` x `f` blocks (the edge's remainder dropped).
fn reduce(image: &RgbImage, f: usize) -> RgbImage {
    let (w, h) = (image.width / f, image.height / f);
    let mut sums = vec![0u32; w * 3];
    let mut data = Vec::with_capacity(w * h * 3);
    let area = (f * f) as u32;
    for y in 0..h {
        sums.fill(0);
        for row in image.data.chunks_exact(image.width * 3).skip(y * f).take(f) {
            for (x, px) in row.chunks_exact(3).take(w * f).enumerate() {
                let s = &mut sums[(x / f) * 3..(x / f) * 3 + 3];
                for c in 0..3 {
                    s[c] += u32::from(px[c]);
                }
            }
        }
        data.extend(sums.iter().map(|s| ((s + area / 2) / area) as u8));
    }
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

/// Images decoded for the model, each once and off the model thread, kept at the
/// model's size. The model thread asks with [`Images::poll`]: an image not decoded yet
/// is started on a thread of its own, and `wake` is called when it is done, so the
/// thread that asked looks again.
#[derive(Clone)]
pub struct Images {
    media: Option<PathBuf>,
    size: (usize, usize),
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// The most images kept (each at the model's size).
const KEPT: usize = 16;
/// The longest a cue waits for its image: past it, the cue applies and the model starts
/// without the image (it is kept for the next start once it is read).
pub const MAX_IMAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

enum Entry {
    /// Being decoded since then.
    Decoding(std::time::Instant),
    Done {
        /// The version decoded (`None`: there was no plain file to read).
        id: Option<FileId>,
        image: Result<Arc<RgbImage>, String>,
        used: std::time::Instant,
    },
}

impl Images {
    pub fn new(
        media: Option<PathBuf>,
        width: usize,
        height: usize,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Images {
        Images {
            media,
            size: (width, height),
            inner: Arc::default(),
            wake: Arc::new(wake),
        }
    }

    /// Decodes image `name` on this thread and keeps it (the image a show starts from,
    /// read before it goes on air).
    pub fn load(&self, name: &str) -> Result<Arc<RgbImage>, String> {
        let media = self
            .media
            .as_ref()
            .ok_or("a start image needs the show's media folder")?;
        let (data, id) = read(media, name)?;
        let (w, h) = self.size;
        let image = Arc::new(decode_to(&data, w, h).map_err(|e| format!("{name}: {e}"))?);
        self.inner.lock().insert(
            name.to_owned(),
            Entry::Done {
                id: Some(id),
                image: Ok(image.clone()),
                used: std::time::Instant::now(),
            },
        );
        Ok(image)
    }

    /// Image `name` at the model's size, waited for (at most [`MAX_IMAGE_WAIT`]).
    pub fn wait(&self, name: &str) -> Result<Arc<RgbImage>, String> {
        let deadline = std::time::Instant::now() + MAX_IMAGE_WAIT;
        loop {
            if let Some(r) = self.poll(name) {
                return r;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("{name}: still being read"));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Image `name` at the model's size: `None` while it is being decoded. A file
    /// replaced since it was decoded is decoded again, and meanwhile the version
    /// decoded before is given.
    pub fn poll(&self, name: &str) -> Option<Result<Arc<RgbImage>, String>> {
        let Some(media) = &self.media else {
            return Some(Err("the show has no media folder".into()));
        };
        let now = FileId::now(&media.join(name));
        let mut inner = self.inner.lock();
        let stale = match inner.get_mut(name) {
            Some(Entry::Done { id, image, used }) => {
                *used = std::time::Instant::now();
                if now == *id {
                    return Some(image.clone());
                }
                image.as_ref().ok().cloned()
            }
            Some(Entry::Decoding(since)) if since.elapsed() > MAX_IMAGE_WAIT => {
                return Some(Err(format!(
                    "{name}: still being read after {} s",
                    MAX_IMAGE_WAIT.as_secs()
                )))
            }
            Some(Entry::Decoding(_)) => return None,
            None => None,
        };
        if inner.len() >= KEPT {
            let oldest = inner
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Done { used, .. } => Some((*used, k.clone())),
                    Entry::Decoding(_) => None,
                })
                .min();
            if let Some((_, k)) = oldest {
                inner.remove(&k);
            }
        }
        inner.insert(name.to_owned(), Entry::Decoding(std::time::Instant::now()));
        drop(inner);
        let (this, name_owned, media) = (self.clone(), name.to_owned(), media.clone());
        let started = std::thread::Builder::new()
            .name("cuecast-image".into())
            .spawn(move || {
                let (w, h) = this.size;
                let read = read(&media, &name_owned);
                let id = match &read {
                    Ok((_, id)) => Some(*id),
                    Err(_) => FileId::now(&media.join(&name_owned)),
                };
                let image = read.and_then(|(data, _)| {
                    // A decoder or scaler that panics is a picture that cannot be read,
                    // not an entry decoding for ever.
                    std::panic::catch_unwind(|| decode_to(&data, w, h))
                        .unwrap_or_else(|_| Err("the decoder failed on it".into()))
                        .map(Arc::new)
                        .map_err(|e| format!("{name_owned}: {e}"))
                });
                this.inner.lock().insert(
                    name_owned,
                    Entry::Done {
                        id,
                        image,
                        used: std::time::Instant::now(),
                    },
                );
                (this.wake)();
            });
        if let Err(e) = started {
            self.inner.lock().remove(name);
            return Some(Err(format!("{name}: cannot start its decoder: {e}")));
        }
        stale.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(w: u32, h: u32, color: png::ColorType, px: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(png::BitDepth::Eight);
        let mut writer = e.write_header().unwrap();
        writer.write_image_data(px).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn pngs_of_every_colour_type_read_as_rgb() {
        let rgba = png_bytes(2, 1, png::ColorType::Rgba, &[255, 0, 0, 9, 0, 255, 0, 9]);
        assert_eq!(decode(&rgba).unwrap().data, [255, 0, 0, 0, 255, 0]);
        let grey = png_bytes(1, 1, png::ColorType::Grayscale, &[77]);
        assert_eq!(decode(&grey).unwrap().data, [77, 77, 77]);
    }

    #[test]
    fn what_is_not_an_image_or_too_large_is_refused_by_reason() {
        assert!(decode(b"GIF89a").unwrap_err().contains("not a PNG or JPEG"));
        assert!(decode(b"\x89PNG\r\n\x1a\nxxxx")
            .unwrap_err()
            .contains("PNG"));
        assert!(decode(&[0xff, 0xd8, 0xff, 0]).unwrap_err().contains("JPEG"));
        // A header claiming 9000 x 1 pixels.
        let mut wide = png_bytes(1, 1, png::ColorType::Grayscale, &[0]);
        wide[16..20].copy_from_slice(&9000u32.to_be_bytes());
        let e = decode(&wide).unwrap_err();
        assert!(e.contains("PNG") || e.contains("8192"), "{e}");
    }

    #[test]
    fn images_scale_to_the_model_size() {
        let img = RgbImage {
            width: 4,
            height: 2,
            data: [10, 20, 30].repeat(8),
        };
        let s = scale(&img, 2, 1);
        assert_eq!((s.width, s.height), (2, 1));
        assert_eq!(s.data, [10, 20, 30, 10, 20, 30]);
    }
}
