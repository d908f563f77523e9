//! The shared memory a worker writes its frames into: an anonymous memory file
//! (`memfd_create`) that cuecast creates, sizes, seals and maps, and hands to every
//! worker process it starts as an open descriptor. Frames never travel through the
//! socket.
//!
//! The file is sealed at its size (`F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_SEAL`): a model
//! that truncates it to make cuecast's reads fault (SIGBUS) gets `EPERM` instead. It has
//! no name in any folder, so no other user can open it, and it is gone with its last
//! descriptor.
//!
//! Layout, at the model's native size, for the largest chunk it makes:
//!
//! ```text
//! 0          rgb    frames x height x width x 3   RGB u8, frame after frame
//! depth      depth  frames x height x width x 4   f32 metres (when the model makes depth)
//! image      image  height x width x 3            RGB u8: the image `reset` starts from
//! video      video  n x vh x vw x 3               RGB u8: a step's input video (v2v models)
//! sound_in   f32    samples x channels            a step's program sound (voice-driven)
//! sound_out  f32    samples x channels            a step's own sound (audio-video models)
//! ```
//!
//! One step is in flight at a time and its frames are copied out before the next is
//! asked for, so one region of each kind is enough.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use memmap2::MmapMut;

/// Where each region starts, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub depth: Option<usize>,
    pub image: usize,
    /// A step's input video, for a model that takes one.
    pub video: Option<VideoRegion>,
    /// A step's sound in and out (offset, floats), for a model that takes or makes it.
    pub sound_in: Option<(usize, usize)>,
    pub sound_out: Option<(usize, usize)>,
    pub bytes: usize,
}

/// Where a step's input video lies: `frames` RGB frames of `width` x `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoRegion {
    pub offset: usize,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
}

impl VideoRegion {
    pub fn frame_bytes(&self) -> usize {
        self.width * self.height * 3
    }
}

impl Layout {
    /// The layout for a model at `width` x `height` making up to `frames` frames a step,
    /// with depth or not, taking `video` (frames a step, width, height) or none.
    pub fn new(
        width: usize,
        height: usize,
        frames: usize,
        depth: bool,
        video: Option<(usize, usize, usize)>,
        sound: (usize, usize),
    ) -> Layout {
        let align = |n: usize| n.div_ceil(64) * 64;
        let rgb = frames * width * height * 3;
        let depth_at = align(rgb);
        let image = if depth {
            align(depth_at + frames * width * height * 4)
        } else {
            depth_at
        };
        let video_at = align(image + width * height * 3);
        let video = video.map(|(frames, width, height)| VideoRegion {
            offset: video_at,
            frames,
            width,
            height,
        });
        let end = video.map_or(video_at, |v| v.offset + v.frames * v.frame_bytes());
        let (floats_in, floats_out) = sound;
        let sound_in = (floats_in > 0).then(|| (align(end), floats_in));
        let end = sound_in.map_or(end, |(at, n)| at + n * 4);
        let sound_out = (floats_out > 0).then(|| (align(end), floats_out));
        let end = sound_out.map_or(end, |(at, n)| at + n * 4);
        Layout {
            width,
            height,
            frames,
            depth: depth.then_some(depth_at),
            image,
            video,
            sound_in,
            sound_out,
            bytes: align(end),
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
    map: MmapMut,
    file: File,
}

impl Shm {
    /// Creates the memory file, sized for `layout` and sealed, and maps it.
    pub fn create(layout: Layout) -> std::io::Result<Shm> {
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: a plain syscall with a static name; the descriptor is owned by `file`.
        let file = unsafe {
            let fd = libc::memfd_create(c"cuecast-frames".as_ptr(), flags);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            File::from_raw_fd(fd)
        };
        file.set_len(layout.bytes as u64)?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: a plain syscall on a descriptor this function owns.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the memory is sealed at its size, so no access can fault; the worker
        // writes only the region a step names while cuecast reads none of it, and
        // cuecast reads it only after the worker has said the step is done, so no
        // reference into the map is read while the worker is meant to write it. (A model
        // that writes anyway makes only its own frames wrong: bytes are bytes.)
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Shm { layout, map, file })
    }

    /// The descriptor a worker process maps.
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
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

    /// Depth of frame `i` of the last chunk, in metres: what is not a finite distance
    /// (the worker checks, but the memory is the model's to write) reads as 0.
    pub fn depth(&self, i: usize) -> Option<Vec<f32>> {
        let at = self.layout.depth?;
        let n = self.layout.width * self.layout.height;
        let bytes = self.bytes(at + i * n * 4, n * 4);
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .map(|d| if d.is_finite() { d } else { 0.0 })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cannot_be_shrunk_under_a_reader() {
        let shm = Shm::create(Layout::new(16, 8, 2, false, None, (0, 0))).unwrap();
        // SAFETY: plain syscalls on the descriptor `shm` owns.
        let r = unsafe { libc::ftruncate(shm.fd(), 0) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
        assert_eq!(shm.frame(1).len(), 16 * 8 * 3);
    }

    #[test]
    fn regions_do_not_overlap_and_are_aligned() {
        let l = Layout::new(832, 480, 12, true, Some((4, 512, 288)), (800, 1600));
        assert_eq!(l.depth, Some(832 * 480 * 3 * 12));
        assert!(l.image >= l.depth.unwrap() + 12 * 832 * 480 * 4);
        let v = l.video.unwrap();
        assert!(v.offset >= l.image + 832 * 480 * 3);
        assert_eq!(v.offset % 64, 0);
        assert!(l.bytes >= v.offset + 4 * 512 * 288 * 3);
        assert_eq!(l.image % 64, 0);
        let (si, so) = (l.sound_in.unwrap(), l.sound_out.unwrap());
        assert!(si.0 >= v.offset + 4 * 512 * 288 * 3 && so.0 >= si.0 + 800 * 4);
        assert!(l.bytes >= so.0 + 1600 * 4);
        let l = Layout::new(100, 50, 1, false, None, (0, 0));
        assert_eq!(l.depth, None);
        assert_eq!(l.video, None);
        assert!(l.bytes >= l.image + 100 * 50 * 3);
        assert_eq!(l.image, (100 * 50 * 3usize).div_ceil(64) * 64);
    }
}
