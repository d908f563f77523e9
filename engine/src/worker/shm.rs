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
//! 0          rgb    (slots + 1) x frames x height x width x 3   RGB u8, a chunk a slot
//! depth      depth  frames x height x width x 4   f32 metres (when the model makes depth)
//! image      image  height x width x 3            RGB u8: the image `reset` starts from
//! video      video  n x vh x vw x 3               RGB u8: a step's input video (v2v models)
//! sound_in   f32    samples x channels            a step's program sound (voice-driven)
//! sound_out  f32    samples x channels            a step's own sound (audio-video models)
//! ```
//!
//! One step is in flight at a time, so one region of each kind is enough, except for
//! the frames: they go on air where the worker wrote them, without a copy (a 12-frame
//! 832x480 chunk is 14 MB; one plain copy of it costs more than the whole transfer may).
//! So the frames' region is a ring of slots, a chunk each. A step is asked into a slot
//! no frame views ([`Shm::claim`]); its frames hold a lease on the slot ([`Lease`]) and
//! the slot is free again when the last of them is dropped, however far downstream
//! (an encoder's queue, a take being written). When every slot is still viewed, the
//! step goes into one more slot that is never leased, and its frames are copied out
//! before the next step is asked: slower, never wrong.
//!
//! A worker that dies mid-step leaves its half-written slot unviewed (its claim is
//! dropped, and frames are only made from a step the worker said was done), so nothing
//! it half-wrote goes on air; the frames already on air are in slots it was not asked
//! to write.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memmap2::MmapMut;

use crate::frame::Mapped;

/// Where each region starts, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    /// Slots of the ring that frames may view; one more (the last) never is.
    pub slots: usize,
    /// Bytes from one slot to the next.
    pub slot_bytes: usize,
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
        let slot_bytes = align(frames * width * height * 3);
        let slots = ring_slots(frames);
        let depth_at = slot_bytes * (slots + 1);
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
            slots,
            slot_bytes,
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

    /// Where slot `slot`'s chunk starts.
    pub fn slot(&self, slot: usize) -> usize {
        slot * self.slot_bytes
    }
}

/// Slots for chunks of `frames`: enough for the chunk on air, the one waiting, the one
/// being made and what is still on its way downstream (at least 24 frames), and no
/// more than 24.
fn ring_slots(frames: usize) -> usize {
    24usize.div_ceil(frames.max(1)).clamp(4, 24)
}

/// The mapping, shared by the supervisor and every frame that views a slot of it: it is
/// unmapped when the last of them is dropped.
struct Ring {
    /// Kept for its `Drop` (the unmap); read and written through `ptr`.
    _map: MmapMut,
    ptr: *mut u8,
    len: usize,
    /// Whether each leasable slot is claimed by a step or viewed by frames.
    busy: Vec<AtomicBool>,
    layout: Layout,
}

// SAFETY: `ptr` points into `_map`, which lives as long as the ring; the bytes are
// shared memory that the worker process may write at any time anyway, and cuecast's
// own writes (`Shm::bytes_mut`) go only to regions no frame views.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

impl Ring {
    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above) of a mapping that lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }
    }
}

/// A slot a step was asked to write into: free again when dropped, unless its frames
/// took it over ([`Claim::lease`]).
pub struct Claim(Lease);

impl Claim {
    /// Where the step's frames go.
    pub fn offset(&self) -> usize {
        self.0.ring.layout.slot(self.0.slot)
    }

    /// The memory the step's frames can view, held until the last of them is dropped;
    /// None for the slot that is never leased (its frames must be copied out).
    pub fn lease(self) -> Option<Arc<Lease>> {
        (self.0.slot < self.0.ring.layout.slots).then(|| Arc::new(self.0))
    }
}

/// A slot that frames view: free again when the last of them drops it.
pub struct Lease {
    ring: Arc<Ring>,
    /// `ring.layout.slots` for the slot that is never leased (then only a claim's).
    slot: usize,
}

impl Mapped for Lease {
    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.ring.bytes(offset, len)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(b) = self.ring.busy.get(self.slot) {
            b.store(false, Ordering::Release);
        }
    }
}

