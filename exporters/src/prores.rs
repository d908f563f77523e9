//! `plate/plate.mov`: the plate as ProRes 4444 in QuickTime, through FFmpeg's
//! `prores_ks` encoder.
//!
//! Why ProRes 4444: it is the intra-frame, near-lossless mezzanine every editor and
//! compositor opens, and 4:4:4 keeps the generator's colour detail that 4:2:2 would
//! halve. Frames are converted from RGB to 10-bit Y'CbCr with swscale's BT.601
//! matrix into limited range, and the file says exactly that (matrix, range), so players
//! convert back correctly. No alpha plane: a generated frame is opaque, and an alpha
//! plane of 255s would cost encode time and file size for nothing (tools treat a 4444
//! file without alpha as opaque, as `ffmpeg -c:v prores_ks -profile:v 4444` makes).

use std::path::{Path, PathBuf};

use cuecast_engine::Fps;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::color;
use ffmpeg::{codec, encoder, format, frame, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::ExportError;

/// Encodes frames into a ProRes 4444 `.mov`, one per call, at the take's rate.
pub(crate) struct ProresWriter {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    rgb: frame::Video,
    encoder_time_base: Rational,
    stream_time_base: Rational,
    next_pts: i64,
}

impl ProresWriter {
    pub fn create(path: &Path, width: usize, height: usize, fps: Fps) -> Result<Self, ExportError> {
        let err = |e: ffmpeg::Error| ExportError::encode(path, format!("ProRes encoding: {e}"));
        ffmpeg::init().map_err(err)?;
        let codec = encoder::find_by_name("prores_ks")
            .ok_or_else(|| ExportError::encode(path, "this FFmpeg has no prores_ks encoder"))?;
        let mut output = format::output_as(path, "mov").map_err(err)?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let (w, h) = (width as u32, height as u32);
        let time_base = Rational::new(fps.den as i32, fps.num as i32);
        let mut video = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err)?;
        video.set_width(w);
        video.set_height(h);
        video.set_format(Pixel::YUV444P10LE);
        video.set_time_base(time_base);
        video.set_frame_rate(Some(Rational::new(fps.num as i32, fps.den as i32)));
        video.set_colorspace(color::Space::SMPTE170M);
        video.set_color_range(color::Range::MPEG);
        video.set_color_primaries(color::Primaries::BT709);
        video.set_color_transfer_characteristic(color::TransferCharacteristic::BT709);
        if global_header {
            video.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        // Every core: prores_ks encodes several frames at once (frame threads), as the
        // ffmpeg command does by default.
        video.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::Frame,
            count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..Default::default()
        });
        let mut options = Dictionary::new();
        options.set("profile", "4444");
        options.set("vendor", "apl0");
        let encoder = video.open_as_with(codec, options).map_err(err)?;
        {
            let mut stream = output.add_stream(codec).map_err(err)?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            stream.set_avg_frame_rate(Rational::new(fps.num as i32, fps.den as i32));
            stream.set_rate(Rational::new(fps.num as i32, fps.den as i32));
        }
        output.write_header().map_err(err)?;
        let stream_time_base = output.stream(0).map(|s| s.time_base()).unwrap_or(time_base);
        let scaler = scaling::Context::get(
            Pixel::RGBZ,
            w,
            h,
            Pixel::YUV444P10LE,
            w,
            h,
            scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT,
        )
        .map_err(err)?;
        Ok(ProresWriter {
            path: path.to_owned(),
            output,
            encoder,
            scaler,
            rgb: frame::Video::new(Pixel::RGBZ, w, h),
            encoder_time_base: time_base,
            stream_time_base,
            next_pts: 0,
        })
    }

    fn err(&self, e: ffmpeg::Error) -> ExportError {
        ExportError::encode(&self.path, format!("ProRes encoding: {e}"))
    }

    /// Encodes the next frame (RGBx, top row first).
    pub fn push(&mut self, rgbx: &[u8]) -> Result<(), ExportError> {
        // RGBx is FFmpeg's RGB0: rows are copied as they are, the padding byte ignored.
        let row = self.rgb.width() as usize * 4;
        let stride = self.rgb.stride(0);
        let rows = self.rgb.data_mut(0);
        for (y, src) in rgbx.chunks_exact(row).enumerate() {
            rows[y * stride..y * stride + row].copy_from_slice(src);
        }
        // A new picture each time: a frame-threaded encoder keeps a reference to the
        // frames it has not finished, so one buffer reused would be overwritten under it.
        let mut yuv = frame::Video::new(Pixel::YUV444P10LE, self.rgb.width(), self.rgb.height());
        self.scaler
            .run(&self.rgb, &mut yuv)
            .map_err(|e| self.err(e))?;
        yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder.send_frame(&yuv).map_err(|e| self.err(e))?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), ExportError> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.encoder_time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| ExportError::encode(&self.path, format!("writing: {e}")))?;
        }
        Ok(())
    }

    /// Flushes the encoder and completes the file.
    pub fn finish(mut self) -> Result<(), ExportError> {
        self.encoder.send_eof().map_err(|e| self.err(e))?;
        self.drain()?;
        self.output.write_trailer().map_err(|e| self.err(e))
    }
}
