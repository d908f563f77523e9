//! The `cuecastfilter` element's public type and registration; the behaviour is in `imp`.

use gst::glib;
use gst::prelude::*;

use crate::CuecastSrc;

mod imp;

glib::wrapper! {
    /// A live video-to-video element: the frames on its sink pad go into a model that
    /// takes video, and its source pad gives the model's frames at a constant rate.
    pub struct CuecastFilter(ObjectSubclass<imp::CuecastFilter>) @extends CuecastSrc, gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "cuecastfilter",
        gst::Rank::NONE,
        CuecastFilter::static_type(),
    )
}
