//! `cuecast`, the daemon: runs the show and sends it out.
//!
//! - [`config`]: `cuecast.yaml`, show presets and output profiles, checked whole;
//! - [`serve`]: one show from config to outputs, with live config reload;
//! - [`outputs`]: SRT, RTMP, recordings and the preview, isolated and supervised;
//! - [`api`]: the HTTP API, its OpenAPI document, events and metrics;
//! - [`osc`]: cues over OSC; [`rundown`]: GO and BACK; [`events`]: the event stream;
//! - [`library`]: takes, checkpoints and export jobs; [`cli`]: the other commands.
//!
//! The binary is a thin `main` over [`run`], so the end-to-end tests can build the
//! same entry point.

pub mod api;
pub mod audio;
pub mod cli;
pub mod config;
pub mod control;
mod delivery;
pub mod events;
pub mod inputs;
pub mod library;
pub mod logging;
pub mod osc;
pub mod outputs;
pub mod rundown;
pub mod serve;
pub mod surface;

use std::path::{Path, PathBuf};

/// The signals that end a show cleanly: SIGINT (Ctrl-C), SIGTERM, SIGHUP (the terminal
/// that ran it was closed) and SIGQUIT. SIGUSR1 and SIGUSR2, which would end the
/// process with nothing finished, are taken and ignored.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
const IGNORED_SIGNALS: [libc::c_int; 2] = [libc::SIGUSR1, libc::SIGUSR2];

/// Those signals are blocked in every thread (call this before any thread starts) and
/// taken synchronously by the one thread that turns them into a clean stop.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS.iter().chain(&IGNORED_SIGNALS) {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for a signal that ends the show; returns it.
pub(crate) fn wait_for_signal() -> Option<i32> {
    let set = block_stop_signals();
    loop {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set; sigwait writes the signal number.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return None;
        }
        if STOP_SIGNALS.contains(&signal) {
            return Some(signal);
        }
        tracing::warn!("signal {signal} ignored (SIGINT, SIGTERM, SIGHUP or SIGQUIT end the show)");
    }
}

/// `path` with `dir/..` pairs and `.` taken out, without touching the file system
/// (`config/../recordings/x.mkv` reads `recordings/x.mkv`).
pub fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// How a path is shown to API clients: relative to the daemon's folder, tidied, and
/// never as an absolute path of the server (outside that folder, its last two parts).
pub fn user_path(path: &std::path::Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = tidy(&cwd.join(path));
    match path.strip_prefix(tidy(&cwd)) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => {
            let parts: Vec<_> = path.components().rev().take(2).collect();
            parts
                .iter()
                .rev()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        }
    }
}

/// The command line (without the program name); returns the exit status: 0, 1 when
/// the command failed, 2 when the command line itself is wrong.
pub fn run(args: &[String]) -> i32 {
    block_stop_signals();
    let cli = match cli::Cli::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are printed on stdout with status 0; usage errors on
            // stderr with status 2, as clap says.
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cuecast: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_tidied_and_shown_without_the_server_s_folders() {
        assert_eq!(
            tidy(Path::new("config/../recordings/./show.mkv")),
            PathBuf::from("recordings/show.mkv")
        );
        assert_eq!(tidy(Path::new("../a/b")), PathBuf::from("../a/b"));
        assert_eq!(
            tidy(Path::new("/srv/x/../y.mkv")),
            PathBuf::from("/srv/y.mkv")
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(user_path(&cwd.join("config/../takes/t1")), "takes/t1");
        assert_eq!(
            user_path(Path::new("/elsewhere/deep/takes/t1/take.json")),
            "t1/take.json"
        );
    }
}
