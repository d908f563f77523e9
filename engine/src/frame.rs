//! Frames: RGBx images that travel from the model thread to whoever shows them, and
//! come back to a pool when the last reader drops them.
//!
//! A 1280x720 frame is 3.7 MB; allocating that fresh each frame costs page faults on
//! every write. The pool keeps a few buffers of the current size and hands them out
//! again, so steady-state rendering allocates nothing.

use parking_lot::Mutex;
use std::sync::{Arc, Weak};

/// How many idle buffers the pool keeps; more in flight than this are simply freed.
const POOL_SPARES: usize = 8;

type Spares = Mutex<Vec<Vec<u8>>>;

/// Hands out frame buffers of one size.
#[derive(Clone)]
pub struct FramePool {
    spares: Arc<Spares>,
    width: usize,
    height: usize,
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
            keep,
        }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// A buffer to render into. Its contents are whatever the last frame left there.
    pub fn take(&self) -> FrameBuf {
        let len = self.width * self.height * 4;
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

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn freeze(self) -> Frame {
        Frame(Arc::new(self))
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

/// A finished frame, shared read-only (the element wraps it in a GstBuffer without
/// copying). RGBx, rows `width * 4` bytes apart.
#[derive(Clone)]
pub struct Frame(Arc<FrameBuf>);

impl Frame {
    pub fn width(&self) -> usize {
        self.0.width
    }

    pub fn height(&self) -> usize {
        self.0.height
    }

    pub fn data(&self) -> &[u8] {
        &self.0.data
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width(), self.height())
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
            keep: POOL_SPARES,
        };
        assert_eq!(pool2.take().data_mut().len(), 8 * 2 * 4);
    }
}
