//! The show preset (`presets/shows/<name>.yaml`): the model (backend, device, package),
//! scenes, rundown and OSC map, checked against the cue language before the show starts.

#[allow(unused_imports)]
use super::*;

use cuecast_engine::engine::ModelSettings;

/// A show: the model, its scenes, the rundown and the OSC map.
#[derive(Debug, Clone, PartialEq)]
pub struct Show {
    pub name: String,
    /// The model and how it runs: the keys of [`ModelSettings`], at the top level of
    /// the preset (`backend:`, `model:`, `device:`, ...), paths resolved beside it.
    pub settings: ModelSettings,
    pub scenes: Vec<Scene>,
    pub rundown: Vec<RundownItem>,
    pub osc_prefix: String,
    /// OSC address (after the prefix) → a cue or a list of cues.
    pub osc_map: BTreeMap<String, Value>,
    /// The input whose video feeds a model that takes video (`video_input`).
    pub video_input: Option<String>,
    /// What the model is given while that input is down (`video_fallback`).
    pub video_fallback: VideoFallback,
    /// The model makes sound with its frames (its manifest's `audio.out`).
    pub model_sound: bool,
}

impl Default for Show {
    fn default() -> Self {
        Show {
            name: "default".into(),
            settings: ModelSettings::default(),
            scenes: Vec::new(),
            rundown: Vec::new(),
            osc_prefix: "/cuecast".into(),
            osc_map: BTreeMap::new(),
            video_input: None,
            video_fallback: VideoFallback::Hold,
            model_sound: false,
        }
    }
}

/// One step of a rundown: a named group of cues fired together by GO.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RundownItem {
    pub name: String,
    #[schemars(schema_with = "cue_list")]
    pub cues: Vec<Cue>,
}

fn cue_list(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let cue = cuecast_engine::schema::cue_ref(generator);
    schemars::json_schema!({"type": "array", "items": cue})
}

/// What a preset says beside the model's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShow {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scenes: Vec<Scene>,
    #[serde(default)]
    rundown: Vec<RawRundownItem>,
    #[serde(default)]
    osc: RawOscMap,
    #[serde(default)]
    video_input: Option<String>,
    #[serde(default)]
    video_fallback: Option<String>,
}

/// What a model that takes video is given while its input is down.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoFallback {
    /// The input's last frame, again and again.
    #[default]
    Hold,
    /// Black frames.
    Black,
    /// A picture of the media folder (PNG or JPEG).
    Still(String),
}

/// The keys of [`ModelSettings`] (a preset's model settings are at its top level, beside
/// its own keys): what its serialized default holds, so the list cannot drift from the
/// type.
fn model_keys() -> Vec<String> {
    match serde_yaml::to_value(ModelSettings::default()) {
        Ok(serde_yaml::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
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
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| yaml_error(path, e))?;
        let mut all =
            match value {
                serde_yaml::Value::Mapping(m) => m,
                serde_yaml::Value::Null => serde_yaml::Mapping::new(),
                _ => return Err(ConfigError::new(
                    path,
                    None,
                    "a show preset is a mapping of settings (name, backend, model, scenes, ...)",
                )),
            };
        // The model's folders beside the preset, as its other paths are.
        if let Some(serde_yaml::Value::Sequence(folders)) = all.get_mut("model_folders") {
            for f in folders.iter_mut() {
                if let Some(spec) = f.as_str() {
                    let (folder, mode) = match spec.rsplit_once(':') {
                        Some((p, m @ ("rw" | "ro"))) => (p, Some(m)),
                        _ => (spec, None),
                    };
                    let folder = beside(path, folder).display().to_string();
                    *f = serde_yaml::Value::String(match mode {
                        Some(m) => format!("{folder}:{m}"),
                        None => folder,
                    });
                }
            }
        }
        let keys = model_keys();
        let (model, own): (serde_yaml::Mapping, serde_yaml::Mapping) = all
            .into_iter()
            .partition(|(k, _)| k.as_str().is_some_and(|k| keys.iter().any(|m| m == k)));
        let by_path = |e: serde_path_to_error::Error<serde_yaml::Error>| {
            let field = e.path().to_string();
            ConfigError::new(
                path,
                (field != ".").then_some(field),
                e.into_inner().to_string(),
            )
        };
        let mut settings: ModelSettings =
            serde_path_to_error::deserialize(serde_yaml::Value::Mapping(model)).map_err(by_path)?;
        let raw: RawShow =
            serde_path_to_error::deserialize(serde_yaml::Value::Mapping(own)).map_err(by_path)?;
        settings.model = settings.model.map(|m| beside(path, &m.to_string_lossy()));
        settings.python = settings.python.map(|p| {
            // A bare name (python3) is looked up on PATH; a path is the show's.
            let p = p.to_string_lossy().into_owned();
            if p.contains('/') {
                beside(path, &p)
            } else {
                PathBuf::from(p)
            }
        });
        // What the element would refuse at start, refused here by name: `check-config`
        // and a config edit say so before anything starts.
        settings
            .check()
            .map_err(|e| ConfigError::new(path, e.field, e.message))?;
        let (mut takes_video, mut model_sound) = (false, false);
        // A contract 2 package is read now, so a wrong manifest field (or a runtime that
        // is not the backend's) is refused by name before anything starts.
        let package = settings
            .package()
            .map_err(|e| ConfigError::new(path, "model".to_owned(), e.to_string()))?;
        if let Some(package) = package {
            takes_video = package.info.inputs.video.is_some();
            model_sound = package.info.audio.is_some();
        }
        let video_fallback = match raw.video_fallback.as_deref() {
            None | Some("hold") => VideoFallback::Hold,
            Some("black") => VideoFallback::Black,
            Some(s) => match s.strip_prefix("still:") {
                Some(name) if cuecast_engine::cue::is_image_name(name) => {
                    VideoFallback::Still(name.to_owned())
                }
                _ => {
                    return Err(ConfigError::new(
                        path,
                        "video_fallback".to_owned(),
                        format!(
                            "{:?}: hold, black, or still:NAME (a .png or .jpg in the media folder)",
                            s.chars().take(80).collect::<String>()
                        ),
                    ))
                }
            },
        };
        if let (Some(name), false) = (&raw.video_input, takes_video) {
            return Err(ConfigError::new(
                path,
                "video_input".to_owned(),
                format!("{name:?}: the model takes no video (a python model whose manifest has inputs.video does)"),
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
            settings,
            scenes: raw.scenes,
            rundown,
            osc_prefix: raw.osc.prefix,
            osc_map: raw.osc.map,
            video_input: raw.video_input,
            video_fallback,
            model_sound,
        })
    }
}
