//! The show preset (`presets/shows/<name>.yaml`): the model (backend, device, package),
//! scenes, rundown and OSC map, checked against the cue language before the show starts.

#[allow(unused_imports)]
use super::*;

/// A show: the model, its scenes, the rundown and the OSC map.
#[derive(Debug, Clone, PartialEq)]
pub struct Show {
    pub name: String,
    pub backend: String,
    pub model: Option<PathBuf>,
    pub device: String,
    pub seed: u64,
    pub prompt: String,
    pub scenes: Vec<Scene>,
    pub rundown: Vec<RundownItem>,
    pub osc_prefix: String,
    /// libtorch threads for the model; `None`: the engine's default.
    pub model_threads: Option<u32>,
    pub on_failure: FailurePolicy,
    pub state_limit_mb: Option<u32>,
    /// OSC address (after the prefix) → a cue or a list of cues.
    pub osc_map: BTreeMap<String, Value>,
    /// The interpreter a python model runs in (its own venv's `python`).
    pub python: Option<PathBuf>,
    /// What the show draws while a python model's process restarts.
    pub fallback: Fallback,
    /// The image a model that takes one starts from (a file in the media folder).
    pub image: Option<String>,
    /// The longest wait between restarts of a python model's process, in seconds.
    pub restart_max_s: Option<f64>,
    /// Show frames between two of a slower python model's frames mix them.
    pub frame_blend: bool,
    /// Environment variables a python model's process gets beside the usual ones.
    pub model_env: Vec<String>,
    /// A python model may reach the network (one that fetches its weights).
    pub model_network: bool,
    /// Folders beyond its package a python model may read, or write (`PATH:rw`).
    pub model_folders: Vec<ModelFolder>,
}

impl Default for Show {
    fn default() -> Self {
        Show {
            name: "default".into(),
            backend: "procedural".into(),
            model: None,
            device: "auto".into(),
            seed: 0,
            prompt: "rolling green hills".into(),
            scenes: Vec::new(),
            rundown: Vec::new(),
            osc_prefix: "/cuecast".into(),
            model_threads: None,
            on_failure: FailurePolicy::default(),
            state_limit_mb: None,
            osc_map: BTreeMap::new(),
            python: None,
            fallback: Fallback::Hold,
            image: None,
            restart_max_s: None,
            frame_blend: false,
            model_env: Vec::new(),
            model_network: false,
            model_folders: Vec::new(),
        }
    }
}

/// One step of a rundown: a named group of cues fired together by GO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RundownItem {
    pub name: String,
    pub cues: Vec<Cue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShow {
    #[serde(default)]
    name: String,
    #[serde(default = "default_backend")]
    backend: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default = "default_device")]
    device: String,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_prompt")]
    prompt: String,
    #[serde(default)]
    scenes: Vec<Scene>,
    #[serde(default)]
    rundown: Vec<RawRundownItem>,
    #[serde(default)]
    osc: RawOscMap,
    /// libtorch threads for the model (absent: the engine's default).
    #[serde(default)]
    model_threads: Option<u32>,
    #[serde(default)]
    on_failure: FailurePolicy,
    /// The most the model's state may hold, in MB (absent: no limit).
    #[serde(default)]
    state_limit_mb: Option<u32>,
    #[serde(default)]
    python: Option<String>,
    #[serde(default)]
    fallback: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    restart_max_s: Option<f64>,
    #[serde(default)]
    frame_blend: bool,
    #[serde(default)]
    model_env: Vec<String>,
    #[serde(default)]
    model_network: bool,
    #[serde(default)]
    model_folders: Vec<String>,
}

