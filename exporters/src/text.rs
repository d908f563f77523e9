//! Numbers as the text formats (USD ASCII, ExtendScript, Python) write them.

/// The shortest text that reads back as exactly `v` (Rust's float formatting never uses
/// an exponent, which all three languages read); `-0` is written `0`.
pub(crate) fn num(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else {
        v.to_string()
    }
}
