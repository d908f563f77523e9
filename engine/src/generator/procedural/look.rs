//! How a prompt looks in the procedural world, and how the light falls.
//!
//! A prompt's words pick biomes (shape and palette) and modifiers (snow, time-of-day
//! tints, haze, colour words). Words the world does not know still count: each one
//! hashes to a biome and a hue shift, so any prompt gives a stable look of its own and
//! the same prompt always gives the same look. Looks are plain numbers, so a prompt
//! transition is a linear blend of two looks.

use super::terrain::{hash3, Shape};

pub type Rgb = [f32; 3];

/// Everything the prompt decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub shape: Shape,
    /// Water surface height in metres (far below the terrain when there is none).
    pub water: f32,
    /// Height above which flat ground is snow.
    pub snow_line: f32,
    pub low: Rgb,
    pub mid: Rgb,
    pub high: Rgb,
    pub rock: Rgb,
    pub snow: Rgb,
    pub shore: Rgb,
    pub water_colour: Rgb,
    /// Multiplies the sky's colours.
    pub sky_tint: Rgb,
    /// Multiplies fog density.
    pub haze: f32,
    /// How strongly the detail layer varies the ground's colour.
    pub detail: f32,
}

const NO_WATER: f32 = -10_000.0;

macro_rules! lerp_fields {
    ($a:expr, $b:expr, $t:expr, [$($f:ident),*], [$($s:ident),*]) => {
        Look {
            shape: Shape {
                base: lerp($a.shape.base, $b.shape.base, $t),
                hills: lerp($a.shape.hills, $b.shape.hills, $t),
                ridges: lerp($a.shape.ridges, $b.shape.ridges, $t),
                dunes: lerp($a.shape.dunes, $b.shape.dunes, $t),
            },
            $($f: lerp3($a.$f, $b.$f, $t),)*
            $($s: lerp($a.$s, $b.$s, $t),)*
        }
    };
}

impl Look {
    /// `self` blended towards `other` by `t` (0..1).
    pub fn mix(&self, other: &Look, t: f32) -> Look {
        lerp_fields!(
            self,
            other,
            t,
            [low, mid, high, rock, snow, shore, water_colour, sky_tint],
            [water, snow_line, haze, detail]
        )
    }

    /// Total relief in metres: scales the elevation colour bands.
    pub fn relief(&self) -> f32 {
        (self.shape.hills + self.shape.ridges + self.shape.dunes).max(1.0)
    }

    fn map_colours(mut self, f: impl Fn(Rgb) -> Rgb) -> Look {
        for c in [
            &mut self.low,
            &mut self.mid,
            &mut self.high,
            &mut self.rock,
            &mut self.snow,
            &mut self.shore,
            &mut self.water_colour,
        ] {
            *c = f(*c);
        }
        self
    }
}

/// Exact at both ends: t = 0 gives `a`, t = 1 gives `b`.
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

const fn shape(base: f32, hills: f32, ridges: f32, dunes: f32) -> Shape {
    Shape {
        base,
        hills,
        ridges,
        dunes,
    }
}

const SKY: Rgb = [1.0, 1.0, 1.0];

