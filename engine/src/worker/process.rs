//! One worker process: started in a process group of its own (so a kill reaches any
//! children it made), killed with the parent (`PR_SET_PDEATHSIG`), with only the
//! environment it is given (never cuecast's secrets), its output sent to cuecast's log
//! under the model's name, and the reason it ended put in words.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The last lines the worker wrote on stderr: what a crash at import is told with.
const TAIL_LINES: usize = 20;
/// The longest log line kept, in bytes.
const MAX_LINE: usize = 2000;
/// Lines a second a model may log before lines are dropped (and counted).
const LINES_PER_S: u32 = 50;

pub struct Process {
    child: Child,
    pub pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
    pub started: Instant,
}

impl Process {
    /// Starts `python -u script --socket socket` in `cwd`; its output is logged as `name`.
    pub fn spawn(
        python: &Path,
        script: &Path,
        socket: &Path,
        cwd: &Path,
        pycache: &Path,
        name: &str,
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> std::io::Result<Process> {
        let mut command = Command::new(python);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("-u")
            .arg("-X")
            .arg("faulthandler")
            .arg(script)
            .arg("--socket")
            .arg(socket)
            .current_dir(cwd)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPYCACHEPREFIX", pycache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches nothing of this process's
        // memory: it asks the kernel to kill the child when its parent thread ends, so a
        // worker never outlives a cuecast that was killed.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            forward(out, name.to_owned(), None);
        }
        if let Some(err) = child.stderr.take() {
            forward(err, name.to_owned(), Some(tail.clone()));
        }
        Ok(Process {
            child,
            pid,
            tail,
            started: Instant::now(),
        })
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the whole process group at once (no grace: a hung or crashed model gets
    /// none), and reaps it. Returns how it ended.
    pub fn kill(&mut self) -> String {
        if self.exited().is_none() {
            // SAFETY: a plain syscall; the group id is the child's pid (process_group(0)).
            unsafe {
                libc::kill(-(self.pid as i32), libc::SIGKILL);
            }
        }
        self.reap(Duration::from_secs(2))
    }

    /// Waits up to `within` for the process to end, kills it if it has not, and says how
    /// it ended, with the last thing it wrote on stderr when it failed.
    pub fn reap(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.exited() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Give the stderr reader a moment to take the last lines of a crash.
        std::thread::sleep(Duration::from_millis(20));
        match status {
            Some(s) => describe_exit(s, self.last_error().as_deref()),
            None => "its exit status could not be read".into(),
        }
    }

    /// The last line on stderr that looks like an error (a Python exception), or the
    /// last line at all.
    pub fn last_error(&self) -> Option<String> {
        let tail = self.tail.lock();
        tail.iter()
            .rev()
            .find(|l| {
                l.split_once(": ").is_some_and(|(h, _)| {
                    !h.contains(' ') && (h.ends_with("Error") || h.ends_with("Exception"))
                })
            })
            .or(tail.back())
            .cloned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// How a process ended, in words: `exited with status 1: ModuleNotFoundError: ...`,
/// `was killed by signal 9 (SIGKILL)`.
pub fn describe_exit(status: ExitStatus, last_error: Option<&str>) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        _ => "ended".into(),
    };
    match last_error {
        Some(e) if !status.success() => format!("{how}: {e}"),
        _ => how,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        _ => "signal",
    }
}

/// Sends each line the worker writes to the log as `model NAME: line`, at most
/// [`LINES_PER_S`] a second (a model printing in its step loop cannot flood the log).
fn forward(
    out: impl Read + Send + 'static,
    name: String,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let _ = std::thread::Builder::new()
        .name("cuecast-model-log".into())
        .spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = Vec::new();
            let mut second = Instant::now();
            let (mut lines, mut dropped) = (0u32, 0u64);
            loop {
                line.clear();
                match reader.by_ref().take(MAX_LINE as u64 * 4).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let mut text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if text.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                if text.is_empty() {
                    continue;
                }
                if let Some(tail) = &tail {
                    let mut t = tail.lock();
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(text.clone());
                }
                if second.elapsed() >= Duration::from_secs(1) {
                    if dropped > 0 {
                        tracing::warn!(target: "cuecast::model", "model {name}: {dropped} lines not logged (over {LINES_PER_S} a second)");
                    }
                    second = Instant::now();
                    lines = 0;
                    dropped = 0;
                }
                lines += 1;
                if lines > LINES_PER_S {
                    dropped += 1;
                    continue;
                }
                if tail.is_some() {
                    tracing::warn!(target: "cuecast::model", "model {name}: {text}");
                } else {
                    tracing::info!(target: "cuecast::model", "model {name}: {text}");
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_told_in_words() {
        let s = ExitStatus::from_raw(9);
        assert_eq!(
            describe_exit(s, Some("x")),
            "was killed by signal 9 (SIGKILL): x"
        );
        let s = ExitStatus::from_raw(1 << 8);
        assert_eq!(
            describe_exit(s, Some("ModuleNotFoundError: No module named 'flash_attn'")),
            "exited with status 1: ModuleNotFoundError: No module named 'flash_attn'"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(0), Some("x")),
            "exited with status 0"
        );
    }
}
