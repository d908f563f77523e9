//! What an output's peer has actually taken.
//!
//! A buffer reaching a sink's pad says nothing about the peer: `rtmp2sink` queues
//! until a publish is acknowledged (forever, for a server that accepts TCP and never
//! answers), an SRT caller keeps "sending" into a socket whose listener is gone, an
//! SRT listener with nobody connected drops everything. So an output is `live` only
//! while its sink's own counters move:
//!
//! - RTMP: `rtmp2sink`'s `stats` exist only once the server has acknowledged the
//!   publish; `out-bytes-total` then counts bytes written to the connection. RTMP
//!   acknowledges data only every few megabytes (nginx: 5 MB), so a frozen server is
//!   seen once the socket's buffers are full and the count stops.
//! - SRT: `srtsink`'s `stats`, per connected receiver: `packet-ack-received` moves
//!   while a receiver acknowledges what it gets (SRT acknowledges every 10 ms);
//!   `bytes-sent` counts what went out. A listener reports one entry per receiver.
//! - A recording: the file's length, as the kernel has it (the sink writes through,
//!   unbuffered).
//!
//! The supervisor reads these twice a second and turns them into `live`, delivered
//! `bytes`, and the stalls that end an attempt.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// How an output's delivery is read.
pub enum Probe {
    Rtmp,
    Srt { listener: bool },
    File(PathBuf),
}

/// One reading of a sink's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Bytes handed to the peer's connection (or the file) in this attempt.
    pub sent: u64,
    /// A counter that moves only while the peer takes data: RTMP bytes written, SRT
    /// acknowledgements, the file's length.
    pub progress: u64,
    /// Connected SRT receivers (`None`: not SRT).
    pub receivers: Option<u32>,
}

impl Probe {
    pub fn read(&self, sink: &gst::Element) -> Reading {
        match self {
            Probe::Rtmp => {
                let stats = sink.property::<gst::Structure>("stats");
                let sent = stats.get::<u64>("out-bytes-total").unwrap_or(0);
                Reading {
                    sent,
                    progress: sent,
                    receivers: None,
                }
            }
            Probe::Srt { listener } => {
                let stats = sink.property::<gst::Structure>("stats");
                let mut reading = Reading {
                    receivers: Some(0),
                    ..Reading::default()
                };
                let mut add = |s: &gst::StructureRef| {
                    // Only a connected socket reports its packets.
                    if let Ok(acks) = s.get::<i32>("packet-ack-received") {
                        reading.progress += acks.max(0) as u64;
                        reading.sent += s.get::<u64>("bytes-sent").unwrap_or(0);
                        reading.receivers = reading.receivers.map(|n| n + 1);
                    }
                };
                if *listener {
                    if let Ok(callers) = stats.get::<gst::glib::ValueArray>("callers") {
                        for v in callers.iter() {
                            if let Ok(s) = v.get::<gst::Structure>() {
                                add(&s);
                            }
                        }
                    }
                } else {
                    add(&stats);
                }
                reading
            }
            Probe::File(path) => {
                let len = std::fs::metadata(path).map_or(0, |m| m.len());
                Reading {
                    sent: len,
                    progress: len,
                    receivers: None,
                }
            }
        }
    }

    /// Whether this output may wait, without limit, for a peer to come to it.
    fn waits_for_receivers(&self) -> bool {
        matches!(self, Probe::Srt { listener: true })
    }

    /// Why an attempt that delivered nothing in time failed.
    fn no_start(&self, target: &str, after: Duration) -> String {
        let s = after.as_secs();
        match self {
            Probe::Rtmp => {
                format!("the RTMP server at {target} did not accept the stream within {s} s")
            }
            Probe::Srt { .. } => {
                format!("no SRT receiver at {target} acknowledged anything within {s} s")
            }
            Probe::File(p) => format!(
                "nothing was written to {} within {s} s",
                crate::user_path(p)
            ),
        }
    }

    /// Why a live attempt that stopped delivering failed.
    fn stalled(&self, target: &str, after: Duration) -> String {
        let s = after.as_secs();
        match self {
            Probe::Rtmp => format!("the RTMP server at {target} took no data for {s} s"),
            Probe::Srt { .. } => {
                format!("the SRT receiver at {target} acknowledged nothing for {s} s")
            }
            Probe::File(p) => format!("nothing was written to {} for {s} s", crate::user_path(p)),
        }
    }
}

/// An attempt that delivers nothing for this long after it starts has failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A live attempt whose peer takes nothing for this long has failed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a reading means for the output.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing delivered yet (or no receiver connected to a listener).
    Waiting,
    /// The peer takes data.
    Delivering,
    /// The attempt failed, for this reason.
    Failed(String),
}

/// Follows one attempt's readings: delivered bytes, and when progress was last seen.
pub struct Tracker {
    probe: Probe,
    target: String,
    started: Instant,
    last: Reading,
    /// When `progress` last moved (or a receiver arrived); `None` before any.
    moved_at: Option<Instant>,
}

