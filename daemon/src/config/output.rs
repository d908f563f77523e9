//! Outputs as the config writes them (`srt`, `rtmp`, `record`, `preview`): each type's
//! own fields, checked whole, with secrets from the environment and paths beside the file.

#[allow(unused_imports)]
use super::*;

/// SRT connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SrtMode {
    /// The daemon waits for receivers (OBS, ffplay) to connect.
    Listener,
    /// The daemon connects to a receiver's listener.
    Caller,
}

impl SrtMode {
    /// As an SRT URI's `mode` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtMode::Listener => "listener",
            SrtMode::Caller => "caller",
        }
    }
}

/// Where an output sends its stream.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Srt {
        mode: SrtMode,
        /// host:port: bound (listener) or connected to (caller).
        address: String,
        latency_ms: u32,
        passphrase: Option<Secret>,
        streamid: Option<String>,
    },
    Rtmp {
        /// rtmp:// or rtmps:// application URL, without the key.
        url: String,
        key: Option<Secret>,
    },
    Record {
        /// May contain `{time}`, replaced when the file is opened.
        path: PathBuf,
    },
    Preview {
        width: u32,
        fps: u32,
        quality: u32,
    },
}

impl OutputKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputKind::Srt { .. } => "srt",
            OutputKind::Rtmp { .. } => "rtmp",
            OutputKind::Record { .. } => "record",
            OutputKind::Preview { .. } => "preview",
        }
    }

    /// Where it goes, fit to show: no key, no passphrase.
    pub fn target(&self) -> String {
        match self {
            OutputKind::Srt { mode, address, .. } => format!("srt://{address} ({})", mode.as_str()),
            OutputKind::Rtmp { url, key } => match key {
                Some(_) => format!("{url}/<key>"),
                None => url.clone(),
            },
            OutputKind::Record { path } => path.display().to_string(),
            OutputKind::Preview { .. } => "/api/v1/preview.mjpeg".into(),
        }
    }
}

/// How an output retries after a failure: OBS-like exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    #[serde(default = "default_first_delay")]
    pub first_delay_s: f64,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    #[serde(default = "default_max_delay")]
    pub max_delay_s: f64,
    /// Attempts before the output is `failed`; 0 retries for ever.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

pub(super) fn default_first_delay() -> f64 {
    2.0
}
pub(super) fn default_multiplier() -> f64 {
    1.5
}
pub(super) fn default_max_delay() -> f64 {
    30.0
}
pub(super) fn default_max_attempts() -> u32 {
    25
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            first_delay_s: default_first_delay(),
            multiplier: default_multiplier(),
            max_delay_s: default_max_delay(),
            max_attempts: default_max_attempts(),
        }
    }
}

impl Reconnect {
    /// The delay before retry `attempt` (1-based), before jitter.
    pub fn delay_s(&self, attempt: u32) -> f64 {
        let n = attempt.saturating_sub(1).min(64) as i32;
        (self.first_delay_s * self.multiplier.powi(n)).min(self.max_delay_s)
    }
}

/// One output, resolved: profile loaded, secrets read, paths absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub enabled: bool,
    pub kind: OutputKind,
    /// The encode it takes (none for preview).
    pub profile: Option<Profile>,
    pub reconnect: Reconnect,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSrt {
    #[serde(default = "default_srt_mode")]
    mode: SrtMode,
    address: String,
    #[serde(default = "default_srt_latency")]
    latency_ms: u32,
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    passphrase_env: Option<String>,
    #[serde(default)]
    streamid: Option<String>,
}

