//! The UDP listener: one thread that decodes packets, maps each message to cue JSON and
//! hands it on, until dropped.

#[allow(unused_imports)]
use super::*;

/// How often the listener thread looks at its stop flag; bounds how long Drop waits.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// A UDP socket read on its own thread; dropping it stops and joins the thread.
pub struct OscListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OscListener {
    /// Binds `addr` now (error if taken) and calls `on_command` on the listener thread
    /// for each message: what it asks, or an error naming the address. Releases are not
    /// passed on. A packet that does not parse is reported with an empty
    /// OSC address and the sender in the message. Packets from senders other than
    /// loopback and those in `allow` are dropped unread (OSC has no authentication).
    pub fn start(
        addr: &str,
        prefix: String,
        aliases: BTreeMap<String, Value>,
        allow: Vec<std::net::IpAddr>,
        on_command: impl Fn(&str, Result<OscCommand, OscError>) + Send + 'static,
    ) -> std::io::Result<OscListener> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(POLL))?;
        let local = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("osc".into())
            .spawn(move || serve(&socket, &flag, &prefix, &aliases, &allow, on_command))?;
        Ok(OscListener {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for OscListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panic in on_cue already ended the thread; nothing more to do.
            let _ = t.join();
        }
    }
}

pub(super) fn serve(
    socket: &UdpSocket,
    stop: &AtomicBool,
    prefix: &str,
    aliases: &BTreeMap<String, Value>,
    allow: &[std::net::IpAddr],
    on_command: impl Fn(&str, Result<OscCommand, OscError>),
) {
    // The largest UDP payload, so no datagram is cut short.
    let mut buf = vec![0; 65536];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                on_command("", fail(format!("OSC socket error: {e}")));
                // Do not spin on an error that repeats.
                std::thread::sleep(POLL);
                continue;
            }
        };
        if !peer.ip().is_loopback() && !allow.contains(&peer.ip()) {
            continue;
        }
        match parse_packet(&buf[..n]) {
            Err(e) => on_command("", fail(format!("bad OSC packet from {peer}: {e}"))),
            Ok(msgs) => {
                for m in msgs {
                    match to_command(&m, prefix, aliases) {
                        Ok(None) => {}
                        Ok(Some(command)) => on_command(&m.address, Ok(command)),
                        Err(e) => on_command(&m.address, Err(e)),
                    }
                }
            }
        }
    }
}
