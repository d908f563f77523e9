//! The world state a show is in at one frame: camera, prompt, params, seed, freeze and
//! fade. Cues change it; the generator draws it.
//!
//! Everything here is a function of frame indices, never of wall-clock time, so a
//! scene replays exactly from its seed and cue log. Ramps, blends and fades are stored
//! as (from, to, start frame, length) and evaluated per frame rather than accumulated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::camera::{CameraRig, Pose};
use crate::cue::{At, Cue, CueError, CueKind, FadeTarget, Input, MouseButton, SceneTransition};
use crate::model::{Fps, ImageInput, ModelInfo, ModelInputs, PromptState};

/// A scene from a show: what to load when a `scene` cue names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<Pose>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, f64>,
}

/// What cues are checked against before they are accepted: the running model's params
/// and inputs, the show's scenes and media folder, and the frame rate (for timecodes).
#[derive(Debug, Clone, Default)]
pub struct ShowContext {
    pub params: Vec<crate::model::ParamSpec>,
    pub scenes: Vec<String>,
    pub fps: Option<Fps>,
    pub inputs: ModelInputs,
    /// Where `image` cues find their files; `None`: the show has no media folder.
    pub media: Option<std::path::PathBuf>,
    /// The program audio's sources, which `audio` cues name.
    pub audio_sources: Vec<String>,
}

impl ShowContext {
    /// Checks what a cue refers to exists and is in range.
    pub fn check(&self, cue: &Cue) -> Result<(), CueError> {
        match &cue.kind {
            CueKind::Param { name, value, .. } => self.check_param(name, *value, "value")?,
            CueKind::Scene { name, .. } if !self.scenes.iter().any(|s| s == name) => {
                return Err(CueError::field(
                    "name",
                    if self.scenes.is_empty() {
                        format!("unknown scene {name:?}: this show has no scenes")
                    } else {
                        format!(
                            "unknown scene {name:?} (scenes: {})",
                            self.scenes.join(", ")
                        )
                    },
                ));
            }
            CueKind::Input(input) => self.check_input(input)?,
            CueKind::Image { name } => self.check_image(name)?,
            CueKind::Audio { source, .. } if !self.audio_sources.contains(source) => {
                return Err(CueError::field(
                    "source",
                    if self.audio_sources.is_empty() {
                        format!("unknown audio source {source:?}: this show has no program audio")
                    } else {
                        format!(
                            "unknown audio source {source:?} (sources: {})",
                            self.audio_sources.join(", ")
                        )
                    },
                ));
            }
            _ => {}
        }
        if let (Some(At::Timecode(tc)), Some(fps)) = (cue.at, self.fps) {
            tc.to_frame(fps.nominal())?;
        }
        Ok(())
    }

    /// Keys and mouse go only to a model that takes them: anything else would be a cue
    /// that does nothing.
    fn check_input(&self, input: &Input) -> Result<(), CueError> {
        if input.keys.is_some() && self.inputs.keys.is_empty() {
            return Err(CueError::field(
                "keys",
                "this model takes no keys (steer it with action cues)",
            ));
        }
        if input.mouse.is_some() && !self.inputs.mouse {
            return Err(CueError::field(
                "mouse",
                "this model takes no mouse (steer it with action cues)",
            ));
        }
        Ok(())
    }

    /// An image must be a file directly in the media folder, for a model that takes
    /// images; the name's form (no folders) was checked by the parser.
    pub fn check_image(&self, name: &str) -> Result<(), CueError> {
        if self.inputs.image == ImageInput::None {
            return Err(CueError::field("name", "this model takes no image"));
        }
        let Some(media) = &self.media else {
            return Err(CueError::field(
                "name",
                "this show has no media folder to read images from",
            ));
        };
        // Not following links: a link in the media folder may name anything on the
        // machine (an endless file, a picture outside the folder).
        match std::fs::symlink_metadata(media.join(name)) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(m) if m.file_type().is_symlink() => Err(CueError::field(
                "name",
                format!("{name:?} is a link, not a file in the media folder"),
            )),
            _ => Err(CueError::field(
                "name",
                format!("no image {name:?} in the media folder"),
            )),
        }
    }

    /// Checks a param name and value; `field` names the value in errors.
    pub fn check_param(&self, name: &str, value: f64, field: &str) -> Result<(), CueError> {
        let spec = self.params.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            CueError::field(
                "name",
                format!(
                    "unknown param {name:?} (this model has: {})",
                    known.join(", ")
                ),
            )
        })?;
        if !(spec.min..=spec.max).contains(&value) {
            return Err(CueError::field(
                field,
                format!(
                    "{name} must be in [{}, {}], got {value}",
                    spec.min, spec.max
                ),
            ));
        }
        Ok(())
    }

    /// Checks a scene's params and names before a show starts.
    pub fn check_scene(&self, scene: &Scene) -> Result<(), CueError> {
        for (name, value) in &scene.params {
            self.check_param(name, *value, &format!("params.{name}"))
                .map_err(|e| e.within(&format!("scenes.{}", scene.name)))?;
        }
        Ok(())
    }
}

