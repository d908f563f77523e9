//! The daemon as the tests run it: a real `cuecast serve` process with a config
//! written for the test, spoken to over real HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_imports)]
pub use cuecast_tests::peers::*;

/// Daemons encode video: on a small machine two at once would starve each other, so
/// the tests of one file take turns.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A small, fast profile for tests: 320x180 at 30 fps with AAC.
pub const SMALL: &str = "{video: {width: 320, height: 180, fps: 30, bitrate_kbps: 600, keyframe_s: 1, preset: ultrafast}, audio: {}}";

pub struct Daemon {
    pub dir: PathBuf,
    pub api: String,
    pub port: u16,
    child: Option<Child>,
    /// Its folder outlives it (a daemon started again on it removes it).
    keep_dir: bool,
}

impl Daemon {
    /// Writes `cuecast.yaml` (video 320x180@30, the repo's presets and default show,
    /// the API on a port the daemon picks, then `rest`) and starts the daemon; returns
    /// once it is live, its API address read from its ready file.
    pub fn start(name: &str, rest: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_with(name, &format!("api: {{listen: 127.0.0.1:0}}\n{rest}"), env)
    }

    /// Like [`start`], with the `api:` section given by the caller (port 0: the daemon
    /// picks one and reports it).
    pub fn start_with(name: &str, rest: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch(name, None, rest, env)
    }

    /// Like [`start`], with the show preset `show` (YAML) instead of the default one.
    pub fn start_with_show(name: &str, show: &str, rest: &str, env: &[(&str, &str)]) -> Daemon {
        let rest = format!("api: {{listen: 127.0.0.1:0}}\n{rest}");
        Self::launch(name, Some(show), &rest, env)
    }

    fn launch(name: &str, show: Option<&str>, rest: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("cuecast-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = repo();
        let show = match show {
            Some(text) => {
                std::fs::write(dir.join("show.yaml"), text).unwrap();
                "show.yaml".to_owned()
            }
            None => format!("{}/presets/shows/default.yaml", repo.display()),
        };
        let config = format!(
            "show: {show}\npresets: {}/presets\nvideo: {{width: 320, height: 180, fps: 30}}\ntakes: takes\ncheckpoints: checkpoints\nexports: exports\n{rest}",
            repo.display()
        );
        std::fs::write(dir.join("cuecast.yaml"), config).unwrap();
        Self::spawn_in(dir, env)
    }

    /// A daemon with exactly `config` as its `cuecast.yaml`, in a folder of its own.
    pub fn start_config(name: &str, config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("cuecast-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cuecast.yaml"), config).unwrap();
        Self::spawn_in(dir, &[])
    }

    /// A daemon started again on the folders of one that ended (`kill -9`, a crash):
    /// the same config, takes, checkpoints and recordings. Its log is appended to the
    /// first one's.
    pub fn start_again(dir: PathBuf) -> Daemon {
        Self::spawn_in(dir, &[])
    }

    fn spawn_in(dir: PathBuf, env: &[(&str, &str)]) -> Daemon {
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cuecast-e2e"));
        cmd.args(["serve", "--config"])
            .arg(dir.join("cuecast.yaml"))
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("cannot start the daemon");
        let mut d = Daemon {
            api: String::new(),
            dir,
            port: 0,
            child: Some(child),
            keep_dir: false,
        };
        // The daemon writes its ready file once it is live, with the address it bound.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("the daemon exited ({status}):\n{}", d.log());
            }
            if let Some(addr) = cuecast_tests::daemon::ready_api(&ready) {
                d.port = addr.port();
                d.api = format!("127.0.0.1:{}", addr.port());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never said it was live (no ready file):\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Every thread's stack in the running daemon (when gdb is installed): what a
    /// failed wait needs to tell a stuck output from a slow one.
    pub fn stacks(&self) -> String {
        let Some(child) = &self.child else {
            return String::new();
        };
        Command::new("gdb")
            .args([
                "-p",
                &child.id().to_string(),
                "-batch",
                "-ex",
                "thread apply all bt",
            ])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|_| "(no gdb: thread stacks not shown)".to_owned())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = request(&self.api, "GET", path, None, None).unwrap();
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        request(&self.api, method, path, body, token).unwrap()
    }

    pub fn output(&self, name: &str) -> Value {
        let all = self.get("/api/v1/outputs");
        all.as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn state(&self, name: &str) -> String {
        self.output(name)["state"].as_str().unwrap_or("").to_owned()
    }

    pub fn bytes(&self, name: &str) -> u64 {
        self.output(name)["bytes"].as_u64().unwrap_or(0)
    }

    pub fn frame(&self) -> u64 {
        self.get("/api/v1/status")["frame"].as_u64().unwrap()
    }

    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.state(name) != state {
            assert!(
                Instant::now() < deadline,
                "output {name} never became {state}: {}\n{}\n{}",
                self.output(name),
                self.log(),
                self.stacks()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's process id (0 once it has been stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn terminate(&mut self) -> i32 {
        self.stop_with(libc::SIGTERM)
    }

    /// `kill -9`: the daemon ends at once, and its folder is left for
    /// [`Daemon::start_again`].
    pub fn kill_9(mut self) -> PathBuf {
        self.keep_dir = true;
        self.stop_with(libc::SIGKILL);
        self.dir.clone()
    }

    /// Sends `signal` and leaves the daemon running.
    pub fn send(&self, signal: libc::c_int) {
        let child = self.child.as_ref().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Sends `signal`, then waits for the exit; returns the exit code.
    pub fn stop_with(&mut self, signal: libc::c_int) -> i32 {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the daemon did not stop on signal {signal}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() && !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Follows `/api/v1/events` of the daemon at `addr`.
pub fn follow_events(addr: &str) -> std::sync::mpsc::Receiver<Value> {
    cuecast_tests::daemon::follow_events(addr).expect("the event stream opens")
}

pub use cuecast_tests::http::request;

/// An HTTP/1.1 response's status and body (JSON when it is).
fn parse_response(resp: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

/// One HTTP/1.1 request written as the caller gives it (`head` holds the header lines
/// after the request line, each ending in CRLF); a browser's or an attacker's request.
pub fn raw_request(addr: &str, method: &str, path: &str, head: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{head}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    parse_response(&resp)
}

/// The model packages of engine/tests/fixtures/broken_models.py, written into `dir` with
/// the project's Python (`CUECAST_PYTHON`, from scripts/setup).
pub fn broken_packages(dir: &Path) -> PathBuf {
    let py = std::env::var("CUECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(py)
        .arg(repo().join("engine/tests/fixtures/broken_models.py"))
        .arg(dir)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("cannot run Python: run scripts/setup");
    assert!(
        out.status.success(),
        "writing the broken model packages failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

/// A tmpfs mounted on a folder until dropped: a small disk to fill. Root only: `None`,
/// with a SKIPPED message naming `what` is not tested, where mounting is refused.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str, what: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root): {what} is not tested");
        }
        mounted.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
