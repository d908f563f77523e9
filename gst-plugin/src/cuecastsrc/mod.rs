//! The `cuecastsrc` element's public type and registration; the behaviour is in `imp`.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// A live video source that renders a world model, steered by cues.
    pub struct CuecastSrc(ObjectSubclass<imp::CuecastSrc>) @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "cuecastsrc",
        gst::Rank::NONE,
        CuecastSrc::static_type(),
    )
}