pub(super) fn default_srt_mode() -> SrtMode {
    SrtMode::Listener
}
pub(super) fn default_srt_latency() -> u32 {
    120
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRtmp {
    url: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_env: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreview {
    #[serde(default = "default_preview_width")]
    width: u32,
    #[serde(default = "default_preview_fps")]
    fps: u32,
    #[serde(default = "default_preview_quality")]
    quality: u32,
}

pub(super) fn default_preview_width() -> u32 {
    640
}
pub(super) fn default_preview_fps() -> u32 {
    15
}
pub(super) fn default_preview_quality() -> u32 {
    70
}

/// The most outputs a show may have (each is an encoder and a network or file sink).
pub const MAX_OUTPUTS: usize = 64;
/// The longest output name.
pub const MAX_NAME_CHARS: usize = 64;

/// The JSON Schema of one output as the config file and `POST /api/v1/outputs` take it:
/// the fields every output has, and one type's own, from the types [`output`] parses
/// them with (one `oneOf` branch per type).
pub fn output_schema(g: &mut SchemaGenerator) -> Value {
    let common = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
                 "pattern": "^[A-Za-z0-9_-]+$"},
        "enabled": {"type": "boolean", "default": true},
        "reconnect": g.subschema_for::<Reconnect>(),
        "profile": {"description": "a profile's name in presets/outputs, or one inline",
                    "anyOf": [{"type": "string"}, g.subschema_for::<Profile>()]},
    });
    let kinds = [
        ("srt", RawSrt::json_schema(g)),
        ("rtmp", RawRtmp::json_schema(g)),
        ("record", RawRecord::json_schema(g)),
        ("preview", RawPreview::json_schema(g)),
    ];
    let branches: Vec<Value> = kinds
        .into_iter()
        .map(|(ty, own)| {
            let own = own.to_value();
            let mut properties = common.as_object().cloned().unwrap_or_default();
            if ty == "preview" {
                properties.remove("profile");
            }
            properties.insert("type".into(), json!({"const": ty}));
            properties.extend(own["properties"].as_object().cloned().unwrap_or_default());
            let mut required = vec![json!("name"), json!("type")];
            required.extend(own["required"].as_array().cloned().unwrap_or_default());
            json!({"type": "object", "title": ty, "properties": properties,
                   "required": required, "additionalProperties": false})
        })
        .collect();
    json!({"oneOf": branches})
}

