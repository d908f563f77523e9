//! The shared memory a worker writes its frames into: a file on tmpfs that cuecast
//! creates, sizes and maps, and that every worker process it starts maps too. Frames
//! never travel through the socket.
//!
//! Layout, at the model's native size, for the largest chunk it makes:
//!
//! ```text
//! 0          rgb    frames x height x width x 3   RGB u8, frame after frame
//! depth      depth  frames x height x width x 4   f32 metres (when the model makes depth)
//! image      image  height x width x 3            RGB u8: the image `reset` starts from
//! ```
//!
//! One step is in flight at a time and its frames are copied out before the next is
//! asked for, so one region of each kind is enough.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// Where each region starts, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub depth: Option<usize>,
    pub image: usize,
    pub bytes: usize,
}

impl Layout {
    pub fn new(width: usize, height: usize, frames: usize, depth: bool) -> Layout {
        let align = |n: usize| n.div_ceil(64) * 64;
        let rgb = frames * width * height * 3;
        let depth_at = align(rgb);
        let image = if depth {
            align(depth_at + frames * width * height * 4)
        } else {
            depth_at
        };
        Layout {
            width,
            height,
            frames,
            depth: depth.then_some(depth_at),
            image,
            bytes: align(image + width * height * 3),
        }
    }

    /// One frame in shared memory: RGB. (The worker writes three bytes a pixel, a
    /// plain copy; strided writes of four cost it ten times as much.)
    pub fn frame_bytes(&self) -> usize {
        self.width * self.height * 3
    }
}

pub struct Shm {
    pub layout: Layout,
    pub path: PathBuf,
    map: MmapMut,
    _file: File,
}

impl Shm {
    /// Creates the file `path` (which must not exist) and maps it.
    pub fn create(path: &Path, layout: Layout) -> std::io::Result<Shm> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(layout.bytes as u64)?;
        // SAFETY: the file is ours (created above, 0600 in a 0700 folder); the worker
        // writes only the region a step names while cuecast reads none of it, and
        // cuecast reads it only after the worker has said the step is done, so no
        // reference into the map is ever read while it is being written.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Shm {
            layout,
            path: path.to_owned(),
            map,
            _file: file,
        })
    }

    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        &self.map[offset..offset + len]
    }

    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        &mut self.map[offset..offset + len]
    }

    /// Frame `i` of the last chunk, RGB.
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.layout.frame_bytes();
        self.bytes(i * n, n)
    }

    /// Depth of frame `i` of the last chunk.
    pub fn depth(&self, i: usize) -> Option<Vec<f32>> {
        let at = self.layout.depth?;
        let n = self.layout.width * self.layout.height;
        let bytes = self.bytes(at + i * n * 4, n * 4);
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap_and_are_aligned() {
        let l = Layout::new(832, 480, 12, true);
        assert_eq!(l.depth, Some(832 * 480 * 3 * 12));
        assert!(l.image >= l.depth.unwrap() + 12 * 832 * 480 * 4);
        assert!(l.bytes >= l.image + 832 * 480 * 3);
        assert_eq!(l.image % 64, 0);
        let l = Layout::new(100, 50, 1, false);
        assert_eq!(l.depth, None);
        assert_eq!(l.image, (100 * 50 * 3usize).div_ceil(64) * 64);
    }
}
