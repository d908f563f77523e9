//! The model's process in a sandbox. A python model is someone else's code, downloaded
//! and run unread (its `model.py`, its libraries, their compile workers): it must not see
//! the show's secrets (stream keys, the API token), other processes, or the files of the
//! machine, and nothing it starts may outlive it.
//!
//! The sandbox is bubblewrap (`bwrap`, Debian's `bubblewrap`, what Flatpak runs apps
//! in): namespaces, bind mounts and a capability drop are its whole job, it is
//! maintained and audited, and it works unprivileged (user namespaces) and as root.
//! Writing the same with `unshare(2)` by hand would be a second, less tested bubblewrap.
//!
//! What a model's process gets:
//! - its own PID namespace: cuecast and every other process are invisible, `/proc` is
//!   its own; its own IPC and UTS namespaces; a new session (no terminal to write to);
//! - no network (an empty network namespace) unless the show says `model_network: true`
//!   (a model that fetches its weights);
//! - no capabilities, as root too, and `no_new_privs` (bubblewrap sets it);
//! - read-only: the system (`/usr`, `/etc`, `/sys`), its interpreter's installation and
//!   the folders the installation's `.pth` files name, its package, the folders in
//!   `PYTHONPATH`, `LD_LIBRARY_PATH`, `VIRTUAL_ENV` and `HF_HOME`, and the show's
//!   `model_folders`;
//! - read-write: its worker folder (at [`VIEW`]: the socket, state files), a `/tmp` that
//!   outlives a restart of the process (compile caches), the `model_folders` marked
//!   `:rw`; an empty `HOME` and `/dev/shm`;
//! - the GPU's device nodes (`/dev/nvidia*`) when it runs on CUDA;
//! - files cuecast holds secrets in ([`keep_secret`]: the daemon's config) masked
//!   wherever a bound folder would show them.
//!
//! Every process the model starts lives in its PID namespace. bubblewrap runs the model
//! under a small init of its own (PID 1 there) that dies with bubblewrap
//! (`--die-with-parent`), and the kernel ends every process of a namespace whose init
//! has ended: a helper that called `setsid` or forked twice ends with the worker too.
//!
//! Where bubblewrap is missing or cannot make namespaces (a container that forbids
//! them), the model runs without it and the show says what is not protected
//! ([`unavailable_warning`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Where the worker folder appears inside the sandbox.
pub const VIEW: &str = "/run/cuecast";

/// The system's folders, read-only in every sandbox.
const SYSTEM: [&str; 3] = ["/usr", "/etc", "/sys"];
/// Top-level names that are links into `/usr` on a merged-usr system, or folders.
const SYSTEM_LINKS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

static SECRETS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Marks a file as holding secrets (the daemon's config file, which may hold stream
/// keys): no model's sandbox shows it, even inside a folder it may read.
pub fn keep_secret(path: &Path) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut secrets = SECRETS.lock();
    if !secrets.contains(&path) {
        secrets.push(path);
    }
}

/// A folder a show lets its model reach: `PATH` (read-only) or `PATH:rw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFolder {
    pub path: PathBuf,
    pub writable: bool,
}

impl std::str::FromStr for ModelFolder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (path, writable) = match s.rsplit_once(':') {
            Some((p, "rw")) => (p, true),
            Some((p, "ro")) => (p, false),
            _ => (s, false),
        };
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "expected an absolute folder without '..', optionally followed by :ro or :rw, got {s:?}"
            ));
        }
        if path == Path::new("/") {
            return Err("the whole file system cannot be given to a model".into());
        }
        Ok(ModelFolder {
            path: path.to_owned(),
            writable,
        })
    }
}

impl std::fmt::Display for ModelFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.writable {
            f.write_str(":rw")?;
        }
        Ok(())
    }
}

/// What one model's sandbox is made of.
pub struct Jail<'a> {
    /// The interpreter, an absolute path.
    pub python: &'a Path,
    pub package: &'a Path,
    /// The worker folder on the host: shown at [`VIEW`], writable.
    pub dir: &'a Path,
    /// The host folder shown as `/tmp`.
    pub tmp: &'a Path,
    pub cuda: bool,
    pub network: bool,
    pub folders: &'a [ModelFolder],
    /// The environment the process gets (already filtered).
    pub env: &'a [(OsString, OsString)],
}

