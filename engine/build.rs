//! Links libtorch like every other crate (`build/link_libtorch.rs`), and builds the C++
//! shim of the `aoti` runtime against the same libtorch: AOTInductor's package loader has
//! a C++ API only, which tch does not bind.

#[path = "../build/link_libtorch.rs"]
mod link;

fn main() {
    link::link_libtorch();
    println!("cargo:rerun-if-changed=src/generator/aoti/shim.cpp");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys names libtorch's lib folder (DEP_TCH_LIBTORCH_LIB)");
    // pip's torch and the libtorch archives both keep the headers beside `lib`.
    let root = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib folder has a parent");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        // PyTorch 2.11's Linux builds use the C++11 ABI (as torch-sys assumes).
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("src/generator/aoti/shim.cpp")
        .compile("cuecast_aoti");
}
