//! Images a show starts a model from: files in the show's media folder (uploads land
//! there too), read as PNG or JPEG and scaled to the model's native size.
//!
//! Everything is bounded before it is decoded: the file's size, the picture's size
//! (a small PNG can claim to be 100 000 pixels square), and the decoder's memory, so no
//! file can stall the model thread or exhaust memory.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::cue::is_image_name;
use crate::worker::RgbImage;

/// The largest image file read, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;
/// The largest picture side, in pixels.
pub const MAX_IMAGE_SIDE: usize = 8192;

/// Reads image `name` from the folder `media` and scales it to `width` x `height`.
/// The error says what was wrong with the file.
pub fn load(media: &Path, name: &str, width: usize, height: usize) -> Result<RgbImage, String> {
    if !is_image_name(name) {
        return Err(format!("{name:?} is not the name of a .png or .jpg file"));
    }
    let path = media.join(name);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{name}: {e}"))?;
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
    let data = std::fs::read(&path).map_err(|e| format!("{name}: {e}"))?;
    let image = decode(&data).map_err(|e| format!("{name}: {e}"))?;
    Ok(scale(&image, width, height))
}

/// Decodes PNG or JPEG bytes to RGB, by their signature.
pub fn decode(data: &[u8]) -> Result<RgbImage, String> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(data)
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(data)
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

fn decode_png(data: &[u8]) -> Result<RgbImage, String> {
    let limits = png::Limits {
        bytes: MAX_IMAGE_SIDE * MAX_IMAGE_SIDE * 4,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(data), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(w, h)?;
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or("a PNG too large to read")?
    ];
    let out = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let channels = match out.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("an indexed PNG that did not expand".into()),
    };
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in buf.chunks(out.line_size).take(h) {
        for px in row.chunks_exact(channels).take(w) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
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

/// Bilinear scaling (antialiased when shrinking) to `width` x `height`.
pub fn scale(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if (image.width, image.height) == (width, height) {
        return image.clone();
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
