//! Live video into a model: the frames a camera or feed sends, waiting for the model's
//! next step.
//!
//! A video-to-video model is slower than its input more often than not (a 10 fps model
//! on a 30 fps camera), and its host must never let the difference pile up: a queue of
//! old frames is latency that only grows. So what waits here is bounded by what one
//! step takes: the newest `frames` frames. A frame pushed past that drops the oldest
//! (counted); each step takes what is there, newest last, and when fewer new frames
//! came than it takes, the newest it had is given again (counted). Starting the model
//! over flushes what waits, so a reset never shows frames from before it.
//!
//! Frames are scaled to the model's input size as they are pushed, on the pushing
//! thread (a pad's streaming thread, an input's), never on the model thread.
//!
//! Not live (a file restyled as fast as it decodes), nothing may be dropped: a push
//! waits for room instead (at most [`BLOCK_LIMIT`] at a time, so a stopped model never
//! holds a pipeline), and each step takes the oldest frames, in order.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::generator::VideoInput;
use crate::media;
use crate::worker::RgbImage;

/// The longest a push waits for room when nothing may be dropped.
pub const BLOCK_LIMIT: Duration = Duration::from_secs(1);
/// The largest input frame accepted, in pixels (8K).
pub const MAX_PIXELS: usize = 7680 * 4320;

/// What has happened to the frames pushed, since the show started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VideoInStats {
    /// Frames pushed.
    pub received: u64,
    /// Frames given to the model.
    pub used: u64,
    /// Frames dropped unseen: pushed past what a step takes, or flushed by a reset.
    pub dropped: u64,
    /// Frames given again because no newer one had come.
    pub repeated: u64,
}

/// The pixel layouts [`VideoIn::push_raw`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    Rgb,
    Bgr,
    /// Four bytes a pixel, red first (RGBx, RGBA).
    Rgbx,
    /// Four bytes a pixel, blue first (BGRx, BGRA).
    Bgrx,
}

impl PixelLayout {
    fn bytes(self) -> usize {
        match self {
            PixelLayout::Rgb | PixelLayout::Bgr => 3,
            PixelLayout::Rgbx | PixelLayout::Bgrx => 4,
        }
    }

    fn blue_first(self) -> bool {
        matches!(self, PixelLayout::Bgr | PixelLayout::Bgrx)
    }
}

#[derive(Default)]
struct Waiting {
    frames: VecDeque<Arc<RgbImage>>,
    /// The newest frame given to the model: what a step with no new frame gets.
    last: Option<Arc<RgbImage>>,
    closed: bool,
}

struct Shared {
    input: VideoInput,
    live: bool,
    waiting: Mutex<Waiting>,
    room: Condvar,
    received: AtomicU64,
    used: AtomicU64,
    dropped: AtomicU64,
    repeated: AtomicU64,
}

/// The video waiting for a model's next step. Clone it freely: every clone is the same
/// input.
#[derive(Clone)]
pub struct VideoIn(Arc<Shared>);

impl std::fmt::Debug for VideoIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoIn")
            .field("input", &self.0.input)
            .field("stats", &self.stats())
            .finish()
    }
}

impl VideoIn {
    /// The input of a model that takes `input`; `live`: drop what a slow model cannot
    /// take (else wait for room).
    pub fn new(input: VideoInput, live: bool) -> VideoIn {
        VideoIn(Arc::new(Shared {
            input,
            live,
            waiting: Mutex::default(),
            room: Condvar::new(),
            received: AtomicU64::new(0),
            used: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
        }))
    }

    /// What the model takes: frames a step, and their size.
    pub fn input(&self) -> VideoInput {
        self.0.input
    }

    pub fn stats(&self) -> VideoInStats {
        let s = &self.0;
        VideoInStats {
            received: s.received.load(Ordering::Relaxed),
            used: s.used.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            repeated: s.repeated.load(Ordering::Relaxed),
        }
    }

    /// Frames waiting for the next step.
    pub fn waiting(&self) -> usize {
        self.0.waiting.lock().frames.len()
    }

    /// Pushes a frame of `width` x `height` in `layout`, rows `stride` bytes apart,
    /// scaled to the model's input size. Errors say what was wrong with the frame.
    pub fn push_raw(
        &self,
        data: &[u8],
        width: usize,
        height: usize,
        stride: usize,
        layout: PixelLayout,
    ) -> Result<(), String> {
        if width == 0 || height == 0 || width * height > MAX_PIXELS {
            return Err(format!(
                "a {width}x{height} frame: frames must be 1 to {MAX_PIXELS} pixels"
            ));
        }
        let px = layout.bytes();
        if stride < width * px || data.len() < stride * (height - 1) + width * px {
            return Err(format!(
                "a {width}x{height} frame of {} bytes with rows {stride} bytes apart is cut short",
                data.len()
            ));
        }
        let mut rgb = Vec::with_capacity(width * height * 3);
        for row in data.chunks(stride).take(height) {
            for p in row[..width * px].chunks_exact(px) {
                if layout.blue_first() {
                    rgb.extend_from_slice(&[p[2], p[1], p[0]]);
                } else {
                    rgb.extend_from_slice(&p[..3]);
                }
            }
        }
        self.push(RgbImage {
            width,
            height,
            data: rgb,
        });
        Ok(())
    }

