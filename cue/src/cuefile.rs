//! Cue files: a show's cues on a schedule, and the scenes they can call, in YAML.
//!
//! ```yaml
//! scenes:                       # optional
//!   - name: dawn
//!     prompt: snowy mountains at dawn
//!     params: {time_of_day: 6.5}
//! cues:
//!   - {type: action, forward: 1, at: {in_s: 1}}
//!   - {type: prompt, text: desert dunes, transition_s: 3, at: {timecode: "00:00:05:00"}}
//!   - {type: scene, name: dawn, transition: fade, at: {frame: 300}}
//! ```
//!
//! A bare list of cues is a cue file too. Every cue is checked as it is read, and an
//! error names the file and the cue (`show.yaml: cues[3].forward: must be in [-1, 1]`).
//! Cues without `at` apply when the file starts playing; `in_s` counts from then.

use std::path::Path;

use serde_json::Value;

use crate::cue::{Cue, CueError};
use crate::world::Scene;

/// Why a cue file could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CueFileError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is read but is not a valid cue file: `message` says where.
    #[error("{path}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CueFile {
    pub scenes: Vec<Scene>,
    pub cues: Vec<Cue>,
}

impl CueFile {
    /// Reads and checks a cue file.
    pub fn load(path: &Path) -> Result<CueFile, CueFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| CueFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| CueFileError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses cue file text; the error says where in the file.
    pub fn parse(text: &str) -> Result<CueFile, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let (scenes, cues) = match doc {
            Value::Array(_) => (None, doc),
            Value::Object(mut map) => {
                let scenes = map.remove("scenes");
                let cues = map.remove("cues").unwrap_or(Value::Array(Vec::new()));
                if let Some(key) = map.keys().next() {
                    return Err(format!(
                        "{key}: unknown key (a cue file has scenes and cues)"
                    ));
                }
                (scenes, cues)
            }
            Value::Null => (None, Value::Array(Vec::new())),
            _ => return Err("expected a list of cues, or a mapping with scenes and cues".into()),
        };
        let scenes: Vec<Scene> = match scenes {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("scenes: {e}"))?,
        };
        for (i, s) in scenes.iter().enumerate() {
            if scenes[..i].iter().any(|o| o.name == s.name) {
                return Err(format!("scenes[{i}].name: {:?} is used twice", s.name));
            }
        }
        let items = match cues {
            Value::Array(items) => items,
            _ => return Err("cues: expected a list".into()),
        };
        let cues = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Cue::from_value(v)
                    .map_err(|e: CueError| e.within(&format!("cues[{i}]")).to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CueFile { scenes, cues })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cue::{At, CueKind};

    #[test]
    fn reads_scenes_and_scheduled_cues() {
        let f = CueFile::parse(
            "scenes:\n  - name: dawn\n    prompt: snowy mountains at dawn\n    params: {time_of_day: 6.5}\n\
             cues:\n  - {type: action, forward: 1, at: {in_s: 1}}\n  - {type: scene, name: dawn, at: {frame: 300}}\n",
        )
        .unwrap();
        assert_eq!(f.scenes[0].params["time_of_day"], 6.5);
        assert_eq!(f.cues.len(), 2);
        assert_eq!(f.cues[0].at, Some(At::InS(1.0)));
        assert!(matches!(f.cues[1].kind, CueKind::Scene { .. }));
    }

    #[test]
    fn a_bare_list_is_a_cue_file() {
        let f =
            CueFile::parse("- {type: freeze, at: {frame: 3}}\n- {type: resume, at: {frame: 9}}\n")
                .unwrap();
        assert_eq!(f.cues.len(), 2);
        assert!(f.scenes.is_empty());
    }

    #[test]
    fn errors_name_the_cue_and_field() {
        let e = CueFile::parse("cues:\n  - {type: freeze}\n  - {type: action, forward: 3}\n")
            .unwrap_err();
        assert!(e.starts_with("cues[1].forward:"), "{e}");
        let e = CueFile::parse("scenes:\n  - {name: a, colour: red}\n").unwrap_err();
        assert!(e.starts_with("scenes:") && e.contains("colour"), "{e}");
        let e = CueFile::parse("cue: []\n").unwrap_err();
        assert!(e.contains("cue: unknown key"), "{e}");
        let e = CueFile::parse("scenes: [{name: a}, {name: a}]\n").unwrap_err();
        assert!(e.contains("used twice"), "{e}");
        let e = CueFile::parse("cues: [\n").unwrap_err();
        assert!(e.contains("YAML"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let e = CueFile::load(Path::new("/nonexistent/show.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/show.yaml"), "{e}");
    }
}
