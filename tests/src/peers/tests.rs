//! The peers' own tests: each starts, is reached on loopback and stops.

use super::*;

/// A GStreamer sender, killed on drop. Its output goes to a file so a
/// test can read the error it died with.
struct Gst {
    child: Child,
    dir: PathBuf,
}

const VIDEO: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=180,framerate=30/1 \
    ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency key-int-max=60 \
    ! h264parse";
const AUDIO: &str = "audiotestsrc is-live=true wave=silence ! audioconvert ! avenc_aac ! aacparse";

impl Gst {
    fn launch(pipeline: &str) -> Gst {
        let dir = fresh_dir("gst");
        let log = create_file(&dir.join("out.log"));
        let mut cmd = Command::new("gst-launch-1.0");
        // No shell: every element and property is one argument, which
        // works as long as no property value holds a space.
        cmd.arg("-e")
            .args(pipeline.split_whitespace())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = spawn_tied(&mut cmd).expect("spawn gst-launch-1.0");
        Gst { child, dir }
    }

    fn rtmp(url: &str) -> Gst {
        Gst::launch(&format!(
            "{VIDEO} ! flvmux name=m streamable=true ! rtmp2sink location={url} {AUDIO} ! m."
        ))
    }

    fn srt(uri: &str, extra: &str) -> Gst {
        Gst::launch(&format!(
            "{VIDEO} ! mpegtsmux name=ts alignment=7 ! srtsink uri={uri} {extra} {AUDIO} ! ts."
        ))
    }

    fn output(&self) -> String {
        read_lossy(&self.dir.join("out.log"))
    }
}

impl Drop for Gst {
    fn drop(&mut self) {
        kill_and_wait(&mut self.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn assert_test_pattern(p: &Probe, with_audio: bool) {
    assert_eq!(p.video_codec.as_deref(), Some("h264"), "{p:?}");
    assert_eq!((p.width, p.height), (320, 180), "{p:?}");
    assert!((p.fps - 30.0).abs() < 0.01, "{p:?}");
    if with_audio {
        assert_eq!(p.audio_codec.as_deref(), Some("aac"), "{p:?}");
        assert_eq!(p.audio_rate, Some(44100), "{p:?}");
    }
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let tcp: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let udp: Vec<u16> = (0..20).map(|_| free_udp_port()).collect();
    for (ports, name) in [(&tcp, "tcp"), (&udp, "udp")] {
        let set: BTreeSet<_> = ports.iter().collect();
        assert_eq!(set.len(), ports.len(), "{name} ports repeat: {ports:?}");
    }
    TcpListener::bind(("127.0.0.1", tcp[0])).unwrap();
    UdpSocket::bind(("127.0.0.1", udp[0])).unwrap();
}

#[test]
fn parse_rates_and_missing_streams() {
    assert_eq!(parse_rate("30/1"), Some(30.0));
    assert!((parse_rate("30000/1001").unwrap() - 29.97).abs() < 0.01);
    assert_eq!(parse_rate("0/0"), None);
    assert_eq!(parse_rate("junk"), None);
    let json: Value = serde_json::from_str(
        r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":640,
            "height":360,"avg_frame_rate":"0/0","r_frame_rate":"25/1","profile":"Main"}]}"#,
    )
    .unwrap();
    let p = parse_probe(&json);
    assert_eq!(p.fps, 25.0);
    assert_eq!((p.width, p.height), (640, 360));
    assert_eq!(p.profile.as_deref(), Some("Main"));
    assert_eq!((p.audio_codec, p.audio_rate), (None, None));
    assert_eq!(parse_probe(&serde_json::json!({})), Probe::default());
}

#[test]
fn wait_until_returns_when_true() {
    let mut n = 0;
    wait_until(Duration::from_secs(2), "third call", || {
        n += 1;
        n == 3
    });
    assert_eq!(n, 3);
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_until_panics_with_what() {
    wait_until(Duration::from_millis(250), "the impossible", || false);
}

#[test]
fn rtmp_publish_then_probe() {
    let server = RtmpServer::start();
    assert_eq!(
        server.url("abc"),
        format!("rtmp://127.0.0.1:{}/live/abc", server.port)
    );
    let _publisher = Gst::rtmp(&server.url("abc"));
    // nginx-rtmp lets the player wait for the publisher, so no sleep.
    let probe = ffprobe(&server.url("abc"), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.error_log()));
    assert_test_pattern(&probe, true);
    assert_eq!(probe.profile.as_deref(), Some("High"));
}

#[test]
fn rtmp_kill_breaks_publisher_and_restart_on_same_port() {
    let mut server = RtmpServer::start();
    let port = server.port;
    let mut publisher = Gst::rtmp(&server.url("k"));
    wait_until(Duration::from_secs(5), "publish in nginx log", || {
        server.error_log().contains("publish")
    });
    server.kill();
    wait_until(Duration::from_secs(5), "publisher to fail", || {
        publisher.child.try_wait().unwrap().is_some()
    });
    let out = publisher.output();
    assert!(
        out.contains("ERROR") && out.contains("rtmp2sink"),
        "publisher output: {out}"
    );
    // Nothing listens any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let server = RtmpServer::start_on(port);
    assert_eq!(server.port, port);
    let _publisher = Gst::rtmp(&server.url("k"));
    let probe = ffprobe(&server.url("k"), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.error_log()));
    assert_test_pattern(&probe, true);
}

