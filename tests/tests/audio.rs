//! Program audio through the daemon: a file's sound mixed on air, carried as AAC to a
//! real RTMP server and into a recording, recorded with a take and exported with it,
//! and an `audio` cue that mutes it on the very frame where a `fade` cue at the same
//! time turns the picture black: in the recording, the sound stops within a frame of
//! the picture, with no gap in it before. A model's click arrives with its flash, in a
//! recording and at an SRT receiver.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::*;

/// A 3 s stereo 48 kHz sine at half scale, as a WAV file: looped, the show plays it
/// through a few times.
fn tone(path: &Path) {
    let ok = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "num-buffers=480",
            "samplesperbuffer=1000",
        ])
        .args(["wave=sine", "freq=440", "volume=0.5"])
        .args(["!", "audio/x-raw,rate=48000,channels=2", "!", "wavenc"])
        .args(["!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap()
        .success();
    assert!(ok, "gst-launch-1.0 made the tone");
}

/// A stream's start time in the file, in seconds.
fn start_time(path: &Path, stream: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no start time for {stream} in {}", path.display()))
}

/// `ffmpeg` decoding `path` to raw bytes with `args`.
fn decode(path: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(args)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_files_sound_is_on_air_and_an_audio_cue_mutes_it_on_its_frame() {
    let _turn = serial();
    let server = RtmpServer::start();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-audio-media-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    tone(&dir.join("tone.wav"));
    let mut d = Daemon::start(
        "audio",
        &format!(
            "media: {}\ninputs:\n  - {{name: music, type: file, file: tone.wav}}\naudio:\n  - {{input: music, gain_db: -6}}\n\
             outputs:\n  - {{name: platform, type: rtmp, url: {}, key: k, profile: {SMALL}}}\n  \
             - {{name: rec, type: record, path: rec.mkv, profile: {SMALL}}}\n",
            dir.display(),
            server.app_url()
        ),
        &[],
    );
    d.wait_state("platform", "live", Duration::from_secs(30));
    let p = ffprobe(&server.url("k"), Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.audio_codec.as_deref(), Some("aac"), "{p:?}");
    wait_until(Duration::from_secs(10), "the music is heard", || {
        let a = &d.get("/api/v1/status")["audio"][0];
        a["receiving"] == true && a["level_db"].as_f64().unwrap_or(-100.0) > -20.0
    });
    // Refused by name: a source the mix does not have.
    let (code, e) = d.call(
        "POST",
        "/api/v1/cues",
        Some(r#"{"type": "audio", "source": "drums", "mute": true}"#),
        None,
    );
    assert_eq!(code, 422, "{e}");
    assert!(e.to_string().contains("music"), "{e}");
    // A take records the program's sound beside its frames; its export carries it.
    let (code, v) = d.call("POST", "/api/v1/takes", Some(r#"{"name": "t1"}"#), None);
    assert_eq!(code, 201, "{v}");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, v) = d.call("POST", "/api/v1/takes/stop", Some("{}"), None);
    assert_eq!(code, 200, "{v}");
    let (code, job) = d.call(
        "POST",
        "/api/v1/takes/t1/export",
        Some(r#"{"formats": "gltf"}"#),
        None,
    );
    assert_eq!(code, 202, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["id"]);
    wait_until(Duration::from_secs(30), "the export is done", || {
        d.get(&job_path)["state"] == "done"
    });
    let bundle = d.dir.join("exports/t1-export");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["audio"]["file"], "audio/program.wav", "{manifest}");
    assert!(
        manifest["files"]["audio/program.wav"]["sha256"].is_string(),
        "{manifest}"
    );
    let wav = decode(&bundle.join("audio/program.wav"), &["-f", "s16le"]);
    let seconds = wav.len() as f64 / (48000.0 * 2.0 * 2.0);
    assert!((1.2..=2.0).contains(&seconds), "{seconds} s of sound");
    let loud = wav
        .chunks_exact(2)
        .filter(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs() > 4000)
        .count();
    assert!(loud > wav.len() / 8, "the take's sound is the music");
    // Sound off and picture black on one frame.
    let at = d.frame() + 45;
    let cues = json!([
        {"type": "audio", "source": "music", "mute": true, "at": {"frame": at}},
        {"type": "fade", "to": "black", "duration_s": 0, "at": {"frame": at}},
    ]);
    let (code, v) = d.call("POST", "/api/v1/cues", Some(&cues.to_string()), None);
    assert_eq!(code, 202, "{v}");
    wait_until(Duration::from_secs(10), "the music is muted", || {
        let a = &d.get("/api/v1/status")["audio"][0];
        a["muted"] == true && a["level_db"] == -100.0
    });
    std::thread::sleep(Duration::from_secs(2));
    // No gap in the sound on its way: nothing ran dry, nothing came too fast.
    let a = &d.get("/api/v1/status")["audio"][0];
    assert_eq!(
        (a["underruns"].as_u64(), a["overflows"].as_u64()),
        (Some(0), Some(0)),
        "{a}"
    );
    assert_eq!(d.terminate(), 0);

    let rec = d.dir.join("rec.mkv");
    let (v0, a0) = (start_time(&rec, "v:0"), start_time(&rec, "a:0"));
    // The first black frame (8x8 grey means).
    let grey = decode(&rec, &["-vf", "scale=8:8,format=gray", "-f", "rawvideo"]);
    let means: Vec<f64> = grey
        .chunks_exact(64)
        .map(|f| f.iter().map(|&b| f64::from(b)).sum::<f64>() / 64.0)
        .collect();
    let black = means
        .iter()
        .position(|m| *m < 20.0)
        .unwrap_or_else(|| panic!("no black frame: {means:?}"));
    assert!(
        means[..black].iter().all(|m| *m > 20.0) && black > 30,
        "{means:?}"
    );
    // The first silent 5 ms after it was loud.
    let pcm = decode(&rec, &["-ac", "1", "-ar", "48000", "-f", "s16le"]);
    let samples: Vec<f64> = pcm
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let rms: Vec<f64> = samples
        .chunks(240)
        .map(|w| (w.iter().map(|s| s * s).sum::<f64>() / w.len() as f64).sqrt())
        .collect();
    let loud = rms
        .iter()
        .position(|r| *r > 0.05)
        .expect("the music is in the recording");
    let quiet = rms.iter().rposition(|r| *r >= 0.002).expect("heard") + 1;
    assert!(quiet < rms.len(), "the music stops in the recording");
    // Not a gap in it until then (the last window may hold the cut).
    let gaps: Vec<usize> = (loud..quiet - 1).filter(|&i| rms[i] < 0.05).collect();
    assert!(
        gaps.is_empty(),
        "the sound drops out at 5 ms windows {gaps:?}"
    );
    let t_video = v0 + black as f64 / 30.0;
    let t_audio = a0 + quiet as f64 * 240.0 / 48000.0;
    println!("sound off at {t_audio:.3} s, black at {t_video:.3} s");
    assert!(
        (t_audio - t_video).abs() <= 1.0 / 30.0 + 0.01,
        "sound stops at {t_audio:.3} s, the picture goes black at {t_video:.3} s"
    );
}

#[test]
fn a_models_click_is_heard_within_a_frame_of_its_flash_in_a_recording_and_over_srt() {
    let _turn = serial();
    let port = free_udp_port();
    let mut d = Daemon::start_with_show(
        "audio-click",
        &format!(
            "name: click\nbackend: python\nmodel: {}/models/click\ndevice: cpu\nmodel_threads: 1\n",
            repo().display()
        ),
        &format!(
            "audio:\n  - {{model: true}}\noutputs:\n  - {{name: rec, type: record, path: rec.mkv, profile: {SMALL}}}\n  \
             - {{name: srt, type: srt, mode: listener, address: 127.0.0.1:{port}, latency_ms: 120, profile: {SMALL}}}\n"
        ),
        &[],
    );
    let receiver = SrtReceiver::call(port);
    d.wait_state("rec", "live", Duration::from_secs(30));
    d.wait_state("srt", "live", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    let a = &d.get("/api/v1/status")["audio"][0];
    assert_eq!(a["name"], "model", "{a}");
    assert_eq!(d.terminate(), 0);

    for file in [d.dir.join("rec.mkv"), receiver.path().to_path_buf()] {
        let seen = cuecast_tests::sync::flashes_and_clicks(&file).unwrap();
        assert!(seen.flashes.len() >= 6, "{}: {seen:?}", file.display());
        assert!(seen.clicks.len() >= 6, "{}: {seen:?}", file.display());
        let offsets = seen.offsets();
        println!("{}: click - flash offsets (s): {offsets:?}", file.display());
        assert!(offsets.len() >= 6, "{}: {seen:?}", file.display());
        assert!(
            offsets.iter().all(|(_, o)| o.abs() <= 1.0 / 30.0),
            "{}: {seen:?}",
            file.display()
        );
    }
}
