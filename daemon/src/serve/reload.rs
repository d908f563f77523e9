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

impl Reloader {
    pub(super) fn reload(&self) {
        let path = lock(&self.applied).path.clone();
        let had_outputs = !lock(&self.applied).outputs.is_empty();
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
                let mut c = lock(&self.state.config);
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
        let mut applied = lock(&self.applied);
        if *applied == new {
            return;
        }
        let mut changes = Vec::new();
        let mut restart = Vec::new();
        if applied.outputs != new.outputs {
            self.state.outputs.apply(new.outputs.clone());
            changes.push("outputs");
        }
        let (old_show, new_show) = (&applied.show, &new.show);
        if old_show.scenes != new_show.scenes {
            if let Err(e) = self.src.set_scenes(new_show.scenes.clone()) {
                tracing::warn!("scenes not applied: {e}");
            } else {
                *lock(&self.state.scenes) = new_show.scenes.clone();
                changes.push("scenes");
            }
        }
        if old_show.rundown != new_show.rundown {
            lock(&self.state.rundown).replace(new_show.rundown.clone());
            changes.push("rundown");
        }
        if (&old_show.osc_prefix, &old_show.osc_map) != (&new_show.osc_prefix, &new_show.osc_map)
            || applied.osc_listen != new.osc_listen
            || applied.osc_allow != new.osc_allow
        {
            let mut osc = lock(&self.osc);
            osc.take();
            if let Some(addr) = new.osc_listen {
                match start_osc(addr, new.osc_allow.clone(), new_show, &self.state) {
                    Ok(l) => *osc = Some(l),
                    Err(e) => tracing::error!("OSC not restarted: {e:#}"),
                }
            }
            changes.push("osc");
        }
        for (what, differs) in [
            ("video", applied.video != new.video),
            (
                "api",
                applied.api_listen != new.api_listen || applied.api_token != new.api_token,
            ),
            (
                "model",
                (
                    &old_show.backend,
                    &old_show.model,
                    &old_show.device,
                    old_show.seed,
                    &old_show.prompt,
                    old_show.model_threads,
                    (old_show.on_failure, old_show.state_limit_mb),
                ) != (
                    &new_show.backend,
                    &new_show.model,
                    &new_show.device,
                    new_show.seed,
                    &new_show.prompt,
                    new_show.model_threads,
                    (new_show.on_failure, new_show.state_limit_mb),
                ),
            ),
        ] {
            if differs {
                restart.push(what.to_owned());
            }
        }
        if !restart.is_empty() {
            tracing::warn!(
                "config: {} change(s) apply at the next start",
                restart.join(", ")
            );
        }
        tracing::info!("config edit applied: {}", changes.join(", "));
        {
            let mut c = lock(&self.state.config);
            c.reloads_applied += 1;
            c.last_error = None;
            c.pending_restart = restart.clone();
        }
        self.state.events.send(Event::Config {
            ok: true,
            error: None,
            changed: Some(changes.iter().map(|c| c.to_string()).collect()),
            pending_restart: Some(restart.iter().map(|c| c.to_string()).collect()),
        });
        // What needs a restart stays as it runs; the rest is now the new config.
        let mut kept = new.clone();
        kept.video = applied.video;
        kept.api_listen = applied.api_listen;
        kept.api_token = applied.api_token.clone();
        kept.show.backend = applied.show.backend.clone();
        kept.show.model = applied.show.model.clone();
        kept.show.device = applied.show.device.clone();
        kept.show.seed = applied.show.seed;
        kept.show.prompt = applied.show.prompt.clone();
        kept.show.model_threads = applied.show.model_threads;
        kept.show.on_failure = applied.show.on_failure;
        kept.show.state_limit_mb = applied.show.state_limit_mb;
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
        .spawn(move || {
            while rx.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                while rx.try_recv().is_ok() {}
                reloader.reload();
            }
        })?;
    Ok(watcher)
}
