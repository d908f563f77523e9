//! `cuecast serve` as a user runs it: the binary, its cue API over real HTTP, and a
//! recording that survives being stopped by a signal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn post(addr: &str, path: &str, body: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    Some(resp)
}

#[test]
fn serve_takes_cues_and_a_sigterm_leaves_a_playable_recording() {
    let dir = std::env::temp_dir().join(format!("cuecast-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = dir.join("show.mkv");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cuecast"))
        .args(["serve", "--size", "320x180", "--control", &addr, "--record"])
        .arg(&record)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The API answers once the show is up; a cue is applied and reported with its frame.
    let deadline = Instant::now() + Duration::from_secs(60);
    let resp = loop {
        if let Some(r) = post(
            &addr,
            "/api/v1/cues?wait=true",
            r#"{"type":"action","forward":1}"#,
        ) {
            break r;
        }
        assert!(Instant::now() < deadline, "the cue API never came up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"frame\""), "{resp}");
    // Let it record two seconds of show, then stop it the way a service manager would.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "cuecast exited with {status}:\n{log}");
    assert!(log.contains("recording complete"), "{log}");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(
        (
            s["codec_name"].as_str(),
            s["width"].as_u64(),
            s["height"].as_u64()
        ),
        (Some("h264"), Some(320), Some(180))
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 30, "{frames} frames recorded in over two seconds");
}
