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
pub mod cli;
pub mod config;
mod delivery;
pub mod events;
pub mod library;
pub mod osc;
pub mod outputs;
pub mod rundown;
pub mod serve;
pub mod surface;

use std::path::{Path, PathBuf};

const USAGE: &str = "\
usage: cuecast serve [--config FILE] [--ready-file FILE]
                                          run the show (default: config/cuecast.yaml);
                                          once live, FILE gets {api, osc}: the
                                          addresses bound (a listen port 0 picks one)
       cuecast check-config FILE         check a config, its show preset and profiles
       cuecast take start [NAME] | stop | list            [--api HOST:PORT]
       cuecast checkpoint save [NAME] | restore NAME | list [--api HOST:PORT]
       cuecast replay TAKE --out DIR [--width W --height H] [--force]
       cuecast export TAKE --out DIR [--formats gltf,usd,ae,blender,png,exr,prores] [--force]
       cuecast --version

The config says what runs: the show preset (model, scenes, rundown, OSC map), the
video size and rate, the API and OSC addresses, and the outputs (srt, rtmp, record,
preview). It is watched while the show runs: edits apply live, bad edits are refused.

take and checkpoint talk to a running show's API (token from CUECAST_TOKEN);
replay and export work on a take folder (or a name in takes/) with no show running.
";

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it: the
/// show outlives any one handler.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
        eprintln!(
            "cuecast: signal {signal} ignored (SIGINT, SIGTERM, SIGHUP or SIGQUIT end the show)"
        );
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

/// The command line; returns the exit status.
/// `serve`'s options: `--config FILE` and `--ready-file FILE`, each at most once.
fn serve_args(args: &[String]) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let (mut config, mut ready) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--config" => &mut config,
            "--ready-file" => &mut ready,
            other => anyhow::bail!("serve does not take {other:?}\n\n{USAGE}"),
        };
        let Some(value) = it.next() else {
            anyhow::bail!("{flag} needs a FILE\n\n{USAGE}");
        };
        if slot.replace(PathBuf::from(value)).is_some() {
            anyhow::bail!("{flag} is given twice\n\n{USAGE}");
        }
    }
    Ok((
        config.unwrap_or_else(|| PathBuf::from("config/cuecast.yaml")),
        ready,
    ))
}

pub fn run(args: &[String]) -> i32 {
    block_stop_signals();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve_args(&args[1..])
            .and_then(|(config, ready)| serve::serve(&config, ready.as_deref())),
        Some("check-config") => match &args[1..] {
            [file] => serve::check_config(&PathBuf::from(file)),
            _ => Err(anyhow::anyhow!("check-config takes one FILE\n\n{USAGE}")),
        },
        Some("take") => cli::take(&args[1..]),
        Some("checkpoint") => cli::checkpoint(&args[1..]),
        Some("replay") => cli::replay_take(&args[1..]),
        Some("export") => cli::export(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version") => {
            println!("cuecast {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
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
