//! The command line (clap): `serve` and `check-config`, takes and checkpoints of a
//! running show (through its HTTP API, like any other client, with `ureq`), and replay
//! and export of takes (offline, no daemon needed). Each subcommand has its `--help`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::logging::{LogFormat, LogLevel};
use cuecast_engine::replay::{replay, ReplayOptions};
use cuecast_engine::{check_name, Take};
use cuecast_exporters::{ExportOptions, Format};
use serde_json::{json, Value};

/// `cuecast`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "cuecast",
    version,
    about = "Put a generative world model on air: steer it with cues, send it out over SRT and RTMP, record and export takes.",
    after_help = "The config says what runs: the show preset (model, scenes, rundown, OSC map), the \
video size and rate, the API and OSC addresses, and the outputs (srt, rtmp, record, preview). \
It is watched while the show runs: edits apply live, bad edits are refused.\n\n\
take and checkpoint talk to a running show's API (token from CUECAST_TOKEN); replay and \
export work on a take folder (or a name in takes/) with no show running."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the show
    Serve {
        /// The config file
        #[arg(long, value_name = "FILE", default_value = "config/cuecast.yaml")]
        config: PathBuf,
        /// Once live, write {api, osc} here: the addresses bound (a listen port 0 picks one)
        #[arg(long, value_name = "FILE")]
        ready_file: Option<PathBuf>,
        /// How log lines are written on stderr
        #[arg(long, value_enum, default_value = "human")]
        log_format: LogFormat,
        /// The least severe log lines written
        #[arg(long, value_enum, default_value = "info")]
        log_level: LogLevel,
    },
    /// Check a config, its show preset and profiles, without running anything
    CheckConfig {
        /// The config file
        file: PathBuf,
    },
    /// Start, stop or list takes of a running show
    Take {
        #[command(subcommand)]
        action: TakeAction,
        /// The show's API address
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_API, global = true)]
        api: String,
    },
    /// Save, restore or list checkpoints of a running show
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
        /// The show's API address
        #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_API, global = true)]
        api: String,
    },
    /// Make a take again from its start checkpoint and cues, offline; says whether every
    /// frame is identical
    Replay {
        /// A take folder, or the name of one in takes/
        take: String,
        /// The folder to write (refused when it exists, unless --force)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Render at another width (even, 2..7680; with --height)
        #[arg(long, value_name = "W", requires = "height", value_parser = even_pixels)]
        width: Option<usize>,
        /// Render at another height (even, 2..7680; with --width)
        #[arg(long, value_name = "H", requires = "width", value_parser = even_pixels)]
        height: Option<usize>,
        /// Replace --out if it exists
        #[arg(long)]
        force: bool,
        /// Every frame at the model's full quality (the procedural world at full detail
        /// where live it drew some at less), not exactly as live
        #[arg(long = "final")]
        final_quality: bool,
    },
    /// Turn a take into a bundle for Blender, Unreal and After Effects, offline
    Export {
        /// A take folder, or the name of one in takes/
        take: String,
        /// The folder to write (refused when it exists, unless --force)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Formats, comma-separated: gltf, usd, ae, blender, png, exr, prores (default: all
        /// the take allows)
        #[arg(long, value_name = "LIST", value_parser = formats)]
        formats: Option<BTreeSet<Format>>,
        /// Replace --out if it exists
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TakeAction {
    /// Start recording a take (named by the time when NAME is left out)
    Start { name: Option<String> },
    /// Stop the take being recorded
    Stop,
    /// List the takes
    List,
}

#[derive(Debug, Subcommand)]
enum CheckpointAction {
    /// Save the model's state (named by the time when NAME is left out)
    Save { name: Option<String> },
    /// Restore a saved checkpoint on air
    Restore { name: String },
    /// List the checkpoints
    List,
}

const DEFAULT_API: &str = "127.0.0.1:7070";

fn even_pixels(v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (2..=7680).contains(n) && n % 2 == 0)
        .ok_or_else(|| format!("{v}: an even number of pixels, 2..7680"))
}

fn formats(v: &str) -> Result<BTreeSet<Format>, String> {
    Format::parse_list(v).map_err(|e| e.to_string())
}

impl Cli {
    /// Parses the command line (without the program name).
    pub fn parse(args: &[String]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cuecast").chain(args.iter().map(String::as_str)))
    }

