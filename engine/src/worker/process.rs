//! One worker process: started in a process group of its own, killed with the parent
//! (`PR_SET_PDEATHSIG`), first in line for the kernel's out-of-memory killer
//! (`oom_score_adj` 1000: the model dies, never the show), files it makes readable by
//! cuecast's user only (umask 077), with only the environment it is given (never
//! cuecast's secrets), its output sent to cuecast's log under the model's name, and the
//! reason it ended put in words.
//!
//! A kill reaches every process the model started: the group, every descendant found in
//! `/proc`, and, in the sandbox, the whole PID namespace (which ends with bubblewrap's
//! init). Its exit is seen by waiting on the process, not by its socket closing: helpers
//! it forked may hold the socket open after it died.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The last lines the worker wrote on stderr: what a crash at import is told with.
const TAIL_LINES: usize = 20;
/// The longest log line kept, in bytes.
pub const MAX_LINE: usize = 2000;
/// Lines a second a model may log before lines are dropped (and counted).
const LINES_PER_S: u32 = 50;
/// How long a kill waits for the model's processes to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

pub struct Process {
    /// `None` once it would not be reaped and was left to a thread of its own.
    child: Option<Child>,
    /// How it ended, once it has been reaped: no signal is sent to its pid after that
    /// (the number may be another process's by then).
    ended: Option<String>,
    /// The process cuecast started: the interpreter, or bubblewrap around it.
    pub pid: u32,
    /// The process runs in bubblewrap: its exit code is the model's, 128 + N for a
    /// signal N.
    sandboxed: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
    pub started: Instant,
}

impl Process {
    /// Starts `command` (the interpreter, or bubblewrap around it); its output is logged
    /// as `name`. `keep_fd` is handed to the process open (the shared memory).
    pub fn spawn(
        mut command: Command,
        sandboxed: bool,
        name: &str,
        keep_fd: i32,
    ) -> std::io::Result<Process> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls, on nothing of this
        // process's memory but a static string: the kernel kills the child when the
        // thread that started it ends (a worker never outlives a cuecast that was
        // killed); files it makes are its user's alone; the out-of-memory killer takes
        // it first (raising the score needs no privilege); the shared memory's
        // descriptor stays open across exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::umask(0o077);
                let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
                if fd >= 0 {
                    libc::write(fd, b"1000".as_ptr().cast(), 4);
                    libc::close(fd);
                }
                // Nothing but stdio and the shared memory crosses into the model: any
                // descriptor a library opened without close-on-exec gets it here.
                libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32);
                if keep_fd >= 0 && libc::fcntl(keep_fd, libc::F_SETFD, 0) != 0 {
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
            child: Some(child),
            ended: None,
            pid,
            sandboxed,
            tail,
            started: Instant::now(),
        })
    }

    /// Whether it has exited, without reaping it: while its zombie stands, its process
    /// group id cannot be taken by another process, so a kill of the group is safe.
    pub fn has_exited(&self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child reapable.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() != 0
        }
    }

    /// The model's own process: the interpreter (inside the sandbox, the child of
    /// bubblewrap's init), as the host numbers it.
    pub fn model_pid(&self) -> u32 {
        if !self.sandboxed {
            return self.pid;
        }
        let init = children(self.pid).into_iter().min();
        init.and_then(|i| children(i).into_iter().min())
            .unwrap_or(self.pid)
    }

    /// Every process the model started and is still running, this one included.
    pub fn tree(&self) -> Vec<u32> {
        let mut all = vec![self.pid];
        let mut i = 0;
        let table = parents();
        while i < all.len() {
            let p = all[i];
            all.extend(table.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
            i += 1;
        }
        all
    }

    /// Memory the model's processes hold, in bytes (proportional set size: a page two
    /// processes share counts half to each).
    pub fn memory(&self) -> u64 {
        self.tree().into_iter().map(pss_bytes).sum()
    }

    /// Kills the process, its group and every process it started, at once (no grace: a
    /// hung or crashed model gets none), reaps it, and waits (bounded) for the others
    /// to be gone. Returns how it ended.
    pub fn kill(&mut self) -> String {
        if let Some(how) = &self.ended {
            return how.clone();
        }
        let tree = self.tree();
        // SAFETY: plain syscalls. The group id is the child's pid (process_group(0)),
        // still ours: the child is not reaped before this.
        unsafe {
            libc::kill(-(self.pid as i32), libc::SIGKILL);
            for p in &tree {
                libc::kill(*p as i32, libc::SIGKILL);
            }
        }
        let how = self.reap(KILL_WAIT);
        let deadline = Instant::now() + KILL_WAIT;
        while tree.iter().any(|p| running(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        how
    }

    /// Waits up to `within` for the process to end (it has been sent SIGKILL), and says
    /// how it ended, with the last thing it wrote on stderr when it failed. One that
    /// still has not ended (stuck in the kernel: a GPU driver's call) is left to a
    /// thread of its own to reap, so that nothing waits on it without bound.
    fn reap(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let status = loop {
            let Some(child) = self.child.as_mut() else {
                break None;
            };
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = std::thread::Builder::new()
                        .name("cuecast-model-reap".into())
                        .spawn(move || child.wait());
                }
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // Give the stderr reader a moment to take the last lines of a crash.
        std::thread::sleep(Duration::from_millis(20));
        let how = match status {
            Some(s) => describe_exit(self.model_status(s), self.last_error().as_deref()),
            None => format!(
                "would not end within {:.0} s of SIGKILL (stuck in the kernel): left to end by itself",
                within.as_secs_f64()
            ),
        };
        self.ended = Some(how.clone());
        how
    }

    /// Asks it to end by itself for `grace`, then kills what is left (helpers too).
    pub fn stop(&mut self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill()
    }

    /// The model's exit status: bubblewrap exits with the model's code, or 128 + N when
    /// signal N ended it.
    fn model_status(&self, s: ExitStatus) -> ExitStatus {
        match s.code() {
            Some(c) if self.sandboxed && (129..=128 + 64).contains(&c) => {
                ExitStatus::from_raw(c - 128)
            }
            _ => s,
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

    /// How it ended, once it has: reaped, with what it started ended too.
    pub fn exit(&mut self) -> Option<String> {
        self.has_exited().then(|| self.kill())
    }
}

impl Drop for Process {
    /// Whatever the process did, nothing it started outlives it.
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(pid, parent pid)` of every process on the machine.
fn parents() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

fn children(pid: u32) -> Vec<u32> {
    parents()
        .into_iter()
        .filter(|(_, pp)| *pp == pid)
        .map(|(c, _)| c)
        .collect()
}

/// Whether `pid` is a process that still runs (not gone, not a zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A process's proportional set size, in bytes (0 when it is gone).
fn pss_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
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
                super::protocol::truncate(&mut text, MAX_LINE);
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
