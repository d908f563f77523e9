//! The worker protocol's framing: a 4-byte little-endian length, then that many bytes of
//! UTF-8 JSON. Written by hand because it is eight lines on each side and the Python
//! end must need nothing beyond the standard library.

use std::io::{self, Read, Write};

use serde_json::Value;

/// The largest message either side may send. Requests carry a chunk's inputs (a few
/// hundred numbers a frame), never frames.
pub const MAX_MESSAGE: usize = 16 << 20;
/// The protocol version the worker must speak.
pub const PROTOCOL: u64 = 1;

pub fn write(w: &mut impl Write, message: &Value) -> io::Result<()> {
    let data = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(4 + data.len());
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(&data);
    w.write_all(&framed)
}

pub fn read(r: &mut impl Read) -> io::Result<Value> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head)?;
    let n = u32::from_le_bytes(head) as usize;
    if n > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {n} bytes, over the {MAX_MESSAGE} allowed"),
        ));
    }
    let mut data = vec![0u8; n];
    r.read_exact(&mut data)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write(&mut buf, &json!({"op": "step", "id": 3})).unwrap();
        assert_eq!(
            read(&mut buf.as_slice()).unwrap(),
            json!({"op": "step", "id": 3})
        );
        let mut huge = ((MAX_MESSAGE + 1) as u32).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let e = read(&mut huge.as_slice()).unwrap_err();
        assert!(e.to_string().contains("over"), "{e}");
        let e = read(&mut [2u8, 0, 0, 0, b'{'].as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
