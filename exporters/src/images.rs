//! The plate as 8-bit RGB PNGs (depth EXRs are [`crate::depth_exr`]).
//!
//! The take stores RGBx (the fourth byte is padding); a PNG without alpha keeps the
//! plate opaque in every tool.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::{ExportError, Hashed, Sum};

/// Writes an RGBx frame of `width` x `height` as an RGB PNG; its checksum.
pub(crate) fn write_png(
    path: &Path,
    rgbx: &[u8],
    width: usize,
    height: usize,
) -> Result<Sum, ExportError> {
    let file = File::create(path).map_err(|e| ExportError::io(path, e))?;
    let mut out = Hashed::new(BufWriter::new(file));
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let rgb: Vec<u8> = rgbx
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut writer = encoder
        .write_header()
        .map_err(|e| ExportError::encode(path, e))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| ExportError::encode(path, e))?;
    writer.finish().map_err(|e| ExportError::encode(path, e))?;
    out.finish().map_err(|e| ExportError::io(path, e))
}