    /// Pushes an RGB frame of any size, scaled to the model's input size.
    pub fn push(&self, image: RgbImage) {
        let (w, h) = (self.0.input.width as usize, self.0.input.height as usize);
        let frame = Arc::new(media::scale(&image, w, h));
        let s = &self.0;
        s.received.fetch_add(1, Ordering::Relaxed);
        let keep = s.input.frames.max(1) as usize;
        let mut waiting = s.waiting.lock();
        if !s.live {
            let until = Instant::now() + BLOCK_LIMIT;
            while waiting.frames.len() >= keep && !waiting.closed {
                if s.room.wait_until(&mut waiting, until).timed_out() {
                    break;
                }
            }
        }
        waiting.frames.push_back(frame);
        while waiting.frames.len() > keep {
            waiting.frames.pop_front();
            s.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A step's frames: exactly as many as the model takes per step, oldest first. The
    /// newest frame given before stands in for frames that did not come; before any
    /// came, black frames do.
    pub fn take(&self) -> Vec<Arc<RgbImage>> {
        let s = &self.0;
        let n = s.input.frames.max(1) as usize;
        let mut waiting = s.waiting.lock();
        let fresh: Vec<Arc<RgbImage>> = waiting.frames.drain(..).collect();
        s.room.notify_all();
        let stand_in = match (fresh.first(), &waiting.last) {
            (_, Some(last)) => last.clone(),
            (Some(first), None) => first.clone(),
            (None, None) => Arc::new(self.black()),
        };
        let missing = n - fresh.len();
        s.used.fetch_add(fresh.len() as u64, Ordering::Relaxed);
        s.repeated.fetch_add(missing as u64, Ordering::Relaxed);
        let frames: Vec<_> = std::iter::repeat_n(stand_in, missing)
            .chain(fresh)
            .collect();
        waiting.last = frames.last().cloned();
        frames
    }

    /// Drops what waits (the model starts over): counted as dropped.
    pub fn flush(&self) {
        let mut waiting = self.0.waiting.lock();
        let n = waiting.frames.len() as u64;
        waiting.frames.clear();
        self.0.dropped.fetch_add(n, Ordering::Relaxed);
        self.0.room.notify_all();
    }

    /// No more frames will be taken: a push waiting for room returns.
    pub fn close(&self) {
        self.0.waiting.lock().closed = true;
        self.0.room.notify_all();
    }

    fn black(&self) -> RgbImage {
        let (w, h) = (self.0.input.width as usize, self.0.input.height as usize);
        RgbImage {
            width: w,
            height: h,
            data: vec![0; w * h * 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(frames: u32) -> VideoInput {
        VideoInput {
            frames,
            width: 4,
            height: 2,
        }
    }

    fn grey(v: u8) -> RgbImage {
        RgbImage {
            width: 4,
            height: 2,
            data: vec![v; 4 * 2 * 3],
        }
    }

    fn values(frames: &[Arc<RgbImage>]) -> Vec<u8> {
        frames.iter().map(|f| f.data[0]).collect()
    }

    #[test]
    fn a_slow_model_gets_the_newest_frames_and_the_rest_are_dropped_and_counted() {
        let v = VideoIn::new(input(2), true);
        for i in 1..=10 {
            v.push(grey(i));
        }
        assert_eq!(v.waiting(), 2, "never more than a step takes");
        assert_eq!(values(&v.take()), [9, 10]);
        let s = v.stats();
        assert_eq!((s.received, s.used, s.dropped, s.repeated), (10, 2, 8, 0));
    }

    #[test]
    fn a_step_with_no_new_frame_gets_the_last_one_again_and_before_any_black() {
        let v = VideoIn::new(input(2), true);
        assert_eq!(values(&v.take()), [0, 0]);
        v.push(grey(5));
        assert_eq!(values(&v.take()), [0, 5], "the new frame after the last");
        assert_eq!(values(&v.take()), [5, 5]);
        v.push(grey(6));
        assert_eq!(values(&v.take()), [5, 6]);
        let s = v.stats();
        assert_eq!((s.used, s.repeated), (2, 6));
    }

    #[test]
    fn a_reset_flushes_what_waits() {
        let v = VideoIn::new(input(3), true);
        v.push(grey(1));
        v.push(grey(2));
        v.flush();
        assert_eq!(v.waiting(), 0);
        assert_eq!(v.stats().dropped, 2);
        v.push(grey(3));
        assert_eq!(values(&v.take()), [3, 3, 3]);
    }

    #[test]
    fn frames_are_scaled_and_converted_as_they_are_pushed() {
        let v = VideoIn::new(input(1), true);
        // 8x4 BGRx, blue 200 and red 10 everywhere, rows padded to 40 bytes.
        let mut data = vec![0u8; 40 * 4];
        for row in data.chunks_mut(40) {
            for p in row[..32].chunks_exact_mut(4) {
                p.copy_from_slice(&[200, 100, 10, 255]);
            }
        }
        v.push_raw(&data, 8, 4, 40, PixelLayout::Bgrx).unwrap();
        let f = v.take().remove(0);
        assert_eq!((f.width, f.height), (4, 2));
        assert_eq!(&f.data[..3], &[10, 100, 200]);
        let e = v.push_raw(&data, 8, 5, 40, PixelLayout::Bgrx).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
        let e = v.push_raw(&[], 0, 5, 0, PixelLayout::Rgb).unwrap_err();
        assert!(e.contains("0x5"), "{e}");
    }

    #[test]
    fn not_live_a_push_waits_for_room_and_nothing_is_dropped() {
        let v = VideoIn::new(input(1), false);
        v.push(grey(1));
        let pusher = {
            let v = v.clone();
            std::thread::spawn(move || v.push(grey(2)))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(v.waiting(), 1, "the second push waits");
        assert_eq!(values(&v.take()), [1]);
        pusher.join().unwrap();
        assert_eq!(values(&v.take()), [2]);
        assert_eq!(v.stats().dropped, 0);
    }
}