/// Parses one output from the config: common fields, then the type's own.
pub fn output(
    file: &Path,
    presets: &Path,
    i: usize,
    value: serde_yaml::Value,
    video: Video,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Output, ConfigError> {
    let at = |f: &str| format!("outputs[{i}].{f}");
    let serde_yaml::Value::Mapping(mut map) = value else {
        return Err(ConfigError::new(
            file,
            format!("outputs[{i}]"),
            "an output is a mapping with name and type",
        ));
    };
    let mut take = |key: &str| map.remove(key);
    let string = |v: Option<serde_yaml::Value>, f: &str| -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(serde_yaml::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConfigError::new(file, at(f), "must be a string")),
        }
    };
    let name = string(take("name"), "name")?
        .ok_or_else(|| ConfigError::new(file, at("name"), "missing: every output has a name"))?;
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ConfigError::new(
            file,
            at("name"),
            format!("1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::new(
            file,
            at("name"),
            format!("{name:?}: use letters, digits, - and _"),
        ));
    }
    let kind_name = string(take("type"), "type")?.ok_or_else(|| {
        ConfigError::new(file, at("type"), "missing: srt, rtmp, record or preview")
    })?;
    let enabled = match take("enabled") {
        None => true,
        Some(serde_yaml::Value::Bool(b)) => b,
        Some(_) => {
            return Err(ConfigError::new(
                file,
                at("enabled"),
                "must be true or false",
            ))
        }
    };
    let reconnect: Reconnect = match take("reconnect") {
        None => Reconnect::default(),
        Some(v) => typed(file, &at("reconnect"), v)?,
    };
    if !(0.1..=600.0).contains(&reconnect.first_delay_s)
        || !(1.0..=10.0).contains(&reconnect.multiplier)
        || reconnect.max_delay_s < reconnect.first_delay_s
    {
        return Err(ConfigError::new(
            file,
            at("reconnect"),
            "first_delay_s must be 0.1..600, multiplier 1..10, max_delay_s >= first_delay_s",
        ));
    }
    let profile = match take("profile") {
        None => None,
        Some(serde_yaml::Value::String(preset)) => Some(
            load_profile(presets, &preset)
                .map_err(|message| ConfigError::new(file, at("profile"), message))?,
        ),
        Some(v) => {
            let mut p: Profile = typed(file, &at("profile"), v)?;
            if p.name.is_empty() {
                p.name = format!("{name}-profile");
            }
            Some(p)
        }
    };
    if let Some(p) = &profile {
        p.check()
            .map_err(|(f, m)| ConfigError::new(file, at(&format!("profile.{f}")), m))?;
    }
    let rest = serde_yaml::Value::Mapping(map);
    let needs_profile = |p: Option<Profile>| {
        p.ok_or_else(|| {
            ConfigError::new(
                file,
                at("profile"),
                format!(
                    "missing: a {kind_name} output needs an encoder profile (a name from presets/outputs or inline)"
                ),
            )
        })
    };
    let (kind, profile) = match kind_name.as_str() {
        "srt" => {
            let r: RawSrt = typed(file, &format!("outputs[{i}]"), rest)?;
            socket_addr(file, &at("address"), &r.address)?;
            if !(20..=8000).contains(&r.latency_ms) {
                return Err(ConfigError::new(
                    file,
                    at("latency_ms"),
                    format!("{}: must be 20..8000", r.latency_ms),
                ));
            }
            let passphrase = secret(file, &at("passphrase"), r.passphrase, r.passphrase_env, env)?;
            if let Some(p) = &passphrase {
                if !(10..=79).contains(&p.0.len()) {
                    return Err(ConfigError::new(
                        file,
                        at("passphrase"),
                        "SRT passphrases are 10 to 79 characters",
                    ));
                }
            }
            let kind = OutputKind::Srt {
                mode: r.mode,
                address: r.address,
                latency_ms: r.latency_ms,
                passphrase,
                streamid: r.streamid,
            };
            (kind, Some(needs_profile(profile)?))
        }
        "rtmp" => {
            let r: RawRtmp = typed(file, &format!("outputs[{i}]"), rest)?;
            if !(r.url.starts_with("rtmp://") || r.url.starts_with("rtmps://")) {
                return Err(ConfigError::new(
                    file,
                    at("url"),
                    format!("{:?}: expected rtmp://host[:port]/app or rtmps://", r.url),
                ));
            }
            let key = secret(file, &at("key"), r.key, r.key_env, env)?;
            let mut p = needs_profile(profile)?;
            // Platforms refuse streams without audio: silence unless configured.
            p.audio.get_or_insert_with(AudioProfile::default);
            let url = r.url.trim_end_matches('/').to_owned();
            (OutputKind::Rtmp { url, key }, Some(p))
        }
        "record" => {
            let r: RawRecord = typed(file, &format!("outputs[{i}]"), rest)?;
            let path = beside(file, &r.path);
            match path.extension().and_then(|e| e.to_str()) {
                Some("mkv" | "mp4") => {}
                _ => {
                    return Err(ConfigError::new(
                        file,
                        at("path"),
                        format!("{:?}: a recording is .mkv or .mp4", r.path),
                    ))
                }
            }
            let p = profile.unwrap_or_else(|| Profile {
                name: "record".into(),
                video: VideoProfile {
                    codec: Default::default(),
                    width: video.width,
                    height: video.height,
                    fps: video.fps,
                    bitrate_kbps: 8000,
                    keyframe_s: 2.0,
                    preset: Default::default(),
                    h264_profile: Default::default(),
                },
                audio: None,
            });
            (OutputKind::Record { path }, Some(p))
        }
        "preview" => {
            let r: RawPreview = typed(file, &format!("outputs[{i}]"), rest)?;
            if profile.is_some() {
                return Err(ConfigError::new(
                    file,
                    at("profile"),
                    "a preview is MJPEG: it takes width, fps and quality, not a profile",
                ));
            }
            if !(16..=3840).contains(&r.width)
                || !(1..=60).contains(&r.fps)
                || !(1..=100).contains(&r.quality)
            {
                return Err(ConfigError::new(
                    file,
                    format!("outputs[{i}]"),
                    "preview width must be 16..3840, fps 1..60, quality 1..100",
                ));
            }
            (
                OutputKind::Preview {
                    width: r.width & !1,
                    fps: r.fps,
                    quality: r.quality,
                },
                None,
            )
        }
        other => {
            return Err(ConfigError::new(
                file,
                at("type"),
                format!("unknown output type {other:?}: expected srt, rtmp, record or preview"),
            ))
        }
    };
    Ok(Output {
        name,
        enabled,
        kind,
        profile,
        reconnect,
    })
}

pub(super) fn typed<T: DeserializeOwned>(
    file: &Path,
    at: &str,
    v: serde_yaml::Value,
) -> Result<T, ConfigError> {
    serde_yaml::from_value(v).map_err(|e| ConfigError::new(file, at.to_owned(), e.to_string()))
}
