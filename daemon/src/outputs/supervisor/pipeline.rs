//! An output's own pipeline (appsrc → mux → SRT, RTMP or file sink), and the small
//! helpers around it: errors as the user should read them, free disk space, the
//! recording's file name.

#[allow(unused_imports)]
use super::*;

impl Supervisor {
    pub(super) fn launch_pipeline(
        &mut self,
        output: &Output,
        generation: u64,
    ) -> Result<(Run, Option<PathBuf>), String> {
        let profile = output
            .profile
            .as_ref()
            .ok_or("this output needs an encoder profile")?;
        let has_audio = profile.audio.is_some();
        let (mux, sink, file) = match &output.kind {
            // Muxed a frame a buffer and cut into SRT messages by `ts::relay`: a frame
            // leaves whole as soon as it is muxed (`alignment=7` would hold its last
            // packets for the next frame's).
            OutputKind::Srt { .. } => (
                "mpegtsmux name=mux alignment=0 ! appsink name=muxed sync=false async=false \
                 appsrc name=messages is-live=true format=time do-timestamp=false"
                    .to_owned(),
                "srtsink name=sink wait-for-connection=false async=false sync=false".to_owned(),
                None,
            ),
            OutputKind::Rtmp { .. } => (
                "flvmux name=mux streamable=true".to_owned(),
                "rtmp2sink name=sink async=false sync=false".to_owned(),
                None,
            ),
            OutputKind::Record { path } => {
                let file = record_path(path);
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    // No new file on a disk that cannot take one: the attempt fails with
                    // the reason, and the next one looks again.
                    if let Some(free) = free_bytes(dir).filter(|b| *b < MIN_FREE_BYTES) {
                        return Err(format!(
                            "disk full: {} has {} MB free (a recording needs {} MB to start)",
                            crate::user_path(dir),
                            free >> 20,
                            MIN_FREE_BYTES >> 20
                        ));
                    }
                }
                let mux = if file.extension().is_some_and(|e| e == "mp4") {
                    // Fragmented: a recording cut short by a crash stays playable.
                    "mp4mux name=mux fragment-duration=1000"
                } else {
                    "matroskamux name=mux"
                };
                (
                    mux.to_owned(),
                    "filesink name=sink sync=false async=false buffer-mode=unbuffered".to_owned(),
                    Some(file),
                )
            }
            OutputKind::Preview { .. } => unreachable!("previews are branches"),
        };
        let mut desc = format!(
            "appsrc name=video is-live=true format=time do-timestamp=false ! queue ! \
             h264parse ! {mux} ! {sink}"
        );
        if has_audio {
            desc.push_str(" appsrc name=audio is-live=true format=time do-timestamp=false ! queue ! aacparse ! mux.");
        }
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| format!("cannot build the output: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_owned())?;
        pipeline.set_property("name", format!("output-{}-{generation}", output.name));
        let sink_el = pipeline.by_name("sink").ok_or("no sink")?;
        match &output.kind {
            OutputKind::Srt {
                mode,
                address,
                latency_ms,
                passphrase,
                streamid,
            } => {
                let mode = mode.as_str();
                sink_el.set_property("uri", format!("srt://{address}?mode={mode}"));
                sink_el.set_property("latency", *latency_ms as i32);
                if let Some(p) = passphrase {
                    sink_el.set_property("passphrase", p.expose());
                }
                if let Some(id) = streamid {
                    sink_el.set_property("streamid", id);
                }
            }
            OutputKind::Rtmp { url, key } => {
                let location = match key {
                    Some(k) => format!("{url}/{}", k.expose()),
                    None => url.clone(),
                };
                sink_el.set_property("location", location);
            }
            OutputKind::Record { .. } => {
                if let Some(f) = &file {
                    sink_el.set_property("location", f.to_string_lossy().as_ref());
                }
            }
            OutputKind::Preview { .. } => {}
        }
        let source = |n: &str| -> Result<gst_app::AppSrc, String> {
            let src = pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| format!("no appsrc {n}"))?;
            // A stalled network never blocks the encoder: the oldest data is dropped.
            src.set_property("block", false);
            src.set_property_from_str("leaky-type", "downstream");
            src.set_property("max-time", 2_000_000_000u64);
            src.set_property("max-bytes", 0u64);
            Ok(src)
        };
        if let OutputKind::Srt { .. } = &output.kind {
            let muxed = pipeline
                .by_name("muxed")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or("no appsink muxed")?;
            let messages = source("messages")?;
            // Only a frame's first message has a time stamp: bounded in bytes too.
            messages.set_property("max-bytes", 8u64 << 20);
            crate::outputs::ts::relay(&muxed, messages);
        }
        let video_src = source("video")?;
        let audio_src = if has_audio {
            Some(source("audio")?)
        } else {
            None
        };
        let probe = match (&output.kind, &file) {
            (OutputKind::Srt { mode, .. }, _) => Probe::Srt {
                listener: *mode == SrtMode::Listener,
            },
            (OutputKind::Rtmp { .. }, _) => Probe::Rtmp,
            (_, Some(f)) => Probe::File(f.clone()),
            _ => unreachable!("every pipeline output is SRT, RTMP or a file"),
        };
        let tracker = Tracker::new(probe, output.kind.target(), Instant::now());
        let syncer = file.clone().map(Syncer::start);
        let eos = Arc::new(AtomicBool::new(false));
        let bus = pipeline.bus().ok_or("no bus")?;
        let tx = self.tx.clone();
        let name = output.name.clone();
        let eos_flag = eos.clone();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = tx.send(Message::Failed {
                        name: name.clone(),
                        generation,
                        error: root_error(&e.error(), e.debug().as_deref()),
                    });
                }
                gst::MessageView::Eos(_) => eos_flag.store(true, Ordering::SeqCst),
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("did not start: {e}"));
        }
        let key = profile.encode_key();
        if !self.encoders.contains_key(&key) {
            let n = generation;
            let encoder =
                match Encoder::build(&self.pipeline, &self.program, profile, self.video.fps, n) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = pipeline.set_state(gst::State::Null);
                        return Err(e);
                    }
                };
            self.encoders.insert(key.clone(), encoder);
        }
        let encoder = &self.encoders[&key];
        encoder.subscribers.lock().push(Subscriber {
            name: output.name.clone(),
            generation,
            video: video_src,
            audio: audio_src,
            started: false,
            offset: gst::ClockTime::ZERO,
            video_caps: None,
            audio_caps: None,
        });
        encoder.request_keyframe();
        Ok((
            Run::Pipeline(Running {
                generation,
                pipeline,
                encoder: key,
                eos,
                sink: sink_el,
                tracker,
                _syncer: syncer,
            }),
            file,
        ))
    }
}