impl Jail<'_> {
    /// `bwrap`'s arguments, up to and including `--`; the command follows.
    pub fn args(&self) -> Vec<OsString> {
        let mut a = Args::default();
        a.flag("--die-with-parent");
        a.flag("--new-session");
        a.flag("--unshare-pid");
        a.flag("--unshare-ipc");
        a.flag("--unshare-uts");
        a.flag("--unshare-cgroup-try");
        if !self.network {
            a.flag("--unshare-net");
        }
        // SAFETY: a plain syscall.
        if unsafe { libc::geteuid() } == 0 {
            // Unprivileged, bubblewrap keeps no capabilities anyway; as root, dropping
            // them is what stops root from reading every file and process.
            a.two("--cap-drop", "ALL");
        }
        let mut bound: Vec<PathBuf> = Vec::new();
        for p in SYSTEM {
            if Path::new(p).is_dir() {
                a.three("--ro-bind", p, p);
                bound.push(p.into());
            }
        }
        for p in SYSTEM_LINKS {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        a.three("--symlink", target, p);
                    }
                }
                Ok(m) if m.is_dir() => {
                    a.three("--ro-bind", p, p);
                    bound.push(p.into());
                }
                _ => {}
            }
        }
        a.two("--proc", "/proc");
        a.two("--dev", "/dev");
        a.two("--tmpfs", "/dev/shm");
        let home = self.var("HOME").map(PathBuf::from);
        if let Some(home) = home.filter(|h| h.is_absolute() && !covered(h, &bound)) {
            a.two("--tmpfs", home);
        }
        // Before the folders below: a package under /tmp is shown on top of it.
        a.three("--bind", self.tmp, "/tmp");
        a.three("--bind", self.dir, VIEW);
        // Parents before their children, so a folder inside another stays visible.
        let mut trees = self.read_only_trees(&bound);
        for f in self.folders {
            trees.push((f.path.clone(), f.writable));
        }
        trees.sort_by_key(|(p, _)| p.components().count());
        for (p, writable) in &trees {
            a.three(
                if *writable {
                    "--bind-try"
                } else {
                    "--ro-bind-try"
                },
                p,
                p,
            );
            bound.push(p.clone());
        }
        if self.cuda {
            for dev in gpu_devices() {
                a.three("--dev-bind", &dev, &dev);
            }
        }
        for secret in SECRETS.lock().iter() {
            if !covered(secret, &bound) {
                continue;
            }
            match std::fs::metadata(secret) {
                Ok(m) if m.is_dir() => a.two("--tmpfs", secret),
                Ok(_) => a.three("--ro-bind", "/dev/null", secret),
                Err(_) => {}
            }
        }
        a.three("--setenv", "TMPDIR", "/tmp");
        a.two(
            "--chdir",
            std::fs::canonicalize(self.package).unwrap_or_else(|_| self.package.into()),
        );
        a.flag("--");
        a.0
    }

    fn var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// Folders the model reads, beyond the system's: its interpreter, package, library
    /// paths and caches. `(path, writable)`, each once, none the system already shows.
    fn read_only_trees(&self, system: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        let mut trees: Vec<(PathBuf, bool)> = Vec::new();
        let mut add = |p: PathBuf, writable: bool| {
            // As the kernel resolves it (`..` after a link, links themselves): the
            // sandbox holds the folder itself, not the way to it.
            let Ok(p) = std::fs::canonicalize(&p) else {
                return;
            };
            let ok = p != Path::new("/") && !covered(&p, system);
            if ok && !trees.iter().any(|(t, _)| *t == p) {
                trees.push((p, writable));
            }
        };
        for prefix in interpreter_prefixes(self.python) {
            for pth in pth_folders(&prefix) {
                add(pth, false);
            }
            add(prefix, false);
        }
        add(self.package.to_owned(), false);
        for name in ["PYTHONPATH", "LD_LIBRARY_PATH"] {
            if let Some(v) = self.var(name) {
                for p in std::env::split_paths(v) {
                    add(p, false);
                }
            }
        }
        for name in ["VIRTUAL_ENV", "HF_HOME"] {
            if let Some(v) = self.var(name) {
                // A model allowed the network may fill its model cache.
                add(PathBuf::from(v), name == "HF_HOME" && self.network);
            }
        }
        trees
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, f: &str) {
        self.0.push(f.into());
    }
    fn two(&mut self, f: &str, v: impl AsRef<OsStr>) {
        self.0.push(f.into());
        self.0.push(v.as_ref().to_owned());
    }
    fn three(&mut self, f: &str, a: impl AsRef<OsStr>, b: impl AsRef<OsStr>) {
        self.two(f, a);
        self.0.push(b.as_ref().to_owned());
    }
}

fn covered(p: &Path, trees: &[PathBuf]) -> bool {
    trees.iter().any(|t| p.starts_with(t))
}

/// The installation an interpreter belongs to: the folder above its `bin`, as named and
/// with links resolved, and for a virtualenv the installation it was made from.
fn interpreter_prefixes(python: &Path) -> Vec<PathBuf> {
    let prefix = |p: &Path| -> Option<PathBuf> {
        let bin = p.parent()?;
        Some(if bin.file_name() == Some(OsStr::new("bin")) {
            bin.parent()?.to_owned()
        } else {
            bin.to_owned()
        })
    };
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: Option<PathBuf>| {
        if let Some(p) = p.filter(|p| p != Path::new("/") && !p.as_os_str().is_empty()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    };
    let first = prefix(python);
    let venv_home = first.as_ref().and_then(|p| {
        let cfg = std::fs::read_to_string(p.join("pyvenv.cfg")).ok()?;
        cfg.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "home").then(|| PathBuf::from(v.trim()))
        })
    });
    push(first);
    push(std::fs::canonicalize(python).ok().and_then(|c| prefix(&c)));
    push(venv_home.and_then(|h| h.parent().map(Path::to_owned)));
    out
}

