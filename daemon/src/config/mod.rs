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

use cuecast_engine::{Cue, Scene};
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod input;
mod output;
mod profile;
mod show;

/// The media folder's default quota, in MB.
pub const DEFAULT_MEDIA_QUOTA_MB: u64 = 1024;

pub use input::*;
pub use output::*;
pub use profile::*;
pub use show::*;
// The parent reads the submodules' own (`pub(super)`) items too.
#[allow(unused_imports)]
use output::*;
#[allow(unused_imports)]
use profile::*;
#[allow(unused_imports)]
use show::*;

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
    /// Live video and sound from outside: cameras, feeds, files, devices, test patterns.
    pub inputs: Vec<Input>,
    /// The program audio: which inputs' sound is mixed, at what gain (`audio:`).
    pub audio: Vec<AudioMix>,
    /// Where takes, checkpoints and export bundles are written.
    pub takes: PathBuf,
    pub checkpoints: PathBuf,
    pub exports: PathBuf,
    /// The folder record outputs added over the API write in (`recordings`, default
    /// `../recordings` beside the config).
    pub recordings: PathBuf,
    /// The folder `image` cues, the start image and uploads use (`media`, default
    /// `../media` beside the config): nothing outside it is read for an image.
    pub media: PathBuf,
    /// The most the media folder may hold, in bytes (`media_quota_mb`, default 1024):
    /// an upload that would pass it is refused.
    pub media_quota_bytes: u64,
    /// What `api.output_secrets` allows outputs added over the API to read.
    pub api_output_secrets: Vec<String>,
    /// `api.hosts` and `api.origins`.
    pub api_access: cuecast_http::Access,
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
    /// Images for image cues and uploads.
    #[serde(default)]
    media: Option<String>,
    #[serde(default)]
    media_quota_mb: Option<u64>,
    #[serde(default)]
    outputs: Vec<serde_yaml::Value>,
    #[serde(default)]
    inputs: Vec<serde_yaml::Value>,
    #[serde(default)]
    audio: Option<serde_yaml::Value>,
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
            let min = cuecast_http::MIN_TOKEN_CHARS;
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
        if show.settings.model_network && api_token.is_none() {
            // With the network, the model reaches the API on loopback like any local
            // program: then changes must need the token, which the model never sees.
            return Err(ConfigError::new(
                path,
                "show.model_network".to_owned(),
                "a model given the network can reach this API on loopback: set api.token_env (or api.token) so changes need a bearer token",
            ));
        }
        let presets = beside(path, raw.presets.as_deref().unwrap_or("../presets"));
        let takes = beside(path, raw.takes.as_deref().unwrap_or("../takes"));
        let checkpoints = beside(path, raw.checkpoints.as_deref().unwrap_or("../checkpoints"));
        let exports = beside(path, raw.exports.as_deref().unwrap_or("../exports"));
        let recordings = beside(path, raw.recordings.as_deref().unwrap_or("../recordings"));
        let media = beside(path, raw.media.as_deref().unwrap_or("../media"));
        let media_quota_mb = raw.media_quota_mb.unwrap_or(DEFAULT_MEDIA_QUOTA_MB);
        if !(1..=1 << 20).contains(&media_quota_mb) {
            return Err(ConfigError::new(
                path,
                "media_quota_mb".to_owned(),
                format!("must be 1 to 1048576 MB, got {media_quota_mb}"),
            ));
        }
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
        if raw.inputs.len() > MAX_INPUTS {
            return Err(ConfigError::new(
                path,
                "inputs".to_owned(),
                format!("at most {MAX_INPUTS} inputs, got {}", raw.inputs.len()),
            ));
        }
        let mut inputs: Vec<Input> = Vec::new();
        for (i, value) in raw.inputs.into_iter().enumerate() {
            let input = input(path, &media, i, value, env)?;
            if inputs.iter().any(|o| o.name == input.name) {
                return Err(ConfigError::new(
                    path,
                    format!("inputs[{i}].name"),
                    format!("{:?} is used by another input", input.name),
                ));
            }
            inputs.push(input);
        }
        if let Some(name) = &show.video_input {
            if !inputs.iter().any(|i| &i.name == name) {
                let known: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(ConfigError::new(
                    show_path.as_deref().unwrap_or(path),
                    "video_input".to_owned(),
                    format!(
                        "{name:?} is not an input of {} (its inputs: {})",
                        path.display(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        let audio = audio_mix(path, raw.audio, &inputs, show.model_sound)?;
        Ok(Config {
            path: path.to_owned(),
            inputs,
            audio,
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
            media,
            media_quota_bytes: media_quota_mb << 20,
            api_output_secrets: raw.api.output_secrets,
            api_access: cuecast_http::Access {
                hosts: raw.api.hosts,
                origins: raw.api.origins,
            },
            osc_allow,
        })
    }

    /// One line per part, for `check-config` and the start-up log. No secrets.
    pub fn summary(&self) -> Vec<String> {
        let model = match &self.show.settings.model {
            Some(m) => format!(
                "{} model {}",
                self.show.settings.backend,
                crate::user_path(m)
            ),
            None => format!("{} world", self.show.settings.backend),
        };
        let mut lines = vec![format!(
            "show {:?}: {model}, {}x{} at {} fps, {} scenes, {} rundown steps",
            self.show.name,
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
                match &o.kind {
                    OutputKind::Record { path } => crate::tidy(path).display().to_string(),
                    other => other.target(),
                },
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
        for i in &self.inputs {
            lines.push(format!(
                "input {:?}: {} ← {}{}{}",
                i.name,
                i.kind.type_name(),
                i.kind.source(),
                if self.show.video_input.as_ref() == Some(&i.name) {
                    " (feeds the model)"
                } else {
                    ""
                },
                if i.enabled { "" } else { " (stopped)" }
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests;
