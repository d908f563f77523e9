//! What of cuecast's environment a model's process gets. The show's secrets (stream
//! keys, tokens) live in cuecast's environment: a model gets only where things are, the
//! locale, and what CUDA, PyTorch and model libraries read, plus what the show names.

/// What of cuecast's environment a model's process gets: where things are, the locale,
/// and what CUDA, PyTorch and the usual model libraries read. Names ending in `*` are
/// prefixes.
pub const PASSED_ENV: [&str; 21] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_*",
    "TZ",
    "TMPDIR",
    "XDG_*",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CUDA_*",
    "NVIDIA_*",
    "NCCL_*",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TORCH_*",
    "TORCHINDUCTOR_*",
    "TRITON_*",
    "HF_HOME",
];

/// Whether cuecast's variable `name` goes to a model's process.
pub fn passes(name: &str, extra: &[String]) -> bool {
    extra.iter().any(|e| e == name)
        || PASSED_ENV.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *p,
        })
}
