//! Shared build script for every crate that links libtorch into a binary, test or cdylib.
//!
//! torch-sys links `libtorch_cuda` like any other library, so with the default
//! `--as-needed` the linker drops it when nothing refers to it by name, and CUDA then
//! silently reports "unavailable". Linking `libtorch` with `--no-as-needed` keeps it,
//! and with it the CUDA backend, whenever the installed libtorch has one. The rpath lets
//! binaries and the GStreamer plugin find libtorch without `LD_LIBRARY_PATH`.
#[allow(dead_code)]
fn main() {
    link_libtorch();
}

/// The link arguments above; also called by the engine's own build script.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