impl Tracker {
    pub fn new(probe: Probe, target: String, now: Instant) -> Tracker {
        Tracker {
            probe,
            target,
            started: now,
            last: Reading::default(),
            moved_at: None,
        }
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn receivers(&self) -> Option<u32> {
        self.last.receivers
    }

    /// Takes a reading; returns the bytes newly delivered and what it means.
    pub fn update(&mut self, r: Reading, now: Instant) -> (u64, Verdict) {
        // Counters restart when a receiver leaves a listener: never count backwards.
        let sent = r.sent.saturating_sub(self.last.sent.min(r.sent));
        let moved = r.progress > self.last.progress;
        let receivers_now = r.receivers.unwrap_or(1);
        if r.progress < self.last.progress || receivers_now > self.last.receivers.unwrap_or(1) {
            // A new receiver (or a restarted count): it has until the stall limit.
            self.moved_at = Some(now);
        }
        let delivered = if moved { sent } else { 0 };
        if moved {
            self.moved_at = Some(now);
        }
        self.last = r;
        let verdict = if receivers_now == 0 && self.probe.waits_for_receivers() {
            self.moved_at = None;
            Verdict::Waiting
        } else {
            match self.moved_at {
                Some(t) if now.duration_since(t) >= STALL_TIMEOUT => {
                    Verdict::Failed(self.probe.stalled(&self.target, STALL_TIMEOUT))
                }
                Some(_) if r.progress > 0 => Verdict::Delivering,
                Some(_) => Verdict::Waiting,
                None if now.duration_since(self.started) >= START_TIMEOUT
                    && !self.probe.waits_for_receivers() =>
                {
                    Verdict::Failed(self.probe.no_start(&self.target, START_TIMEOUT))
                }
                None => Verdict::Waiting,
            }
        };
        (delivered, verdict)
    }
}

/// Flushes a recording's written data to the disk once a second, so that a cut file
/// (power loss, a crashed kernel) keeps what was written. `fsync` acts on the file,
/// not the descriptor, so a read-only descriptor of our own serves: the sink's stays
/// GStreamer's.
pub struct Syncer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Syncer {
    pub fn start(path: PathBuf) -> Syncer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("record-sync".into())
            .spawn(move || {
                let mut file = None;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    if file.is_none() {
                        file = std::fs::File::open(&path).ok();
                    }
                    if let Some(f) = &file {
                        let _ = f.sync_data();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("recording sync thread did not start: {e}");
        }
        Syncer { stop }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn reading(sent: u64, progress: u64, receivers: Option<u32>) -> Reading {
        Reading {
            sent,
            progress,
            receivers,
        }
    }

    #[test]
    fn a_server_that_never_answers_fails_the_attempt_after_the_start_limit() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Probe::Rtmp, "rtmp://h/live".into(), t0);
        assert_eq!(
            t.update(Reading::default(), at(t0, 500)),
            (0, Verdict::Waiting)
        );
        assert_eq!(
            t.update(Reading::default(), at(t0, 9_500)).1,
            Verdict::Waiting
        );
        let (_, v) = t.update(Reading::default(), at(t0, 10_000));
        assert_eq!(
            v,
            Verdict::Failed(
                "the RTMP server at rtmp://h/live did not accept the stream within 10 s".into()
            )
        );
    }

    #[test]
    fn bytes_count_only_while_the_peer_acknowledges_and_a_stall_fails_it() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Probe::Srt { listener: false }, "127.0.0.1:9".into(), t0);
        assert_eq!(
            t.update(reading(1000, 3, Some(1)), at(t0, 500)),
            (1000, Verdict::Delivering)
        );
        assert_eq!(
            t.update(reading(3000, 9, Some(1)), at(t0, 1000)),
            (2000, Verdict::Delivering)
        );
        // The receiver is gone: the socket still "sends", nothing is acknowledged.
        assert_eq!(
            t.update(reading(5000, 9, Some(1)), at(t0, 1500)),
            (0, Verdict::Delivering)
        );
        let (d, v) = t.update(reading(9000, 9, Some(1)), at(t0, 6000));
        assert_eq!(d, 0);
        assert_eq!(
            v,
            Verdict::Failed("the SRT receiver at 127.0.0.1:9 acknowledged nothing for 5 s".into())
        );
    }

    #[test]
    fn a_listener_waits_for_receivers_without_limit_and_counts_each_one() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Probe::Srt { listener: true }, "127.0.0.1:9".into(), t0);
        assert_eq!(
            t.update(reading(0, 0, Some(0)), at(t0, 60_000)),
            (0, Verdict::Waiting)
        );
        assert_eq!(
            t.update(reading(500, 2, Some(1)), at(t0, 60_500)),
            (500, Verdict::Delivering)
        );
        assert_eq!(t.receivers(), Some(1));
        // The receiver leaves: waiting again, not failed, and nothing counted twice.
        assert_eq!(
            t.update(reading(0, 0, Some(0)), at(t0, 70_000)),
            (0, Verdict::Waiting)
        );
        assert_eq!(
            t.update(reading(300, 1, Some(1)), at(t0, 70_500)),
            (300, Verdict::Delivering)
        );
    }
}
