//! `cuecast` as the end-to-end tests run it: the same entry point as the real binary.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cuecast::run(&args));
}