pub(super) fn default_backend() -> String {
    "procedural".into()
}
pub(super) fn default_device() -> String {
    "auto".into()
}
pub(super) fn default_prompt() -> String {
    "rolling green hills".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRundownItem {
    name: String,
    cues: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOscMap {
    #[serde(default = "default_osc_prefix")]
    prefix: String,
    #[serde(default)]
    map: BTreeMap<String, Value>,
}

impl Default for RawOscMap {
    fn default() -> Self {
        RawOscMap {
            prefix: default_osc_prefix(),
            map: BTreeMap::new(),
        }
    }
}

pub(super) fn default_osc_prefix() -> String {
    "/cuecast".into()
}

// Each output type's own fields; `name`, `type`, `profile`, `enabled` and `reconnect`
// are common and taken out first.

impl Show {
    /// Reads and checks a show preset. Cues are checked for form here; against the
    /// model (param names and ranges) when the show starts.
    pub fn load(path: &Path) -> Result<Show, ConfigError> {
        let text = read(path)?;
        let raw: RawShow = serde_yaml::from_str(&text).map_err(|e| yaml_error(path, e))?;
        // What the element would refuse at start, refused here by name: `check-config`
        // and a config edit say so before anything starts.
        let backends = cuecast_engine::generator::backend_names();
        if !backends.contains(&raw.backend) {
            return Err(ConfigError::new(
                path,
                "backend".to_owned(),
                format!(
                    "unknown backend {:?}: expected one of {}",
                    raw.backend,
                    backends.join(", ")
                ),
            ));
        }
        if let Err(e) = raw.device.parse::<cuecast_engine::DeviceSpec>() {
            return Err(ConfigError::new(path, "device".to_owned(), e.to_string()));
        }
        let max_threads = cuecast_engine::engine::MAX_MODEL_THREADS as u32;
        if let Some(n) = raw.model_threads.filter(|n| !(1..=max_threads).contains(n)) {
            return Err(ConfigError::new(
                path,
                "model_threads".to_owned(),
                format!("{n} is not a thread count from 1 to {max_threads}"),
            ));
        }
        if !(1..=1_000_000).contains(&raw.on_failure.after) {
            return Err(ConfigError::new(
                path,
                "on_failure.after".to_owned(),
                format!(
                    "{} is not a count of failed steps from 1 to 1000000",
                    raw.on_failure.after
                ),
            ));
        }
        let fallback = match raw.fallback.as_deref() {
            None => Fallback::Hold,
            Some(f) => f
                .parse()
                .map_err(|e: String| ConfigError::new(path, "fallback".to_owned(), e))?,
        };
        if let Some(name) = raw
            .image
            .as_deref()
            .filter(|n| !cuecast_engine::cue::is_image_name(n))
        {
            return Err(ConfigError::new(
                path,
                "image".to_owned(),
                format!("{name:?} is not the name of a .png or .jpg file in the media folder"),
            ));
        }
        if let Some(s) = raw.restart_max_s.filter(|s| !(0.0..=3600.0).contains(s)) {
            return Err(ConfigError::new(
                path,
                "restart_max_s".to_owned(),
                format!("{s} is not a number of seconds from 0 to 3600"),
            ));
        }
        for (i, name) in raw.model_env.iter().enumerate() {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok || name.len() > 128 {
                return Err(ConfigError::new(
                    path,
                    format!("model_env[{i}]"),
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        if raw.model_folders.len() > 64 {
            return Err(ConfigError::new(
                path,
                "model_folders".to_owned(),
                format!("at most 64 folders, got {}", raw.model_folders.len()),
            ));
        }
        let model_folders = raw
            .model_folders
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (folder, mode) = match f.rsplit_once(':') {
                    Some((p, m @ ("rw" | "ro"))) => (p, Some(m)),
                    _ => (f.as_str(), None),
                };
                let folder = beside(path, folder);
                let spec = match mode {
                    Some(m) => format!("{}:{m}", folder.display()),
                    None => folder.display().to_string(),
                };
                spec.parse::<ModelFolder>()
                    .map_err(|e| ConfigError::new(path, format!("model_folders[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let model = raw.model.as_deref().map(|m| beside(path, m));
        if raw.backend == "python" {
            // The package is read now, so a wrong manifest field is refused by name
            // before anything starts.
            let dir = model.as_deref().ok_or_else(|| {
                ConfigError::new(
                    path,
                    "model".to_owned(),
                    "the python backend needs model: <package folder>",
                )
            })?;
            cuecast_engine::generator::package::Package::load(dir)
                .map_err(|e| ConfigError::new(path, "model".to_owned(), e.to_string()))?;
        }
        if raw.state_limit_mb == Some(0) {
            return Err(ConfigError::new(
                path,
                "state_limit_mb".to_owned(),
                "0 MB leaves no room for any state; leave it out for no limit",
            ));
        }
        let scene_names: Vec<&str> = raw.scenes.iter().map(|s| s.name.as_str()).collect();
        for (i, name) in scene_names.iter().enumerate() {
            if scene_names[..i].contains(name) {
                return Err(ConfigError::new(
                    path,
                    format!("scenes[{i}].name"),
                    format!("{name:?} is used by another scene"),
                ));
            }
        }
        let known_scene = |cue: &Cue, field: &str| -> Result<(), ConfigError> {
            if let cuecast_engine::CueKind::Scene { name, .. } = &cue.kind {
                if !scene_names.contains(&name.as_str()) {
                    return Err(ConfigError::new(
                        path,
                        field.to_owned(),
                        format!("unknown scene {name:?}"),
                    ));
                }
            }
            Ok(())
        };
        let mut rundown = Vec::new();
        for (i, item) in raw.rundown.into_iter().enumerate() {
            let cues = Cue::list_from_value(&item.cues).map_err(|e| {
                let e = e.within(&format!("rundown[{i}].cues"));
                ConfigError::new(path, e.field.clone(), e.message)
            })?;
            for (j, cue) in cues.iter().enumerate() {
                known_scene(cue, &format!("rundown[{i}].cues[{j}].name"))?;
            }
            rundown.push(RundownItem {
                name: item.name,
                cues,
            });
        }
        if !raw.osc.prefix.starts_with('/') || raw.osc.prefix.ends_with('/') {
            return Err(ConfigError::new(
                path,
                "osc.prefix".to_owned(),
                format!(
                    "{:?}: starts with / and does not end with one",
                    raw.osc.prefix
                ),
            ));
        }
        for (address, value) in &raw.osc.map {
            let field = format!("osc.map.{address}");
            if !address.starts_with('/') {
                return Err(ConfigError::new(
                    path,
                    field,
                    "an OSC address starts with /",
                ));
            }
            let cues = Cue::list_from_value(value).map_err(|e| {
                let e = e.within(&field);
                ConfigError::new(path, e.field.clone(), e.message)
            })?;
            for cue in &cues {
                known_scene(cue, &format!("{field}.name"))?;
            }
        }
        Ok(Show {
            name: if raw.name.is_empty() {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("show")
                    .to_owned()
            } else {
                raw.name
            },
            backend: raw.backend,
            model,
            device: raw.device,
            seed: raw.seed,
            prompt: raw.prompt,
            scenes: raw.scenes,
            rundown,
            osc_prefix: raw.osc.prefix,
            osc_map: raw.osc.map,
            model_threads: raw.model_threads,
            on_failure: raw.on_failure,
            state_limit_mb: raw.state_limit_mb,
            python: raw.python.map(|p| {
                // A bare name (python3) is looked up on PATH; a path is the show's.
                if p.contains('/') {
                    beside(path, &p)
                } else {
                    PathBuf::from(p)
                }
            }),
            fallback,
            image: raw.image,
            restart_max_s: raw.restart_max_s,
            frame_blend: raw.frame_blend,
            model_env: raw.model_env,
            model_network: raw.model_network,
            model_folders,
        })
    }
}
