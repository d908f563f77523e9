//! The daemon's configuration: `config/cuecast.yaml`, the show preset it names, and the
//! output profiles its outputs use.
//!
//! Everything is read and checked before anything runs, so a file that loads is a file
//! that can be applied: [`Config::load`] resolves presets, paths (relative to the file
//! that names them) and secrets (from environment variables), and every error names the
//! file and the field (`cuecast.yaml: outputs[1].url: ...`). The daemon keeps the last
//! good [`Config`] and applies a new one only once it has loaded whole.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use cuecast_engine::engine::FailurePolicy;
use cuecast_engine::{Cue, Scene};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a configuration cannot be used: the file, the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.display().to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A secret (stream key, passphrase, token): never printed, logged or serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The frame size and rate the show is made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Video {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for Video {
    fn default() -> Self {
        Video {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// An encoder profile: what one encode produces, shared by every output that names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
    pub video: VideoProfile,
    #[serde(default)]
    pub audio: Option<AudioProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoProfile {
    #[serde(default = "default_codec")]
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    #[serde(default = "default_keyframe_s")]
    pub keyframe_s: f64,
    /// x264's speed preset.
    #[serde(default = "default_preset")]
    pub preset: String,
    /// H.264 profile: baseline, main or high.
    #[serde(default = "default_h264_profile")]
    pub h264_profile: String,
}

/// AAC audio. Silence unless the show has an audio source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioProfile {
    #[serde(default = "default_audio_codec")]
    pub codec: String,
    #[serde(default = "default_audio_bitrate")]
    pub bitrate_kbps: u32,
    #[serde(default = "default_audio_rate")]
    pub rate: u32,
    #[serde(default = "default_audio_channels")]
    pub channels: u32,
}

impl Default for AudioProfile {
    fn default() -> Self {
        AudioProfile {
            codec: default_audio_codec(),
            bitrate_kbps: default_audio_bitrate(),
            rate: default_audio_rate(),
            channels: default_audio_channels(),
        }
    }
}

fn default_codec() -> String {
    "h264".into()
}
fn default_keyframe_s() -> f64 {
    2.0
}
fn default_preset() -> String {
    "veryfast".into()
}
fn default_h264_profile() -> String {
    "high".into()
}
fn default_audio_codec() -> String {
    "aac".into()
}
fn default_audio_bitrate() -> u32 {
    128
}
fn default_audio_rate() -> u32 {
    48000
}
fn default_audio_channels() -> u32 {
    2
}

const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

impl Profile {
    fn check(&self) -> Result<(), (String, String)> {
        let v = &self.video;
        let bad = |field: &str, message: String| Err((field.to_owned(), message));
        if v.codec != "h264" {
            return bad(
                "video.codec",
                format!("{:?}: only h264 is supported", v.codec),
            );
        }
        if !(16..=7680).contains(&v.width) || v.width % 2 != 0 {
            return bad(
                "video.width",
                format!("{}: must be even, 16..7680", v.width),
            );
        }
        if !(16..=4320).contains(&v.height) || v.height % 2 != 0 {
            return bad(
                "video.height",
                format!("{}: must be even, 16..4320", v.height),
            );
        }
        if !(1..=240).contains(&v.fps) {
            return bad("video.fps", format!("{}: must be 1..240", v.fps));
        }
        if !(100..=200_000).contains(&v.bitrate_kbps) {
            return bad(
                "video.bitrate_kbps",
                format!("{}: must be 100..200000", v.bitrate_kbps),
            );
        }
        if !(0.1..=20.0).contains(&v.keyframe_s) {
            return bad(
                "video.keyframe_s",
                format!("{}: must be 0.1..20 seconds", v.keyframe_s),
            );
        }
        if !X264_PRESETS.contains(&v.preset.as_str()) {
            return bad(
                "video.preset",
                format!(
                    "{:?}: expected one of {}",
                    v.preset,
                    X264_PRESETS.join(", ")
                ),
            );
        }
        if !["baseline", "main", "high"].contains(&v.h264_profile.as_str()) {
            return bad(
                "video.h264_profile",
                format!("{:?}: expected baseline, main or high", v.h264_profile),
            );
        }
        if let Some(a) = &self.audio {
            if a.codec != "aac" {
                return bad(
                    "audio.codec",
                    format!("{:?}: only aac is supported", a.codec),
                );
            }
            if ![44100, 48000].contains(&a.rate) {
                return bad("audio.rate", format!("{}: expected 44100 or 48000", a.rate));
            }
            if !(1..=2).contains(&a.channels) {
                return bad("audio.channels", format!("{}: expected 1 or 2", a.channels));
            }
            if !(32..=512).contains(&a.bitrate_kbps) {
                return bad(
                    "audio.bitrate_kbps",
                    format!("{}: must be 32..512", a.bitrate_kbps),
                );
            }
        }
        Ok(())
    }

    /// The same encode, whatever the profile is called: outputs share an encoder when
    /// their profiles encode alike.
    pub fn encode_key(&self) -> String {
        let mut p = self.clone();
        p.name.clear();
        serde_json::to_string(&p).unwrap_or_default()
    }
}

/// SRT connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtMode {
    /// The daemon waits for receivers (OBS, ffplay) to connect.
    Listener,
    /// The daemon connects to a receiver's listener.
    Caller,
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
            OutputKind::Srt { mode, address, .. } => format!(
                "srt://{address} ({})",
                match mode {
                    SrtMode::Listener => "listener",
                    SrtMode::Caller => "caller",
                }
            ),
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

fn default_first_delay() -> f64 {
    2.0
}
fn default_multiplier() -> f64 {
    1.5
}
fn default_max_delay() -> f64 {
    30.0
}
fn default_max_attempts() -> u32 {
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
        }
    }
}

/// One step of a rundown: a named group of cues fired together by GO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RundownItem {
    pub name: String,
    pub cues: Vec<Cue>,
}