    /// Runs the command.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Serve {
                config,
                ready_file,
                log_format,
                log_level,
            } => {
                crate::logging::init(log_format, log_level);
                crate::serve::serve(&config, ready_file.as_deref())
            }
            Command::CheckConfig { file } => crate::serve::check_config(&file),
            Command::Take { action, api } => {
                let v = match action {
                    TakeAction::Start { name } => call(
                        &api,
                        "POST",
                        "/api/v1/takes",
                        name.map(|n| json!({ "name": n })),
                    )?,
                    TakeAction::Stop => call(&api, "POST", "/api/v1/takes/stop", None)?,
                    TakeAction::List => call(&api, "GET", "/api/v1/takes", None)?,
                };
                print_json(&v)
            }
            Command::Checkpoint { action, api } => {
                let v = match action {
                    CheckpointAction::Save { name } => call(
                        &api,
                        "POST",
                        "/api/v1/checkpoints",
                        name.map(|n| json!({ "name": n })),
                    )?,
                    CheckpointAction::Restore { name } => {
                        check_name(&name).map_err(|e| anyhow!(e))?;
                        call(
                            &api,
                            "POST",
                            &format!("/api/v1/checkpoints/{name}/restore"),
                            None,
                        )?
                    }
                    CheckpointAction::List => call(&api, "GET", "/api/v1/checkpoints", None)?,
                };
                print_json(&v)
            }
            Command::Replay {
                take,
                out,
                width,
                height,
                force,
                final_quality,
            } => replay_take(&take, &out, width.zip(height), force, final_quality),
            Command::Export {
                take,
                out,
                formats,
                force,
            } => export(&take, out, formats, force),
        }
    }
}

/// Prints an answer; a reader that has gone (`| head`) is not an error.
fn print_json(v: &Value) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(v)?;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `cuecast replay`.
fn replay_take(
    take: &str,
    out: &Path,
    size: Option<(usize, usize)>,
    force: bool,
    final_quality: bool,
) -> Result<()> {
    let take = open_take(take)?;
    let out = out_folder(out, force)?;
    let options = ReplayOptions {
        size,
        final_quality,
        ..Default::default()
    };
    let mut bar = Progress::new("replay");
    let summary = replay(&take, &out, &options, |done, total| {
        bar.show("rendering", done, total)
    })?;
    bar.finish();
    eprintln!(
        "cuecast: replayed {} frames in {:.1} s ({:.1} fps) → {}",
        summary.frames,
        summary.seconds,
        summary.fps,
        out.display()
    );
    match summary.identical {
        Some(true) => eprintln!("cuecast: every frame is identical to the take's"),
        Some(false) => bail!(
            "{} frames differ from the take's (first: frame {}): other software or hardware?",
            summary.differing.len(),
            summary.differing[0]
        ),
        None if final_quality && size.is_none() => eprintln!(
            "cuecast: final quality: {} frames differ from the live take (drawn at less than full detail live)",
            summary.differing.len()
        ),
        None => eprintln!("cuecast: rendered at another size: not compared with the take"),
    }
    Ok(())
}

/// `cuecast export`; without `formats`, every format the take allows (no EXR from a
/// model that makes no depth).
fn export(take: &str, out: PathBuf, formats: Option<BTreeSet<Format>>, force: bool) -> Result<()> {
    let take = open_take(take)?;
    let formats = formats.unwrap_or_else(|| {
        let mut all = Format::all();
        if take.manifest.depth.is_none() {
            all.remove(&Format::Exr);
        }
        all
    });
    let options = ExportOptions { formats, force };
    let mut bar = Progress::new("export");
    let summary = cuecast_exporters::export(&take, &out, &options, &mut |p| {
        bar.show(p.stage, p.done, p.total)
    })?;
    bar.finish();
    eprintln!(
        "cuecast: exported {} frames, {} files in {:.1} s → {}",
        summary.frames,
        summary.files.len(),
        summary.seconds,
        out.display()
    );
    Ok(())
}

/// A take folder, or the name of one in `takes/`.
fn open_take(arg: &str) -> Result<Take> {
    let path = Path::new(arg);
    let dir = if path.is_dir() || check_name(arg).is_err() {
        path.to_owned()
    } else {
        Path::new("takes").join(arg)
    };
    Ok(Take::open(&dir)?)
}

