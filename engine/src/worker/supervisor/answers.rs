//! What the supervisor sends and what it does with the answers: requests built from a
//! chunk's inputs, replies matched to the request in flight, chunks copied out of shared
//! memory, and state files handed over and taken back without following the model's
//! links.

use super::*;

impl Supervisor {
    /// Where the model's process sees `path` (a file in its folder).
    pub(super) fn view(&self, path: &Path) -> PathBuf {
        match (&self.sandbox, path.strip_prefix(&self.dir.model)) {
            (Some(_), Ok(rel)) => Path::new(VIEW).join(rel),
            _ => path.to_owned(),
        }
    }

    /// Writes a state for the model to read as `name` in its folder: written in
    /// cuecast's own folder, then moved there (a move replaces whatever the model left
    /// under that name, a link too, and never writes through it).
    pub(super) fn hand_over(
        &self,
        state: &[(String, Tensor)],
        name: &str,
    ) -> Result<PathBuf, StepError> {
        let private = self.dir.private().join(name);
        let target = self.dir.model.join(name);
        Tensor::write_safetensors(state, &private)
            .and_then(|()| {
                self.dir.hand(&private)?;
                std::fs::rename(&private, &target).map_err(Into::into)
            })
            .map_err(|e| StepError(format!("cannot hand over the state: {e}")))?;
        Ok(target)
    }

    /// Reads a state the model wrote as `path` in its folder: moved into cuecast's own
    /// folder first, so the model can no longer change it, then read only if it is a
    /// plain file of at most [`MAX_STATE_BYTES`] and a header.
    pub(super) fn take_over(&self, path: &Path) -> Result<Vec<(String, Tensor)>, StepError> {
        let name = path.file_name().unwrap_or_default();
        let private = self.dir.private().join(name);
        let read = || -> Result<Vec<(String, Tensor)>, String> {
            std::fs::rename(path, &private).map_err(|e| e.to_string())?;
            let meta = std::fs::symlink_metadata(&private).map_err(|e| e.to_string())?;
            if !meta.file_type().is_file() {
                return Err("it is not a plain file".into());
            }
            if meta.len() > MAX_STATE_BYTES + (1 << 20) {
                return Err(format!(
                    "{} MB, over the {} MB a state may be",
                    meta.len() >> 20,
                    MAX_STATE_BYTES >> 20
                ));
            }
            Tensor::read_safetensors(&private).map_err(|e| e.to_string())
        };
        let r = read().map_err(|e| StepError(format!("its state file could not be read: {e}")));
        // What the model left there, a folder too.
        let _ = std::fs::remove_file(&private);
        let _ = std::fs::remove_dir_all(&private);
        r
    }

    /// A step, its input video (if the model takes one) written into shared memory
    /// first: frames of another size than the layout's are left out (black).
    pub(super) fn step_message(
        &mut self,
        id: u64,
        frames: &[FrameInput],
        media: &StepMedia,
        rgb: usize,
    ) -> Request {
        let video = &media.video;
        let inputs = super::super::terms::columns(frames, &self.package.info);
        let video = self.shm.layout.video.map(|region| {
            let n = region.frame_bytes();
            for i in 0..region.frames {
                let at = self.shm.bytes_mut(region.offset + i * n, n);
                match video.get(i).filter(|f| f.data.len() == n) {
                    Some(f) => at.copy_from_slice(&f.data),
                    None => at.fill(0),
                }
            }
            protocol::VideoAt {
                offset: region.offset,
                frames: region.frames,
                width: region.width,
                height: region.height,
            }
        });
        let info = &self.package.info;
        let sound_at = |at: Option<(usize, usize)>,
                        format: Option<crate::generator::AudioFormat>| {
            let ((offset, _), f) = (at?, format?);
            Some(protocol::SoundAt {
                offset,
                samples: frames.len() * f.per_frame(info.fps),
                channels: f.channels as usize,
                rate: f.rate,
            })
        };
        let audio = sound_at(self.shm.layout.sound_in, info.inputs.audio);
        if let Some(a) = audio {
            // The step's span of program sound, silence where there was none.
            let n = a.samples * a.channels;
            let at = self.shm.bytes_mut(a.offset, n * 4);
            for (i, b) in at.chunks_exact_mut(4).enumerate() {
                b.copy_from_slice(&media.sound.get(i).copied().unwrap_or(0.0).to_ne_bytes());
            }
        }
        Request::Step {
            id,
            frames: frames.len(),
            inputs,
            out: protocol::Out {
                rgb,
                depth: self.shm.layout.depth,
                audio: sound_at(self.shm.layout.sound_out, info.audio),
            },
            video,
            audio,
        }
    }

