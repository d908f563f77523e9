//! Output profiles (`presets/outputs/<name>.yaml`): the encode an output uses, checked
//! before anything runs so that a bad profile never reaches GStreamer.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn default_codec() -> String {
    "h264".into()
}
pub(super) fn default_keyframe_s() -> f64 {
    2.0
}
pub(super) fn default_preset() -> String {
    "veryfast".into()
}
pub(super) fn default_h264_profile() -> String {
    "high".into()
}
pub(super) fn default_audio_codec() -> String {
    "aac".into()
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

pub(super) const X264_PRESETS: &[&str] = &[
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
    pub(super) fn check(&self) -> Result<(), (String, String)> {
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
