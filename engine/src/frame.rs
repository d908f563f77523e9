//! Frames: images that travel from the model thread to whoever shows them, and come
//! back to where they came from when the last reader drops them.
//!
//! A 1280x720 frame is 3.7 MB; allocating that fresh each frame costs page faults on
//! every write. The pool keeps a few buffers of the current size and hands them out
//! again, so steady-state rendering allocates nothing.
//!
//! A frame is RGBx (four bytes a pixel, what in-process models draw) or RGB (three, what
//! a worker's model writes). A worker's frames are not copied at all when the show is
//! at the model's size: a [`Frame`] can be a view of the worker's shared memory, which
//! holds a lease on its slot there; the slot is written again only once every frame
//! viewing it is dropped (see `worker::shm`).

use parking_lot::Mutex;
use std::sync::{Arc, Weak};

/// How many idle buffers the pool keeps; more in flight than this are simply freed.
const POOL_SPARES: usize = 8;

type Spares = Mutex<Vec<Vec<u8>>>;

/// How a frame's pixels lie: rows of `width` pixels, top row first, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pixels {
    /// R, G, B and a fourth byte (255), as GStreamer's `RGBx`.
    #[default]
    Rgbx,
    /// R, G, B, as GStreamer's `RGB` (rows a multiple of four bytes when the width is).
    Rgb,
}

impl Pixels {
    pub fn bytes(self) -> usize {
        match self {
            Pixels::Rgbx => 4,
            Pixels::Rgb => 3,
        }
    }

    /// GStreamer's name for it.
    pub fn caps_name(self) -> &'static str {
        match self {
            Pixels::Rgbx => "RGBx",
            Pixels::Rgb => "RGB",
        }
    }
}

/// Hands out frame buffers of one size and layout.
#[derive(Clone)]
pub struct FramePool {
    spares: Arc<Spares>,
    width: usize,
    height: usize,
    pixels: Pixels,
    /// How many idle buffers it keeps.
    keep: usize,
}

impl FramePool {
    pub fn new(width: usize, height: usize) -> Self {
        Self::keeping(width, height, POOL_SPARES)
    }

    /// A pool that keeps up to `keep` idle buffers: a chunked model's frames come a
    /// chunk at a time and wait in a buffer, so it needs more than a frame model's.
    pub fn keeping(width: usize, height: usize, keep: usize) -> Self {
        FramePool {
            spares: Arc::new(Mutex::new(Vec::new())),
            width,
            height,
            pixels: Pixels::Rgbx,
            keep,
        }
    }

    /// The same pool's buffers laid out as `pixels`.
    pub fn with_pixels(mut self, pixels: Pixels) -> Self {
        if pixels != self.pixels {
            self.pixels = pixels;
            self.spares = Arc::default();
        }
        self
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    pub fn pixels(&self) -> Pixels {
        self.pixels
    }

    /// A buffer to render into. Its contents are whatever the last frame left there.
    pub fn take(&self) -> FrameBuf {
        let len = self.width * self.height * self.pixels.bytes();
        let data = self
            .spares
            .lock()
            .pop()
            .filter(|d| d.len() == len)
            .unwrap_or_else(|| vec![0; len]);
        FrameBuf {
            data,
            width: self.width,
            height: self.height,
            pixels: self.pixels,
            pool: Arc::downgrade(&self.spares),
            keep: self.keep,
        }
    }
}

/// A frame being written: owned by one thread, then frozen into a [`Frame`].
pub struct FrameBuf {
    data: Vec<u8>,
    width: usize,
    height: usize,
    pixels: Pixels,
    pool: Weak<Spares>,
    keep: usize,
}

impl FrameBuf {
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn pixels(&self) -> Pixels {
        self.pixels
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn freeze(self) -> Frame {
        Frame(Arc::new(Store::Pool(self)))
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut spares = pool.lock();
            if spares.len() < self.keep {
                spares.push(std::mem::take(&mut self.data));
            }
        }
    }
}

/// Memory a frame can view without owning it: a slot of a worker's shared memory, kept
/// from being written while any frame views it.
pub trait Mapped: Send + Sync + 'static {
    /// `len` bytes at `offset`, as they are now.
    fn bytes(&self, offset: usize, len: usize) -> &[u8];
}