/// The whole configuration, checked and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub video: Video,
    pub api_listen: SocketAddr,
    pub api_token: Option<Secret>,
    pub osc_listen: Option<SocketAddr>,
    pub show: Show,
    pub show_path: Option<PathBuf>,
    /// Where output profiles are found (also for outputs added over the API).
    pub presets: PathBuf,
    pub outputs: Vec<Output>,
    /// Where takes, checkpoints and export bundles are written.
    pub takes: PathBuf,
    pub checkpoints: PathBuf,
    pub exports: PathBuf,
    /// The folder record outputs added over the API write in (`recordings`, default
    /// `../recordings` beside the config).
    pub recordings: PathBuf,
    /// What `api.output_secrets` allows outputs added over the API to read.
    pub api_output_secrets: Vec<String>,
    /// `api.hosts` and `api.origins`.
    pub api_access: cuecast_control::Access,
    /// OSC senders accepted besides loopback.
    pub osc_allow: Vec<std::net::IpAddr>,
}

// --- the files as written -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    show: Option<String>,
    #[serde(default)]
    video: Video,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    osc: Option<RawOsc>,
    /// Folder holding `outputs/*.yaml` profiles.
    #[serde(default)]
    presets: Option<String>,
    #[serde(default)]
    takes: Option<String>,
    #[serde(default)]
    checkpoints: Option<String>,
    #[serde(default)]
    exports: Option<String>,
    /// Where outputs added over the API may record.
    #[serde(default)]
    recordings: Option<String>,
    #[serde(default)]
    outputs: Vec<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    /// Environment variables that outputs added over the API may name as `key_env` or
    /// `passphrase_env`; none unless listed.
    #[serde(default)]
    output_secrets: Vec<String>,
    /// Host names the API answers to besides localhost and IP addresses.
    #[serde(default)]
    hosts: Vec<String>,
    /// Web origins (`http://name:port`) whose pages may call the API besides its own.
    #[serde(default)]
    origins: Vec<String>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            token: None,
            token_env: None,
            output_secrets: Vec::new(),
            hosts: Vec::new(),
            origins: Vec::new(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:7070".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOsc {
    listen: String,
    /// Senders (IP addresses) accepted besides loopback.
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShow {
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
}

fn default_backend() -> String {
    "procedural".into()
}
fn default_device() -> String {
    "auto".into()
}
fn default_prompt() -> String {
    "rolling green hills".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRundownItem {
    name: String,
    cues: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOscMap {
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

fn default_osc_prefix() -> String {
    "/cuecast".into()
}

// Each output type's own fields; `name`, `type`, `profile`, `enabled` and `reconnect`
// are common and taken out first.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSrt {
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

fn default_srt_mode() -> SrtMode {
    SrtMode::Listener
}
fn default_srt_latency() -> u32 {
    120
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRtmp {
    url: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreview {
    #[serde(default = "default_preview_width")]
    width: u32,
    #[serde(default = "default_preview_fps")]
    fps: u32,
    #[serde(default = "default_preview_quality")]
    quality: u32,
}

fn default_preview_width() -> u32 {
    640
}
fn default_preview_fps() -> u32 {
    15
}
fn default_preview_quality() -> u32 {
    70
}

/// serde_yaml's message, which already says where (`outputs[1]: unknown field ...`).
/// A YAML error with its line and column but without the values it quotes: a file named
/// by mistake (`show: /etc/passwd`) must not have its contents shown in the status.
fn yaml_error(file: &Path, e: serde_yaml::Error) -> ConfigError {
    let mut message = unquote(&e.to_string());
    if let Some(at) = e.location().filter(|_| !message.contains(" line ")) {
        message += &format!(" at line {} column {}", at.line(), at.column());
    }
    ConfigError::new(file, None, message)
}

/// `text` with every double-quoted value replaced by `"…"` (names stay: serde quotes
/// them with backticks).
fn unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…");
            }
            inside = !inside;
            if !inside {
                out.push('"');
            }
        } else if !inside {
            out.push(c);
        }
    }
    out
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new(file, None, format!("cannot read: {e}")))
}

/// `rel` relative to the folder of `file` (absolute paths are kept).
fn beside(file: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        p.to_owned()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads a secret given either inline or by environment variable name.
fn secret(
    file: &Path,
    field: &str,
    inline: Option<String>,
    env: Option<String>,
    env_lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, env) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            file,
            field.to_owned(),
            format!("give {field} or {field}_env, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret(v))),
        (None, Some(var)) => match env_lookup(&var) {
            Some(v) if !v.is_empty() => Ok(Some(Secret(v))),
            _ => Err(ConfigError::new(
                file,
                format!("{field}_env"),
                format!("environment variable {var} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

fn socket_addr(file: &Path, field: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ConfigError::new(
                file,
                field.to_owned(),
                format!("{text:?} is not a host:port address"),
            )
        })
}

impl Config {
    /// Reads and checks `path`, the show preset and the profiles it names. Secrets come
    /// from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &|var| std::env::var(var).ok())
    }

    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let raw: RawConfig = if text.trim().is_empty() {
            serde_yaml::from_str("{}")
        } else {
            serde_yaml::from_str(&text)
        }
        .map_err(|e| yaml_error(path, e))?;
        let video = raw.video;
        if !(16..=7680).contains(&video.width)
            || !(16..=4320).contains(&video.height)
            || video.width % 2 != 0
            || video.height % 2 != 0
        {
            return Err(ConfigError::new(
                path,
                "video".to_owned(),
                format!(
                    "{}x{}: width and height must be even, up to 7680x4320",
                    video.width, video.height
                ),
            ));
        }
        if !(1..=240).contains(&video.fps) {
            return Err(ConfigError::new(
                path,
                "video.fps".to_owned(),
                format!("{}: must be 1..240", video.fps),
            ));
        }
        let api_listen = socket_addr(path, "api.listen", &raw.api.listen)?;
        let api_token = secret(path, "api.token", raw.api.token, raw.api.token_env, env)?;
        if !api_listen.ip().is_loopback() && api_token.is_none() {
            return Err(ConfigError::new(
                path,
                "api.listen".to_owned(),
                format!(
                    "{api_listen} is beyond loopback: set api.token_env (or api.token) so changes need a bearer token"
                ),
            ));
        }
        if let Some(t) = &api_token {
            let min = cuecast_control::MIN_TOKEN_CHARS;
            if !api_listen.ip().is_loopback() && t.expose().chars().count() < min {
                return Err(ConfigError::new(
                    path,
                    "api.token".to_owned(),
                    format!("{api_listen} is beyond loopback: the token must be at least {min} characters"),
                ));
            }
        }
        let osc_listen = raw
            .osc
            .as_ref()
            .map(|o| socket_addr(path, "osc.listen", &o.listen))
            .transpose()?;
        let mut osc_allow = Vec::new();
        for (i, a) in raw.osc.iter().flat_map(|o| &o.allow).enumerate() {
            osc_allow.push(
                a.parse::<std::net::IpAddr>().map_err(|_| {
                    ConfigError::new(path, format!("osc.allow[{i}]"), "an IP address")
                })?,
            );
        }
        if osc_listen.is_some_and(|a| !a.ip().is_loopback()) && osc_allow.is_empty() {
            return Err(ConfigError::new(
                path,
                "osc.listen".to_owned(),
                "beyond loopback, list the senders allowed in osc.allow (OSC has no authentication)",
            ));
        }
        let (show, show_path) = match &raw.show {
            Some(rel) => {
                let p = beside(path, rel);
                (Show::load(&p)?, Some(p))
            }
            None => (Show::default(), None),
        };
        let presets = beside(path, raw.presets.as_deref().unwrap_or("../presets"));
        let takes = beside(path, raw.takes.as_deref().unwrap_or("../takes"));
        let checkpoints = beside(path, raw.checkpoints.as_deref().unwrap_or("../checkpoints"));
        let exports = beside(path, raw.exports.as_deref().unwrap_or("../exports"));
        let recordings = beside(path, raw.recordings.as_deref().unwrap_or("../recordings"));
        if raw.outputs.len() > MAX_OUTPUTS {
            return Err(ConfigError::new(
                path,
                "outputs".to_owned(),
                format!("at most {MAX_OUTPUTS} outputs, got {}", raw.outputs.len()),
            ));
        }
        let mut outputs = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, value) in raw.outputs.into_iter().enumerate() {
            let o = output(path, &presets, i, value, video, env)?;
            if !names.insert(o.name.clone()) {
                return Err(ConfigError::new(
                    path,
                    format!("outputs[{i}].name"),
                    format!("{:?} is used by another output", o.name),
                ));
            }
            outputs.push(o);
        }
        Ok(Config {
            path: path.to_owned(),
            video,
            api_listen,
            api_token,
            osc_listen,
            show,
            show_path,
            presets,
            outputs,
            takes,
            checkpoints,
            exports,
            recordings,
            api_output_secrets: raw.api.output_secrets,
            api_access: cuecast_control::Access {
                hosts: raw.api.hosts,
                origins: raw.api.origins,
            },
            osc_allow,
        })
    }

    /// One line per part, for `check-config` and the start-up log. No secrets.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "show {:?}: {} world, {}x{} at {} fps, {} scenes, {} rundown steps",
            self.show.name,
            self.show.backend,
            self.video.width,
            self.video.height,
            self.video.fps,
            self.show.scenes.len(),
            self.show.rundown.len()
        )];
        lines.push(format!(
            "API on http://{}/api/v1 ({})",
            if self.api_listen.port() == 0 {
                format!("{}:<a free port>", self.api_listen.ip())
            } else {
                self.api_listen.to_string()
            },
            if self.api_token.is_some() {
                "token required for changes"
            } else {
                "loopback, no token"
            }
        ));
        if let Some(osc) = self.osc_listen {
            lines.push(format!("OSC on udp://{osc}{}", self.show.osc_prefix));
        }
        for o in &self.outputs {
            lines.push(format!(
                "output {:?}: {} → {}{}{}",
                o.name,
                o.kind.type_name(),
                o.kind.target(),
                o.profile
                    .as_ref()
                    .map(|p| format!(
                        " [{}x{}@{} {} kb/s{}]",
                        p.video.width,
                        p.video.height,
                        p.video.fps,
                        p.video.bitrate_kbps,
                        if p.audio.is_some() { " + AAC" } else { "" }
                    ))
                    .unwrap_or_default(),
                if o.enabled { "" } else { " (stopped)" }
            ));
        }
        lines
    }
}

