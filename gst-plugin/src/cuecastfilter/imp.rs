//! `cuecastfilter`: `cuecastsrc` with a sink pad whose frames go into the model.
//!
//! Why a source with a sink pad, not a transform: the output must keep its rate
//! whatever the model does. A transform makes a buffer when one comes in, so a slow or
//! failed step would stall or queue the stream; here the input only feeds the model's
//! video input (`cuecast_engine::video_in`: the newest frames one step takes, older
//! ones dropped and counted), and the output is `cuecastsrc`'s clocked loop, which
//! repeats the last frame (counted) when a step is late. Every property, the control
//! API, cue files, stats and bus messages are `cuecastsrc`'s.
//!
//! Timing. Each output frame is stamped with the time of the input it shows, as a
//! filter's output should be: its slot less the upstream latency and the model's lag
//! (`latency_frames` of its own frames: how long after an input its restyled frame is
//! due, the step included), plus the frame duration its slot already counts. The
//! latency query answers upstream's latency plus that lag (at least a frame). The
//! output's rate is the input's (taken from the first caps; later changes of rate are
//! not followed), or the model's when no input comes within ten seconds.
//!
//! The input's EOS ends the output; a flush drops the frames waiting for the model.
//! The filter is always live: restyling a file offline, every frame, is a replay's
//! work, not a live element's.

use parking_lot::{Condvar, Mutex};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cuecast_engine::video_in::{PixelLayout, VideoIn, VideoInStats};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use crate::cuecastsrc::{src_template, CuecastSrcImpl};
use crate::CuecastSrc;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "cuecastfilter",
        gst::DebugColorFlags::empty(),
        Some("cuecast video-to-video filter"),
    )
});

/// The longest the output waits for the first input frame before it starts (at the
/// model's rate if no caps came).
const FIRST_INPUT_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Input {
    info: Option<gst_video::VideoInfo>,
    video: Option<VideoIn>,
    eos: bool,
    flushing: bool,
    /// The first frame was asked for (its stamps are fixed from then).
    started: bool,
    last_warning: Option<Instant>,
}

pub struct CuecastFilter {
    sinkpad: gst::Pad,
    input: Mutex<Input>,
    input_came: Condvar,
}

#[glib::object_subclass]
impl ObjectSubclass for CuecastFilter {
    const NAME: &'static str = "GstCuecastFilter";
    type Type = super::CuecastFilter;
    type ParentType = CuecastSrc;

    fn with_class(klass: &Self::Class) -> Self {
        let template = klass.pad_template("sink").expect("a sink template");
        let sinkpad = gst::Pad::builder_from_template(&template)
            .chain_function(|pad, parent, buffer| {
                CuecastFilter::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |f| f.chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                CuecastFilter::catch_panic_pad_function(
                    parent,
                    || false,
                    |f| f.sink_event(pad, event),
                )
            })
            .build();
        CuecastFilter {
            sinkpad,
            input: Mutex::default(),
            input_came: Condvar::new(),
        }
    }
}

impl ObjectImpl for CuecastFilter {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            [
                ("input-received", "Input frames received"),
                ("input-used", "Input frames the model took"),
                (
                    "input-dropped",
                    "Input frames dropped unseen: the model was slower than its input, or a flush",
                ),
                (
                    "input-repeated",
                    "Input frames given to the model again because no newer one had come",
                ),
            ]
            .into_iter()
            .map(|(name, blurb)| {
                glib::ParamSpecUInt64::builder(name)
                    .blurb(blurb)
                    .read_only()
                    .build()
            })
            .collect()
        });
        PROPS.as_ref()
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.stats();
        match pspec.name() {
            "input-received" => s.received,
            "input-used" => s.used,
            "input-dropped" => s.dropped,
            _ => s.repeated,
        }
        .to_value()
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj()
            .add_pad(&self.sinkpad)
            .expect("a new element takes its sink pad");
    }
}

impl GstObjectImpl for CuecastFilter {}

impl ElementImpl for CuecastFilter {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "cuecast video-to-video filter",
                "Filter/Effect/Video",
                "Live video restyled by a generative model that takes video (a python model whose \
                 manifest declares inputs.video), steered by cues; the output keeps its rate, \
                 input frames a slow model cannot take are dropped and counted",
                "cuecast",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw")
                .field(
                    "format",
                    gst::List::new(["RGB", "BGR", "RGBx", "RGBA", "BGRx", "BGRA"]),
                )
                .field("width", gst::IntRange::new(1, 7680))
                .field("height", gst::IntRange::new(1, 4320))
                .build();
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .unwrap();
            vec![src_template(), sink]
        });
        TEMPLATES.as_ref()
    }
}

impl CuecastFilter {
    fn src(&self) -> CuecastSrc {
        self.obj().clone().upcast()
    }

