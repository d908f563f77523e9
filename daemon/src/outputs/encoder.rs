//! The encode-once part: a branch off the program tee per encoder profile (convert,
//! scale, rate, x264, AAC silence, into appsinks), and the fan-out of its samples to
//! every output that uses the profile.

#[allow(unused_imports)]
use super::*;

/// A branch hanging off a tee: a bin and the tee pad feeding it.
pub(super) struct Branch {
    pub(super) bin: gst::Bin,
    pub(super) tee_pad: gst::Pad,
}

impl Branch {
    /// The bin is brought to PLAYING before it is linked: a pad of a bin that is not
    /// yet active answers FLUSHING, tee passes that back to the source, and a source
    /// that gets FLUSHING pauses its task for good, the whole show with it.
    pub(super) fn attach(
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        bin: gst::Bin,
    ) -> Result<Branch, String> {
        pipeline
            .add(&bin)
            .map_err(|e| format!("cannot add {}: {e}", bin.name()))?;
        let abandon = |bin: &gst::Bin| {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(bin);
        };
        // The show pipeline is playing whenever outputs run.
        if let Err(e) = bin.set_state(gst::State::Playing) {
            abandon(&bin);
            return Err(format!("branch did not start: {e}"));
        }
        let Some(sink) = bin.static_pad("sink") else {
            abandon(&bin);
            return Err("branch without a sink pad".to_owned());
        };
        let Some(tee_pad) = tee.request_pad_simple("src_%u") else {
            abandon(&bin);
            return Err("the program tee gave no pad".to_owned());
        };
        if let Err(e) = tee_pad.link(&sink) {
            tee.release_request_pad(&tee_pad);
            abandon(&bin);
            return Err(format!("cannot link {}: {e:?}", bin.name()));
        }
        Ok(Branch { bin, tee_pad })
    }

    /// Unlinks at a moment no buffer is passing (an idle probe), then stops and removes
    /// the bin away from the streaming thread.
    pub(super) fn detach(self, pipeline: &gst::Pipeline, tee: &gst::Element) {
        let Branch { bin, tee_pad } = self;
        let pipeline = pipeline.clone();
        let tee = tee.clone();
        let sink = bin.static_pad("sink");
        let job = Mutex::new(Some((bin, pipeline, tee)));
        tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            if let Some(sink) = &sink {
                let _ = pad.unlink(sink);
            }
            if let Some((bin, pipeline, tee)) = job.lock().take() {
                let pad = pad.clone();
                std::thread::spawn(move || {
                    let _ = bin.set_state(gst::State::Null);
                    let _ = pipeline.remove(&bin);
                    tee.release_request_pad(&pad);
                });
            }
            gst::PadProbeReturn::Remove
        });
    }
}

/// An output pipeline subscribed to an encoder.
pub(super) struct Subscriber {
    pub(super) name: String,
    pub(super) generation: u64,
    pub(super) video: gst_app::AppSrc,
    pub(super) audio: Option<gst_app::AppSrc>,
    /// Until the first keyframe, nothing is sent (a decoder cannot start mid-GOP).
    pub(super) started: bool,
    /// The PTS of that keyframe: the output's timestamps start at zero from it.
    pub(super) offset: gst::ClockTime,
    pub(super) video_caps: Option<gst::Caps>,
    pub(super) audio_caps: Option<gst::Caps>,
}

pub(super) type Subscribers = Arc<Mutex<Vec<Subscriber>>>;

/// One profile's encode, shared by its outputs.
pub(super) struct Encoder {
    pub(super) branch: Branch,
    /// Its sound's branch off the program audio tee (and that tee), when the profile
    /// has audio and the show has program audio.
    pub(super) audio: Option<(Branch, gst::Element)>,
    pub(super) video_sink: gst_app::AppSink,
    pub(super) subscribers: Subscribers,
    pub(super) counts: Arc<EncoderCounts>,
}

/// Frames into an encoder branch and out of its encoder: the difference (beyond the
/// few in flight) is what its leaky queue dropped because the encoder fell behind.
#[derive(Debug, Default)]
pub struct EncoderCounts {
    pub profile: String,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
}

/// An encoder as `/api/v1/status` and `/metrics` show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EncoderStatus {
    pub profile: String,
    pub frames_in: u64,
    pub frames_out: u64,
}