/// `--out DIR`: refused when it exists, unless `force` (then it is replaced).
fn out_folder(out: &Path, force: bool) -> Result<PathBuf> {
    let out = out.to_owned();
    if out.exists() {
        if !force {
            bail!(
                "{} exists: choose another --out, or --force to replace it",
                out.display()
            );
        }
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("cannot remove {}", out.display()))?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(out)
}

/// A progress bar on a terminal; a line every 10 % otherwise (logs, CI).
struct Progress {
    what: &'static str,
    tty: bool,
    last: (String, u64),
    shown: Instant,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        Progress {
            what,
            tty: std::io::stderr().is_terminal(),
            last: (String::new(), u64::MAX),
            shown: Instant::now(),
        }
    }

    fn show(&mut self, stage: &str, done: u64, total: u64) {
        let total = total.max(1);
        let tenth = done * 10 / total;
        if self.tty {
            if self.shown.elapsed() < Duration::from_millis(100) && done < total {
                return;
            }
            self.shown = Instant::now();
            let filled = (done * 30 / total) as usize;
            eprint!(
                "\r{}: {stage:<10} [{}{}] {done}/{total}   ",
                self.what,
                "#".repeat(filled),
                " ".repeat(30 - filled)
            );
        } else if (stage, tenth) != (self.last.0.as_str(), self.last.1) {
            eprintln!("{}: {stage} {}% ({done}/{total})", self.what, tenth * 10);
        }
        self.last = (stage.to_owned(), tenth);
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// One request to the daemon's API; the token comes from `CUECAST_TOKEN`. Errors carry
/// the API's own `detail`.
fn call(api: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("http://{api}{path}");
    let token = std::env::var("CUECAST_TOKEN").ok();
    let auth = token.map(|t| format!("Bearer {t}"));
    let sent = match method {
        "GET" => {
            let mut req = agent.get(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        }
        _ => {
            let mut req = agent.post(&url).content_type("application/json");
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.send(body.map(|b| b.to_string()).unwrap_or_default())
        }
    };
    let mut response = sent.map_err(|e| {
        anyhow!(
            "cannot reach the cuecast API at {api} (is `cuecast serve` running? --api HOST:PORT): {e}"
        )
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status >= 400 {
        let detail = v["detail"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_owned);
        bail!("{method} {path}: {status}: {detail}");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand has its own `--help`, which names its options.
    #[test]
    fn every_subcommand_has_help() {
        for (sub, shows) in [
            (vec!["serve"], "--ready-file"),
            (vec!["check-config"], "<FILE>"),
            (vec!["take"], "--api"),
            (vec!["take", "start"], "[NAME]"),
            (vec!["checkpoint", "restore"], "<NAME>"),
            (vec!["replay"], "--width"),
            (vec!["export"], "--formats"),
        ] {
            let mut args = sub.clone();
            args.push("--help");
            let e = parse(&args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{sub:?}");
            assert!(e.to_string().contains(shows), "{sub:?}: {e}");
            assert_eq!(e.exit_code(), 0);
        }
    }

    /// A wrong command line is refused with status 2, naming what was wrong.
    #[test]
    fn bad_command_lines_name_what_is_wrong() {
        for (args, names) in [
            (vec!["export", "t1"], "--out"),
            (
                vec![
                    "replay", "t1", "--out", "o", "--width", "641", "--height", "360",
                ],
                "641",
            ),
            (
                vec!["replay", "t1", "--out", "o", "--width", "640"],
                "--height",
            ),
            (
                vec!["export", "t1", "--out", "o", "--formats", "gltf,mp3"],
                "mp3",
            ),
            (vec!["take", "pause"], "pause"),
            (vec!["serve", "--config"], "--config"),
            (vec!["serve", "--colour", "x"], "--colour"),
            (vec!["bake"], "bake"),
        ] {
            let e = parse(&args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(names), "{args:?}: {e}");
        }
        let ok = parse(&["take", "list", "--api", "127.0.0.1:9"]).unwrap();
        assert!(
            matches!(ok.command, Command::Take { ref api, action: TakeAction::List } if api == "127.0.0.1:9")
        );
        let ok = parse(&["serve"]).unwrap();
        assert!(
            matches!(ok.command, Command::Serve { ref config, ready_file: None, log_format: LogFormat::Human, log_level: LogLevel::Info } if config == Path::new("config/cuecast.yaml"))
        );
        let e = parse(&["serve", "--log-format", "xml"]).unwrap_err();
        assert!(e.to_string().contains("xml"), "{e}");
    }
}
