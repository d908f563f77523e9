//! Output profiles (`presets/outputs/<name>.yaml`): the encode an output uses, checked
//! before anything runs so that a bad profile never reaches GStreamer.

#[allow(unused_imports)]
use super::*;

/// An encoder profile: what one encode produces, shared by every output that names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
    pub video: VideoProfile,
    #[serde(default)]
    pub audio: Option<AudioProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoProfile {
    #[serde(default)]
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    #[serde(default = "default_keyframe_s")]
    pub keyframe_s: f64,
    /// x264's speed preset.
    #[serde(default)]
    pub preset: X264Preset,
    /// H.264 profile: baseline, main or high.
    #[serde(default)]
    pub h264_profile: H264Profile,
}

/// Reads and writes a choice as its lowercase name, the word GStreamer's elements take.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// The video codec: H.264 is what every platform and peer takes.
    VideoCodec { #[default] H264 => "h264" }
);
choice!(
    /// x264's speed preset: faster presets cost less CPU for more bits.
    X264Preset {
        Ultrafast => "ultrafast",
        Superfast => "superfast",
        #[default]
        Veryfast => "veryfast",
        Faster => "faster",
        Fast => "fast",
        Medium => "medium",
        Slow => "slow",
        Slower => "slower",
        Veryslow => "veryslow",
    }
);
choice!(
    /// The H.264 profile players are told to expect.
    H264Profile { Baseline => "baseline", Main => "main", #[default] High => "high" }
);
choice!(
    /// The audio codec.
    AudioCodec { #[default] Aac => "aac" }
);

/// AAC audio. Silence unless the show has an audio source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioProfile {
    #[serde(default)]
    pub codec: AudioCodec,
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
            codec: AudioCodec::Aac,
            bitrate_kbps: default_audio_bitrate(),
            rate: default_audio_rate(),
            channels: default_audio_channels(),
        }
    }
}

pub(super) fn default_keyframe_s() -> f64 {
    2.0
}
pub(super) fn default_audio_bitrate() -> u32 {
    128
}
pub(super) fn default_audio_rate() -> u32 {
    48000
}
pub(super) fn default_audio_channels() -> u32 {
    2
}

impl Profile {
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        let v = &self.video;
        let bad = |field: &str, message: String| Err((field.to_owned(), message));
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
        if let Some(a) = &self.audio {
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
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    // A wrong value is named by its field (`video.preset`) with what it may be.
    let mut p: Profile = serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{}: {}: {}", file.display(), e.path(), e.inner()))?;
    p.check()
        .map_err(|(f, m)| format!("{}: {f}: {m}", file.display()))?;
    if p.name.is_empty() {
        p.name = name.to_owned();
    }
    Ok(p)
}

pub(super) fn list_profiles(presets: &Path) -> Vec<String> {
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