    fn stats(&self) -> VideoInStats {
        self.input
            .lock()
            .video
            .as_ref()
            .map(VideoIn::stats)
            .unwrap_or_default()
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (video, info) = {
            let input = self.input.lock();
            if input.eos {
                return Err(gst::FlowError::Eos);
            }
            (input.video.clone(), input.info.clone())
        };
        let Some(video) = video else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(info) = info else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("a buffer before caps"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let layout = match info.format() {
            gst_video::VideoFormat::Rgb => PixelLayout::Rgb,
            gst_video::VideoFormat::Bgr => PixelLayout::Bgr,
            gst_video::VideoFormat::Rgbx | gst_video::VideoFormat::Rgba => PixelLayout::Rgbx,
            gst_video::VideoFormat::Bgrx | gst_video::VideoFormat::Bgra => PixelLayout::Bgrx,
            _ => return Err(gst::FlowError::NotNegotiated),
        };
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
            .map_err(|_| gst::FlowError::Error)?;
        let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        let pushed = video.push_raw(
            data,
            info.width() as usize,
            info.height() as usize,
            frame.plane_stride()[0] as usize,
            layout,
        );
        self.input_came.notify_all();
        if let Err(e) = pushed {
            // One bad frame is dropped, not the stream: told at most once a second.
            let mut input = self.input.lock();
            let now = Instant::now();
            if input
                .last_warning
                .is_none_or(|t| now.duration_since(t).as_secs() >= 1)
            {
                input.last_warning = Some(now);
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decode,
                    ("input frame dropped: {e}")
                );
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, _pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let Ok(info) = gst_video::VideoInfo::from_caps(c.caps()) else {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("input caps are not raw video: {}", c.caps())
                    );
                    return false;
                };
                self.input.lock().info = Some(info);
                self.input_came.notify_all();
                true
            }
            gst::EventView::Eos(_) => {
                self.input.lock().eos = true;
                true
            }
            gst::EventView::FlushStop(_) => {
                let mut input = self.input.lock();
                input.eos = false;
                if let Some(v) = &input.video {
                    v.flush();
                }
                true
            }
            // The output is this element's own stream: nothing from upstream goes on.
            _ => true,
        }
    }

    /// The input's frame rate, once its caps came.
    fn input_fps(&self) -> Option<gst::Fraction> {
        let input = self.input.lock();
        input
            .info
            .as_ref()
            .map(|i| i.fps())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
    }

    /// Upstream's latency plus the model's lag, less the frame the output's slot counts.
    fn shift(&self) -> Option<gst::ClockTime> {
        let d = self.src().frame_duration()?;
        let info = self.src().show()?.info().clone();
        let lag_ns =
            u64::from(info.chunking.latency_frames) * 1_000_000_000 * u64::from(info.fps.den)
                / u64::from(info.fps.num.max(1));
        let mut q = gst::query::Latency::new();
        let upstream = if self.sinkpad.peer_query(&mut q) {
            q.result().1
        } else {
            gst::ClockTime::ZERO
        };
        Some((upstream + gst::ClockTime::from_nseconds(lag_ns)).saturating_sub(d))
    }
}

impl BaseSrcImpl for CuecastFilter {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.parent_start()?;
        let src = self.src();
        let Some(video) = src.video_in() else {
            let name = src
                .show()
                .map(|s| s.info().name.clone())
                .unwrap_or_default();
            let _ = self.parent_stop();
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "cuecastfilter runs a model that takes video (inputs.video in its cuecast-model.yaml); \
                     {name} takes none: use cuecastsrc"
                )
            ));
        };
        *self.input.lock() = Input {
            video: Some(video),
            ..Input::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        {
            let mut input = self.input.lock();
            input.flushing = true;
            input.info = None;
        }
        self.input_came.notify_all();
        self.parent_stop()
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        // The output's rate is the input's, and its first frame is made from the first
        // input frame: wait for it (a while, not for ever).
        let until = Instant::now() + FIRST_INPUT_WAIT;
        let mut input = self.input.lock();
        let ready = |i: &Input| {
            i.flushing
                || i.info.is_some() && i.video.as_ref().is_some_and(|v| v.stats().received > 0)
        };
        while !ready(&input) {
            if self.input_came.wait_until(&mut input, until).timed_out() {
                gst::warning!(
                    CAT,
                    imp = self,
                    "no input within {} s: the output starts at the model's rate",
                    FIRST_INPUT_WAIT.as_secs()
                );
                break;
            }
        }
        drop(input);
        self.parent_negotiate()
    }

    fn fixate(&self, mut caps: gst::Caps) -> gst::Caps {
        if let Some(fps) = self.input_fps() {
            caps.truncate();
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.fixate_field_nearest_fraction("framerate", fps);
            }
        }
        self.parent_fixate(caps)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(_) = query.view_mut() {
            if let Some(shift) = self.shift() {
                if !self.src().set_shift(shift) {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "latency changed after the first frame: kept"
                    );
                }
            }
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.input.lock().flushing = true;
        self.input_came.notify_all();
        self.parent_unlock()
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.input.lock().flushing = false;
        self.parent_unlock_stop()
    }
}

impl PushSrcImpl for CuecastFilter {
    fn create(&self, buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        let first = {
            let mut input = self.input.lock();
            if input.eos {
                return Err(gst::FlowError::Eos);
            }
            !std::mem::replace(&mut input.started, true)
        };
        // Before the first frame: its stamp is its input's time from the start.
        if first {
            if let Some(shift) = self.shift() {
                self.src().set_shift(shift);
            }
        }
        PushSrcImplExt::parent_create(self, buffer)
    }
}

impl CuecastSrcImpl for CuecastFilter {}