/// A value moving linearly from `from` to `to` over `frames` frames from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Ramp {
    from: f64,
    to: f64,
    start: u64,
    frames: u64,
}

impl Ramp {
    fn constant(v: f64) -> Self {
        Ramp {
            from: v,
            to: v,
            start: 0,
            frames: 0,
        }
    }

    fn at(&self, frame: u64) -> f64 {
        if self.frames == 0 || frame >= self.start + self.frames {
            self.to
        } else if frame <= self.start {
            self.from
        } else {
            let t = (frame - self.start) as f64 / self.frames as f64;
            self.from + (self.to - self.from) * t
        }
    }

    /// Starts moving from wherever the value is at `frame` to `to`.
    fn retarget(&mut self, to: f64, frame: u64, frames: u64) {
        *self = Ramp {
            from: self.at(frame),
            to,
            start: frame,
            frames,
        };
    }
}

/// What the model thread must do after cues were applied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// The generator must start over from the world's seed (seed cue, scene with a seed).
    pub reset: bool,
}

/// The state of the show at the current frame. Serialisable whole: a checkpoint is
/// this plus the backend's tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    fps: Fps,
    rig: CameraRig,
    prompt: String,
    previous_prompt: Option<String>,
    prompt_blend: Ramp,
    params: Vec<Ramp>,
    param_names: Vec<String>,
    speed_param: Option<usize>,
    seed: u64,
    frozen: bool,
    /// 1 = program, 0 = black.
    fade: Ramp,
    scenes: Vec<Scene>,
    /// A scene waiting for the middle of its fade transition: which, when, and how
    /// many frames the fade back up takes.
    scene_switch: Option<(usize, u64, u64)>,
    /// Keys and buttons held, and pointer movement not yet handed to a model frame.
    #[serde(default)]
    input: InputState,
    /// The image the model was last started from (a file in the media folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
}

/// What input cues have left held, and the movement the next model frame receives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputState {
    pub keys: Vec<String>,
    pub buttons: Vec<MouseButton>,
    /// Pixels (dx, dy) since the last model frame took them.
    pub mouse: [f64; 2],
}

/// Movement piles up no further than this between two model frames, in pixels: a
/// flood of mouse cues cannot make a value a model chokes on.
pub const MAX_PENDING_MOUSE_PX: f64 = 100_000.0;