/// The most outputs a show may have (each is an encoder and a network or file sink).
pub const MAX_OUTPUTS: usize = 64;
/// The longest output name.
pub const MAX_NAME_CHARS: usize = 64;

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
                    codec: default_codec(),
                    width: video.width,
                    height: video.height,
                    fps: video.fps,
                    bitrate_kbps: 8000,
                    keyframe_s: 2.0,
                    preset: default_preset(),
                    h264_profile: default_h264_profile(),
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

fn typed<T: DeserializeOwned>(
    file: &Path,
    at: &str,
    v: serde_yaml::Value,
) -> Result<T, ConfigError> {
    serde_yaml::from_value(v).map_err(|e| ConfigError::new(file, at.to_owned(), e.to_string()))
}

/// Loads `presets/outputs/<name>.yaml`.
pub fn load_profile(presets: &Path, name: &str) -> Result<Profile, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("{name:?} is not a profile name"));
    }
    let file = presets.join("outputs").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let known = list_profiles(presets);
        format!(
            "no profile {name:?} ({}: {e}); known: {}",
            file.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )
    })?;
    let mut p: Profile =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    p.check()
        .map_err(|(f, m)| format!("{}: {f}: {m}", file.display()))?;
    if p.name.is_empty() {
        p.name = name.to_owned();
    }
    Ok(p)
}

