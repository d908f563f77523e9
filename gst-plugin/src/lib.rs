//! `cuecastsrc`: a live GStreamer source that runs a generative world model, steered by
//! cues; and `cuecastfilter`, the same source with a sink pad, for models that restyle
//! live video.
//!
//! Built two ways: as the `gstcuecast` plugin (a cdylib for `gst-launch-1.0` and any
//! GStreamer application, found through `GST_PLUGIN_PATH`), and as an rlib the `cuecast`
//! daemon links and registers with [`register_static`]. The element knows nothing of
//! HTTP beyond starting `cuecast-http`'s server when `control-address` is set; the
//! model, cues and frames all come from `cuecast-engine`.

use gst::glib;

mod cuecastfilter;
mod cuecastsrc;

pub use cuecastfilter::CuecastFilter;
pub use cuecastsrc::{CuecastSrc, FailureActionProp};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    cuecastsrc::register(Some(plugin))?;
    cuecastfilter::register(Some(plugin))
}

gst::plugin_define!(
    cuecast,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    "cuecast",
    "cuecast",
    "https://example.invalid/cuecast"
);

/// Registers `cuecastsrc` in this process, without a plugin file. Call after
/// `gst::init()`; calling it again is harmless.
///
/// A program that links this crate (the daemon) must use this copy of the element: its
/// Rust type is this copy's. The plugin file GStreamer may also know (through
/// `GST_PLUGIN_PATH`, in a shell set up for `gst-launch-1.0`) holds another copy of the
/// same type, which, loaded, would register the same GType name a second time. So the
/// file's plugin is taken out of this process's registry (it is never loaded), and this
/// copy registered in its place.
pub fn register_static() -> Result<(), glib::BoolError> {
    let registry = gst::Registry::get();
    if let Some(file) = registry
        .find_plugin("cuecast")
        .filter(|p| p.filename().is_some())
    {
        registry.remove_plugin(&file);
    }
    if gst::ElementFactory::find("cuecastsrc").is_some()
        && gst::ElementFactory::find("cuecastfilter").is_some()
    {
        return Ok(());
    }
    plugin_register_static()
}
