//! A depth map as an OpenEXR file: one 32-bit float channel, `Z`, in ZIP-compressed
//! blocks of 16 scan lines, the layout every EXR reader handles best.
//!
//! Written by hand, not with the `exr` crate (which the tests still use to read every
//! file back): the crate fixes ZIP at deflate level 4 and spends as long again outside
//! compression, 65 ms for a 1280x720 depth map on this project's benchmark machine,
//! against 10 ms here at level 1 for files 15 % larger. Depth is written for every frame
//! of a take, so that difference decides whether an export keeps up with `ffmpeg`. The
//! format needed is small and fixed: a single-part scan-line file with one channel
//! (OpenEXR "file layout" and "ZIP compression" in the OpenEXR technical introduction).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{ExportError, Hashed, Sum};

/// Scan lines per block: the ZIP16 compression's block height.
const LINES: usize = 16;
/// Deflate level: 1 compresses a smooth depth map to ~12 % at a quarter of level 4's time.
const LEVEL: u8 = 1;
/// `compression` attribute value for ZIP (16 lines per block).
const ZIP_COMPRESSION: u8 = 3;
/// `pixel_type` for 32-bit float.
const FLOAT: i32 = 2;

/// Writes `values` (row-major, top row first, `width` x `height`) to `path`; its
/// checksum.
pub(crate) fn write_z(
    path: &Path,
    width: usize,
    height: usize,
    values: &[f32],
) -> Result<Sum, ExportError> {
    assert_eq!(values.len(), width * height, "depth map size");
    let bytes = encode(width, height, values);
    let file = File::create(path).map_err(|e| ExportError::io(path, e))?;
    let mut out = Hashed::new(file);
    out.write_all(&bytes)
        .and_then(|()| out.finish())
        .map_err(|e| ExportError::io(path, e))
}

/// The whole file in memory.
fn encode(width: usize, height: usize, values: &[f32]) -> Vec<u8> {
    let mut header = Vec::with_capacity(512);
    header.extend_from_slice(&[0x76, 0x2f, 0x31, 0x01]); // magic
    header.extend_from_slice(&2u32.to_le_bytes()); // version 2, single-part scan lines
    let mut chlist = Vec::new();
    chlist.extend_from_slice(b"Z\0");
    chlist.extend_from_slice(&FLOAT.to_le_bytes());
    chlist.extend_from_slice(&[0, 0, 0, 0]); // pLinear, reserved
    chlist.extend_from_slice(&1i32.to_le_bytes()); // x sampling
    chlist.extend_from_slice(&1i32.to_le_bytes()); // y sampling
    chlist.push(0);
    let window = |w: usize, h: usize| {
        [0i32, 0, w as i32 - 1, h as i32 - 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    attribute(&mut header, "channels", "chlist", &chlist);
    attribute(
        &mut header,
        "compression",
        "compression",
        &[ZIP_COMPRESSION],
    );
    attribute(&mut header, "dataWindow", "box2i", &window(width, height));
    attribute(
        &mut header,
        "displayWindow",
        "box2i",
        &window(width, height),
    );
    attribute(&mut header, "lineOrder", "lineOrder", &[0]); // increasing y
    attribute(
        &mut header,
        "pixelAspectRatio",
        "float",
        &1f32.to_le_bytes(),
    );
    let centre: Vec<u8> = [0f32, 0f32].iter().flat_map(|v| v.to_le_bytes()).collect();
    attribute(&mut header, "screenWindowCenter", "v2f", &centre);
    attribute(
        &mut header,
        "screenWindowWidth",
        "float",
        &1f32.to_le_bytes(),
    );
    header.push(0); // end of header

    let row = width * 4;
    let blocks: Vec<Vec<u8>> = (0..height.div_ceil(LINES))
        .map(|b| {
            let first = b * LINES;
            let lines = LINES.min(height - first);
            let mut raw = Vec::with_capacity(row * lines);
            for v in &values[first * width..(first + lines) * width] {
                raw.extend_from_slice(&v.to_le_bytes());
            }
            compress(&raw)
        })
        .collect();

    let table_len = blocks.len() * 8;
    let mut out = header;
    let mut offset = (out.len() + table_len) as u64;
    for b in &blocks {
        out.extend_from_slice(&offset.to_le_bytes());
        offset += 8 + b.len() as u64;
    }
    for (i, b) in blocks.iter().enumerate() {
        out.extend_from_slice(&((i * LINES) as i32).to_le_bytes());
        out.extend_from_slice(&(b.len() as i32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn attribute(out: &mut Vec<u8>, name: &str, kind: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(kind.as_bytes());
    out.push(0);
    out.extend_from_slice(&(value.len() as i32).to_le_bytes());
    out.extend_from_slice(value);
}

/// ZIP's block coding: the bytes split into even and odd positions, each byte stored
/// as its difference from the one before (plus 128), then zlib. A block that would not
/// shrink is stored as it is, which readers recognise by its size.
fn compress(raw: &[u8]) -> Vec<u8> {
    let half = raw.len().div_ceil(2);
    let mut t = vec![0u8; raw.len()];
    for (i, pair) in raw.chunks(2).enumerate() {
        t[i] = pair[0];
        if let Some(&odd) = pair.get(1) {
            t[half + i] = odd;
        }
    }
    let mut previous = t[0];
    for x in t.iter_mut().skip(1) {
        let here = *x;
        *x = here.wrapping_sub(previous).wrapping_add(128);
        previous = here;
    }
    let packed = miniz_oxide::deflate::compress_to_vec_zlib(&t, LEVEL);
    if packed.len() < raw.len() {
        packed
    } else {
        raw.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: &[u8]) -> (usize, usize, Vec<f32>) {
        use exr::prelude::*;
        let image = read()
            .no_deep_data()
            .largest_resolution_level()
            .all_channels()
            .all_layers()
            .all_attributes()
            .from_buffered(std::io::Cursor::new(bytes))
            .unwrap();
        let layer = &image.layer_data[0];
        let channel = &layer.channel_data.list[0];
        assert_eq!(channel.name, Text::from("Z"));
        let FlatSamples::F32(v) = &channel.sample_data else {
            panic!("not f32")
        };
        (layer.size.0, layer.size.1, v.clone())
    }

    /// Smooth depth (compressed blocks), noise (blocks stored as they are), and sizes
    /// that are not a whole number of blocks, each read back bit for bit by the `exr`
    /// crate.
    #[test]
    fn files_read_back_exactly() {
        let mut seed = 7u32;
        let mut noise = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            f32::from_bits(0x3f80_0000 | (seed >> 9))
        };
        for (w, h) in [(64, 48), (37, 17), (1, 1), (5, 33)] {
            let smooth: Vec<f32> = (0..w * h)
                .map(|i| 10.0 + (i % w) as f32 * 0.01 + (i / w) as f32 * 0.5)
                .collect();
            let rough: Vec<f32> = (0..w * h).map(|_| noise()).collect();
            for values in [smooth, rough] {
                let bytes = encode(w, h, &values);
                let (rw, rh, back) = read_back(&bytes);
                assert_eq!((rw, rh), (w, h));
                assert_eq!(
                    back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn smooth_depth_is_compressed() {
        let (w, h) = (256, 144);
        let values: Vec<f32> = (0..w * h).map(|i| 5.0 + (i / w) as f32 * 0.25).collect();
        let bytes = encode(w, h, &values);
        assert!(bytes.len() < w * h * 4 / 4, "{} bytes", bytes.len());
    }
}