/// The biomes, each with the words that call it up.
static BIOMES: [(&[&str], Look); 10] = [
    (
        &[
            "hill",
            "hills",
            "rolling",
            "meadow",
            "meadows",
            "valley",
            "valleys",
            "countryside",
            "green",
            "grass",
            "grassland",
        ],
        Look {
            shape: shape(20.0, 70.0, 15.0, 0.0),
            water: 0.0,
            snow_line: 900.0,
            low: [0.30, 0.45, 0.18],
            mid: [0.36, 0.50, 0.22],
            high: [0.45, 0.48, 0.30],
            rock: [0.45, 0.42, 0.38],
            snow: [0.95, 0.96, 0.98],
            shore: [0.72, 0.66, 0.50],
            water_colour: [0.10, 0.25, 0.32],
            sky_tint: SKY,
            haze: 1.0,
            detail: 0.25,
        },
    ),
    (
        &[
            "mountain",
            "mountains",
            "peak",
            "peaks",
            "alps",
            "alpine",
            "cliff",
            "cliffs",
            "range",
            "highlands",
        ],
        Look {
            shape: shape(0.0, 60.0, 380.0, 0.0),
            water: -20.0,
            snow_line: 260.0,
            low: [0.28, 0.38, 0.20],
            mid: [0.40, 0.40, 0.33],
            high: [0.52, 0.50, 0.48],
            rock: [0.42, 0.40, 0.38],
            snow: [0.95, 0.96, 1.0],
            shore: [0.55, 0.52, 0.45],
            water_colour: [0.08, 0.20, 0.30],
            sky_tint: SKY,
            haze: 0.8,
            detail: 0.3,
        },
    ),
    (
        &[
            "desert", "dune", "dunes", "sand", "sandy", "sahara", "arid", "dry",
        ],
        Look {
            shape: shape(0.0, 25.0, 20.0, 45.0),
            water: NO_WATER,
            snow_line: 5000.0,
            low: [0.80, 0.62, 0.40],
            mid: [0.85, 0.66, 0.42],
            high: [0.78, 0.58, 0.38],
            rock: [0.62, 0.42, 0.30],
            snow: [0.95, 0.93, 0.90],
            shore: [0.80, 0.62, 0.40],
            water_colour: [0.10, 0.30, 0.35],
            sky_tint: [1.05, 1.0, 0.92],
            haze: 1.4,
            detail: 0.15,
        },
    ),
    (
        &[
            "ocean",
            "sea",
            "island",
            "islands",
            "coast",
            "coastal",
            "beach",
            "lagoon",
            "tropical",
            "archipelago",
            "bay",
        ],
        Look {
            shape: shape(-25.0, 55.0, 60.0, 0.0),
            water: 0.0,
            snow_line: 5000.0,
            low: [0.25, 0.50, 0.20],
            mid: [0.20, 0.42, 0.18],
            high: [0.40, 0.40, 0.32],
            rock: [0.45, 0.40, 0.35],
            snow: [0.95, 0.95, 0.95],
            shore: [0.90, 0.84, 0.66],
            water_colour: [0.02, 0.35, 0.45],
            sky_tint: SKY,
            haze: 0.9,
            detail: 0.2,
        },
    ),
    (
        &[
            "forest",
            "forests",
            "woods",
            "woodland",
            "jungle",
            "trees",
            "pine",
            "rainforest",
            "taiga",
        ],
        Look {
            shape: shape(10.0, 90.0, 60.0, 0.0),
            water: 0.0,
            snow_line: 600.0,
            low: [0.12, 0.28, 0.10],
            mid: [0.10, 0.24, 0.10],
            high: [0.18, 0.26, 0.14],
            rock: [0.35, 0.33, 0.30],
            snow: [0.92, 0.94, 0.96],
            shore: [0.45, 0.40, 0.30],
            water_colour: [0.06, 0.16, 0.15],
            sky_tint: SKY,
            haze: 1.1,
            detail: 0.45,
        },
    ),
    (
        &[
            "volcano", "volcanic", "lava", "ash", "magma", "basalt", "obsidian",
        ],
        Look {
            shape: shape(0.0, 50.0, 280.0, 0.0),
            water: NO_WATER,
            snow_line: 5000.0,
            low: [0.12, 0.10, 0.10],
            mid: [0.18, 0.14, 0.13],
            high: [0.28, 0.20, 0.18],
            rock: [0.10, 0.08, 0.08],
            snow: [0.55, 0.50, 0.48],
            shore: [0.9, 0.3, 0.05],
            water_colour: [0.9, 0.3, 0.05],
            sky_tint: [1.0, 0.75, 0.65],
            haze: 1.8,
            detail: 0.35,
        },
    ),
    (
        &[
            "canyon", "canyons", "mesa", "mesas", "badlands", "gorge", "red", "rock", "rocks",
            "rocky",
        ],
        Look {
            shape: shape(0.0, 80.0, 200.0, 10.0),
            water: -5.0,
            snow_line: 5000.0,
            low: [0.62, 0.35, 0.22],
            mid: [0.70, 0.40, 0.25],
            high: [0.76, 0.52, 0.36],
            rock: [0.55, 0.28, 0.18],
            snow: [0.95, 0.92, 0.90],
            shore: [0.60, 0.45, 0.30],
            water_colour: [0.10, 0.28, 0.25],
            sky_tint: [1.05, 0.98, 0.92],
            haze: 1.0,
            detail: 0.3,
        },
    ),
    (
        &[
            "snow", "snowy", "winter", "ice", "icy", "frozen", "arctic", "glacier", "tundra",
            "polar",
        ],
        Look {
            shape: shape(10.0, 60.0, 160.0, 0.0),
            water: 0.0,
            snow_line: 20.0,
            low: [0.80, 0.84, 0.90],
            mid: [0.86, 0.89, 0.94],
            high: [0.92, 0.94, 0.98],
            rock: [0.40, 0.42, 0.46],
            snow: [0.96, 0.97, 1.0],
            shore: [0.70, 0.75, 0.80],
            water_colour: [0.10, 0.22, 0.30],
            sky_tint: [0.95, 0.98, 1.05],
            haze: 1.2,
            detail: 0.12,
        },
    ),
    (
        &[
            "alien",
            "mars",
            "martian",
            "planet",
            "purple",
            "moon",
            "crater",
            "otherworldly",
        ],
        Look {
            shape: shape(0.0, 90.0, 150.0, 20.0),
            water: -15.0,
            snow_line: 5000.0,
            low: [0.45, 0.22, 0.40],
            mid: [0.55, 0.28, 0.45],
            high: [0.65, 0.40, 0.55],
            rock: [0.30, 0.15, 0.30],
            snow: [0.80, 0.85, 0.95],
            shore: [0.30, 0.70, 0.65],
            water_colour: [0.10, 0.55, 0.50],
            sky_tint: [1.1, 0.8, 1.05],
            haze: 1.3,
            detail: 0.35,
        },
    ),
    (
        &[
            "plain", "plains", "prairie", "steppe", "savanna", "savannah", "field", "fields",
            "farmland", "flat",
        ],
        Look {
            shape: shape(10.0, 25.0, 5.0, 0.0),
            water: 0.0,
            snow_line: 5000.0,
            low: [0.55, 0.55, 0.28],
            mid: [0.62, 0.58, 0.30],
            high: [0.55, 0.50, 0.32],
            rock: [0.50, 0.45, 0.38],
            snow: [0.95, 0.95, 0.95],
            shore: [0.70, 0.64, 0.48],
            water_colour: [0.10, 0.25, 0.30],
            sky_tint: SKY,
            haze: 1.0,
            detail: 0.2,
        },
    ),
];

