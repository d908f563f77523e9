//! Per-frame image files: the plate as 8-bit RGB PNGs, depth as single-channel float
//! EXRs.
//!
//! The take stores RGBx (the fourth byte is padding); a PNG without alpha keeps the
//! plate opaque in every tool. Depth is written as it was made, metres along the view
//! axis, in a channel named `Z`, the name compositing tools look for, as ZIP-compressed
//! scan lines: lossless, and the layout every EXR reader handles best.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use cuecast_engine::take::Size;
use exr::prelude::{
    AnyChannel, AnyChannels, Encoding, FlatSamples, Image, Layer, LayerAttributes, SmallVec,
    WritableImage,
};

use crate::ExportError;

/// Writes an RGBx frame of `width` x `height` as an RGB PNG.
pub(crate) fn write_png(
    path: &Path,
    rgbx: &[u8],
    width: usize,
    height: usize,
) -> Result<(), ExportError> {
    let file = File::create(path).map_err(|e| ExportError::io(path, e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
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
    writer.finish().map_err(|e| ExportError::encode(path, e))
}

/// Writes a depth map (metres, row-major, top row first) as a float EXR with one
/// channel, `Z`.
pub(crate) fn write_depth_exr(path: &Path, size: Size, depth: &[f32]) -> Result<(), ExportError> {
    let channel = AnyChannel::new("Z", FlatSamples::F32(depth.to_vec()));
    let layer = Layer::new(
        (size.width, size.height),
        LayerAttributes::default(),
        Encoding::SMALL_LOSSLESS,
        AnyChannels::sort(SmallVec::from_vec(vec![channel])),
    );
    Image::from_layer(layer)
        .write()
        .to_file(path)
        .map_err(|e| ExportError::encode(path, e))
}