pub struct Shm {
    pub layout: Layout,
    ring: Arc<Ring>,
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
        let mut map = unsafe { MmapMut::map_mut(&file)? };
        let ring = Ring {
            ptr: map.as_mut_ptr(),
            len: map.len(),
            _map: map,
            busy: (0..layout.slots).map(|_| AtomicBool::new(false)).collect(),
            layout,
        };
        Ok(Shm {
            layout,
            ring: Arc::new(ring),
            file,
        })
    }

    /// A slot for the next step's frames: a free one of the ring, else the one that is
    /// never leased.
    pub fn claim(&self) -> Claim {
        let free = self.ring.busy.iter().position(|b| {
            b.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        Claim(Lease {
            ring: self.ring.clone(),
            slot: free.unwrap_or(self.layout.slots),
        })
    }

    /// Slots that frames view or a step was asked into now.
    #[cfg(test)]
    pub fn slots_busy(&self) -> usize {
        self.ring
            .busy
            .iter()
            .filter(|b| b.load(Ordering::Acquire))
            .count()
    }

    /// The descriptor a worker process maps.
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.ring.bytes(offset, len)
    }

    /// A region cuecast writes for the worker (an image, input video or sound): never
    /// one that frames view.
    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset >= self.layout.slot(self.layout.slots + 1));
        let r = &self.ring;
        assert!(offset.checked_add(len).is_some_and(|end| end <= r.len));
        // SAFETY: in bounds of the mapping, and outside the ring of slots (checked
        // above), so no frame views it; `&mut self` keeps cuecast's own writes apart.
        unsafe { std::slice::from_raw_parts_mut(r.ptr.add(offset), len) }
    }

    /// Frame `i` of the chunk at `offset`, RGB.
    pub fn frame(&self, offset: usize, i: usize) -> &[u8] {
        let n = self.layout.frame_bytes();
        self.bytes(offset + i * n, n)
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
        assert_eq!(shm.frame(0, 1).len(), 16 * 8 * 3);
    }

    #[test]
    fn regions_do_not_overlap_and_are_aligned() {
        let l = Layout::new(832, 480, 12, true, Some((4, 512, 288)), (800, 1600));
        assert_eq!(l.slots, 4);
        assert_eq!(l.slot_bytes, 832 * 480 * 3 * 12);
        assert_eq!(l.depth, Some(832 * 480 * 3 * 12 * 5));
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
        assert_eq!(l.slots, 24);
        assert_eq!(l.image, (100 * 50 * 3usize).div_ceil(64) * 64 * 25);
    }

    #[test]
    fn a_slot_is_claimed_again_only_once_every_frame_viewing_it_is_dropped() {
        use crate::frame::{Frame, Pixels};
        let shm = Shm::create(Layout::new(4, 2, 6, false, None, (0, 0))).unwrap();
        assert_eq!(shm.layout.slots, 4);
        let first = shm.claim();
        let at = first.offset();
        let lease = first.lease().unwrap();
        let frames: Vec<Frame> = (0..6)
            .map(|i| Frame::mapped(lease.clone(), at + i * 24, 4, 2, Pixels::Rgb))
            .collect();
        drop(lease);
        // Held downstream: the other slots are handed out, never this one.
        let others: Vec<Claim> = (0..3).map(|_| shm.claim()).collect();
        let mut offsets: Vec<usize> = others.iter().map(Claim::offset).collect();
        offsets.sort();
        assert!(!offsets.contains(&at));
        // All four busy: the next step goes to the slot no frame may view.
        let spare = shm.claim();
        assert_eq!(spare.offset(), shm.layout.slot(4));
        assert!(spare.lease().is_none());
        drop(others);
        assert_eq!(shm.slots_busy(), 1);
        // One frame of six still on its way: the slot stays taken.
        let last = frames[5].clone();
        drop(frames);
        assert_eq!(shm.slots_busy(), 1);
        drop(last);
        assert_eq!(shm.slots_busy(), 0);
    }

    #[test]
    fn frames_outlive_the_memory_they_came_from() {
        use crate::frame::{Frame, Pixels};
        let mut shm = Shm::create(Layout::new(4, 2, 1, false, None, (0, 0))).unwrap();
        let claim = shm.claim();
        let at = claim.offset();
        // SAFETY: a test writing the slot as a worker would, before any frame views it.
        unsafe { std::ptr::write_bytes(shm.ring.ptr.add(at), 9, 24) };
        let frame = Frame::mapped(claim.lease().unwrap(), at, 4, 2, Pixels::Rgb);
        let image_at = shm.layout.image;
        shm.bytes_mut(image_at, 4).fill(1);
        let ring = Arc::downgrade(&shm.ring);
        drop(shm);
        assert_eq!(frame.data(), &[9; 24]);
        // And the memory goes with the last frame: leases and claims hold none of it.
        let spare = Shm::create(Layout::new(4, 2, 1, false, None, (0, 0))).unwrap();
        let claims: Vec<Claim> = (0..5).map(|_| spare.claim()).collect();
        let spare_ring = Arc::downgrade(&spare.ring);
        drop((claims, spare));
        assert!(spare_ring.upgrade().is_none());
        drop(frame);
        assert!(ring.upgrade().is_none(), "the map outlived its last frame");
    }
}
