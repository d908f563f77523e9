//! The `cuecastsrc` element's public type and registration; the behaviour is in `imp`.

use cuecast_engine::engine::{ModelSettings, SettingError};
use cuecast_engine::{CueError, Scene, ShowHandle};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;
mod settings;

pub(crate) use imp::src_template;

pub use settings::FailureActionProp;

glib::wrapper! {
    /// A live video source that renders a world model, steered by cues.
    pub struct CuecastSrc(ObjectSubclass<imp::CuecastSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// What an element built on `cuecastsrc` implements (`cuecastfilter`): its clocked
/// output, properties and control API are `cuecastsrc`'s.
pub(crate) trait CuecastSrcImpl:
    gst_base::subclass::prelude::PushSrcImpl + ObjectSubclass<Type: IsA<CuecastSrc>>
{
}

unsafe impl<T: CuecastSrcImpl> IsSubclassable<T> for CuecastSrc {}

impl CuecastSrc {
    /// The live video into the model, for a model that takes one (while started): what
    /// an application feeds frames from outside into.
    pub fn video_in(&self) -> Option<cuecast_engine::video_in::VideoIn> {
        self.imp().video_in()
    }

    /// The output's frame duration, once negotiated.
    pub(crate) fn frame_duration(&self) -> Option<gst::ClockTime> {
        self.imp().frame_duration()
    }

    /// Stamps each frame `shift` before its slot and adds it to the latency; false once
    /// the first frame is out (the stamps cannot move back then).
    pub(crate) fn set_shift(&self, shift: gst::ClockTime) -> bool {
        self.imp().set_shift(shift)
    }

    /// Where the sound a model makes with its frames goes: `sink` is called with each
    /// frame's sound as the frame goes out, and the running time the frame is stamped
    /// with (when its sound begins). The daemon mixes it into the program audio.
    pub fn set_sound_sink(
        &self,
        sink: impl Fn(gst::ClockTime, &cuecast_engine::engine::Sound) + Send + Sync + 'static,
    ) {
        self.imp().set_sound_sink(Some(std::sync::Arc::new(sink)));
    }

    /// The program's sound into the model, for a model that takes sound (while
    /// started): what an application feeds its program audio into.
    pub fn sound_in(&self) -> Option<cuecast_engine::sound::SoundIn> {
        self.imp().sound_in()
    }

    /// The running show, for an application that steers it from Rust (the `cuecast`
    /// daemon): cues, status, metrics. `None` until the element has started
    /// (READY → PAUSED) and after it stopped.
    pub fn show(&self) -> Option<ShowHandle> {
        self.imp().show()
    }

    /// Scenes that `scene` cues can call (a show preset's), beside any in the `cues`
    /// file. Takes effect at start, or at once while running; checked against the
    /// model when running, and nothing changes on error.
    pub fn set_scenes(&self, scenes: Vec<Scene>) -> Result<(), CueError> {
        self.imp().set_scenes(scenes)
    }

    /// The model's settings, whole and typed (what a show preset says), checked first:
    /// a wrong value is refused by its field and nothing changes. Takes effect at the
    /// next start, as the properties do.
    pub fn set_model_settings(&self, settings: ModelSettings) -> Result<(), SettingError> {
        self.imp().set_model_settings(settings)
    }

    /// The model's settings as the element holds them (from the properties or
    /// [`CuecastSrc::set_model_settings`]).
    pub fn model_settings(&self) -> ModelSettings {
        self.imp().model_settings()
    }
}

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "cuecastsrc",
        gst::Rank::NONE,
        CuecastSrc::static_type(),
    )
}