impl Encoder {
    pub(super) fn build(
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        profile: &Profile,
        show_fps: u32,
        n: u64,
    ) -> Result<Encoder, String> {
        let v = &profile.video;
        let keyint = ((v.fps as f64 * v.keyframe_s).round() as u32).max(1);
        // `videorate` passes a frame on only when the next one comes (a frame's delay,
        // measured in the benchmark's section 4): only where the rates differ.
        let rate = if v.fps == show_fps {
            ""
        } else {
            "videorate skip-to-first=true ! "
        };
        let mut desc = format!(
            "queue leaky=downstream max-size-buffers=3 max-size-time=0 max-size-bytes=0 ! \
             videoconvert ! videoscale ! {rate}\
             video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1 ! \
             x264enc tune=zerolatency speed-preset={preset} bitrate={kbps} key-int-max={keyint} ! \
             video/x-h264,profile={hp} ! h264parse config-interval=-1 ! \
             appsink name=video sync=false async=false max-buffers=30 drop=true",
            w = v.width,
            h = v.height,
            fps = v.fps,
            preset = v.preset,
            kbps = v.bitrate_kbps,
            hp = v.h264_profile,
        );
        // The program's sound, from the show's program audio; a pipeline without one
        // (an application's own) carries silence.
        let program_audio = pipeline.by_name(crate::audio::TEE);
        let aac = |a: &crate::config::AudioProfile| {
            format!(
                "audio/x-raw,rate={rate},channels={ch} ! audioconvert ! \
                 avenc_aac bitrate={bps} ! aacparse ! \
                 appsink name=audio sync=false async=false max-buffers=100 drop=true",
                rate = a.rate,
                ch = a.channels,
                bps = a.bitrate_kbps * 1000,
            )
        };
        if let (Some(a), None) = (&profile.audio, &program_audio) {
            desc.push_str(&format!(
                " audiotestsrc is-live=true do-timestamp=true wave=silence samplesperbuffer=1024 ! {}",
                aac(a)
            ));
        }
        let bin = gst::parse::bin_from_description(&desc, true)
            .map_err(|e| format!("encoder for {}: {e}", profile.name))?;
        let audio_bin = match (&profile.audio, &program_audio) {
            (Some(a), Some(_)) => Some(
                gst::parse::bin_from_description(
                    &format!(
                        "queue leaky=downstream max-size-buffers=0 max-size-bytes=0 \
                         max-size-time=500000000 ! audioconvert ! audioresample ! {}",
                        aac(a)
                    ),
                    true,
                )
                .map_err(|e| format!("encoder for {}: {e}", profile.name))?,
            ),
            _ => None,
        };
        bin.set_property("name", format!("encode-{n}-{}", profile.name));
        let subscribers: Subscribers = Arc::new(Mutex::new(Vec::new()));
        let video_sink = appsink(&bin, "video")?;
        let subs = subscribers.clone();
        video_sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    fan_out_video(&subs, &sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        if profile.audio.is_some() {
            let subs = subscribers.clone();
            appsink(audio_bin.as_ref().unwrap_or(&bin), "audio")?.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        fan_out_audio(&subs, &sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        let counts = Arc::new(EncoderCounts {
            profile: profile.name.clone(),
            ..Default::default()
        });
        let count = |pad: Option<gst::Pad>, counter: fn(&EncoderCounts) -> &AtomicU64| {
            let counts = counts.clone();
            if let Some(pad) = pad {
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    counter(&counts).fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            }
        };
        count(bin.static_pad("sink"), |c| &c.frames_in);
        count(video_sink.static_pad("sink"), |c| &c.frames_out);
        let branch = Branch::attach(pipeline, tee, bin)?;
        let audio = match (audio_bin, program_audio) {
            (Some(b), Some(t)) => {
                b.set_property("name", format!("encode-audio-{n}-{}", profile.name));
                match Branch::attach(pipeline, &t, b) {
                    Ok(a) => Some((a, t)),
                    Err(e) => {
                        branch.detach(pipeline, tee);
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        Ok(Encoder {
            branch,
            audio,
            video_sink,
            subscribers,
            counts,
        })
    }

    /// Asks x264 for a keyframe now, so a newly started output need not wait a GOP.
    /// Sent from its own thread: the event waits for the encoder's stream lock, and the
    /// supervisor must never wait on a streaming thread.
    pub(super) fn request_keyframe(&self) {
        let sink = self.video_sink.clone();
        std::thread::spawn(move || {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            sink.send_event(event);
        });
    }
}

pub(super) fn appsink(bin: &gst::Bin, name: &str) -> Result<gst_app::AppSink, String> {
    bin.by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| format!("no appsink {name}"))
}

/// A sample's presentation time as running time: encoders shift their output segment
/// (x264enc starts at 1000 hours, so DTS can precede PTS), so raw timestamps of audio
/// and video are not comparable; running times are.
pub(super) fn running_time(
    sample: &gst::Sample,
    t: Option<gst::ClockTime>,
) -> Option<gst::ClockTime> {
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(t?)
}

/// The buffer with its timestamps as running time minus `offset`: every output's
/// timeline starts at zero from its first keyframe.
pub(super) fn rebased(sample: &gst::Sample, offset: gst::ClockTime) -> Option<gst::Buffer> {
    let buffer = sample.buffer()?;
    let pts = running_time(sample, buffer.pts())?.checked_sub(offset)?;
    let dts = running_time(sample, buffer.dts()).map(|d| d.saturating_sub(offset));
    let mut out = buffer.to_owned();
    let b = out.make_mut();
    b.set_pts(pts);
    b.set_dts(dts);
    Some(out)
}

pub(super) fn fan_out_video(subs: &Subscribers, sample: &gst::Sample) {
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps_owned()) else {
        return;
    };
    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    for s in subs.lock().iter_mut() {
        if !s.started {
            match (keyframe, running_time(sample, buffer.pts())) {
                (true, Some(pts)) => {
                    s.started = true;
                    s.offset = pts;
                }
                _ => continue,
            }
        }
        if s.video_caps.as_ref() != Some(&caps) {
            s.video.set_caps(Some(&caps));
            s.video_caps = Some(caps.clone());
        }
        if let Some(b) = rebased(sample, s.offset) {
            // A full appsrc drops its oldest buffer (leaky): this never blocks.
            let _ = s.video.push_buffer(b);
        }
    }
}

pub(super) fn fan_out_audio(subs: &Subscribers, sample: &gst::Sample) {
    let Some(caps) = sample.caps_owned() else {
        return;
    };
    for s in subs.lock().iter_mut().filter(|s| s.started) {
        let Some(audio) = &s.audio else { continue };
        if s.audio_caps.as_ref() != Some(&caps) {
            audio.set_caps(Some(&caps));
            s.audio_caps = Some(caps.clone());
        }
        if let Some(b) = rebased(sample, s.offset) {
            let _ = audio.push_buffer(b);
        }
    }
}
