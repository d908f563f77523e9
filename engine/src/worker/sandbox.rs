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
//! - no capabilities and `no_new_privs`; and where cuecast runs as root, not root
//!   either: the model runs as `nobody` ([`MODEL_UID`], switched to by `setpriv` inside
//!   the sandbox), so no file of root's (`/etc/shadow`, host keys) is its to read;
//! - read-only: the system (`/usr`, `/etc`, `/sys`), its interpreter's installation (and,
//!   for an interpreter outside the package, the folders its virtualenv's `pyvenv.cfg`
//!   and `.pth` files name), its package, the folders in `PYTHONPATH`,
//!   `LD_LIBRARY_PATH` and `VIRTUAL_ENV`, and the show's `model_folders`;
//! - read-write: its worker folder (at [`VIEW`]: the socket, state files), a `/tmp` that
//!   outlives a restart of the process (compile caches), the `model_folders` marked
//!   `:rw`; an empty `HOME` and `/dev/shm` (tmpfs, no larger than its memory cap);
//! - the GPU's device nodes (`/dev/nvidia*`) when it runs on CUDA;
//! - files cuecast holds secrets in ([`keep_secret`]: the daemon's config) hidden, their
//!   whole folder, wherever a bound folder would show them.
//!
//! A folder is never given if it is or holds the operator's home, or is `/`, `/tmp`,
//! `/var/tmp`, or under `/proc`, `/dev` or `/run`, whatever names it (a package's own
//! virtualenv could name anything in its `.pth` files, which is why those are read only
//! for an interpreter outside the package).
//!
//! Every process the model starts lives in its PID namespace. bubblewrap runs the model
//! under a small init of its own (PID 1 there) that dies with bubblewrap
//! (`--die-with-parent`), and the kernel ends every process of a namespace whose init
//! has ended: a helper that called `setsid` or forked twice ends with the worker too.
//!
//! Where bubblewrap is missing or cannot make namespaces (a container that forbids
//! them), the model runs without it and the show says what is not protected
//! ([`unavailable_warning`]); the next model started tries again.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use parking_lot::Mutex;

/// Where the worker folder appears inside the sandbox.
pub const VIEW: &str = "/run/cuecast";
/// Who the model runs as where cuecast runs as root: `nobody`.
pub const MODEL_UID: u32 = 65534;
/// Folders never given to a model, whatever names them (nor anything under the first
/// three).
const NEVER: [&str; 6] = ["/proc", "/dev", "/run", "/", "/tmp", "/var/tmp"];

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

crate::serde_as_string!(ModelFolder);

impl std::fmt::Display for ModelFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.writable {
            f.write_str(":rw")?;
        }
        Ok(())
    }
}

/// A sandbox that can be made here: bubblewrap, and (as root) how the model is made
/// another user.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub bwrap: PathBuf,
    /// `setpriv`, to run the model as [`MODEL_UID`], where cuecast runs as root.
    pub setpriv: Option<PathBuf>,
}

