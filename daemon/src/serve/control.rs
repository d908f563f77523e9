//! The ways in beside the bus: the HTTP API on its own thread and runtime, and OSC
//! (its listener, the cues it maps to, a throttle on its log lines).

#[allow(unused_imports)]
use super::*;

/// Serves the API on its own thread and runtime until dropped.
pub(super) struct ApiServer {
    pub(super) addr: std::net::SocketAddr,
    pub(super) _server: cuecast_http::server::HttpServer,
}

impl ApiServer {
    /// Event streams and previews never end on their own: stopping ends them at once.
    pub(super) fn start(addr: std::net::SocketAddr, state: AppState) -> Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        let server = cuecast_http::server::HttpServer::start(
            listener,
            api::router(state),
            "cuecast-api",
            cuecast_http::server::Limits::default(),
            Duration::ZERO,
        )?;
        Ok(ApiServer {
            addr: server.local_addr(),
            _server: server,
        })
    }
}

/// OSC messages become cues (or rundown steps) through the same checked inbox.
/// At most [`Throttle::PER_S`] warnings a second from one source; the rest are counted
/// and reported with the next one let through (one UDP bundle can hold thousands).
#[derive(Default)]
pub(super) struct Throttle {
    pub(super) second: Option<std::time::Instant>,
    pub(super) shown: u32,
    pub(super) dropped: u32,
}

impl Throttle {
    const PER_S: u32 = 5;

    /// `Some(dropped since the last one shown)` when this one may be shown.
    pub(super) fn allow(&mut self) -> Option<u32> {
        let now = std::time::Instant::now();
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.second = Some(now);
            self.shown = 0;
        }
        if self.shown >= Self::PER_S {
            self.dropped += 1;
            return None;
        }
        self.shown += 1;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so nothing a sender writes
/// can forge a log line.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn start_osc(
    addr: std::net::SocketAddr,
    allow: Vec<std::net::IpAddr>,
    show: &Show,
    state: &AppState,
) -> Result<OscListener> {
    let state = state.clone();
    let warnings = Mutex::new(Throttle::default());
    let listener = OscListener::start(
        &addr.to_string(),
        show.osc_prefix.clone(),
        show.osc_map.clone(),
        allow,
        move |address, command| {
            let result = command
                .map_err(|e| e.to_string())
                .and_then(|command| osc_command(&state, command));
            if let Err(e) = result {
                let Some(dropped) = warnings.lock().allow() else {
                    return;
                };
                let mut message = format!("OSC {}: {}", escape(address), escape(&e));
                if dropped > 0 {
                    message += &format!(" ({dropped} more OSC warnings in the last second)");
                }
                tracing::warn!("{message}");
                state.events.send(Event::warning(message.clone()));
            }
        },
    )
    .with_context(|| format!("cannot listen for OSC on {addr}"))?;
    tracing::info!(
        "OSC listening on udp://{}{}",
        listener.local_addr(),
        show.osc_prefix
    );
    Ok(listener)
}

/// The OSC adapter of the control service: a message's command runs as the API's would;
/// a refusal is a warning (OSC has no answer).
pub(super) fn osc_command(state: &AppState, command: OscCommand) -> Result<(), String> {
    let done = match command {
        OscCommand::Go => Step::Go.run(state).map(drop),
        OscCommand::Back => Step::Back.run(state).map(drop),
        OscCommand::Cues(value) => {
            let cues = Cue::list_from_value(&value).map_err(|e| e.to_string())?;
            Cues(cues).run(state).map(drop)
        }
    };
    done.map_err(|e| e.to_string())
}
