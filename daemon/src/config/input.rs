//! Inputs as the config writes them (`inputs:`): live video from outside the show, each
//! type with its own fields, checked whole, secrets from the environment. A file input
//! names a file in the media folder, nothing else; a device input a V4L2 device node.

#[allow(unused_imports)]
use super::*;

/// The most inputs a show may have (each is a decoding pipeline).
pub const MAX_INPUTS: usize = 16;

/// One input, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub name: String,
    pub enabled: bool,
    pub kind: InputKind,
}

/// Where an input's video comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    Srt {
        mode: SrtMode,
        /// host:port: bound (listener) or connected to (caller).
        address: String,
        latency_ms: u32,
        passphrase: Option<Secret>,
        streamid: Option<String>,
    },
    /// An RTMP stream pulled from a server (rtmp:// or rtmps://, the key in the URL).
    Rtmp { url: Secret },
    /// A file in the media folder, played at its rate, looped or once.
    File { path: PathBuf, looped: bool },
    /// A V4L2 capture device (`/dev/videoN`).
    V4l2 { device: PathBuf },
    /// GStreamer's test pattern (`smpte`, `ball`, ...), and a tone when `tone_hz` is
    /// set (what a show's sound is checked with).
    Test {
        pattern: String,
        tone_hz: Option<f64>,
    },
    /// An ALSA capture device (`hw:1`, `default`): sound only.
    Alsa { device: String },
    /// A PulseAudio (or PipeWire) source by name; `None`: the default. Sound only.
    Pulse { device: Option<String> },
}

impl InputKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            InputKind::Srt { .. } => "srt",
            InputKind::Rtmp { .. } => "rtmp",
            InputKind::File { .. } => "file",
            InputKind::V4l2 { .. } => "v4l2",
            InputKind::Test { .. } => "test",
            InputKind::Alsa { .. } => "alsa",
            InputKind::Pulse { .. } => "pulse",
        }
    }

    /// Whether it can carry sound (a file or stream may turn out to have none).
    pub fn has_sound(&self) -> bool {
        !matches!(
            self,
            InputKind::Test { tone_hz: None, .. } | InputKind::V4l2 { .. }
        )
    }

    /// Whether it carries pictures.
    pub fn has_video(&self) -> bool {
        !matches!(self, InputKind::Alsa { .. } | InputKind::Pulse { .. })
    }

    /// Where it comes from, fit to show: no passphrase, no RTMP path (it holds the key).
    pub fn source(&self) -> String {
        match self {
            InputKind::Srt { mode, address, .. } => format!("srt://{address} ({})", mode.as_str()),
            InputKind::Rtmp { url } => {
                // The scheme and host only: no user or password, no path (the key).
                let u = url.expose();
                let (scheme, rest) = u.split_once("://").unwrap_or(("rtmp", u));
                let authority = rest.split('/').next().unwrap_or_default();
                let host = authority.rsplit('@').next().unwrap_or_default();
                format!("{scheme}://{host}/<stream>")
            }
            InputKind::File { path, looped } => format!(
                "{}{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                if *looped { " (looped)" } else { "" }
            ),
            InputKind::V4l2 { device } => device.display().to_string(),
            InputKind::Test { pattern, tone_hz } => match tone_hz {
                Some(hz) => format!("test pattern {pattern}, tone {hz} Hz"),
                None => format!("test pattern {pattern}"),
            },
            InputKind::Alsa { device } => format!("alsa {device}"),
            InputKind::Pulse { device } => {
                format!("pulse {}", device.as_deref().unwrap_or("(default)"))
            }
        }
    }

    /// The field a failure of this input is about, for its error messages.
    pub fn field(&self) -> &'static str {
        match self {
            InputKind::Srt { .. } => "address",
            InputKind::Rtmp { .. } => "url",
            InputKind::File { .. } => "file",
            InputKind::V4l2 { .. } => "device",
            InputKind::Test { .. } => "pattern",
            InputKind::Alsa { .. } | InputKind::Pulse { .. } => "device",
        }
    }
}

/// The most sources the program audio may mix.
pub const MAX_AUDIO_SOURCES: usize = 16;

/// One source of the program audio: an input's sound, or the model's own (named
/// `model`), at a gain.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioMix {
    /// The input whose sound it is (`model` for the model's own).
    #[serde(default)]
    pub input: String,
    /// The model's own sound (a model whose manifest has `audio.out`).
    #[serde(default)]
    pub model: bool,
    #[serde(default)]
    pub gain_db: f64,
    #[serde(default)]
    pub muted: bool,
}

