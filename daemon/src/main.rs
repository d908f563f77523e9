//! The `cuecast` binary; everything is in the library (`cuecast::run`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cuecast::run(&args));
}
