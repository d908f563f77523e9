//! The show's log: `tracing` events on stderr, as text for a person (the default) or as
//! one JSON object per line for a log shipper (`cuecast serve --log-format json`).
//!
//! GStreamer's own debug log (what `GST_DEBUG` turns on) is bridged into the same
//! stream, under the target `gstreamer`, so that one log holds both, in one format.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::level_filters::LevelFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-01T06:00:00.000000Z  INFO recording complete: recordings/show-1.mkv`
    Human,
    /// `{"timestamp":"…","level":"INFO","fields":{"message":"recording complete: …"},"target":"cuecast::outputs"}`
    Json,
}

/// The least severe events written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl From<LogLevel> for LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
        }
    }
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether lines are JSON (the human-only banner is then a structured event instead).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Starts the log. Call once, before GStreamer is initialised; a second call changes
/// nothing.
pub fn init(format: LogFormat, level: LogLevel) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::from(level))
        .with_ansi(false);
    let set = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    if set.is_ok() {
        JSON.store(format == LogFormat::Json, Ordering::Relaxed);
        bridge_gstreamer();
    }
}

/// GStreamer's debug messages become `tracing` events (target `gstreamer`, with the
/// debug category and the object's name). Which are produced is still `GST_DEBUG`'s to
/// say; by default only errors.
fn bridge_gstreamer() {
    use gst::DebugLevel;
    gst::log::remove_default_log_function();
    gst::log::add_log_function(|category, level, file, _function, line, object, message| {
        let Some(text) = message.get() else { return };
        let object = object.map(|o| o.to_string()).unwrap_or_default();
        let category = category.name();
        let file = file.as_str();
        match level {
            DebugLevel::Error => {
                tracing::error!(target: "gstreamer", category, object, file, line, "{text}")
            }
            DebugLevel::Warning | DebugLevel::Fixme => {
                tracing::warn!(target: "gstreamer", category, object, file, line, "{text}")
            }
            DebugLevel::Info => {
                tracing::info!(target: "gstreamer", category, object, file, line, "{text}")
            }
            _ => tracing::debug!(target: "gstreamer", category, object, file, line, "{text}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GStreamer debug message arrives as a `tracing` event: captured here with a
    /// subscriber that records events.
    #[test]
    fn gstreamer_messages_become_events() {
        use parking_lot::Mutex;
        use std::sync::Arc;
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        gst::init().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            bridge_gstreamer();
            gst::log::set_active(true);
            let cat = gst::DebugCategory::new("cuecast-test", gst::DebugColorFlags::empty(), None);
            cat.set_threshold(gst::DebugLevel::Warning);
            gst::warning!(cat, "the disk is {} full", "97 %");
        });
        let text = String::from_utf8(lines.0.lock().clone()).unwrap();
        let line: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap();
        assert_eq!(line["level"], "WARN", "{text}");
        assert_eq!(line["target"], "gstreamer");
        assert_eq!(line["fields"]["category"], "cuecast-test");
        assert_eq!(line["fields"]["message"], "the disk is 97 % full");
    }
}