/// Reads the program audio's mix (`audio:`), each source an input of `inputs`.
pub fn audio_mix(
    file: &Path,
    value: Option<serde_yaml::Value>,
    inputs: &[Input],
    model_sound: bool,
) -> Result<Vec<AudioMix>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut mix: Vec<AudioMix> = serde_yaml::from_value(value)
        .map_err(|e| ConfigError::new(file, "audio".to_owned(), unquote(&e.to_string())))?;
    for (i, m) in mix.iter_mut().enumerate() {
        match (m.model, m.input.as_str()) {
            (true, "") => m.input = crate::audio::MODEL.into(),
            (true, _) => {
                return Err(ConfigError::new(
                    file,
                    format!("audio[{i}]"),
                    "give input or model: true, not both",
                ))
            }
            (false, "") => {
                return Err(ConfigError::new(
                    file,
                    format!("audio[{i}].input"),
                    "missing: an input's name (or model: true for the model's own sound)",
                ))
            }
            (false, crate::audio::MODEL) => {
                return Err(ConfigError::new(
                    file,
                    format!("audio[{i}].input"),
                    "\"model\" is the model's own sound: write model: true (and name the input otherwise)",
                ))
            }
            _ => {}
        }
        if m.model && !model_sound {
            return Err(ConfigError::new(
                file,
                format!("audio[{i}].model"),
                "the show's model makes no sound (a python model whose manifest has audio.out does)",
            ));
        }
    }
    if mix.len() > MAX_AUDIO_SOURCES {
        return Err(ConfigError::new(
            file,
            "audio".to_owned(),
            format!("at most {MAX_AUDIO_SOURCES} sources, got {}", mix.len()),
        ));
    }
    let (lo, hi) = cuecast_engine::cue::AUDIO_GAIN_DB;
    for (i, m) in mix.iter().enumerate() {
        if m.model {
            if mix[..i].iter().any(|o| o.model) {
                return Err(ConfigError::new(
                    file,
                    format!("audio[{i}].model"),
                    "the model is mixed twice",
                ));
            }
            continue;
        }
        let Some(input) = inputs.iter().find(|x| x.name == m.input) else {
            return Err(ConfigError::new(
                file,
                format!("audio[{i}].input"),
                format!("{:?} is not an input", m.input),
            ));
        };
        if !input.kind.has_sound() {
            return Err(ConfigError::new(
                file,
                format!("audio[{i}].input"),
                format!(
                    "{:?} has no sound: a test input makes a tone only with tone_hz",
                    m.input
                ),
            ));
        }
        if mix[..i].iter().any(|o| o.input == m.input) {
            return Err(ConfigError::new(
                file,
                format!("audio[{i}].input"),
                format!("{:?} is mixed twice", m.input),
            ));
        }
        if !(lo..=hi).contains(&m.gain_db) {
            return Err(ConfigError::new(
                file,
                format!("audio[{i}].gain_db"),
                format!("must be {lo} to {hi} dB, got {}", m.gain_db),
            ));
        }
    }
    Ok(mix)
}

/// The test patterns an input may name (`videotestsrc`'s, the useful ones).
pub const TEST_PATTERNS: [&str; 8] = [
    "smpte", "ball", "snow", "black", "white", "red", "gradient", "circular",
];

/// An input's own fields, by its `type`, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum RawInputKind {
    Srt {
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
    },
    Rtmp {
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        url_env: Option<String>,
    },
    File {
        /// A file in the media folder.
        file: String,
        #[serde(default = "yes", rename = "loop")]
        looped: bool,
    },
    V4l2 {
        #[serde(default = "default_device")]
        device: String,
    },
    Test {
        #[serde(default = "default_pattern")]
        pattern: String,
        #[serde(default)]
        tone_hz: Option<f64>,
    },
    Alsa {
        device: String,
    },
    Pulse {
        #[serde(default)]
        device: Option<String>,
    },
}

fn yes() -> bool {
    true
}
fn default_device() -> String {
    "/dev/video0".into()
}
fn default_pattern() -> String {
    "smpte".into()
}

