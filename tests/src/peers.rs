//! Real network peers for end-to-end tests, started by the tests themselves.
//!
//! cuecast's job is to push H.264/AAC to RTMP servers and SRT endpoints, so
//! the only convincing test is one where a real, independent implementation
//! receives the stream: nginx with the RTMP module as the RTMP server,
//! `srt-live-transmit` as the SRT receiver (listener or caller) and `ffprobe`
//! as the judge of what actually arrived. Mocks would only prove that we
//! agree with ourselves.
//!
//! Every peer here is started by the test that uses it, binds to 127.0.0.1
//! only, keeps its files in its own directory under [`std::env::temp_dir`],
//! and is killed and reaped when its handle is dropped (also while a failing
//! test unwinds). Children are additionally spawned with `PR_SET_PDEATHSIG`
//! so that they die with the *thread* that spawned them even when the test
//! binary itself is killed (no unwinding, no `Drop`). The flip side: a peer
//! must be started on the thread that keeps using it. Never park one in a
//! `static` shared between tests; every test owns its peers.
//!
//! Ports come from [`free_port`] / [`free_udp_port`]: the kernel picks a port
//! that is free now, and this process never hands out the same one twice, so
//! tests running in parallel do not collide with each other.
//!
//! Why one file over 600 lines: each peer is small, and they share the port, process and
//! log handling that makes them safe to run side by side.

use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Where Debian's libnginx-mod-rtmp puts the dynamic module.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
/// How long [`RtmpServer`] waits for nginx to listen.
const RTMP_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`SrtReceiver::listen`] waits for its UDP port to be bound.
const SRT_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Backstop for `ffprobe` on a finished file: it should never take this long.
const FILE_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// ffprobe can print one line per broken frame while it waits for a key
/// frame; the end of stderr is what explains a failure.
const STDERR_TAIL: usize = 8 * 1024;

/// Ports already handed out by this process, as (is_udp, port). The kernel
/// may give a just-released port to the next `bind(0)`; two parallel tests
/// must not end up with the same one.
static HANDED_OUT: Mutex<BTreeSet<(bool, u16)>> = Mutex::new(BTreeSet::new());

/// Makes temp dir names unique within this process (the pid makes them
/// unique across processes).
static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A TCP port on 127.0.0.1 that is free right now and that this process has
/// not handed out before.
pub fn free_port() -> u16 {
    free_port_of(false)
}

/// A UDP port on 127.0.0.1 that is free right now (SRT runs over UDP) and
/// that this process has not handed out before.
pub fn free_udp_port() -> u16 {
    free_port_of(true)
}

fn free_port_of(udp: bool) -> u16 {
    for _ in 0..100 {
        // Binding port 0 lets the kernel pick; the socket is dropped at the
        // end of the statement so the port is free for the peer.
        let port = if udp {
            UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
        } else {
            TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
        }
        .expect("bind 127.0.0.1:0")
        .port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert((udp, port)) {
            return port;
        }
    }
    panic!(
        "no fresh {} port after 100 tries",
        if udp { "UDP" } else { "TCP" }
    );
}

/// Polls `f` every 100 ms until it returns true; panics naming `what` when
/// `timeout` passes first. `f` is always called at least once.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh, empty directory for one peer's files.
fn fresh_dir(kind: &str) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cuecast-{kind}-{}-{n}", std::process::id()));
    // A crashed earlier run with a recycled pid may have left one behind.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn create_file(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

extern "C" {
    // glibc's prctl is variadic; std links libc, so no extra crate is needed.
    fn prctl(option: i32, ...) -> i32;
    fn getppid() -> i32;
}
const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: i32 = 9;

