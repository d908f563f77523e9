//! Live config reload: a debounced file watcher, and the [`Reloader`] that applies what
//! can change live (outputs, scenes, OSC, API access) and reports what waits for a
//! restart.

#[allow(unused_imports)]
use super::*;

/// Applies config edits while the show runs.
pub(super) struct Reloader {
    pub(super) applied: Mutex<Config>,
    pub(super) state: AppState,
    pub(super) src: gstcuecast::CuecastSrc,
    pub(super) osc: Arc<Mutex<Option<OscListener>>>,
}

/// The settings only a restart applies, as one value: the running show keeps them
/// through a reload, and a difference is reported as waiting for a restart.
#[derive(Debug, Clone, PartialEq)]
struct RestartOnly {
    video: crate::config::Video,
    api: (SocketAddr, Option<crate::config::Secret>),
    model: (cuecast_engine::engine::ModelSettings, PathBuf),
}

impl RestartOnly {
    fn of(c: &Config) -> Self {
        let s = &c.show;
        RestartOnly {
            video: c.video,
            api: (c.api_listen, c.api_token.clone()),
            // The element loads the model's settings, and the media folder, once, at
            // the start: compared whole.
            model: (s.settings.clone(), c.media.clone()),
        }
    }

    /// Puts these settings back into `c`.
    fn put_into(self, c: &mut Config) {
        let m = self.model;
        c.video = self.video;
        (c.api_listen, c.api_token) = self.api;
        (c.show.settings, c.media) = m;
    }

    /// What differs from `new`, in the words status and events use.
    fn differences(&self, new: &RestartOnly) -> Vec<String> {
        [
            ("video", self.video != new.video),
            ("api", self.api != new.api),
            ("model", self.model != new.model),
        ]
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(what, _)| what.to_owned())
        .collect()
    }
}

impl Reloader {
    pub(super) fn reload(&self) {
        let path = self.applied.lock().path.clone();
        let had_outputs = !self.applied.lock().outputs.is_empty();
        let result = edit_settled(&path)
            .and_then(|text| {
                let new = Config::load(&path).map_err(|e| e.to_string())?;
                if had_outputs && new.outputs.is_empty() && !names_outputs(&text) {
                    return Err(format!(
                        "{}: the edit has no outputs: write `outputs: []` to stop every output",
                        path.display()
                    ));
                }
                Ok(new)
            })
            .and_then(|new| {
                check_show(&self.state.show.inbox().context(), &new.show).map_err(|e| {
                    format!(
                        "{}: {e}",
                        new.show_path.as_deref().unwrap_or(&path).display()
                    )
                })?;
                Ok(new)
            });
        let new = match result {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!("config edit rejected, the show keeps its config: {e}");
                let mut c = self.state.config.lock();
                c.reloads_rejected += 1;
                c.last_error = Some(e.clone());
                self.state.events.send(Event::Config {
                    ok: false,
                    error: Some(e.clone()),
                    changed: None,
                    pending_restart: None,
                });
                return;
            }
        };
        let mut applied = self.applied.lock();
        if *applied == new {
            return;
        }
        let mut changes = Vec::new();
        if applied.outputs != new.outputs {
            self.state.outputs.apply(new.outputs.clone());
            changes.push("outputs");
        }
        let feed = |c: &Config| (c.show.video_input.clone(), c.show.video_fallback.clone());
        if (&applied.inputs, feed(&applied)) != (&new.inputs, feed(&new)) {
            self.state.inputs.apply(
                new.inputs.clone(),
                new.show.video_input.clone(),
                new.show.video_fallback.clone(),
            );
            changes.push("inputs");
        }
        if applied.audio != new.audio {
            if let Some(audio) = &self.state.audio {
                audio.set_mix(&applied.audio, &new.audio);
                let names = audio.names();
                self.state
                    .show
                    .inbox()
                    .update_context(|c| c.audio_sources = names);
            }
            changes.push("audio");
        }
        let (old_show, new_show) = (&applied.show, &new.show);
        if old_show.scenes != new_show.scenes {
            if let Err(e) = self.src.set_scenes(new_show.scenes.clone()) {
                tracing::warn!("scenes not applied: {e}");
            } else {
                *self.state.scenes.lock() = new_show.scenes.clone();
                changes.push("scenes");
            }
        }
        if old_show.rundown != new_show.rundown {
            self.state.rundown.lock().replace(new_show.rundown.clone());
            changes.push("rundown");
        }
        if (&old_show.osc_prefix, &old_show.osc_map) != (&new_show.osc_prefix, &new_show.osc_map)
            || applied.osc_listen != new.osc_listen
            || applied.osc_allow != new.osc_allow
        {
            let mut osc = self.osc.lock();
            osc.take();
            if let Some(addr) = new.osc_listen {
                match start_osc(addr, new.osc_allow.clone(), new_show, &self.state) {
                    Ok(l) => *osc = Some(l),
                    Err(e) => tracing::error!("OSC not restarted: {e:#}"),
                }
            }
            changes.push("osc");
        }
        let running = RestartOnly::of(&applied);
        let restart = running.differences(&RestartOnly::of(&new));
        if !restart.is_empty() {
            tracing::warn!(
                "config: {} change(s) apply at the next start",
                restart.join(", ")
            );
        }
        tracing::info!("config edit applied: {}", changes.join(", "));
        {
            let mut c = self.state.config.lock();
            c.reloads_applied += 1;
            c.last_error = None;
            c.pending_restart = restart.clone();
        }
        self.state.events.send(Event::Config {
            ok: true,
            error: None,
            changed: Some(changes.iter().map(|c| c.to_string()).collect()),
            pending_restart: Some(restart.clone()),
        });
        // What needs a restart stays as it runs; the rest is now the new config.
        let mut kept = new.clone();
        running.put_into(&mut kept);
        *applied = kept;
    }
}