enum Store {
    Pool(FrameBuf),
    Mapped {
        memory: Arc<dyn Mapped>,
        offset: usize,
        width: usize,
        height: usize,
        pixels: Pixels,
    },
}

/// A finished frame, shared read-only (the element wraps it in a GstBuffer without
/// copying), laid out as [`Frame::pixels`] says.
#[derive(Clone)]
pub struct Frame(Arc<Store>);

impl Frame {
    /// A view of `width` x `height` pixels at `offset` in `memory`, which it keeps.
    pub fn mapped(
        memory: Arc<dyn Mapped>,
        offset: usize,
        width: usize,
        height: usize,
        pixels: Pixels,
    ) -> Frame {
        Frame(Arc::new(Store::Mapped {
            memory,
            offset,
            width,
            height,
            pixels,
        }))
    }

    pub fn width(&self) -> usize {
        match &*self.0 {
            Store::Pool(b) => b.width,
            Store::Mapped { width, .. } => *width,
        }
    }

    pub fn height(&self) -> usize {
        match &*self.0 {
            Store::Pool(b) => b.height,
            Store::Mapped { height, .. } => *height,
        }
    }

    pub fn pixels(&self) -> Pixels {
        match &*self.0 {
            Store::Pool(b) => b.pixels,
            Store::Mapped { pixels, .. } => *pixels,
        }
    }

    pub fn data(&self) -> &[u8] {
        match &*self.0 {
            Store::Pool(b) => &b.data,
            Store::Mapped {
                memory,
                offset,
                width,
                height,
                pixels,
            } => memory.bytes(*offset, width * height * pixels.bytes()),
        }
    }

    /// Its pixels laid out as `pixels`: itself when they are, else a copy.
    pub fn laid_out(&self, pixels: Pixels) -> std::borrow::Cow<'_, [u8]> {
        if self.pixels() == pixels {
            return std::borrow::Cow::Borrowed(self.data());
        }
        let mut out = vec![0; self.width() * self.height() * pixels.bytes()];
        relayout(self.data(), self.pixels(), &mut out, pixels);
        std::borrow::Cow::Owned(out)
    }
}

/// The pixels of `src`, laid out as `from`, into `dst` laid out as `to` (the same
/// number of pixels).
pub fn relayout(src: &[u8], from: Pixels, dst: &mut [u8], to: Pixels) {
    match (from, to) {
        (Pixels::Rgb, Pixels::Rgbx) => crate::generator::rgb_to_rgbx(src, dst),
        (Pixels::Rgbx, Pixels::Rgb) => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                d.copy_from_slice(&s[..3]);
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({}x{} {})",
            self.width(),
            self.height(),
            self.pixels().caps_name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_reader_drops_them() {
        let pool = FramePool::new(4, 2);
        let mut buf = pool.take();
        buf.data_mut()[0] = 7;
        let ptr = buf.data_mut().as_ptr();
        let frame = buf.freeze();
        let reader = frame.clone();
        drop(frame);
        assert!(pool.spares.lock().is_empty());
        drop(reader);
        let mut again = pool.take();
        assert_eq!(again.data_mut().as_ptr(), ptr);
        assert_eq!(again.data_mut()[0], 7);
    }

    #[test]
    fn a_new_size_gets_new_buffers() {
        let pool = FramePool::new(4, 2);
        drop(pool.take());
        let pool2 = FramePool {
            spares: pool.spares.clone(),
            width: 8,
            height: 2,
            pixels: Pixels::Rgbx,
            keep: POOL_SPARES,
        };
        assert_eq!(pool2.take().data_mut().len(), 8 * 2 * 4);
        let rgb = pool2.with_pixels(Pixels::Rgb);
        let buf = rgb.take();
        assert_eq!((buf.data.len(), buf.pixels()), (8 * 2 * 3, Pixels::Rgb));
        let frame = buf.freeze();
        assert_eq!(frame.laid_out(Pixels::Rgbx).len(), 8 * 2 * 4);
        let mut rgb = vec![0; 6];
        relayout(
            &[1, 2, 3, 255, 4, 5, 6, 255],
            Pixels::Rgbx,
            &mut rgb,
            Pixels::Rgb,
        );
        assert_eq!(rgb, [1, 2, 3, 4, 5, 6]);
    }
}
