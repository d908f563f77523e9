//! The OSC 1.0 packet codec: messages and bundles (flattened in order, nested at most
//! eight deep), every malformed packet refused with what is wrong.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, PartialEq)]
pub enum OscArg {
    Int(i32),
    Float(f32),
    Str(String),
    Bool(bool),
    Double(f64),
    Long(i64),
    Nil,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OscMessage {
    pub address: String,
    pub args: Vec<OscArg>,
}

/// What was wrong with a packet or message; the text is meant for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct OscError(pub String);

impl fmt::Display for OscError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OscError {}

pub(super) fn fail<T>(message: impl Into<String>) -> Result<T, OscError> {
    Err(OscError(message.into()))
}

/// Bundles nest; a bound keeps a hostile packet from exhausting the stack.
pub(super) const MAX_BUNDLE_DEPTH: usize = 8;

/// Parses one UDP payload: a message, or a bundle flattened into its messages in
/// order. Timetags are ignored: cues act on arrival (a cue's own `at` schedules).
pub fn parse_packet(bytes: &[u8]) -> Result<Vec<OscMessage>, OscError> {
    let mut out = Vec::new();
    parse_into(bytes, 0, &mut out)?;
    Ok(out)
}

pub(super) fn parse_into(
    bytes: &[u8],
    depth: usize,
    out: &mut Vec<OscMessage>,
) -> Result<(), OscError> {
    if bytes.is_empty() {
        return fail("empty packet");
    }
    if bytes.len() % 4 != 0 {
        return fail(format!(
            "packet size {} is not a multiple of 4",
            bytes.len()
        ));
    }
    let Some(rest) = bytes.strip_prefix(b"#bundle\0") else {
        out.push(parse_message(bytes)?);
        return Ok(());
    };
    if depth >= MAX_BUNDLE_DEPTH {
        return fail(format!("bundles nested deeper than {MAX_BUNDLE_DEPTH}"));
    }
    let mut r = Reader { buf: rest, pos: 0 };
    r.take(8, "bundle timetag")?;
    while !r.done() {
        let size = i32::from_be_bytes(r.array("bundle element size")?);
        let size = usize::try_from(size)
            .or_else(|_| fail(format!("bundle element size {size} is negative")))?;
        parse_into(r.take(size, "bundle element")?, depth + 1, out)?;
    }
    Ok(())
}

pub(super) fn parse_message(bytes: &[u8]) -> Result<OscMessage, OscError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let address = r.string("address")?;
    if !address.starts_with('/') {
        return fail(format!("address {address:?} must start with '/'"));
    }
    let args = parse_args(&mut r).map_err(|e| OscError(format!("{address}: {e}")))?;
    Ok(OscMessage { address, args })
}

pub(super) fn parse_args(r: &mut Reader) -> Result<Vec<OscArg>, OscError> {
    // Senders older than OSC 1.0 may leave the type tag string out: no arguments.
    if r.done() {
        return Ok(Vec::new());
    }
    let tags = r.string("type tag string")?;
    let Some(tags) = tags.strip_prefix(',') else {
        return fail("type tags must start with ','");
    };
    let mut args = Vec::with_capacity(tags.len());
    for (i, tag) in tags.chars().enumerate() {
        let what = format!("argument {} ('{tag}')", i + 1);
        args.push(match tag {
            'i' => OscArg::Int(i32::from_be_bytes(r.array(&what)?)),
            'f' => OscArg::Float(f32::from_be_bytes(r.array(&what)?)),
            's' | 'S' => OscArg::Str(r.string(&what)?),
            'T' => OscArg::Bool(true),
            'F' => OscArg::Bool(false),
            'd' => OscArg::Double(f64::from_be_bytes(r.array(&what)?)),
            'h' => OscArg::Long(i64::from_be_bytes(r.array(&what)?)),
            'N' => OscArg::Nil,
            'b' => return fail(format!("{what}: blobs are not supported")),
            _ => return fail(format!("{what}: unsupported type tag")),
        });
    }
    if !r.done() {
        return fail(format!("{} bytes after the arguments", r.buf.len() - r.pos));
    }
    Ok(args)
}

/// A cursor over untrusted bytes: every read is bounds-checked and names what it read.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], OscError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return fail(format!("truncated {what}: needs {n} bytes, {left} left"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], OscError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn string(&mut self, what: &str) -> Result<String, OscError> {
        let Some(len) = self.buf[self.pos..].iter().position(|&b| b == 0) else {
            return fail(format!("{what} is not NUL-terminated"));
        };
        // The NUL, then padding to a 4-byte boundary.
        let raw = self.take((len / 4 + 1) * 4, what)?;
        if raw[len..].iter().any(|&b| b != 0) {
            return fail(format!("{what} padding must be NUL bytes"));
        }
        String::from_utf8(raw[..len].to_vec()).or_else(|_| fail(format!("{what} is not UTF-8")))
    }
}

/// Encodes a message (strings must not contain NUL). The daemon only receives
/// OSC; this is for tests and the project's test clients.
pub fn encode_message(msg: &OscMessage) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, &msg.address);
    let tags: String = std::iter::once(',')
        .chain(msg.args.iter().map(|a| match a {
            OscArg::Int(_) => 'i',
            OscArg::Float(_) => 'f',
            OscArg::Str(_) => 's',
            OscArg::Bool(true) => 'T',
            OscArg::Bool(false) => 'F',
            OscArg::Double(_) => 'd',
            OscArg::Long(_) => 'h',
            OscArg::Nil => 'N',
        }))
        .collect();
    put_string(&mut out, &tags);
    for a in &msg.args {
        match a {
            OscArg::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            OscArg::Float(v) => out.extend_from_slice(&v.to_be_bytes()),
            OscArg::Str(s) => put_string(&mut out, s),
            OscArg::Double(v) => out.extend_from_slice(&v.to_be_bytes()),
            OscArg::Long(v) => out.extend_from_slice(&v.to_be_bytes()),
            OscArg::Bool(_) | OscArg::Nil => {}
        }
    }
    out
}

pub(super) fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + 4 - s.len() % 4, 0);
}