/// Words that carry no look.
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "at",
    "of",
    "in",
    "on",
    "with",
    "and",
    "or",
    "over",
    "under",
    "by",
    "to",
    "from",
    "into",
    "near",
    "above",
    "below",
    "through",
    "across",
    "is",
    "are",
    "very",
    "some",
    "its",
    "their",
    "view",
    "scene",
    "landscape",
    "world",
    "shot",
    "aerial",
    "flying",
    "drone",
    "cinematic",
];

/// Modifiers applied after the biomes are blended.
fn modify(look: &mut Look, word: &str) -> bool {
    match word {
        "dawn" | "sunrise" | "sunset" | "dusk" | "golden" | "evening" => {
            look.sky_tint = [1.25, 0.85, 0.65];
        }
        "night" | "midnight" | "dark" | "starry" | "moonlit" => {
            look.sky_tint = [0.35, 0.40, 0.70];
        }
        "fog" | "foggy" | "mist" | "misty" | "haze" | "hazy" | "smoky" | "cloudy" | "overcast" => {
            look.haze *= 3.0;
        }
        "clear" | "crisp" | "sunny" => look.haze *= 0.5,
        "snowcapped" | "snowy" | "snow" | "icy" | "frozen" | "winter" => {
            look.snow_line = look.snow_line.min(look.shape.base + 0.3 * look.relief());
        }
        "blue" => *look = look.map_colours(|c| [c[0] * 0.7, c[1] * 0.85, (c[2] * 1.5).min(1.0)]),
        "autumn" | "fall" | "orange" => {
            look.low = [0.55, 0.35, 0.12];
            look.mid = [0.60, 0.30, 0.10];
        }
        "lush" | "verdant" => {
            look.low = [0.15, 0.45, 0.12];
            look.mid = [0.12, 0.38, 0.10];
        }
        _ => return false,
    }
    true
}

/// The look a prompt asks for. Same prompt, same look.
pub fn look_for(prompt: &str) -> Look {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect();
    let mut picked: Vec<(&Look, f32)> = Vec::new();
    let mut hue = 0.0f32;
    let mut unknown = Vec::new();
    for word in &words {
        if let Some((_, biome)) = BIOMES
            .iter()
            .find(|(names, _)| names.contains(&word.as_str()))
        {
            picked.push((biome, 1.0));
        } else if !is_modifier(word) {
            unknown.push(word);
        }
    }
    // Unknown words always shift the hue a little; they choose biomes only when no
    // known word did, so "mountains of zorblax" is still mountains.
    let known_biome = !picked.is_empty();
    for word in &unknown {
        let h = hash3(fnv(word), 0x1007, 0);
        hue += ((h >> 8) % 1000) as f32 / 1000.0 * 80.0 - 40.0;
        if !known_biome {
            picked.push((
                &BIOMES[h as usize % BIOMES.len()].1,
                0.5 + (h >> 24) as f32 / 512.0,
            ));
        }
    }
    // The weighted mean, built up one look at a time.
    let mut look = BIOMES[0].1;
    let mut weight = 0.0;
    for (biome, w) in picked {
        weight += w;
        look = look.mix(biome, w / weight);
    }
    for word in &words {
        modify(&mut look, word);
    }
    if hue != 0.0 {
        let hue = hue.clamp(-60.0, 60.0);
        look = look.map_colours(|c| rotate_hue(c, hue));
    }
    look
}

