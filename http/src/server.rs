//! The HTTP server both front doors run (the element's `control-address` and the
//! daemon's API): a router on its own thread and tokio runtime, with the limits a server
//! reachable by anything on the machine needs.
//!
//! Hand-rolled over hyper's connection builder rather than `axum::serve` because that
//! offers no limits: a connection that sends nothing, or sends its headers a byte at a
//! time, was kept for ever, and enough of them used up the process's file descriptors
//! (then recordings, takes and checkpoints failed with "Too many open files"). Here:
//! - a connection must finish each request's headers within [`HEADER_TIMEOUT`], which
//!   hyper also applies while a kept-alive connection waits for its next request;
//! - at most [`Limits::connections`] are open at once (below the descriptor limit, with
//!   room to spare for files); past that a new connection is closed at once;
//! - stopping stops accepting, gives requests in flight `grace` to finish, then ends
//!   the rest (event streams and previews never end on their own).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};

/// The longest a client may take to send a request's headers, or to start its next
/// request on a kept-alive connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections may be open at once, and how long each may take over its
/// request headers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    /// A quarter of the file descriptors the process may open (the rest are for
    /// recordings, takes, checkpoints and GStreamer), at most 512.
    fn default() -> Self {
        Limits {
            connections: (open_files_limit() / 4).clamp(16, 512),
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// The process's soft limit on open files.
fn open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    }
}

/// A router served until dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `router` on `listener` from a thread called `name`.
    pub fn start(
        listener: std::net::TcpListener,
        router: Router,
        name: &str,
        limits: Limits,
        grace: Duration,
    ) -> std::io::Result<HttpServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(run(listener, router, limits, grace, stopped));
            })?;
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    listener: std::net::TcpListener,
    router: Router,
    limits: Limits,
    grace: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let open = Arc::new(Semaphore::new(limits.connections));
    // A handler that panics answers 500 (and the panic is logged) instead of the
    // connection being reset under the client.
    let router = router.layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or similar: let it pass rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.wait_for(|s| *s) => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
    // Requests in flight get `grace` to finish: every permit back means none is open.
    let _ = tokio::time::timeout(grace, open.acquire_many(limits.connections as u32)).await;
}

/// The answer to a request whose handler panicked: the reason goes to the log, the
/// client gets the error shape every other error has, with nothing internal in it.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reason = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!("a request's handler panicked: {reason}");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({
            "error": "internal",
            "detail": "the server failed on this request; its log says why",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn server(limits: Limits) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let router = Router::new().route("/", get(|| async { "hello" }));
        HttpServer::start(listener, router, "test-http", limits, Duration::ZERO).unwrap()
    }

    /// Reads until the server closes the connection; how long that took.
    fn closed_after(s: &mut TcpStream) -> Duration {
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return t.elapsed(),
                Ok(_) => {}
            }
        }
    }

    fn get_ok(addr: SocketAddr) -> bool {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200") && out.ends_with("hello")
    }

    #[test]
    fn a_handler_that_panics_answers_500_and_the_server_goes_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let router = Router::new().route("/", get(|| async { "hello" })).route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("a bug in a handler");
                }
                "never"
            }),
        );
        let srv = HttpServer::start(
            listener,
            router,
            "test-http",
            Limits::default(),
            Duration::ZERO,
        )
        .unwrap();
        let mut s = TcpStream::connect(srv.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /boom HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 500"), "{out}");
        assert!(out.contains(r#""error":"internal""#), "{out}");
        assert!(
            !out.contains("a bug in a handler"),
            "the panic leaked: {out}"
        );
        assert!(get_ok(srv.local_addr()), "the server stopped answering");
    }

    #[test]
    fn silent_and_slow_connections_are_closed_after_the_header_timeout() {
        let srv = server(Limits {
            connections: 8,
            header_timeout: Duration::from_millis(500),
        });
        let mut silent = TcpStream::connect(srv.local_addr()).unwrap();
        let mut slow = TcpStream::connect(srv.local_addr()).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            .unwrap();
        let waited = closed_after(&mut silent);
        assert!(
            waited < Duration::from_secs(5),
            "silent connection kept {waited:?}"
        );
        let waited = closed_after(&mut slow);
        assert!(
            waited < Duration::from_secs(5),
            "slow headers kept {waited:?}"
        );
        // A kept-alive connection that goes quiet after a request is closed too.
        let mut kept = TcpStream::connect(srv.local_addr()).unwrap();
        write!(kept, "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").unwrap();
        let waited = closed_after(&mut kept);
        assert!(
            waited < Duration::from_secs(5),
            "idle kept-alive connection kept {waited:?}"
        );
        assert!(get_ok(srv.local_addr()));
    }

    #[test]
    fn connections_past_the_cap_are_closed_at_once_and_the_rest_served() {
        let srv = server(Limits {
            connections: 2,
            header_timeout: Duration::from_secs(30),
        });
        let held: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(srv.local_addr()).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(srv.local_addr()).unwrap();
        let waited = closed_after(&mut third);
        assert!(
            waited < Duration::from_secs(2),
            "over the cap, kept {waited:?}"
        );
        drop(held);
        let until = Instant::now() + Duration::from_secs(5);
        while !get_ok(srv.local_addr()) {
            assert!(
                Instant::now() < until,
                "the server did not take connections again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
