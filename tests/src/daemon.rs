//! Talking to a running `cuecast serve` the way the end-to-end tests and the benchmark
//! both do: where it says it listens, and its event stream.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;

use serde_json::Value;

/// The API address in the daemon's ready file (`serve --ready-file`), once it has
/// written it; `None` before.
pub fn ready_api(ready_file: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(ready_file).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["api"].as_str()?.parse().ok()
}

/// Follows `/api/v1/events` at `addr`: each server-sent event's `data` line, parsed,
/// arrives on the channel.
pub fn follow_events(addr: &str) -> std::io::Result<mpsc::Receiver<Value>> {
    let mut s = TcpStream::connect(addr)?;
    write!(s, "GET /api/v1/events HTTP/1.1\r\nhost: {addr}\r\n\r\n")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            let event = line
                .strip_prefix("data: ")
                .and_then(|d| serde_json::from_str(d).ok());
            if let Some(v) = event {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}
