//! Exports that must not happen, or not half-happen: an existing bundle without
//! `force`, unknown format names, a take that fails mid-export. Each error names what
//! is at fault and leaves the disk as it was.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cuecast_engine::Take;
use cuecast_exporters::{export, ExportError, ExportOptions, Format};

fn take() -> &'static (PathBuf, Take) {
    static TAKE: OnceLock<(PathBuf, Take)> = OnceLock::new();
    TAKE.get_or_init(|| {
        let dir = support::tempdir("errors");
        let take = support::record_take(&dir);
        (dir, take)
    })
}

fn camera_only() -> ExportOptions {
    ExportOptions {
        formats: Format::parse_list("gltf,usd").unwrap(),
        force: false,
    }
}

/// Every entry under `dir`, hidden ones too.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_existing_folder_is_not_overwritten_without_force() {
    let (dir, take) = take();
    let parent = dir.join("exists");
    let out = parent.join("bundle");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = export(take, &out, &camera_only(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ExportError::Exists { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&out.display().to_string()), "{message}");
    assert!(message.contains("force"), "{message}");
    assert_eq!(listing(&out), ["keep.txt"]);
    assert_eq!(fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    assert_eq!(listing(&parent), ["bundle"]);
}

#[test]
fn force_replaces_the_folder_with_the_new_bundle() {
    let (dir, take) = take();
    let parent = dir.join("force");
    let out = parent.join("bundle");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("old.txt"), "old").unwrap();
    let options = ExportOptions {
        force: true,
        ..camera_only()
    };
    let summary = export(take, &out, &options, &mut |_| {}).unwrap();
    assert_eq!(
        summary.files,
        [
            "camera/camera.usda",
            "camera/scene.glb",
            "manifest.json",
            "markers.json"
        ]
    );
    assert!(!out.join("old.txt").exists());
    assert_eq!(listing(&parent), ["bundle"]);
}

#[test]
fn unknown_format_names_are_refused_by_name() {
    let err = Format::parse_list("gltf, fbx ,usd").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("\"fbx\""), "{message}");
    assert!(
        message.contains("gltf, usd, ae, blender, png, exr, prores"),
        "{message}"
    );
    assert!(Format::parse_list(" , ").is_err());
    assert_eq!(Format::parse_list("all").unwrap(), Format::all());
    assert_eq!(
        Format::parse_list("PNG,png, exr")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [Format::Png, Format::Exr]
    );
    assert_eq!(Format::all().len(), 7);
}

#[test]
fn no_formats_is_an_error_and_writes_nothing() {
    let (dir, take) = take();
    let parent = dir.join("none");
    fs::create_dir_all(&parent).unwrap();
    let options = ExportOptions {
        formats: Default::default(),
        force: false,
    };
    let err = export(take, &parent.join("bundle"), &options, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ExportError::NoFormats { .. }), "{err}");
    assert!(listing(&parent).is_empty());
}

#[test]
fn a_failure_midway_leaves_nothing_behind_and_names_the_file() {
    let (dir, take) = take();
    // A copy of the take whose pixels are cut short after it was opened: the export
    // fails partway through the plate.
    let broken = dir.join("broken-take");
    fs::create_dir_all(&broken).unwrap();
    for entry in fs::read_dir(&take.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::copy(&path, broken.join(path.file_name().unwrap())).unwrap();
        }
    }
    let opened = Take::open(&broken).unwrap();
    let rgb = broken.join("rgb.raw");
    let frame = support::WIDTH * support::HEIGHT * 4;
    let f = fs::OpenOptions::new().write(true).open(&rgb).unwrap();
    f.set_len((frame * 5) as u64).unwrap();

    let parent = dir.join("failed");
    let out = parent.join("bundle");
    let options = ExportOptions {
        formats: Format::parse_list("png,prores,gltf").unwrap(),
        force: false,
    };
    let mut frames_done = 0;
    let err = export(&opened, &out, &options, &mut |p| {
        if p.stage == "frames" {
            frames_done = p.done;
        }
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(&rgb.display().to_string()),
        "{err}"
    );
    assert_eq!(err.path(), Some(rgb.as_path()));
    assert!(frames_done >= 5, "the export got going before it failed");
    assert!(!out.exists());
    assert!(listing(&parent).is_empty(), "{:?}", listing(&parent));
}

#[test]
fn a_take_without_depth_cannot_give_exr() {
    let (dir, take) = take();
    let mut no_depth = take.clone();
    no_depth.manifest.depth = None;
    let out = dir.join("no-depth");
    let options = ExportOptions {
        formats: Format::parse_list("exr").unwrap(),
        force: false,
    };
    let err = export(&no_depth, &out, &options, &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&take.dir.display().to_string()),
        "{message}"
    );
    assert!(message.contains("depth"), "{message}");
    assert!(!out.exists());
}