    /// `reset` with the image (if any) written into shared memory first.
    pub(super) fn reset_message(&mut self) -> Request {
        let l = self.shm.layout;
        let image = self.image.clone().filter(|i| {
            i.width == l.width && i.height == l.height && i.data.len() == l.width * l.height * 3
        });
        let image = image.map(|i| {
            self.shm
                .bytes_mut(l.image, i.data.len())
                .copy_from_slice(&i.data);
            protocol::ImageAt {
                offset: l.image,
                width: i.width,
                height: i.height,
            }
        });
        Request::Reset {
            seed: self.seed,
            prompt: self.prompt.clone(),
            image,
        }
    }

    /// A message from the worker, or why none can be read (its socket closed, or it
    /// broke the protocol).
    pub(super) fn message(&mut self, m: Result<Reply, Down>) {
        let m = match m {
            Ok(m) => m,
            Err(reason) => {
                self.down(reason);
                return;
            }
        };
        self.last_alive = Instant::now();
        let (done, error) = match m {
            Reply::Alive => return,
            Reply::Done(d) => (d, None),
            Reply::Error { message, traceback } => {
                if let Some(tb) = traceback {
                    tracing::debug!("model {}: {tb}", self.name());
                }
                let message = if message.is_empty() {
                    "failed".to_owned()
                } else {
                    message
                };
                (Done::default(), Some(StepError(message)))
            }
            other => {
                self.down(Down::Kill(format!(
                    "it sent {other:?} where an answer was due: killed"
                )));
                return;
            }
        };
        let Some(inflight) = self.op.take() else {
            self.down(Down::Kill(
                "it answered a request it was not asked: killed".into(),
            ));
            return;
        };
        match inflight {
            Op::Step {
                id,
                frames,
                pool,
                sent,
                claim,
                ..
            } => {
                let result = match error {
                    Some(e) => Err((id, e)),
                    None => self.take_chunk(id, frames, &done, &pool, claim, sent),
                };
                match &result {
                    Ok(_) => {
                        self.step_not_before = None;
                        self.steps_since_save += 1;
                        if self.package.save_state && self.steps_since_save >= self.save_every {
                            self.steps_since_save = 0;
                            let path = self.dir.model.join("autosave.safetensors");
                            let m = Request::SaveState {
                                path: self.view(&path),
                                state_limit_bytes: MAX_STATE_BYTES,
                            };
                            self.send(m, Op::AutoSave(Instant::now() + REQUEST_LIMIT));
                        }
                    }
                    Err(_) => {
                        // The next step no sooner than this one's frames would have
                        // taken to play.
                        let fps = self.package.info.fps.as_f64();
                        let chunk = Duration::from_secs_f64(frames as f64 / fps.max(1.0));
                        self.step_not_before = Some(sent + chunk);
                    }
                }
                (self.events)(WorkerEvent::Chunk(result));
            }
            Op::Reset(_) | Op::SetPrompt(_) => {
                if let Some(error) = error {
                    let request = if matches!(inflight, Op::Reset(_)) {
                        "reset"
                    } else {
                        "set_prompt"
                    };
                    (self.events)(WorkerEvent::Failed { request, error });
                }
            }
            Op::AutoSave(_) => match error {
                None => {
                    let saved = self.dir.model.join("autosave.safetensors");
                    let kept = self.dir.model.join("state.safetensors");
                    if std::fs::rename(&saved, &kept).is_ok() {
                        self.state_file = Some(kept);
                        self.status.lock().saved_state_bytes =
                            done.bytes.unwrap_or(0).min(MAX_STATE_BYTES);
                    }
                }
                Some(e) => tracing::warn!(
                    "model {}: its state could not be saved for a restart: {e}",
                    self.name()
                ),
            },
            Op::Save(_, path, reply) => {
                let r = match error {
                    Some(e) => Err(e),
                    None => self.take_over(&path),
                };
                let _ = reply.send(r);
            }
            Op::Load(_, path, reply) => {
                let r = match error {
                    Some(e) => Err(e),
                    None => {
                        // A restart resumes from the state just loaded.
                        let kept = self.dir.model.join("state.safetensors");
                        if std::fs::rename(&path, &kept).is_ok() {
                            self.state_file = Some(kept);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    /// The chunk the worker wrote, as frames of the pool's size and layout: views of
    /// its slot when they are the worker's own (RGB at the native size, the slot one
    /// frames may view), else copies.
    pub(super) fn take_chunk(
        &mut self,
        id: u64,
        asked: usize,
        m: &Done,
        pool: &FramePool,
        claim: Claim,
        sent: Instant,
    ) -> Result<Chunk, (u64, StepError)> {
        let fail = |e: String| Err((id, StepError(e)));
        let frames = m.frames.unwrap_or(0).min(u64::from(u32::MAX)) as usize;
        if frames != asked || frames > self.shm.layout.frames {
            return fail(format!(
                "the worker wrote {frames} frames, {asked} were asked for"
            ));
        }
        let copy_started = Instant::now();
        let l = self.shm.layout;
        let (w, h) = pool.size();
        let at = claim.offset();
        let n = l.frame_bytes();
        let native = (w, h) == (l.width, l.height);
        // The claim is kept until the frames are copied out, when they are.
        let (lease, _claim) = if native && pool.pixels() == Pixels::Rgb {
            (claim.lease(), None)
        } else {
            (None, Some(claim))
        };
        let out: Vec<Frame> = match lease {
            Some(lease) => (0..frames)
                .map(|i| Frame::mapped(lease.clone(), at + i * n, w, h, Pixels::Rgb))
                .collect(),
            None => {
                self.status.lock().copied_chunks += 1;
                let mut out = Vec::with_capacity(frames);
                for i in 0..frames {
                    let mut buf = pool.take();
                    let src = self.shm.frame(at, i);
                    match (native, pool.pixels()) {
                        (true, Pixels::Rgb) => buf.data_mut().copy_from_slice(src),
                        (true, Pixels::Rgbx) => crate::generator::rgb_to_rgbx(src, buf.data_mut()),
                        (false, _) => {
                            let mut image = Image {
                                width: w,
                                height: h,
                                data: buf.data_mut(),
                            };
                            // SAFETY: the view borrows the mapped frame, which is not
                            // written while it lives (the slot is claimed until this
                            // returns).
                            let t = unsafe {
                                Tensor::from_blob(
                                    src.as_ptr(),
                                    &[l.height as i64, l.width as i64, 3],
                                    &[l.width as i64 * 3, 3, 1],
                                    tch::Kind::Uint8,
                                    Device::Cpu,
                                )
                            };
                            if let Err(e) = write_image(&mut image, &t) {
                                return Err((id, e));
                            }
                        }
                    }
                    out.push(buf.freeze());
                }
                out
            }
        };
        let sound = match (self.shm.layout.sound_out, self.package.info.audio) {
            (Some((at, _)), Some(f)) => {
                let n = frames * f.per_frame(self.package.info.fps) * f.channels as usize;
                self.shm
                    .bytes(at, n * 4)
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    // What is not a finite sample in full scale (the memory is the
                    // model's to write) is silence.
                    .map(|s| {
                        if s.is_finite() {
                            s.clamp(-1.0, 1.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let depth = if m.depth == Some(true) {
            (0..frames).filter_map(|i| self.shm.depth(i)).collect()
        } else {
            Vec::new()
        };
        // In range: checked when the reply was read.
        let ms = |v: Option<f64>| Duration::from_secs_f64(v.unwrap_or(0.0) / 1e3);
        let (write, copy) = (ms(m.write_ms), copy_started.elapsed());
        let transfer = write + copy;
        let step = ms(m.step_ms);
        {
            let mut s = self.status.lock();
            s.last_step_ms = step.as_secs_f64() * 1e3;
            s.last_transfer_ms = transfer.as_secs_f64() * 1e3;
        }
        Ok(Chunk {
            id,
            frames: out,
            sound,
            depth,
            step,
            transfer,
            write,
            copy,
            wall: sent.elapsed(),
        })
    }
}