/// Folders the installation's `.pth` files add to `sys.path` (how a virtualenv reuses
/// another's packages). Lines that run code (`import ...`) are not followed.
fn pth_folders(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(libs) = std::fs::read_dir(prefix.join("lib")) else {
        return out;
    };
    for lib in libs.flatten().take(16) {
        let site = lib.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for e in entries.flatten().take(4096) {
            let path = e.path();
            if path.extension() != Some(OsStr::new("pth")) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.len() > 64 << 10 {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines().map(str::trim).take(256) {
                let p = Path::new(line);
                if p.is_absolute() && p.is_dir() {
                    out.push(p.to_owned());
                }
            }
        }
    }
    out
}

/// The NVIDIA device nodes (`/dev/nvidia0`, `nvidiactl`, `nvidia-uvm`, ...).
fn gpu_devices() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Finds `name` on `PATH`, or, when it names a folder, the file in that folder as the
/// kernel finds it (its folder resolved, `..` included; the file itself not, for a
/// virtualenv's `python` is a link its interpreter must be called by).
pub fn which(name: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    if name.components().count() > 1 {
        let name = std::path::absolute(name).ok()?;
        let folder = name.parent().and_then(|d| std::fs::canonicalize(d).ok());
        return Some(match (folder, name.file_name()) {
            (Some(d), Some(f)) => d.join(f),
            _ => name,
        });
    }
    let path = path
        .map(OsStr::to_owned)
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// bubblewrap, if it is here and can make a sandbox on this machine; else why not.
/// Tried once per process (a sandbox around `true`, a few milliseconds).
pub fn bwrap() -> Result<&'static Path, &'static str> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(probe)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(String::as_str)
}

fn probe() -> Result<PathBuf, String> {
    let bwrap = which(Path::new("bwrap"), None)
        .ok_or("bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)")?;
    let tmp = tempfile::tempdir().map_err(|e| format!("cannot make a folder to try it: {e}"))?;
    let truth = which(Path::new("true"), None).unwrap_or_else(|| "/usr/bin/true".into());
    let jail = Jail {
        python: &truth,
        package: tmp.path(),
        dir: tmp.path(),
        tmp: tmp.path(),
        cuda: false,
        network: false,
        folders: &[],
        env: &[],
    };
    let out = Command::new(&bwrap)
        .args(jail.args())
        .arg(&truth)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{} could not run: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(bwrap)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} cannot make a sandbox here ({}): user namespaces may be disabled",
            bwrap.display(),
            err.trim().lines().next().unwrap_or("no reason given")
        ))
    }
}

/// What a model's process can reach when it runs without the sandbox, for the warning.
pub fn unavailable_warning(why: &str) -> String {
    format!(
        "python models run without a sandbox: {why}. Their code runs as cuecast's user, \
         can read every file that user can, reach the network, and start processes that \
         outlive the worker if they leave its process group; the show's secrets stay \
         out of its environment and cuecast's memory (it is not dumpable) only against \
         a model not running as root"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_folders_read_as_paths_with_an_optional_mode() {
        let f: ModelFolder = "/data/weights".parse().unwrap();
        assert_eq!(
            (f.path.as_path(), f.writable),
            (Path::new("/data/weights"), false)
        );
        let f: ModelFolder = "/scratch:rw".parse().unwrap();
        assert_eq!(
            (f.path.as_path(), f.writable),
            (Path::new("/scratch"), true)
        );
        assert_eq!(f.to_string(), "/scratch:rw");
        for bad in ["weights", "/", "/a/../etc", ""] {
            assert!(bad.parse::<ModelFolder>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_jail_shows_the_system_read_only_and_the_worker_folder_writable() {
        let dir = tempfile::tempdir().unwrap();
        let env = [(OsString::from("HOME"), OsString::from("/home/someone"))];
        let jail = Jail {
            python: Path::new("/usr/bin/python3"),
            package: dir.path(),
            dir: dir.path(),
            tmp: dir.path(),
            cuda: false,
            network: false,
            folders: &["/data/w".parse().unwrap()],
            env: &env,
        };
        let args: Vec<String> = jail
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("--ro-bind /usr /usr"), "{joined}");
        assert!(joined.contains("--unshare-net"), "{joined}");
        assert!(joined.contains("--unshare-pid"), "{joined}");
        assert!(joined.contains("--tmpfs /home/someone"), "{joined}");
        assert!(joined.contains("--ro-bind-try /data/w /data/w"), "{joined}");
        assert!(
            joined.contains(&format!("--bind {} {VIEW}", dir.path().display())),
            "{joined}"
        );
        assert_eq!(args.last().map(String::as_str), Some("--"));
        let open = Jail {
            network: true,
            ..jail
        };
        assert!(!open.args().iter().any(|a| a == "--unshare-net"));
    }
}