impl World {
    /// Checks a world read from a file (a checkpoint) with the rules cues obey, against
    /// the model it is for; the error names the field (`world.rig.pose.fov`). Nothing a
    /// checkpoint holds can then make the model thread panic or draw nonsense.
    pub fn check(&self, info: &ModelInfo) -> Result<(), CueError> {
        use crate::cue::MAX_TEXT_CHARS;
        let bad =
            |field: &str, message: String| Err(CueError::field(field, message).within("world"));
        let fps = self.fps.as_f64();
        if !(f64::MIN_POSITIVE..=240.0).contains(&fps) {
            return bad(
                "fps",
                format!("must be in (0, 240] frames a second, got {fps}"),
            );
        }
        self.rig
            .check()
            .map_err(|e| e.within("rig").within("world"))?;
        for (field, text) in [
            ("prompt", Some(&self.prompt)),
            ("previous_prompt", self.previous_prompt.as_ref()),
        ] {
            if text.is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
                return bad(field, format!("at most {MAX_TEXT_CHARS} characters"));
            }
        }
        let names: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
        if self.param_names != names || self.params.len() != names.len() {
            return bad(
                "params",
                format!(
                    "this model's params are [{}], the checkpoint has [{}]",
                    names.join(", "),
                    self.param_names.join(", ")
                ),
            );
        }
        for (i, (ramp, spec)) in self.params.iter().zip(&info.params).enumerate() {
            for v in [ramp.from, ramp.to] {
                if !(spec.min..=spec.max).contains(&v) {
                    return bad(
                        &format!("params[{i}]"),
                        format!(
                            "{} must be in [{}, {}], got {v}",
                            spec.name, spec.min, spec.max
                        ),
                    );
                }
            }
        }
        if self.speed_param != info.param("speed").map(|(i, _)| i) {
            return bad(
                "speed_param",
                format!(
                    "must name this model's speed param, got {:?}",
                    self.speed_param
                ),
            );
        }
        for (field, ramp) in [("prompt_blend", &self.prompt_blend), ("fade", &self.fade)] {
            if !(0.0..=1.0).contains(&ramp.from) || !(0.0..=1.0).contains(&ramp.to) {
                return bad(
                    field,
                    format!("must be in [0, 1], got {} to {}", ramp.from, ramp.to),
                );
            }
        }
        if let Some((scene, _, _)) = self.scene_switch {
            if scene >= self.scenes.len() {
                return bad(
                    "scene_switch",
                    format!("scene {scene} of {}", self.scenes.len()),
                );
            }
        }
        let i = &self.input;
        let known = crate::cue::key_codes();
        if i.keys.len() > crate::cue::MAX_KEYS || i.keys.iter().any(|k| !known.contains(k)) {
            return bad(
                "input.keys",
                format!("at most {} W3C key codes", crate::cue::MAX_KEYS),
            );
        }
        let in_bounds = |v: &f64| v.is_finite() && v.abs() <= MAX_PENDING_MOUSE_PX;
        if i.buttons.len() > 3 || !i.mouse.iter().all(in_bounds) {
            return bad(
                "input.mouse",
                format!("at most 3 buttons and ±{MAX_PENDING_MOUSE_PX} pixels"),
            );
        }
        if self
            .image
            .as_deref()
            .is_some_and(|n| !crate::cue::is_image_name(n))
        {
            return bad("image", "a file name in the media folder".into());
        }
        Ok(())
    }

    pub fn new(
        info: &ModelInfo,
        fps: Fps,
        seed: u64,
        prompt: &str,
        scenes: Vec<Scene>,
        start: Pose,
    ) -> Self {
        World {
            fps,
            rig: CameraRig::new(start, info.pitch_limit),
            prompt: prompt.to_owned(),
            previous_prompt: None,
            prompt_blend: Ramp::constant(1.0),
            params: info
                .params
                .iter()
                .map(|p| Ramp::constant(p.default))
                .collect(),
            param_names: info.params.iter().map(|p| p.name.clone()).collect(),
            speed_param: info.param("speed").map(|(i, _)| i),
            seed,
            frozen: false,
            fade: Ramp::constant(1.0),
            scenes,
            scene_switch: None,
            input: InputState::default(),
            image: None,
        }
    }

    /// Replaces the show's scenes (a show preset edited while running). A scene fade
    /// under way still lands on its scene if the new list has one of that name.
    pub fn set_scenes(&mut self, scenes: Vec<Scene>) {
        if let Some((i, at, frames)) = self.scene_switch {
            let name = &self.scenes[i].name;
            self.scene_switch = scenes
                .iter()
                .position(|s| &s.name == name)
                .map(|j| (j, at, frames));
        }
        self.scenes = scenes;
    }

    pub fn scenes(&self) -> &[Scene] {
        &self.scenes
    }

    pub fn fps(&self) -> Fps {
        self.fps
    }

    pub fn set_fps(&mut self, fps: Fps) {
        self.fps = fps;
    }

    pub fn camera(&self) -> Pose {
        self.rig.pose()
    }

    pub fn action(&self) -> [f64; 5] {
        self.rig.action()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn frozen(&self) -> bool {
        self.frozen
    }

    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Keys and buttons held now, and the movement not yet taken.
    pub fn input(&self) -> &InputState {
        &self.input
    }

    /// The movement since the last model frame took it, which is then zero.
    pub fn take_mouse(&mut self) -> [f64; 2] {
        std::mem::take(&mut self.input.mouse)
    }

    /// The image the model starts from, when a cue or the show named one.
    pub fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }

    /// Names the image the model starts from (the show's start image).
    pub fn set_image(&mut self, name: Option<String>) {
        self.image = name;
    }

    /// The transition of the prompt change in progress, in seconds (0 when none).
    pub fn prompt_transition_s(&self) -> f64 {
        self.prompt_blend.frames as f64 / self.fps.as_f64()
    }

    pub fn fade_level(&self, frame: u64) -> f64 {
        self.fade.at(frame)
    }

    /// The prompt as generators see it at `frame` (smoothstep blend).
    pub fn prompt_state(&self, frame: u64) -> PromptState {
        let t = self.prompt_blend.at(frame);
        let mix = t * t * (3.0 - 2.0 * t);
        PromptState {
            text: self.prompt.clone(),
            previous: self.previous_prompt.clone().filter(|_| mix < 1.0),
            mix,
        }
    }

    /// Param values at `frame`, in the model's order.
    pub fn params(&self, frame: u64) -> Vec<f64> {
        self.params.iter().map(|r| r.at(frame)).collect()
    }

    /// Param values by name, for status reports.
    pub fn named_params(&self, frame: u64) -> BTreeMap<String, f64> {
        self.param_names
            .iter()
            .cloned()
            .zip(self.params(frame))
            .collect()
    }

    fn frames(&self, seconds: f64) -> u64 {
        (seconds * self.fps.as_f64()).round() as u64
    }

    /// Applies one cue at `frame`. Cues were validated on the way in.
    pub fn apply(&mut self, cue: &Cue, frame: u64) -> Effects {
        let mut fx = Effects::default();
        match &cue.kind {
            CueKind::Prompt { text, transition_s } => self.set_prompt(text, *transition_s, frame),
            CueKind::Action(action) => self.rig.apply_action(action, frame, self.fps.as_f64()),
            CueKind::CameraPath { points, looped } => self.rig.follow_path(points, *looped, frame),
            CueKind::Param {
                name,
                value,
                ramp_s,
            } => {
                if let Some(i) = self.param_names.iter().position(|n| n == name) {
                    let frames = self.frames(*ramp_s);
                    self.params[i].retarget(*value, frame, frames);
                }
            }
            CueKind::Scene {
                name,
                transition,
                transition_s,
            } => {
                if let Some(i) = self.scenes.iter().position(|s| &s.name == name) {
                    match transition {
                        SceneTransition::Cut => fx.reset |= self.load_scene(i, frame),
                        SceneTransition::Fade => {
                            let half = self.frames(transition_s / 2.0);
                            self.fade.retarget(0.0, frame, half);
                            self.scene_switch = Some((i, frame + half, half));
                        }
                    }
                }
            }
            CueKind::Seed { value } => {
                self.seed = *value;
                fx.reset = true;
            }
            // Sound is the program's, not the world's: the show's mixer follows the cue
            // once it is applied.
            CueKind::Marker { .. } | CueKind::Audio { .. } => {}
            CueKind::Freeze => self.frozen = true,
            CueKind::Resume => self.frozen = false,
            CueKind::Fade { to, duration_s } => {
                let target = match to {
                    FadeTarget::Black => 0.0,
                    FadeTarget::Program => 1.0,
                };
                let frames = self.frames(*duration_s);
                self.fade.retarget(target, frame, frames);
            }
            CueKind::Input(input) => {
                let held = &mut self.input;
                if let Some(keys) = &input.keys {
                    held.keys.clone_from(keys);
                }
                if let Some(m) = &input.mouse {
                    for (acc, d) in held.mouse.iter_mut().zip([m.dx, m.dy]) {
                        *acc = (*acc + d).clamp(-MAX_PENDING_MOUSE_PX, MAX_PENDING_MOUSE_PX);
                    }
                    if let Some(b) = &m.buttons {
                        held.buttons.clone_from(b);
                    }
                }
            }
            CueKind::Image { name } => {
                self.image = Some(name.clone());
                fx.reset = true;
            }
        }
        fx
    }

    fn set_prompt(&mut self, text: &str, transition_s: f64, frame: u64) {
        let frames = self.frames(transition_s);
        self.previous_prompt = Some(std::mem::replace(&mut self.prompt, text.to_owned()));
        self.prompt_blend = Ramp {
            from: 0.0,
            to: 1.0,
            start: frame,
            frames,
        };
    }

    /// Loads scene `i` at once; returns whether the generator must reset.
    fn load_scene(&mut self, i: usize, frame: u64) -> bool {
        let scene = self.scenes[i].clone();
        if let Some(p) = &scene.prompt {
            self.set_prompt(p, 0.0, frame);
        }
        if let Some(pose) = scene.camera {
            self.rig.place(pose);
        }
        for (name, value) in &scene.params {
            if let Some(j) = self.param_names.iter().position(|n| n == name) {
                self.params[j] = Ramp::constant(*value);
            }
        }
        match scene.seed {
            Some(seed) => {
                self.seed = seed;
                true
            }
            None => scene.prompt.is_some(),
        }
    }

    /// Moves the world to `frame` (one after the last): pending scene switches, then the
    /// camera. While frozen the camera holds still. Returns effects of a scene switch.
    pub fn advance(&mut self, frame: u64, ground: impl Fn(f64, f64) -> Option<f64>) -> Effects {
        let mut fx = Effects::default();
        if let Some((i, at, back)) = self.scene_switch {
            if frame >= at {
                self.scene_switch = None;
                fx.reset |= self.load_scene(i, frame);
                self.fade.retarget(1.0, frame, back);
            }
        }
        if !self.frozen {
            let speed = self.speed_param.map_or(1.0, |i| self.params[i].at(frame));
            self.rig.advance(frame, self.fps.as_f64(), speed, ground);
        }
        fx
    }
}

#[cfg(test)]
mod tests;
