//! The config's checks, file by file and field by field.

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("cuecast-config-{tag}-{}", std::process::id()));
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
            ok.settings.model_threads,
            ok.settings.on_failure.after,
            ok.settings.on_failure.action,
            ok.settings.state_limit_mb
        ),
        (
            Some(2),
            5,
            cuecast_engine::engine::FailureAction::Hold,
            Some(512.0)
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

#[test]
fn a_model_given_the_network_needs_the_api_token_and_folders_are_checked() {
    let d = Dir::new("model-network");
    d.write("show.yaml", "model_network: true\n");
    let e = load(&d, "show: show.yaml\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("show.model_network"), "{e}");
    assert!(e.to_string().contains("api.token"), "{e}");
    let c = load(&d, "show: show.yaml\napi: {token_env: KEY}\n").unwrap();
    assert!(c.show.settings.model_network);
    for (text, field) in [
        ("model_folders: [/]\n", "model_folders[0]"),
        ("model_folders: [/a/../etc]\n", "model_folders[0]"),
    ] {
        let e = Show::load(&d.write("s.yaml", text)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
    }
    // Relative folders are beside the preset; `:rw` lets the model write.
    let ok =
        Show::load(&d.write("s.yaml", "model_folders: [weights, \"/data/cache:rw\"]\n")).unwrap();
    assert_eq!(
        ok.settings
            .model_folders
            .iter()
            .map(|f| (f.path.clone(), f.writable))
            .collect::<Vec<_>>(),
        vec![
            (d.0.join("weights"), false),
            (PathBuf::from("/data/cache"), true)
        ]
    );
}

/// Every model setting a show preset gives reaches the element as it was given: the
/// preset is the settings serialized, with every field away from its default, and each
/// field reads back from the element (whole, and as its property).
#[test]
fn every_model_setting_in_a_preset_reaches_the_element() {
    use cuecast_engine::engine::{Backend, FailureAction, FailurePolicy, Fallback, ModelSettings};
    use gst::prelude::*;
    let d = Dir::new("settings");
    let folder = d.0.join("weights");
    std::fs::create_dir_all(&folder).unwrap();
    let given = ModelSettings {
        backend: Backend::Pattern,
        model: Some(d.0.join("pkg")),
        device: cuecast_engine::DeviceSpec::Cpu,
        seed: 11,
        prompt: "a red desert".into(),
        model_threads: Some(3),
        on_failure: FailurePolicy {
            after: 7,
            action: FailureAction::Hold,
        },
        state_limit_mb: Some(64.0),
        python: Some("/opt/venv/bin/python".into()),
        fallback: Fallback::Still("still.png".into()),
        image: Some("start.png".into()),
        restart_max_s: Some(2.5),
        frame_blend: true,
        model_env: vec!["HF_TOKEN".into()],
        model_network: true,
        model_folders: vec![format!("{}:rw", folder.display()).parse().unwrap()],
    };
    // Every field differs from its default: a field the preset dropped would show.
    let defaults = serde_yaml::to_value(ModelSettings::default()).unwrap();
    let mapping = serde_yaml::to_value(&given).unwrap();
    for (k, v) in mapping.as_mapping().unwrap() {
        assert_ne!(Some(v), defaults.get(k), "{k:?} is its default in the test");
    }
    let text = format!("name: all\n{}", serde_yaml::to_string(&mapping).unwrap());
    let show = Show::load(&d.write("all.yaml", &text)).unwrap();
    assert_eq!(show.settings, given);

    gst::init().unwrap();
    gstcuecast::register_static().unwrap();
    let src = gst::ElementFactory::make("cuecastsrc")
        .build()
        .unwrap()
        .downcast::<gstcuecast::CuecastSrc>()
        .unwrap();
    src.set_model_settings(show.settings.clone()).unwrap();
    assert_eq!(src.model_settings(), given);
    assert_eq!(src.property::<String>("backend"), "pattern");
    assert_eq!(src.property::<String>("device"), "cpu");
    assert_eq!(src.property::<u64>("seed"), 11);
    assert_eq!(src.property::<String>("prompt"), "a red desert");
    assert_eq!(src.property::<u32>("model-threads"), 3);
    assert_eq!(
        src.property::<gstcuecast::FailureActionProp>("failure-action"),
        gstcuecast::FailureActionProp::Hold
    );
    assert_eq!(src.property::<u32>("failure-after"), 7);
    assert_eq!(src.property::<u32>("state-limit-mb"), 64);
    assert_eq!(src.property::<String>("python"), "/opt/venv/bin/python");
    assert_eq!(src.property::<String>("fallback"), "still:still.png");
    assert_eq!(src.property::<String>("image"), "start.png");
    assert_eq!(src.property::<f64>("restart-max-s"), 2.5);
    assert!(src.property::<bool>("frame-blend"));
    assert_eq!(src.property::<String>("model-env"), "HF_TOKEN");
    assert!(src.property::<bool>("model-network"));
    assert_eq!(
        src.property::<String>("model-folders"),
        format!("{}:rw", folder.display())
    );
    // And a wrong value is refused whole, by its field.
    let e = src
        .set_model_settings(ModelSettings {
            model_threads: Some(0),
            ..given
        })
        .unwrap_err();
    assert_eq!(e.field, "model_threads");
}

#[test]
fn inputs_are_read_and_every_bad_one_is_refused_by_its_field() {
    let d = Dir::new("inputs");
    let path = d.write(
        "cuecast.yaml",
        "presets: presets\ninputs:\n\
         - {name: cam, type: srt, address: 127.0.0.1:9000, passphrase_env: KEY_PASS}\n\
         - {name: feed, type: rtmp, url_env: KEY}\n\
         - {name: clip, type: file, file: clip.mp4, loop: false}\n\
         - {name: usb, type: v4l2, device: /dev/video2}\n\
         - {name: bars, type: test, pattern: ball, enabled: false}\n",
    );
    let env = |v: &str| match v {
        "KEY" => Some("rtmp://media.example:1935/live/sk_live_77".to_owned()),
        "KEY_PASS" => Some("a passphrase of ours".to_owned()),
        _ => None,
    };
    let c = Config::load_with_env(&path, &env).unwrap();
    let kinds: Vec<&str> = c.inputs.iter().map(|i| i.kind.type_name()).collect();
    assert_eq!(kinds, ["srt", "rtmp", "file", "v4l2", "test"]);
    assert!(!c.inputs[4].enabled);
    // The key is in the URL: shown without it, everywhere.
    assert_eq!(
        c.inputs[1].kind.source(),
        "rtmp://media.example:1935/<stream>"
    );
    let summary = c.summary().join("\n");
    assert!(
        !summary.contains("sk_live_77") && !summary.contains("passphrase of ours"),
        "{summary}"
    );
    match &c.inputs[2].kind {
        InputKind::File { path, looped } => {
            assert_eq!(path, &c.media.join("clip.mp4"));
            assert!(!looped);
        }
        other => panic!("{other:?}"),
    }
    for (input, field) in [
        ("{name: a, type: srt, address: nowhere}", "inputs.a.address"),
        (
            "{name: a, type: srt, address: 127.0.0.1:1, latency_ms: 5}",
            "inputs.a.latency_ms",
        ),
        ("{name: a, type: rtmp, url: http://x/y}", "inputs.a.url"),
        (
            "{name: a, type: file, file: ../../etc/passwd}",
            "inputs.a.file",
        ),
        ("{name: a, type: file, file: /etc/passwd}", "inputs.a.file"),
        (
            "{name: a, type: v4l2, device: /etc/passwd}",
            "inputs.a.device",
        ),
        ("{name: a, type: test, pattern: plaid}", "inputs.a.pattern"),
        ("{name: a, type: ndi}", "inputs.a"),
        ("{name: a, type: test, colour: red}", "inputs.a"),
        ("{name: a}", "inputs.a.type"),
        ("{name: 'a b', type: test}", "inputs[0].name"),
    ] {
        let path = d.write(
            "bad.yaml",
            &format!("presets: presets\ninputs:\n  - {input}\n"),
        );
        let e = Config::load_with_env(&path, &env).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{input}: {e}");
    }
    let path = d.write(
        "twice.yaml",
        "presets: presets\ninputs:\n  - {name: a, type: test}\n  - {name: a, type: test}\n",
    );
    let e = Config::load_with_env(&path, &env).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("inputs[1].name"), "{e}");
}

#[test]
fn a_show_feeds_its_model_only_from_an_input_that_exists_and_a_model_that_takes_video() {
    let d = Dir::new("video-input");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let restyle = repo.join("models/restyle");
    d.write(
        "show.yaml",
        &format!(
            "backend: python\nmodel: {}\nvideo_input: cam\n",
            restyle.display()
        ),
    );
    let path = d.write(
        "cuecast.yaml",
        "presets: presets\nshow: show.yaml\ninputs: [{name: cam, type: test}]\n",
    );
    let c = Config::load_with_env(&path, &env).unwrap();
    assert_eq!(c.show.video_input.as_deref(), Some("cam"));
    assert_eq!(c.show.video_fallback, VideoFallback::Hold);
    for (fallback, ok) in [
        ("black", Some(VideoFallback::Black)),
        (
            "still:card.png",
            Some(VideoFallback::Still("card.png".into())),
        ),
        ("still:../card.png", None),
        ("grey", None),
    ] {
        d.write(
            "show.yaml",
            &format!(
                "backend: python\nmodel: {}\nvideo_input: cam\nvideo_fallback: \"{fallback}\"\n",
                restyle.display()
            ),
        );
        match (Config::load_with_env(&path, &env), ok) {
            (Ok(c), Some(want)) => assert_eq!(c.show.video_fallback, want),
            (Err(e), None) => assert_eq!(e.field.as_deref(), Some("video_fallback"), "{e}"),
            (other, want) => panic!("{fallback}: {other:?}, wanted {want:?}"),
        }
    }
    d.write(
        "show.yaml",
        &format!(
            "backend: python\nmodel: {}\nvideo_input: cam\n",
            restyle.display()
        ),
    );
    assert!(c.summary().join("\n").contains("(feeds the model)"));
    let path = d.write(
        "other.yaml",
        "presets: presets\nshow: show.yaml\ninputs: [{name: bars, type: test}]\n",
    );
    let e = Config::load_with_env(&path, &env).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("video_input"), "{e}");
    assert!(e.message.contains("bars"), "{e}");
    // A model that takes no video is fed nothing.
    d.write("plain.yaml", "backend: procedural\nvideo_input: cam\n");
    let path = d.write(
        "plain-config.yaml",
        "presets: presets\nshow: plain.yaml\ninputs: [{name: cam, type: test}]\n",
    );
    let e = Config::load_with_env(&path, &env).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("video_input"), "{e}");
    assert!(e.message.contains("takes no video"), "{e}");
}
