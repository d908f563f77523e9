//! The commands besides `serve`: takes and checkpoints of a running show (through its
//! HTTP API, like any other client), and replay and export of takes (offline, no
//! daemon needed).

use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cuecast_engine::replay::{replay, ReplayOptions};
use cuecast_engine::{check_name, Take};
use cuecast_exporters::{ExportOptions, Format};
use serde_json::{json, Value};

/// Flags of the form `--name value` (and bare `--force`), after the positional ones.
struct Args<'a> {
    positional: Vec<&'a str>,
    flags: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Args<'a> {
    fn parse(args: &'a [String], switches: &[&str]) -> Result<Args<'a>> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.iter().map(String::as_str);
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if switches.contains(&name) {
                    flags.push((name, None));
                } else {
                    let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
                    flags.push((name, Some(v)));
                }
            } else {
                positional.push(a);
            }
        }
        Ok(Args { positional, flags })
    }

    fn value(&self, name: &str) -> Option<&'a str> {
        self.flags.iter().rev().find(|(n, _)| *n == name)?.1
    }

    fn switch(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| *n == name)
    }

    fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.flags.iter().find(|(n, _)| !allowed.contains(n)) {
            Some((n, _)) => bail!("unknown option --{n}"),
            None => Ok(()),
        }
    }
}

/// `cuecast take start [NAME] | stop | list [--api HOST:PORT]`
pub fn take(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[])?;
    a.only(&["api"])?;
    let api = a.value("api").unwrap_or("127.0.0.1:7070");
    let v = match a.positional.as_slice() {
        ["start"] => call(api, "POST", "/api/v1/takes", None)?,
        ["start", name] => call(api, "POST", "/api/v1/takes", Some(json!({"name": name})))?,
        ["stop"] => call(api, "POST", "/api/v1/takes/stop", None)?,
        ["list"] => call(api, "GET", "/api/v1/takes", None)?,
        _ => bail!("usage: cuecast take start [NAME] | stop | list [--api HOST:PORT]"),
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `cuecast checkpoint save [NAME] | restore NAME | list [--api HOST:PORT]`
pub fn checkpoint(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[])?;
    a.only(&["api"])?;
    let api = a.value("api").unwrap_or("127.0.0.1:7070");
    let v = match a.positional.as_slice() {
        ["save"] => call(api, "POST", "/api/v1/checkpoints", None)?,
        ["save", name] => call(
            api,
            "POST",
            "/api/v1/checkpoints",
            Some(json!({"name": name})),
        )?,
        ["restore", name] => {
            check_name(name).map_err(|e| anyhow!(e))?;
            call(
                api,
                "POST",
                &format!("/api/v1/checkpoints/{name}/restore"),
                None,
            )?
        }
        ["list"] => call(api, "GET", "/api/v1/checkpoints", None)?,
        _ => bail!("usage: cuecast checkpoint save [NAME] | restore NAME | list [--api HOST:PORT]"),
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `cuecast replay TAKE --out DIR [--width W --height H] [--force]`
pub fn replay_take(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &["force"])?;
    a.only(&["out", "width", "height", "force"])?;
    let [take] = a.positional.as_slice() else {
        bail!("usage: cuecast replay TAKE --out DIR [--width W --height H] [--force]");
    };
    let take = open_take(take)?;
    let out = out_folder(a.value("out"), a.switch("force"))?;
    let size = match (a.value("width"), a.value("height")) {
        (None, None) => None,
        (Some(w), Some(h)) => {
            let parse = |v: &str, what: &str| -> Result<usize> {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (2..=7680).contains(n) && n % 2 == 0)
                    .ok_or_else(|| anyhow!("--{what} {v}: an even number of pixels, 2..7680"))
            };
            Some((parse(w, "width")?, parse(h, "height")?))
        }
        _ => bail!("--width and --height go together"),
    };
    let options = ReplayOptions {
        size,
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
        None => eprintln!("cuecast: rendered at another size: not compared with the take"),
    }
    Ok(())
}

/// `cuecast export TAKE --out DIR [--formats LIST] [--force]`
pub fn export(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &["force"])?;
    a.only(&["out", "formats", "force"])?;
    let [take] = a.positional.as_slice() else {
        bail!(
            "usage: cuecast export TAKE --out DIR [--formats gltf,usd,ae,blender,png,exr,prores] [--force]"
        );
    };
    let formats = match a.value("formats") {
        Some(list) => Format::parse_list(list).map_err(|e| anyhow!("--formats: {e}"))?,
        None => Format::all(),
    };
    let take = open_take(take)?;
    let out = PathBuf::from(
        a.value("out")
            .ok_or_else(|| anyhow!("--out DIR is needed"))?,
    );
    let options = ExportOptions {
        formats,
        force: a.switch("force"),
    };
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
fn out_folder(out: Option<&str>, force: bool) -> Result<PathBuf> {
    let out = PathBuf::from(out.ok_or_else(|| anyhow!("--out DIR is needed"))?);
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

/// One HTTP/1.1 request to the daemon's API; the token comes from `CUECAST_TOKEN`.
/// Errors carry the API's own `detail`.
fn call(api: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let mut stream = TcpStream::connect(api).with_context(|| {
        format!(
            "cannot reach the cuecast API at {api} (is `cuecast serve` running? --api HOST:PORT)"
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = std::env::var("CUECAST_TOKEN")
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("the API at {api} answered something that is not HTTP"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("the API at {api} answered without a status"))?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let payload = if chunked {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    let v: Value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    if status >= 400 {
        let detail = v["detail"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_owned);
        bail!("{method} {path}: {status}: {detail}");
    }
    Ok(v)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
