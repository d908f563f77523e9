//! What a chunked model's show frame shows besides its model frame: a mix of two model
//! frames (frame blend), a frame scaled to the show's size, and the fallback while the
//! model's process is down.

use super::*;

impl ModelThread {
    /// `frame` (slot `k`'s) mixed with slot `k + 1`'s by how far world frame `wf` is
    /// between them; `frame` itself when the next is not made yet or `wf` is on `k`.
    pub(super) fn blended(&mut self, frame: Frame, wf: u64, k: u64) -> Option<Frame> {
        let (show, native) = (self.world.fps(), self.chunks().info().fps);
        // Where `wf` falls on the model's clock, in slots: k + frac.
        let num = u128::from(wf) * u128::from(native.num) * u128::from(show.den);
        let den = u128::from(native.den) * u128::from(show.num);
        let frac = (num % den) as f64 / den as f64;
        let next = self
            .chunks()
            .buffer
            .iter()
            .find(|m| m.slot == k + 1)
            .map(|m| m.frame.clone());
        if frac == 0.0 {
            return Some(frame);
        }
        let Some(next) = next else {
            // Not made yet: live, the show cannot wait (the plain frame goes out); not
            // live, it waits for the next, so the output is the same every run.
            let c = self.chunks();
            return (c.live || !c.up).then_some(frame);
        };
        let next = self.to_show_size(&next);
        let w = (frac * 256.0).round() as u32;
        let mut buf = self.pool.take();
        for ((dst, a), b) in buf.data_mut().iter_mut().zip(frame.data()).zip(next.data()) {
            *dst = ((u32::from(*a) * (256 - w) + u32::from(*b) * w + 128) >> 8) as u8;
        }
        Some(buf.freeze())
    }

    /// A native frame at the show's size and in its pixel layout (the same frame when
    /// both agree).
    pub(super) fn to_show_size(&self, frame: &Frame) -> Frame {
        if (frame.width(), frame.height()) == self.pool.size() {
            return self.in_show_layout(frame.clone());
        }
        let mut buf = self.pool.take();
        let (w, h) = (buf.width(), buf.height());
        let src = frame.data();
        let c = frame.pixels().bytes() as i64;
        // SAFETY: the view borrows `frame`'s bytes, alive and unchanged for the call.
        let t = unsafe {
            Tensor::from_blob(
                src.as_ptr(),
                &[frame.height() as i64, frame.width() as i64, c],
                &[frame.width() as i64 * c, c, 1],
                tch::Kind::Uint8,
                tch::Device::Cpu,
            )
        };
        let mut image = Image {
            width: w,
            height: h,
            data: buf.data_mut(),
        };
        if let Err(e) = write_image(&mut image, &t) {
            tracing::warn!("a frame could not be scaled to the show's size: {e}");
        }
        buf.freeze()
    }

    /// While the model's process is down: the fallback's frame, if it draws one.
    pub(super) fn fallback_picture(&mut self, wf: u64) -> Option<Frame> {
        if self.chunks().up {
            return None;
        }
        let (width, height) = self.pool.size();
        let frame = match self.chunks().fallback.clone() {
            Fallback::Hold => return None,
            Fallback::Still(_) => {
                let still = self.chunks().still.clone()?;
                Some(self.to_show_size(&still))
            }
            Fallback::Procedural => {
                if self.chunks().fallback_gen.is_none() {
                    let g = crate::generator::procedural::Procedural::new(
                        tch::Device::Cpu,
                        self.world.seed(),
                        self.world.prompt(),
                        false,
                    );
                    self.chunks().fallback_gen = Some(Box::new(g));
                }
                // The fallback draws RGBx, like every in-process model, into buffers of
                // its own when the show is RGB.
                let pool = if self.pool.pixels() == Pixels::Rgbx {
                    self.pool.clone()
                } else {
                    let c = self.chunks();
                    if c.fallback_pool.size() != (width, height) {
                        c.fallback_pool = FramePool::new(width, height);
                    }
                    c.fallback_pool.clone()
                };
                let mut buf = pool.take();
                let fps = self.world.fps();
                let Model::Chunks(c) = &mut self.model else {
                    return None;
                };
                let g = c.fallback_gen.as_mut()?;
                let mut input = FrameInput::read(&mut self.world, wf, fps, wf, g.info());
                // Its own params (the model's mean nothing to it), at half detail.
                input.params = g.info().params.iter().map(|p| p.default).collect();
                input.detail = 0.5;
                // The model's camera goes where it is steered, through the fallback's
                // hills too: lifted above them, the fallback never draws the inside of
                // a hill (a blank frame).
                let camera = &mut input.camera;
                if let Some(ground) = g.ground_height(camera.pos[0], camera.pos[2]) {
                    camera.pos[1] = camera.pos[1].max(ground + FALLBACK_CLEARANCE_M);
                }
                let mut image = Image {
                    width,
                    height,
                    data: buf.data_mut(),
                };
                let made = catch_unwind(AssertUnwindSafe(|| g.step(&input, &mut image)));
                match made {
                    Ok(Ok(())) => Some(self.in_show_layout(buf.freeze())),
                    _ => None,
                }
            }
        }?;
        self.chunks().fallback_frames += 1;
        Some(frame)
    }
}