#[test]
fn start_on_a_taken_port_panics_with_nginx_log() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = RtmpServer::try_start_on(port).err().expect("must fail");
    assert!(err.contains("Address already in use"), "{err}");
}

#[test]
fn ffprobe_times_out_without_publisher() {
    let server = RtmpServer::start();
    let started = Instant::now();
    let err = ffprobe(&server.url("nobody"), Duration::from_secs(2)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    // Nothing listening at all: fails fast, with ffprobe's reason.
    let err = ffprobe(
        &format!("rtmp://127.0.0.1:{}/live/x", free_port()),
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(err.contains("127.0.0.1"), "{err}");
}

#[test]
fn srt_listener_receives_from_caller() {
    let port = free_udp_port();
    let rx = SrtReceiver::listen(port);
    let _sender = Gst::srt(&format!("srt://127.0.0.1:{port}?mode=caller"), "");
    wait_until(Duration::from_secs(8), "200 kB over SRT", || {
        rx.bytes() > 200_000
    });
    let (probe, frames, duration) =
        ffprobe_file(rx.path()).unwrap_or_else(|e| panic!("{e}\n{}", rx.log()));
    assert_test_pattern(&probe, true);
    assert!(frames > 10, "{frames} frames");
    assert!(duration > 0.5, "{duration} s");
}

#[test]
fn srt_caller_keeps_dialing_until_listener_appears() {
    let port = free_udp_port();
    let rx = SrtReceiver::call(port);
    // Long enough for at least one failed attempt.
    thread::sleep(Duration::from_millis(3500));
    assert_eq!(rx.bytes(), 0);
    let _sender = Gst::srt(
        &format!("srt://127.0.0.1:{port}?mode=listener"),
        "wait-for-connection=false",
    );
    wait_until(Duration::from_secs(8), "200 kB over SRT", || {
        rx.bytes() > 200_000
    });
    let before = rx.bytes();
    wait_until(Duration::from_secs(3), "bytes to keep growing", || {
        rx.bytes() > before
    });
    // The sender was running before we connected, so the file starts
    // mid-GOP: ffprobe knows the picture size only once the next key
    // frame (SPS) has arrived, up to key-int-max = 2 s later.
    let mut last = None;
    wait_until(Duration::from_secs(5), "a key frame in the file", || {
        last = Some(ffprobe_file(rx.path()));
        matches!(&last, Some(Ok((p, _, _))) if p.width > 0)
    });
    let (probe, frames, _) = last.unwrap().unwrap();
    assert_test_pattern(&probe, true);
    assert!(frames > 10, "{frames} frames");
}

/// A sender that dies without an SRT shutdown (like a SIGKILLed daemon)
/// is noticed only after the 5 s peer idle timeout; then the listener
/// takes the next sender and appends to the same file.
#[test]
fn srt_listener_takes_next_sender_after_one_is_killed() {
    let port = free_udp_port();
    let rx = SrtReceiver::listen(port);
    let uri = format!("srt://127.0.0.1:{port}?mode=caller");
    let first = Gst::srt(&uri, "");
    wait_until(Duration::from_secs(5), "first sender's data", || {
        rx.bytes() > 50_000
    });
    drop(first);
    let killed = Instant::now();
    wait_until(Duration::from_secs(8), "listener to see the loss", || {
        rx.log().contains("disconnected")
    });
    let noticed = killed.elapsed();
    assert!(
        noticed > Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
    let before = rx.bytes();
    let _second = Gst::srt(&uri, "");
    wait_until(Duration::from_secs(4), "second sender's data", || {
        rx.bytes() > before + 50_000
    });
}

/// The mirror case: the listener (think: the daemon) is killed and comes
/// back on the same port; the caller redials on its own.
#[test]
fn srt_caller_redials_after_listener_is_killed() {
    let port = free_udp_port();
    let rx = SrtReceiver::call(port);
    let uri = format!("srt://127.0.0.1:{port}?mode=listener");
    let first = Gst::srt(&uri, "wait-for-connection=false");
    wait_until(Duration::from_secs(5), "first listener's data", || {
        rx.bytes() > 50_000
    });
    drop(first);
    let _second = Gst::srt(&uri, "wait-for-connection=false");
    let before = rx.bytes();
    wait_until(Duration::from_secs(10), "second listener's data", || {
        rx.bytes() > before + 50_000
    });
}

#[test]
fn ffprobe_srt_caller_against_gst_listener() {
    let port = free_udp_port();
    let _sender = Gst::srt(
        &format!("srt://127.0.0.1:{port}?mode=listener"),
        "wait-for-connection=false",
    );
    // gst binds its port asynchronously; wait so ffprobe's one connect
    // attempt does not miss it.
    wait_until(Duration::from_secs(5), "gst srtsink to bind", || {
        UdpSocket::bind(("127.0.0.1", port)).is_err()
    });
    // SRT's latency option in ffmpeg is in microseconds: 120 ms.
    let url = format!("srt://127.0.0.1:{port}?mode=caller&latency=120000");
    let probe = ffprobe(&url, Duration::from_secs(10)).unwrap();
    assert_test_pattern(&probe, true);
}