/// Spawns `cmd` so that the kernel SIGKILLs it when the spawning thread
/// dies. `Drop` is the normal way peers end; this covers the test binary
/// being killed, where no destructor runs and nginx would otherwise keep
/// its port forever.
fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs between fork and exec and only makes two
    // async-signal-safe syscalls; it touches no memory shared with the
    // parent.
    unsafe {
        cmd.pre_exec(move || {
            if prctl(PR_SET_PDEATHSIG, SIGKILL as std::ffi::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if getppid() != parent {
                return Err(std::io::Error::other("parent died during spawn"));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGKILL and reap; quiet if the child is already gone.
fn kill_and_wait(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// nginx with the RTMP module, alone in its own temp dir, listening on
/// 127.0.0.1:`port` with one application, `live`.
pub struct RtmpServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RtmpServer {
    /// Starts a server on a free port.
    pub fn start() -> RtmpServer {
        // free_port can race with some other program grabbing the port
        // before nginx binds it; a new port is cheap, so try a few.
        let mut errors = Vec::new();
        for _ in 0..3 {
            match Self::try_start_on(free_port()) {
                Ok(server) => return server,
                Err(e) => errors.push(e),
            }
        }
        panic!("nginx-rtmp did not start:\n{}", errors.join("\n---\n"));
    }

    /// Starts a server on `port`, e.g. to bring it back after [`kill`](Self::kill).
    pub fn start_on(port: u16) -> RtmpServer {
        Self::try_start_on(port).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_on(port: u16) -> Result<RtmpServer, String> {
        let dir = fresh_dir("rtmp");
        let conf = dir.join("nginx.conf");
        let pid_file = dir.join("nginx.pid");
        let error_log = dir.join("error.log");
        let d = dir.display();
        // No http block, so nothing wants /var/lib/nginx temp paths. The
        // rtmp module's access_log defaults to /var/log/nginx/access.log,
        // hence the explicit one. master_process off + daemon off keep it
        // to one process: the one we spawn and kill.
        let text = format!(
            "load_module {RTMP_MODULE};\n\
             daemon off;\n\
             master_process off;\n\
             pid \"{d}/nginx.pid\";\n\
             error_log \"{d}/error.log\" info;\n\
             events {{}}\n\
             rtmp {{\n\
             \x20   access_log \"{d}/access.log\";\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             \x20       application live {{\n\
             \x20           live on;\n\
             \x20           record off;\n\
             \x20           drop_idle_publisher 10s;\n\
             \x20       }}\n\
             \x20       application closed {{\n\
             \x20           live on;\n\
             \x20           deny publish all;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n"
        );
        fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;

        // -e: nginx opens its compiled-in error log (/var/log/nginx) before
        // it has read the config; point that at our dir too.
        let mut cmd = Command::new("/usr/sbin/nginx");
        cmd.arg("-e")
            .arg(&error_log)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(create_file(&dir.join("stdout.log")))
            .stderr(create_file(&dir.join("stderr.log")));
        let child = match spawn_tied(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("spawn /usr/sbin/nginx: {e}"));
            }
        };
        let mut server = RtmpServer {
            port,
            dir,
            child: Some(child),
        };
        let pid = server.child.as_ref().map(|c| c.id()).unwrap_or_default();

        // nginx writes its pid file only after it has bound its listening
        // sockets, so "pid file holds our child's pid" tells that *this*
        // nginx owns the port; a bare connect could reach someone else.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + RTMP_START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(|c| c.try_wait()) {
                return Err(server.failure(&format!("nginx exited ({status})")));
            }
            let pid_ok = fs::read_to_string(&pid_file)
                .map(|s| s.trim() == pid.to_string())
                .unwrap_or(false);
            if pid_ok && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(server.failure(&format!(
                    "nginx not accepting on {addr} after {RTMP_START_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Message for a failed start; dropping `self` afterwards cleans up.
    fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n--- error.log ---\n{}\n--- stderr ---\n{}",
            self.error_log(),
            read_lossy(&self.dir.join("stderr.log"))
        )
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.app_url())
    }

    /// `rtmp://127.0.0.1:PORT/live`, for clients that take the app URL and
    /// the stream key separately.
    pub fn app_url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    /// `rtmp://127.0.0.1:PORT/closed`: an application that accepts the connection and
    /// refuses every publish, as a platform does with a wrong or expired key.
    pub fn closed_app_url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/closed", self.port)
    }

    /// nginx's error log so far (connects, publishes, drops at `info`), for
    /// assertion messages.
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"))
    }

    /// Freezes nginx (SIGSTOP) or thaws it (SIGCONT): its connections stay open and
    /// take nothing, as a hung server's do.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// SIGKILLs nginx now (publishers see the connection drop, no goodbye)
    /// and waits until the port can be bound again, so `start_on(port)` can
    /// follow right away.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
        // std's TcpListener sets SO_REUSEADDR like nginx does, so connections
        // left in TIME_WAIT do not block this; it should pass at once.
        let port = self.port;
        wait_until(
            Duration::from_secs(5),
            &format!("127.0.0.1:{port} to be bindable after killing nginx"),
            || TcpListener::bind(("127.0.0.1", port)).is_ok(),
        );
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        // Not self.kill(): a panic in drop while unwinding would abort.
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What ffprobe saw: the first video and the first audio stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probe {
    pub video_codec: Option<String>,
    /// 0 without a video stream.
    pub width: u32,
    pub height: u32,
    /// 0.0 when ffprobe could not tell.
    pub fps: f64,
    pub audio_codec: Option<String>,
    pub audio_rate: Option<u32>,
    /// The video stream's profile ("High", "Main", ...).
    pub profile: Option<String>,
}

/// Probes a live URL (`rtmp://...`, `srt://...?mode=caller`) with
/// `ffprobe -show_streams`. ffprobe is killed once `timeout` has passed, as
/// it can otherwise wait forever (nginx-rtmp happily lets a player wait for
/// a stream nobody publishes). `Err` carries ffprobe's stderr (its tail).
pub fn ffprobe(url: &str, timeout: Duration) -> Result<Probe, String> {
    let mut cmd = Command::new("ffprobe");
    // -rw_timeout (µs) makes ffprobe give up on its own when no data flows,
    // for both rtmp and srt; the kill at `timeout` is the backstop. The URL
    // is passed as given so SRT options in its query string apply.
    cmd.args(["-v", "error", "-rw_timeout"])
        .arg(timeout.as_micros().max(1).to_string())
        .args(["-print_format", "json", "-show_streams"])
        .arg(url);
    let json = run_json(cmd, timeout)?;
    Ok(parse_probe(&json))
}

/// The codec of a file's first video stream and the frames a player decodes from it,
/// cut or not: a file cut by `kill -9` (an MKV without its duration) is counted by
/// decoding, where [`ffprobe_file`] needs a duration.
pub fn video_frames(path: &Path) -> Result<(String, u64), String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let not_playable = || {
        format!(
            "{} is not playable: {text} {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let (codec, frames) = text.split_once(',').ok_or_else(not_playable)?;
    let frames = frames.parse().map_err(|_| not_playable())?;
    Ok((codec.to_owned(), frames))
}

/// Probes a finished (or still growing) file, counting packets: returns the
/// probe, the number of video frames (packets of the first video stream)
/// and the duration in seconds.
pub fn ffprobe_file(path: &Path) -> Result<(Probe, u64, f64), String> {
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-count_packets",
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
    ])
    .arg(path);
    let json = run_json(cmd, FILE_PROBE_TIMEOUT)?;
    let probe = parse_probe(&json);
    let video = first_stream(&json, "video");
    let frames = video
        .and_then(|v| str_field(v, "nb_read_packets"))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let duration = json
        .get("format")
        .and_then(|f| str_field(f, "duration"))
        .or_else(|| video.and_then(|v| str_field(v, "duration")))
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("ffprobe gave no duration for {}: {json}", path.display()))?;
    Ok((probe, frames, duration))
}

/// Runs `cmd` (an ffprobe printing JSON) for at most `timeout`.
fn run_json(cmd: Command, timeout: Duration) -> Result<Value, String> {
    let (status, stdout, stderr) = run_with_timeout(cmd, timeout)?;
    if !status.success() {
        return Err(format!("ffprobe failed ({status}): {}", tail(&stderr)));
    }
    serde_json::from_str(&stdout).map_err(|e| {
        format!(
            "ffprobe printed no JSON ({e}): {stdout}\nstderr: {}",
            tail(&stderr)
        )
    })
}

/// Runs `cmd` with stdout and stderr captured, SIGKILLing it at `timeout`.
/// Pipes are drained on threads: ffprobe can write a lot to stderr while
/// it waits for a key frame and would block on a full pipe.
fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> Result<(ExitStatus, String, String), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = spawn_tied(&mut cmd).map_err(|e| format!("spawn {program}: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_and_wait(&mut child);
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok((status, stdout, stderr)),
        None => Err(format!(
            "{program} killed after {timeout:?}: {}",
            tail(&stderr)
        )),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last STDERR_TAIL bytes, cut at a char boundary.
fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(STDERR_TAIL);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].trim()
}

fn first_stream<'a>(json: &'a Value, codec_type: &str) -> Option<&'a Value> {
    json.get("streams")?
        .as_array()?
        .iter()
        .find(|s| s.get("codec_type").and_then(Value::as_str) == Some(codec_type))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// "30/1" -> 30.0; "0/0" (ffprobe's "unknown") -> None.
fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d) = (n.trim().parse::<f64>().ok()?, d.trim().parse::<f64>().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

fn parse_probe(json: &Value) -> Probe {
    let video = first_stream(json, "video");
    let audio = first_stream(json, "audio");
    let dim = |key| {
        video
            .and_then(|v| v.get(key))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    // avg_frame_rate is what was measured; r_frame_rate is the stream's
    // declared base rate, the fallback when the average is unknown.
    let fps = video
        .and_then(|v| {
            str_field(v, "avg_frame_rate")
                .and_then(parse_rate)
                .or_else(|| str_field(v, "r_frame_rate").and_then(parse_rate))
        })
        .unwrap_or(0.0);
    Probe {
        video_codec: video
            .and_then(|v| str_field(v, "codec_name"))
            .map(String::from),
        width: dim("width"),
        height: dim("height"),
        fps,
        audio_codec: audio
            .and_then(|a| str_field(a, "codec_name"))
            .map(String::from),
        audio_rate: audio
            .and_then(|a| str_field(a, "sample_rate"))
            .and_then(|s| s.parse().ok()),
        profile: video
            .and_then(|v| str_field(v, "profile"))
            .map(String::from),
    }
}

/// `srt-live-transmit` receiving SRT on loopback and writing the MPEG-TS it
/// gets to a file in its own temp dir (removed on drop, with the file).
///
/// Reconnects: it keeps running after the sender goes away and takes the
/// next connection, appending to the same file. After a sender that died
/// without closing (SIGKILL), SRT only notices after its 5 s peer idle
/// timeout; until then a listener accepts nobody new and a caller does not
/// redial.
pub struct SrtReceiver {
    child: Child,
    dir: PathBuf,
    file: PathBuf,
}

impl SrtReceiver {
    /// srt-live-transmit in listener mode on 127.0.0.1:`port`, writing what
    /// it receives to a file in a temp dir. Returns once the UDP port is
    /// bound.
    pub fn listen(port: u16) -> SrtReceiver {
        let rx = Self::spawn(&format!("srt://127.0.0.1:{port}?mode=listener"));
        // Taking the port ourselves fails once srt-live-transmit has it
        // (std's UdpSocket does not set SO_REUSEADDR).
        let deadline = Instant::now() + SRT_START_TIMEOUT;
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if Instant::now() >= deadline {
                panic!(
                    "srt-live-transmit did not bind UDP 127.0.0.1:{port} in {SRT_START_TIMEOUT:?}:\n{}",
                    rx.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        rx
    }

    /// srt-live-transmit in caller mode to a listener at 127.0.0.1:`port`.
    /// The listener need not exist yet: with `-a yes` it keeps dialing
    /// (data flows well under a second after the listener appears), and
    /// dials again whenever the connection breaks.
    pub fn call(port: u16) -> SrtReceiver {
        Self::spawn(&format!("srt://127.0.0.1:{port}?mode=caller"))
    }

    fn spawn(uri: &str) -> SrtReceiver {
        let dir = fresh_dir("srt");
        let file = dir.join("received.ts");
        // `file://con` is the only file output srt-live-transmit knows
        // (stdout), so stdout is redirected to the file. -v logs connects
        // and disconnects to stderr, which is kept for `log()`.
        let mut cmd = Command::new("srt-live-transmit");
        cmd.args(["-v", "-a", "yes", uri, "file://con"])
            .stdin(Stdio::null())
            .stdout(create_file(&file))
            .stderr(create_file(&dir.join("stderr.log")));
        let child = spawn_tied(&mut cmd).unwrap_or_else(|e| {
            let _ = fs::remove_dir_all(&dir);
            panic!("spawn srt-live-transmit: {e}")
        });
        SrtReceiver { child, dir, file }
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0)
    }

    /// The MPEG-TS file being written; [`ffprobe_file`] can read it, also
    /// while it grows.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// srt-live-transmit's log (connects, disconnects, errors), for
    /// assertion messages.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("stderr.log"))
    }
}

impl Drop for SrtReceiver {
    fn drop(&mut self) {
        kill_and_wait(&mut self.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests;