fn list_profiles(presets: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(presets.join("outputs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

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
            model: raw.model.map(|m| beside(path, &m)),
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("cuecast-config-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(d.join("presets/outputs")).unwrap();
            std::fs::write(
                d.join("presets/outputs/web-360p.yaml"),
                "video: {width: 640, height: 360, fps: 30, bitrate_kbps: 1000}\naudio: {}\n",
            )
            .unwrap();
            Dir(d)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn env(var: &str) -> Option<String> {
        (var == "KEY").then(|| "live_abc123".to_owned())
    }

    #[test]
    fn errors_name_line_and_column_but_never_quote_the_file() {
        let d = Dir::new("quote");
        d.write("passwd", "root:x:0:0:root:/root:/bin/bash\n");
        let path = d.write("cuecast.yaml", "show: passwd\n");
        let e = Config::load_with_env(&path, &env).unwrap_err().to_string();
        assert!(!e.contains("root:x"), "{e}");
        assert!(e.contains("passwd"), "{e}");
        let path = d.write(
            "bad.yaml",
            "presets: .\napi: {listen: \"secret value\", x: 1}\n",
        );
        let e = Config::load_with_env(&path, &env).unwrap_err().to_string();
        assert!(!e.contains("secret value"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(
            unquote(r#"invalid type: string "a b", expected `x`"#),
            r#"invalid type: string "…", expected `x`"#
        );
    }

    #[test]
    fn osc_beyond_loopback_needs_its_senders_listed() {
        let d = Dir::new("osc");
        let open = d.write("a.yaml", "osc: {listen: 0.0.0.0:9000}\n");
        let e = Config::load_with_env(&open, &env).unwrap_err().to_string();
        assert!(e.contains("osc.listen") && e.contains("osc.allow"), "{e}");
        let bad = d.write("b.yaml", "osc: {listen: 0.0.0.0:9000, allow: [desk]}\n");
        let e = Config::load_with_env(&bad, &env).unwrap_err().to_string();
        assert!(e.contains("osc.allow[0]"), "{e}");
        let listed = d.write(
            "c.yaml",
            "osc: {listen: 0.0.0.0:9000, allow: [192.168.1.40]}\n",
        );
        let c = Config::load_with_env(&listed, &env).unwrap();
        assert_eq!(
            c.osc_allow,
            vec!["192.168.1.40".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn the_api_needs_a_long_token_beyond_loopback_and_outputs_are_capped() {
        let d = Dir::new("limits");
        let short = d.write("a.yaml", "api: {listen: 0.0.0.0:7070, token: short}\n");
        let e = Config::load_with_env(&short, &env).unwrap_err().to_string();
        assert!(e.contains("api.token") && e.contains("16"), "{e}");
        let many: String = (0..65)
            .map(|i| format!("  - {{name: p{i}, type: preview}}\n"))
            .collect();
        let path = d.write("b.yaml", &format!("outputs:\n{many}"));
        let e = Config::load_with_env(&path, &env).unwrap_err().to_string();
        assert!(e.contains("at most 64 outputs"), "{e}");
        let long = d.write(
            "c.yaml",
            &format!(
                "outputs:\n  - {{name: {}, type: preview}}\n",
                "n".repeat(65)
            ),
        );
        let e = Config::load_with_env(&long, &env).unwrap_err().to_string();
        assert!(e.contains("outputs[0].name"), "{e}");
    }

    fn load(dir: &Dir, text: &str) -> Result<Config, ConfigError> {
        let p = dir.write("cuecast.yaml", text);
        Config::load_with_env(&p, &env)
    }

    #[test]
    fn a_full_config_resolves_presets_paths_and_secrets() {
        let d = Dir::new("full");
        d.write(
            "show.yaml",
            "name: demo\nscenes: [{name: dawn, prompt: snowy peaks}]\n\
             rundown: [{name: open, cues: [{type: scene, name: dawn}]}]\n\
             osc: {map: {/dawn: {type: scene, name: dawn}}}\n",
        );
        let c = load(
            &d,
            "show: show.yaml\npresets: presets\nvideo: {width: 640, height: 360, fps: 30}\n\
             osc: {listen: 127.0.0.1:9000}\noutputs:\n\
             - {name: yt, type: rtmp, url: rtmp://127.0.0.1/live/, key_env: KEY, profile: web-360p}\n\
             - {name: program, type: srt, address: 127.0.0.1:9710, profile: web-360p}\n\
             - {name: rec, type: record, path: \"rec/show-{time}.mkv\"}\n\
             - {name: preview, type: preview}\n",
        )
        .unwrap();
        assert_eq!(c.show.name, "demo");
        assert_eq!(c.show.rundown[0].cues.len(), 1);
        assert_eq!(c.outputs.len(), 4);
        match &c.outputs[0].kind {
            OutputKind::Rtmp { url, key } => {
                assert_eq!(url, "rtmp://127.0.0.1/live");
                assert_eq!(key.as_ref().unwrap().expose(), "live_abc123");
            }
            k => panic!("{k:?}"),
        }
        assert!(c.outputs[0].profile.as_ref().unwrap().audio.is_some());
        assert_eq!(c.outputs[1].profile.as_ref().unwrap().name, "web-360p");
        // The recording defaults to the show's size and sits beside the config.
        let rec = &c.outputs[2];
        assert_eq!(rec.profile.as_ref().unwrap().video.width, 640);
        assert_eq!(
            rec.kind,
            OutputKind::Record {
                path: d.0.join("rec/show-{time}.mkv")
            }
        );
        // Nothing a user sees carries the key.
        let shown = format!("{:?} {}", c, c.summary().join("\n"));
        assert!(!shown.contains("live_abc123"), "{shown}");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let d = Dir::new("errors");
        for (text, field, words) in [
            ("outputs: [{name: a, type: ftp}]", "outputs[0].type", "unknown output type"),
            ("outputs: [{type: srt}]", "outputs[0].name", "missing"),
            (
                "outputs: [{name: a, type: srt, address: 127.0.0.1:1, profile: nope}]",
                "outputs[0].profile",
                "no profile \"nope\"",
            ),
            (
                "presets: presets\noutputs: [{name: a, type: rtmp, url: http://x, profile: web-360p}]",
                "outputs[0].url",
                "rtmp://",
            ),
            (
                "presets: presets\noutputs: [{name: a, type: rtmp, url: rtmp://x/app, key_env: NOPE, profile: web-360p}]",
                "outputs[0].key_env",
                "NOPE is not set",
            ),
            (
                "outputs: [{name: a, type: record, path: x.avi}]",
                "outputs[0].path",
                ".mkv or .mp4",
            ),
            (
                "outputs: [{name: a, type: preview}, {name: a, type: preview}]",
                "outputs[1].name",
                "used by another",
            ),
            ("api: {listen: 0.0.0.0:7070}", "api.listen", "beyond loopback"),
            ("video: {width: 641, height: 360, fps: 30}", "video", "even"),
        ] {
            let e = load(&d, text).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.to_string().contains(words), "{text}: {e}");
            assert!(e.file.ends_with("cuecast.yaml"), "{e}");
        }
        // serde's own errors say where, too.
        let e = load(&d, "outputs: [{name: a, type: srt, address: 127.0.0.1:1, profile: {video: {width: 2}}, colour: red}]").unwrap_err();
        assert!(e.to_string().contains("outputs[0]"), "{e}");
        let e = load(&d, "vidoe: {}").unwrap_err();
        assert!(e.to_string().contains("unknown field `vidoe`"), "{e}");
    }

    #[test]
    fn show_presets_refuse_an_unknown_backend_a_device_and_bad_limits_by_name() {
        let d = Dir::new("show-model");
        for (text, field, words) in [
            (
                "backend: nope\n",
                "backend",
                "unknown backend \"nope\": expected one of",
            ),
            ("device: gpu\n", "device", "gpu"),
            ("device: cuda:x\n", "device", "cuda:x"),
            ("model_threads: 0\n", "model_threads", "from 1 to"),
            ("on_failure: {after: 0}\n", "on_failure.after", "from 1 to"),
            ("state_limit_mb: 0\n", "state_limit_mb", "no room"),
        ] {
            let e = Show::load(&d.write("s.yaml", text)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.to_string().contains(words), "{text}: {e}");
        }
        let e = Show::load(&d.write("s.yaml", "on_failure: {action: explode}\n")).unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
        let ok = Show::load(&d.write(
            "s.yaml",
            "device: cpu\nmodel_threads: 2\non_failure: {after: 5, action: hold}\nstate_limit_mb: 512\n",
        ))
        .unwrap();
        assert_eq!(
            (
                ok.model_threads,
                ok.on_failure.after,
                ok.on_failure.action,
                ok.state_limit_mb
            ),
            (
                Some(2),
                5,
                cuecast_engine::engine::FailureAction::Hold,
                Some(512)
            )
        );
    }

    #[test]
    fn show_presets_check_their_cues_and_scenes() {
        let d = Dir::new("show");
        let p = d.write(
            "s.yaml",
            "scenes: [{name: a}]\nrundown: [{name: x, cues: [{type: scene, name: b}]}]\n",
        );
        let e = Show::load(&p).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("rundown[0].cues[0].name"), "{e}");
        let p = d.write(
            "s.yaml",
            "rundown: [{name: x, cues: [{type: action, yaw: 4}]}]\n",
        );
        let e = Show::load(&p).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("rundown[0].cues[0].yaw"), "{e}");
    }

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap() {
        let r = Reconnect::default();
        let delays: Vec<f64> = (1..=10).map(|n| r.delay_s(n)).collect();
        assert_eq!(&delays[..3], &[2.0, 3.0, 4.5]);
        assert_eq!(delays[9], 30.0);
    }
}