fn is_modifier(word: &str) -> bool {
    let mut probe = BIOMES[0].1;
    modify(&mut probe, word)
}

/// FNV-1a, for turning words into hash input.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811C_9DC5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Rotates a colour's hue by `degrees` about the grey axis, keeping its brightness.
fn rotate_hue(c: Rgb, degrees: f32) -> Rgb {
    let (s, co) = degrees.to_radians().sin_cos();
    let k = 1.0 / 3.0;
    let sq = (1.0f32 / 3.0).sqrt();
    let m = |a: f32, b: f32| co + (1.0 - co) * a + b;
    let r = [m(k, 0.0), (1.0 - co) * k - sq * s, (1.0 - co) * k + sq * s];
    let g = [(1.0 - co) * k + sq * s, m(k, 0.0), (1.0 - co) * k - sq * s];
    let b = [(1.0 - co) * k - sq * s, (1.0 - co) * k + sq * s, m(k, 0.0)];
    let dot = |row: [f32; 3]| (row[0] * c[0] + row[1] * c[1] + row[2] * c[2]).clamp(0.0, 1.0);
    [dot(r), dot(g), dot(b)]
}

/// Light and atmosphere for one frame: from the `time_of_day` and `fog` params and the
/// look's tints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    /// Unit vector towards the sun (or the moon at night).
    pub sun_dir: [f32; 3],
    pub sun: Rgb,
    pub ambient: Rgb,
    pub zenith: Rgb,
    pub horizon: Rgb,
    /// Per metre.
    pub fog_density: f32,
    /// How bright the sun's disc and glow are in the sky.
    pub sun_glow: f32,
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn mul3(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}

fn scale3(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

impl Light {
    /// `time_of_day` in hours (sunrise 6, noon 12, sunset 18), `fog` in [0, 1].
    pub fn new(time_of_day: f32, fog: f32, look: &Look) -> Light {
        // The sun rises in the east (+X), climbs to 64 degrees in the south (+Z) at noon.
        let theta = (time_of_day - 6.0) / 12.0 * std::f32::consts::PI;
        let (st, ct) = theta.sin_cos();
        let raw = [ct, st * 0.9, st * 0.44];
        let len = (raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2]).sqrt();
        let sun_dir = scale3(raw, 1.0 / len);
        let el = sun_dir[1];
        let day = smoothstep(-0.05, 0.3, el);
        let night = 1.0 - smoothstep(-0.2, 0.0, el);
        let pick = |sunset: Rgb, noon: Rgb, dark: Rgb| lerp3(lerp3(sunset, noon, day), dark, night);
        let zenith = mul3(
            pick([0.25, 0.30, 0.55], [0.20, 0.42, 0.85], [0.01, 0.015, 0.04]),
            look.sky_tint,
        );
        let horizon = mul3(
            pick([1.0, 0.55, 0.30], [0.66, 0.78, 0.92], [0.04, 0.05, 0.10]),
            look.sky_tint,
        );
        let sunlit = smoothstep(-0.02, 0.06, el);
        let sun = lerp3(
            scale3([1.0, 0.55, 0.30], 1.3),
            scale3([1.0, 0.96, 0.90], 1.2),
            smoothstep(0.0, 0.4, el),
        );
        let sun = lerp3(
            scale3([0.12, 0.14, 0.22], night),
            scale3(sun, sunlit),
            sunlit,
        );
        let moon_dir = [-sun_dir[0], -sun_dir[1] * 0.5 + 0.5, -sun_dir[2]];
        let ml = (moon_dir[0].powi(2) + moon_dir[1].powi(2) + moon_dir[2].powi(2)).sqrt();
        let light_dir = if el > -0.02 {
            sun_dir
        } else {
            scale3(moon_dir, 1.0 / ml)
        };
        let ambient = scale3(lerp3(horizon, zenith, 0.6), 0.42);
        Light {
            sun_dir: light_dir,
            sun,
            ambient,
            zenith,
            horizon,
            fog_density: (0.000_15 + fog * fog * 0.006) * look.haze,
            sun_glow: sunlit,
        }
    }
}

#[cfg(test)]
mod tests;