/// Parses one input from the config: its name and `enabled`, then the type's own.
pub fn input(
    file: &Path,
    media: &Path,
    i: usize,
    value: serde_yaml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Input, ConfigError> {
    let at = |f: &str| format!("inputs[{i}].{f}");
    let serde_yaml::Value::Mapping(mut map) = value else {
        return Err(ConfigError::new(
            file,
            format!("inputs[{i}]"),
            "an input is a mapping with name and type",
        ));
    };
    let name = match map.remove("name") {
        Some(serde_yaml::Value::String(s)) => s,
        Some(_) => return Err(ConfigError::new(file, at("name"), "must be a string")),
        None => {
            return Err(ConfigError::new(
                file,
                at("name"),
                "missing: every input has a name",
            ))
        }
    };
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ConfigError::new(
            file,
            at("name"),
            format!("{name:?}: 1 to {MAX_NAME_CHARS} letters, digits, - and _"),
        ));
    }
    let at = |f: &str| format!("inputs.{name}.{f}");
    let enabled = match map.remove("enabled") {
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
    if !map.contains_key("type") {
        return Err(ConfigError::new(
            file,
            at("type"),
            "missing: srt, rtmp, file, v4l2 or test",
        ));
    }
    let raw: RawInputKind = serde_yaml::from_value(serde_yaml::Value::Mapping(map))
        .map_err(|e| ConfigError::new(file, format!("inputs.{name}"), unquote(&e.to_string())))?;
    let kind = match raw {
        RawInputKind::Srt {
            mode,
            address,
            latency_ms,
            passphrase,
            passphrase_env,
            streamid,
        } => {
            socket_addr(file, &at("address"), &address)?;
            if !(20..=8000).contains(&latency_ms) {
                return Err(ConfigError::new(
                    file,
                    at("latency_ms"),
                    format!("must be 20 to 8000 ms, got {latency_ms}"),
                ));
            }
            let passphrase = secret(file, &at("passphrase"), passphrase, passphrase_env, env)?;
            if passphrase
                .as_ref()
                .is_some_and(|p| !(10..=79).contains(&p.expose().len()))
            {
                return Err(ConfigError::new(
                    file,
                    at("passphrase"),
                    "SRT passphrases are 10 to 79 characters",
                ));
            }
            if streamid.as_ref().is_some_and(|s| s.len() > 512) {
                return Err(ConfigError::new(file, at("streamid"), "at most 512 bytes"));
            }
            InputKind::Srt {
                mode,
                address,
                latency_ms,
                passphrase,
                streamid,
            }
        }
        RawInputKind::Rtmp { url, url_env } => {
            let url = secret(file, &at("url"), url, url_env, env)?.ok_or_else(|| {
                ConfigError::new(file, at("url"), "missing: the stream's rtmp:// URL")
            })?;
            let u = url.expose();
            if !(u.starts_with("rtmp://") || u.starts_with("rtmps://")) || u.len() > 2048 {
                return Err(ConfigError::new(
                    file,
                    at("url"),
                    "an rtmp:// or rtmps:// URL (with the stream's path), at most 2048 bytes",
                ));
            }
            InputKind::Rtmp { url }
        }
        RawInputKind::File { file: f, looped } => {
            if cuecast_engine::files::check_name(&f).is_err() {
                return Err(ConfigError::new(
                    file,
                    at("file"),
                    format!(
                        "{:?}: a file directly in the media folder (letters, digits, ., _ and -)",
                        f.chars().take(80).collect::<String>()
                    ),
                ));
            }
            InputKind::File {
                path: media.join(f),
                looped,
            }
        }
        RawInputKind::V4l2 { device } => {
            let ok = device.strip_prefix("/dev/video").is_some_and(|n| {
                !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err(ConfigError::new(
                    file,
                    at("device"),
                    format!("{device:?}: a V4L2 device such as /dev/video0"),
                ));
            }
            InputKind::V4l2 {
                device: device.into(),
            }
        }
        RawInputKind::Test { pattern, tone_hz } => {
            if !TEST_PATTERNS.contains(&pattern.as_str()) {
                return Err(ConfigError::new(
                    file,
                    at("pattern"),
                    format!("{pattern:?}: one of {}", TEST_PATTERNS.join(", ")),
                ));
            }
            if tone_hz.is_some_and(|hz| !(20.0..=20_000.0).contains(&hz)) {
                return Err(ConfigError::new(
                    file,
                    at("tone_hz"),
                    "must be 20 to 20000 Hz",
                ));
            }
            InputKind::Test { pattern, tone_hz }
        }
        RawInputKind::Alsa { device } => {
            // A device name, not a file: `hw:1,0`, `plughw:CARD=USB`, `default`.
            let ok = !device.is_empty()
                && device.len() <= 64
                && device
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":,=_-.".contains(c))
                && !device.contains('/');
            if !ok {
                return Err(ConfigError::new(
                    file,
                    at("device"),
                    format!("{device:?}: an ALSA device name such as hw:1 or default"),
                ));
            }
            InputKind::Alsa { device }
        }
        RawInputKind::Pulse { device } => {
            if device.as_ref().is_some_and(|d| {
                d.is_empty() || d.len() > 256 || d.chars().any(|c| c.is_control() || c == '/')
            }) {
                return Err(ConfigError::new(
                    file,
                    at("device"),
                    "a PulseAudio source name (pactl list short sources)",
                ));
            }
            InputKind::Pulse { device }
        }
    };
    Ok(Input {
        name,
        enabled,
        kind,
    })
}