impl Sandbox {
    /// The user the model's files must belong to (its worker folder, its `/tmp`).
    pub fn model_uid(&self) -> Option<u32> {
        self.setpriv.as_ref().map(|_| MODEL_UID)
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
    /// The most its tmpfs folders (`HOME`, `/dev/shm`) may hold, in bytes.
    pub tmpfs_bytes: Option<u64>,
}

impl Jail<'_> {
    /// `bwrap`'s arguments and, as root, `setpriv`'s after `--`: the interpreter and its
    /// arguments follow.
    pub fn args(&self, sandbox: &Sandbox) -> Vec<OsString> {
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
        // Unprivileged, bubblewrap keeps no capabilities for the command; as root it
        // keeps them for `setpriv`, which gives them all up as it becomes the model's
        // user. As root without `setpriv`, at least no capability: root reading every
        // file is what that stops.
        // SAFETY: a plain syscall.
        if unsafe { libc::geteuid() } == 0 && sandbox.setpriv.is_none() {
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
        let tmpfs = |a: &mut Args, at: &Path| {
            a.two("--perms", "1777");
            if let Some(n) = self.tmpfs_bytes {
                a.two("--size", n.to_string());
            }
            a.two("--tmpfs", at);
        };
        tmpfs(&mut a, Path::new("/dev/shm"));
        if let Some(home) = self.home().filter(|h| !covered(h, &bound)) {
            a.parents(&home, &bound);
            tmpfs(&mut a, &home);
        }
        // Before the folders below: a package under /tmp is shown on top of it.
        a.three("--bind", self.tmp, "/tmp");
        a.parents(Path::new(VIEW), &bound);
        a.three("--bind", self.dir, VIEW);
        // Parents before their children, so a folder inside another stays visible.
        let mut trees = self.trees(&bound);
        trees.sort_by_key(|(p, _)| p.components().count());
        for (p, writable) in &trees {
            a.parents(p, &bound);
            let how = if *writable { "--bind" } else { "--ro-bind" };
            a.three(how, p, p);
            bound.push(p.clone());
        }
        if self.cuda {
            for dev in gpu_devices() {
                a.three("--dev-bind", &dev, &dev);
            }
        }
        // The secret's whole folder, so that a file saved over it (an editor's save, a
        // config map's swap), or an editor's copy beside it, is hidden too; the file
        // alone where its folder is one of the system's.
        for secret in SECRETS.lock().iter() {
            let folder = secret.parent().unwrap_or(secret);
            let hide = if SYSTEM.iter().any(|s| folder == Path::new(s)) {
                secret.as_path()
            } else {
                folder
            };
            if !covered(hide, &bound) {
                continue;
            }
            match std::fs::metadata(hide) {
                Ok(m) if m.is_dir() => a.two("--tmpfs", hide),
                Ok(_) => a.three("--ro-bind", "/dev/null", hide),
                Err(_) => {}
            }
        }
        a.three("--setenv", "TMPDIR", "/tmp");
        a.two(
            "--chdir",
            std::fs::canonicalize(self.package).unwrap_or_else(|_| self.package.into()),
        );
        a.flag("--");
        if let Some(setpriv) = &sandbox.setpriv {
            a.0.push(setpriv.into());
            for f in [
                format!("--reuid={MODEL_UID}"),
                format!("--regid={MODEL_UID}"),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--no-new-privs".into(),
            ] {
                a.0.push(f.into());
            }
        }
        a.0
    }

    fn var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The operator's home as the model's environment names it.
    fn home(&self) -> Option<PathBuf> {
        self.var("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute() && h != Path::new("/"))
    }

    /// Whether `p` (resolved) may be given to the model at all: not the operator's home
    /// or a folder holding it, not `/`, `/tmp` or `/var/tmp`, nothing under `/proc`,
    /// `/dev` or `/run`.
    fn allowed(&self, p: &Path) -> bool {
        let home = self.home().map(|h| std::fs::canonicalize(&h).unwrap_or(h));
        !NEVER.iter().any(|n| p == Path::new(n))
            && !NEVER[..3].iter().any(|n| p.starts_with(n))
            && !home.is_some_and(|h| h.starts_with(p))
    }

    /// Folders the model reaches beyond the system's: its interpreter, package, library
    /// paths and the show's folders. `(path, writable)`, each once, resolved as the
    /// kernel resolves them (the sandbox holds the folder itself, not the way to it),
    /// none the system already shows, none that may never be given.
    fn trees(&self, system: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        let mut trees: Vec<(PathBuf, bool)> = Vec::new();
        let mut add = |p: &Path, writable: bool| {
            let Ok(p) = std::fs::canonicalize(p) else {
                return;
            };
            if p.is_dir()
                && self.allowed(&p)
                && !covered(&p, system)
                && !trees.iter().any(|(t, _)| *t == p)
            {
                trees.push((p, writable));
            }
        };
        let package = std::fs::canonicalize(self.package).unwrap_or_else(|_| self.package.into());
        // An interpreter in the package is the package's: the folders its virtualenv
        // names are not followed (a package could name any folder there).
        let own = !self.python.starts_with(&package)
            && !std::fs::canonicalize(self.python).is_ok_and(|p| p.starts_with(&package));
        for prefix in interpreter_prefixes(self.python, own) {
            if own {
                for pth in pth_folders(&prefix) {
                    add(&pth, false);
                }
            }
            add(&prefix, false);
        }
        add(&package, false);
        for name in ["PYTHONPATH", "LD_LIBRARY_PATH"] {
            if let Some(v) = self.var(name) {
                for p in std::env::split_paths(v).filter(|p| p.is_absolute()) {
                    add(&p, false);
                }
            }
        }
        if let Some(v) = self.var("VIRTUAL_ENV") {
            add(Path::new(v), false);
        }
        for f in self.folders {
            add(&f.path, f.writable);
        }
        trees
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    /// The folders on the way to `p` that the sandbox has not got yet, made readable
    /// (bubblewrap makes them 0700, which the model's user, as root, could not cross).
    fn parents(&mut self, p: &Path, bound: &[PathBuf]) {
        let mut ancestors: Vec<&Path> = p.ancestors().skip(1).collect();
        ancestors.reverse();
        for d in ancestors {
            if d == Path::new("/") || covered(d, bound) {
                continue;
            }
            let d = d.as_os_str().to_owned();
            if !self.0.windows(2).any(|w| w[0] == "--dir" && w[1] == d) {
                self.two("--perms", "0755");
                self.two("--dir", d);
            }
        }
    }

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
/// with links resolved, and (when `follow`) for a virtualenv the installation it was made
/// from.
fn interpreter_prefixes(python: &Path, follow: bool) -> Vec<PathBuf> {
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
    let venv_home = first.as_ref().filter(|_| follow).and_then(|p| {
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

/// The sandbox, if bubblewrap is here and can make one on this machine; else why not.
/// Tried (a sandbox around `true`, a few milliseconds) until it works once.
pub fn sandbox() -> Result<Sandbox, String> {
    static FOUND: Mutex<Option<Sandbox>> = Mutex::new(None);
    let mut found = FOUND.lock();
    if let Some(s) = found.as_ref() {
        return Ok(s.clone());
    }
    let s = probe()?;
    *found = Some(s.clone());
    Ok(s)
}

fn probe() -> Result<Sandbox, String> {
    let bwrap = which(Path::new("bwrap"), None)
        .ok_or("bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)")?;
    // SAFETY: a plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = if root {
        Some(which(Path::new("setpriv"), None).ok_or(
            "cuecast runs as root and setpriv (util-linux) is not here to run the model as \
             another user",
        )?)
    } else {
        None
    };
    let sandbox = Sandbox { bwrap, setpriv };
    let tmp = tempfile::tempdir().map_err(|e| format!("cannot make a folder to try it: {e}"))?;
    if let Some(uid) = sandbox.model_uid() {
        std::os::unix::fs::chown(tmp.path(), Some(uid), Some(uid))
            .map_err(|e| format!("cannot give a folder to the model's user: {e}"))?;
    }
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
        tmpfs_bytes: Some(1 << 20),
    };
    let out = Command::new(&sandbox.bwrap)
        .args(jail.args(&sandbox))
        .arg(&truth)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{} could not run: {e}", sandbox.bwrap.display()))?;
    if out.status.success() {
        Ok(sandbox)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} cannot make a sandbox here ({}): user namespaces may be disabled",
            sandbox.bwrap.display(),
            err.trim().lines().next().unwrap_or("no reason given")
        ))
    }
}

/// What a model's process can reach when it runs without the sandbox, for the warning.
pub fn unavailable_warning(why: &str) -> String {
    format!(
        "python models run without a sandbox: {why}. Their code runs as cuecast's user: \
         it can read every file that user can (the config and the stream keys in it \
         included), read cuecast's /proc files where that user is root, reach the \
         network and the API, and leave processes behind that leave its process group; \
         only its environment is filtered"
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
    fn no_folder_a_package_names_opens_the_home_the_machine_or_other_processes() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (pkg, home, secret) = (root.join("pkg"), root.join("home"), root.join("secret"));
        let site = pkg.join("venv/lib/python3.11/site-packages");
        for d in [&site, &pkg.join("venv/bin"), &home, &secret] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink("/usr/bin/python3", pkg.join("venv/bin/python")).unwrap();
        std::fs::write(
            pkg.join("venv/pyvenv.cfg"),
            format!("home = {}/bin\n", secret.display()),
        )
        .unwrap();
        std::fs::write(
            site.join("evil.pth"),
            format!("/proc\n/run\n/\n{}\n{}\n", home.display(), secret.display()),
        )
        .unwrap();
        let env = [
            (OsString::from("HOME"), home.clone().into_os_string()),
            (
                OsString::from("PYTHONPATH"),
                OsString::from("/proc:/tmp:/dev/shm"),
            ),
        ];
        let jail = Jail {
            python: &pkg.join("venv/bin/python"),
            package: &pkg,
            dir: &pkg,
            tmp: &pkg,
            cuda: false,
            network: false,
            // The folder that holds the home: never given.
            folders: &[ModelFolder {
                path: root.clone(),
                writable: false,
            }],
            env: &env,
            tmpfs_bytes: None,
        };
        let sandbox = Sandbox {
            bwrap: "bwrap".into(),
            setpriv: None,
        };
        let args: Vec<String> = jail
            .args(&sandbox)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let binds: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--ro-bind" || w[0] == "--bind")
            .map(|w| w[1].as_str())
            .collect();
        let pkg = pkg.display().to_string();
        for never in ["/proc", "/run", "/", "/tmp", "/dev/shm"] {
            assert!(!binds.contains(&never), "{never} given: {binds:?}");
        }
        for never in [&home, &secret, &root] {
            let never = never.display().to_string();
            assert!(!binds.contains(&never.as_str()), "{never} given: {binds:?}");
        }
        assert!(binds.contains(&pkg.as_str()), "{binds:?}");
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
            folders: &[ModelFolder {
                path: dir.path().join("weights"),
                writable: false,
            }],
            env: &env,
            tmpfs_bytes: Some(1 << 30),
        };
        std::fs::create_dir_all(dir.path().join("weights")).unwrap();
        let sandbox = Sandbox {
            bwrap: "bwrap".into(),
            setpriv: None,
        };
        let args: Vec<String> = jail
            .args(&sandbox)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("--ro-bind /usr /usr"), "{joined}");
        assert!(joined.contains("--unshare-net"), "{joined}");
        assert!(joined.contains("--unshare-pid"), "{joined}");
        assert!(joined.contains("--tmpfs /home/someone"), "{joined}");
        assert!(joined.contains("--size 1073741824"), "{joined}");
        let weights = std::fs::canonicalize(dir.path().join("weights")).unwrap();
        assert!(
            joined.contains(&format!("--ro-bind {0} {0}", weights.display())),
            "{joined}"
        );
        assert!(
            joined.contains(&format!("--bind {} {VIEW}", dir.path().display())),
            "{joined}"
        );
        assert_eq!(args.last().map(String::as_str), Some("--"));
        let open = Jail {
            network: true,
            ..jail
        };
        assert!(!open.args(&sandbox).iter().any(|a| a == "--unshare-net"));
    }
}