/// Watches the folders of the config and show preset; any change there re-reads the
/// config (after a short settle, since editors write files in several steps). An
/// unchanged result changes nothing.
/// The config file's text once an edit has settled: the same size and time twice,
/// 100 ms apart (editors that truncate and then write pass through an empty file).
/// An empty file is refused.
pub(super) fn edit_settled(path: &Path) -> Result<String, String> {
    let stamp = || {
        std::fs::metadata(path)
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))
    };
    let mut last = stamp()?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = stamp()?;
        if now == last {
            break;
        }
        last = now;
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!(
            "{}: the file is empty (an editor may be part-way through saving it)",
            path.display()
        ));
    }
    Ok(text)
}

/// Whether a config's text has an `outputs` key of its own.
pub(super) fn names_outputs(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.get("outputs").cloned())
        .is_some()
}

pub(super) fn watch_config(
    config: &Config,
    reloader: Arc<Reloader>,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })
    .context("cannot watch the config")?;
    let mut dirs: Vec<PathBuf> = vec![config.path.clone()];
    dirs.extend(config.show_path.clone());
    let mut watched = Vec::new();
    for file in dirs {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        if !watched.contains(&dir) {
            watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
            watched.push(dir);
        }
    }
    std::thread::Builder::new()
        .name("cuecast-config".into())
        .spawn(move || debounce(&rx, SETTLE, SETTLE_AT_MOST, || reloader.reload()))?;
    Ok(watcher)
}

/// A quiet spell this long after a change means the edit is done: editors write a file
/// in several steps (a temporary file, a rename, a truncate and a write).
const SETTLE: Duration = Duration::from_millis(200);
/// Files that never stop changing still get a reload this often.
const SETTLE_AT_MOST: Duration = Duration::from_secs(2);

/// Calls `settled` once per burst of changes: after `quiet` without one, or `at_most`
/// after the burst began. Returns when the watcher is gone.
pub(super) fn debounce(
    rx: &std::sync::mpsc::Receiver<()>,
    quiet: Duration,
    at_most: Duration,
    mut settled: impl FnMut(),
) {
    use std::sync::mpsc::RecvTimeoutError;
    while rx.recv().is_ok() {
        let began = std::time::Instant::now();
        loop {
            let left = at_most.saturating_sub(began.elapsed());
            match rx.recv_timeout(quiet.min(left)) {
                Ok(()) if !left.is_zero() => continue,
                Ok(()) | Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    settled();
                    return;
                }
            }
        }
        settled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Runs the debouncer on its own thread; each call is reported with its time.
    fn debouncer(
        quiet: Duration,
        at_most: Duration,
    ) -> (mpsc::Sender<()>, mpsc::Receiver<Instant>) {
        let (tx, rx) = mpsc::channel();
        let (calls_tx, calls) = mpsc::channel();
        std::thread::spawn(move || {
            debounce(&rx, quiet, at_most, || {
                let _ = calls_tx.send(Instant::now());
            })
        });
        (tx, calls)
    }

    #[test]
    fn a_burst_of_changes_is_one_reload_after_the_quiet() {
        let (tx, calls) = debouncer(Duration::from_millis(150), Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..5 {
            tx.send(()).unwrap();
        }
        let first = calls
            .recv_timeout(Duration::from_secs(5))
            .expect("a reload");
        assert!(
            first - start >= Duration::from_millis(150),
            "no quiet spell waited for"
        );
        // The burst was one change: nothing more comes until the next.
        assert!(calls.recv_timeout(Duration::from_millis(400)).is_err());
        tx.send(()).unwrap();
        calls
            .recv_timeout(Duration::from_secs(5))
            .expect("a second reload");
        // The watcher gone, the debouncer ends without a call.
        drop(tx);
        assert!(matches!(
            calls.recv_timeout(Duration::from_secs(5)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn changes_that_never_stop_still_reload() {
        let (tx, calls) = debouncer(Duration::from_millis(300), Duration::from_millis(600));
        let feeder = std::thread::spawn(move || {
            // A change every 50 ms for 3 s: never quiet for 300 ms.
            for _ in 0..60 {
                if tx.send(()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        calls
            .recv_timeout(Duration::from_secs(2))
            .expect("a reload within at_most");
        calls
            .recv_timeout(Duration::from_secs(2))
            .expect("and another");
        feeder.join().unwrap();
    }

    #[test]
    fn restart_only_settings_are_reported_by_kind_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (path, show) = (
            dir.path().join("cuecast.yaml"),
            dir.path().join("show.yaml"),
        );
        std::fs::write(&show, "prompt: a\n").unwrap();
        std::fs::write(&path, "show: show.yaml\n").unwrap();
        let old = Config::load(&path).unwrap();
        std::fs::write(&show, "prompt: b\nseed: 9\n").unwrap();
        let video = "video: {width: 1280, height: 720, fps: 25}";
        std::fs::write(&path, format!("show: show.yaml\n{video}\n")).unwrap();
        let new = Config::load(&path).unwrap();
        let (was, now) = (RestartOnly::of(&old), RestartOnly::of(&new));
        assert_eq!(was.differences(&now), ["video", "model"]);
        assert!(was.differences(&was).is_empty());
        let mut kept = new.clone();
        was.clone().put_into(&mut kept);
        assert_eq!(RestartOnly::of(&kept), was);
        assert_eq!(kept.outputs, new.outputs);
    }
}
