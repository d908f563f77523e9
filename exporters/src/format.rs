//! What a bundle can hold, by the names users type (`gltf,usd,ae`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ExportError;

/// One kind of file in an export bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `camera/scene.glb`: animated camera and the depth point cloud.
    Gltf,
    /// `camera/camera.usda`: camera time samples for Unreal and Blender.
    Usd,
    /// `ae/import_scene.jsx`: an After Effects comp with the plate, camera and markers.
    Ae,
    /// `blender/import_scene.py`: the camera, plate and markers in Blender.
    Blender,
    /// `plate/rgb.####.png`.
    Png,
    /// `depth/depth.####.exr`.
    Exr,
    /// `plate/plate.mov`, ProRes 4444.
    Prores,
}

impl Format {
    const ALL: [Format; 7] = [
        Format::Gltf,
        Format::Usd,
        Format::Ae,
        Format::Blender,
        Format::Png,
        Format::Exr,
        Format::Prores,
    ];

    pub fn all() -> BTreeSet<Format> {
        Format::ALL.into_iter().collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Gltf => "gltf",
            Format::Usd => "usd",
            Format::Ae => "ae",
            Format::Blender => "blender",
            Format::Png => "png",
            Format::Exr => "exr",
            Format::Prores => "prores",
        }
    }

    /// `"gltf, usd,png"`: names separated by commas (spaces around them ignored,
    /// repeats merged); `all` stands for every format. The error names the first
    /// unknown item.
    pub fn parse_list(list: &str) -> Result<BTreeSet<Format>, ExportError> {
        let mut formats = BTreeSet::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("all") {
                formats.extend(Format::ALL);
            } else {
                formats.insert(item.parse()?);
            }
        }
        if formats.is_empty() {
            return Err(ExportError::NoFormats { known: known() });
        }
        Ok(formats)
    }
}

fn known() -> String {
    Format::ALL.map(Format::name).join(", ")
}

impl FromStr for Format {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ExportError::UnknownFormat {
                name: s.to_owned(),
                known: known(),
            })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