/// An error as the user should read it: GStreamer's message, plus the sink's own
/// reason where its debug text has one ("Could not write to resource. (… No space
/// left on device)"), without the source location and element path before it.
pub(in crate::outputs) fn root_error(error: &gst::glib::Error, debug: Option<&str>) -> String {
    let message = error.to_string();
    let detail = debug
        .and_then(|d| {
            d.lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .last()
        })
        .filter(|d| !message.contains(d));
    match detail {
        Some(d) => format!("{message} ({d})"),
        None => message,
    }
}

/// Waits until every flag is up, or `timeout`.
pub(in crate::outputs) fn wait_for_eos(flags: &[Arc<AtomicBool>], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while flags.iter().any(|e| !e.load(Ordering::SeqCst)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The least free space a recording starts with.
pub(in crate::outputs) const MIN_FREE_BYTES: u64 = 16 << 20;

/// Bytes free for an unprivileged writer in the file system holding `dir`.
pub(in crate::outputs) fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// `{time}` in a recording path becomes the UTC start time, so a restarted recording
/// opens a new file instead of overwriting the last. A file that holds anything is
/// never overwritten: `-2`, `-3`, ... goes before the extension instead (an empty one,
/// left by an attempt that failed at once, is reused rather than littered).
pub(in crate::outputs) fn record_path(template: &Path) -> PathBuf {
    let text = template.to_string_lossy();
    let path = PathBuf::from(text.replace("{time}", &utc_stamp(SystemTime::now())));
    let free = |p: &PathBuf| std::fs::metadata(p).map_or(true, |m| m.len() == 0);
    if free(&path) {
        return path;
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    (2..)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(free)
        .expect("some numbered name is free")
}

pub(in crate::outputs) fn seed_rng() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1
}
