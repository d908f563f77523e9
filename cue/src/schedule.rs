//! From "a cue arrived" to "a cue took effect at frame N".
//!
//! Cues arrive on any thread (HTTP, OSC, a cue file) into the [`CueInbox`], which checks
//! them against the running show and gives each an id; nothing invalid gets in, and a
//! batch is accepted whole or not at all. The model thread's [`Scheduler`] collects them
//! at each frame boundary, works out the frame each one is for (`at`), and hands over
//! those that are due. What happened to every cue is recorded as an [`AppliedCue`].

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cue::{At, Cue, CueError, CueId};
use crate::model::Fps;
use crate::world::ShowContext;

/// Called on the model thread when a watched cue has been applied and its frame made.
pub type Watcher = Arc<dyn Fn(&AppliedCue) + Send + Sync>;

/// The record of one cue: when it arrived, the frame it took effect on and the frame
/// that first showed it. This is the cue log's line, and what the API reports.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AppliedCue {
    pub id: CueId,
    #[schemars(schema_with = "crate::schema::cue_ref")]
    pub cue: Cue,
    /// Wall-clock arrival, milliseconds since the Unix epoch.
    pub arrived_unix_ms: u64,
    /// The frame the cue took effect on.
    pub frame: u64,
    /// That frame's presentation time from the start of the show, in nanoseconds.
    pub pts_ns: u64,
    /// The first frame rendered with the cue's effect (later than `frame` only when
    /// frames were skipped to keep up, or the world was frozen).
    pub shown_frame: u64,
    /// From arrival to that frame being ready, in milliseconds.
    pub latency_ms: f64,
}

/// A cue waiting to be applied.
struct Pending {
    id: CueId,
    cue: Cue,
    arrived: Instant,
    arrived_unix_ms: u64,
    watcher: Option<Watcher>,
}

struct Inbox {
    context: ShowContext,
    next_id: CueId,
    arrived: Vec<Pending>,
    /// The model thread's last frame boundary, and how many cues wait for a later one
    /// (what the limits on the way in are measured against).
    frame: u64,
    waiting: usize,
}

/// The most cues that may wait for their frame at once (arrived and scheduled).
pub const MAX_WAITING: usize = 10_000;
/// How far ahead a cue may be timed, in seconds of show time.
pub const MAX_AHEAD_S: f64 = 86_400.0;

/// Where cues arrive. Cheap to clone; every clone feeds the same show.
#[derive(Clone)]
pub struct CueInbox {
    inner: Arc<Mutex<Inbox>>,
}

impl CueInbox {
    pub fn new(context: ShowContext) -> Self {
        CueInbox {
            inner: Arc::new(Mutex::new(Inbox {
                context,
                next_id: 1,
                arrived: Vec::new(),
                frame: 0,
                waiting: 0,
            })),
        }
    }

    /// Replaces what cues are checked against (the frame rate is known only once caps
    /// are negotiated).
    pub fn update_context(&self, f: impl FnOnce(&mut ShowContext)) {
        f(&mut self.inner.lock().context);
    }

    pub fn context(&self) -> ShowContext {
        self.inner.lock().context.clone()
    }

    /// Checks cues against the show without accepting them.
    pub fn check(&self, cues: &[Cue]) -> Result<(), CueError> {
        let inbox = self.inner.lock();
        check_all(&inbox.context, cues)
    }

    /// Accepts cues, all or none. `watcher` is told as each one is applied.
    pub fn submit(&self, cues: Vec<Cue>, watcher: Option<Watcher>) -> Result<Vec<CueId>, CueError> {
        let mut inbox = self.inner.lock();
        check_all(&inbox.context, &cues)?;
        check_timing(&inbox, &cues)?;
        let arrived = Instant::now();
        let arrived_unix_ms = unix_ms(SystemTime::now());
        let mut ids = Vec::with_capacity(cues.len());
        for cue in cues {
            let id = inbox.next_id;
            inbox.next_id += 1;
            ids.push(id);
            inbox.arrived.push(Pending {
                id,
                cue,
                arrived,
                arrived_unix_ms,
                watcher: watcher.clone(),
            });
        }
        Ok(ids)
    }

    /// Accepts one cue.
    pub fn submit_one(&self, cue: Cue) -> Result<CueId, CueError> {
        Ok(self.submit(vec![cue], None)?[0])
    }

    fn take_arrived(&self) -> Vec<Pending> {
        std::mem::take(&mut self.inner.lock().arrived)
    }

    /// The model thread tells where it is, for the limits on the way in.
    fn sync(&self, frame: u64, waiting: usize) {
        let mut inbox = self.inner.lock();
        inbox.frame = frame;
        inbox.waiting = waiting;
    }
}

fn check_all(context: &ShowContext, cues: &[Cue]) -> Result<(), CueError> {
    if cues.len() == 1 {
        return context.check(&cues[0]);
    }
    for (i, cue) in cues.iter().enumerate() {
        context
            .check(cue)
            .map_err(|e| e.within(&format!("[{i}]")))?;
    }
    Ok(())
}

/// Cues timed more than [`MAX_AHEAD_S`] ahead, or more than [`MAX_WAITING`] waiting,
/// are refused: they would pile up for ever.
fn check_timing(inbox: &Inbox, cues: &[Cue]) -> Result<(), CueError> {
    let fps = inbox.context.fps.map_or(30.0, |f| f.as_f64());
    let limit = inbox.frame + (MAX_AHEAD_S * fps) as u64;
    for (i, cue) in cues.iter().enumerate() {
        if let Some(At::Frame(n)) = cue.at {
            if n > limit {
                let e = CueError::field(
                    "frame",
                    format!("at most a day ahead (frame {limit} now), got {n}"),
                )
                .within("at");
                return Err(if cues.len() == 1 {
                    e
                } else {
                    e.within(&format!("[{i}]"))
                });
            }
        }
    }
    let queued = inbox.arrived.len() + inbox.waiting;
    if queued + cues.len() > MAX_WAITING {
        return Err(CueError::general(format!(
            "{queued} cues are waiting for their frame already; at most {MAX_WAITING} may wait"
        )));
    }
    Ok(())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A cue the model thread has applied to the world and not yet seen rendered.
pub struct InFlight {
    record: AppliedCue,
    arrived: Instant,
    watcher: Option<Watcher>,
}

impl InFlight {
    pub fn cue(&self) -> &Cue {
        &self.record.cue
    }

    /// The frame showing this cue is ready: completes the record. The watcher, if any,
    /// is returned to be told once the show's status says so too.
    pub fn shown(mut self, frame: u64, ready: Instant) -> (AppliedCue, Option<Watcher>) {
        self.record.shown_frame = frame;
        self.record.latency_ms = ready.saturating_duration_since(self.arrived).as_secs_f64() * 1e3;
        (self.record, self.watcher)
    }
}

/// The model thread's side: cues waiting for their frame, ordered by (frame, id).
#[derive(Default)]
pub struct Scheduler {
    waiting: BTreeMap<(u64, CueId), Pending>,
}

impl Scheduler {
    /// Collects newly arrived cues at frame boundary `frame`, and returns those due at
    /// `frame` in the order they must apply: by frame, then by arrival.
    ///
    /// A cue without `at` is due now. `in_s` counts from `frame`, the first boundary after
    /// arrival. A frame or timecode already past is due now; its record says so.
    pub fn due(&mut self, inbox: &CueInbox, frame: u64, fps: Fps) -> Vec<InFlight> {
        self.due_unless(inbox, frame, fps, |_| {}, |_| false)
    }

    /// As [`Scheduler::due`], telling `arrived` of each cue as it comes in (so what it
    /// needs, an image, can be made ready before it is due), and holding back a cue
    /// `hold` says is not ready yet (an image still being decoded) for a later frame,
    /// with the cues due after it: cues apply in the order they were given.
    pub fn due_unless(
        &mut self,
        inbox: &CueInbox,
        frame: u64,
        fps: Fps,
        mut arrived: impl FnMut(&Cue),
        mut hold: impl FnMut(&Cue) -> bool,
    ) -> Vec<InFlight> {
        for p in inbox.take_arrived() {
            arrived(&p.cue);
            let target = match p.cue.at {
                None => frame,
                Some(At::Frame(n)) => n,
                Some(At::InS(s)) => frame + (s * fps.as_f64()).round() as u64,
                // Checked on the way in against this frame rate.
                Some(At::Timecode(tc)) => tc.to_frame(fps.nominal()).unwrap_or(frame),
            };
            self.waiting.insert((target.max(frame), p.id), p);
        }
        let later = self.waiting.split_off(&(frame + 1, 0));
        let mut due = std::mem::replace(&mut self.waiting, later);
        if let Some(first) = due.iter().find(|(_, p)| hold(&p.cue)).map(|(k, _)| *k) {
            for (k, p) in due.split_off(&first) {
                self.waiting.insert((frame + 1, k.1), p);
            }
        }
        inbox.sync(frame, self.waiting.len());
        due.into_values()
            .map(|p| InFlight {
                record: AppliedCue {
                    id: p.id,
                    cue: p.cue,
                    arrived_unix_ms: p.arrived_unix_ms,
                    frame,
                    pts_ns: fps.frame_to_ns(frame),
                    shown_frame: frame,
                    latency_ms: 0.0,
                },
                arrived: p.arrived,
                watcher: p.watcher,
            })
            .collect()
    }

    /// How many cues are scheduled for later frames.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FPS: Fps = Fps::new(30, 1);

    fn cue(v: serde_json::Value) -> Cue {
        Cue::from_value(&v).unwrap()
    }

    fn inbox() -> CueInbox {
        CueInbox::new(ShowContext {
            fps: Some(FPS),
            ..Default::default()
        })
    }

    /// Runs frames `from..to` and returns (frame, id) for every cue applied.
    fn run(s: &mut Scheduler, inbox: &CueInbox, frames: std::ops::Range<u64>) -> Vec<(u64, CueId)> {
        frames
            .flat_map(|f| {
                s.due(inbox, f, FPS)
                    .into_iter()
                    .map(move |c| (f, c.record.id))
            })
            .collect()
    }

    #[test]
    fn cues_too_far_ahead_or_too_many_are_refused() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        run(&mut s, &inbox, 0..100);
        let day = 99 + 86_400 * 30;
        inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": day}})))
            .unwrap();
        let e = inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": day + 1}})))
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("at.frame"), "{e:?}");
        let e = inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": u64::MAX}})))
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("at.frame"), "{e:?}");
        let e = inbox
            .submit(
                vec![
                    cue(json!({"type": "freeze"})),
                    cue(json!({"type": "freeze", "at": {"frame": u64::MAX}})),
                ],
                None,
            )
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1].at.frame"), "{e:?}");
        // The queue is capped, counting what waits in the scheduler too.
        let later = || cue(json!({"type": "freeze", "at": {"frame": 5000}}));
        inbox
            .submit((0..MAX_WAITING - 1).map(|_| later()).collect(), None)
            .unwrap();
        run(&mut s, &inbox, 100..101);
        assert_eq!(s.waiting(), MAX_WAITING);
        let e = inbox.submit_one(later()).unwrap_err();
        assert!(e.message.contains("at most 10000"), "{e:?}");
    }

    #[test]
    fn a_cue_held_back_waits_with_the_cues_after_it_and_then_all_apply_in_order() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        run(&mut s, &inbox, 0..10);
        let ids = inbox
            .submit(
                vec![
                    cue(json!({"type": "marker", "label": "before"})),
                    cue(json!({"type": "marker", "label": "held"})),
                    cue(json!({"type": "marker", "label": "after"})),
                ],
                None,
            )
            .unwrap();
        let label = |c: &Cue| match &c.kind {
            crate::cue::CueKind::Marker { label } => label.clone(),
            _ => String::new(),
        };
        let mut ready = false;
        let mut applied = Vec::new();
        for f in 10..14 {
            for c in s.due_unless(&inbox, f, FPS, |_| {}, |c| !ready && label(c) == "held") {
                applied.push((f, c.record.id));
            }
            ready = f == 11;
        }
        assert_eq!(
            applied,
            vec![(10, ids[0]), (12, ids[1]), (12, ids[2])],
            "the held cue and the one after it apply together, once it is ready"
        );
    }

    #[test]
    fn a_cue_without_at_applies_on_the_next_frame() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        run(&mut s, &inbox, 0..10);
        let id = inbox.submit_one(cue(json!({"type": "freeze"}))).unwrap();
        assert_eq!(run(&mut s, &inbox, 10..12), vec![(10, id)]);
    }

    #[test]
    fn at_frame_applies_on_that_frame() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        let id = inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": 42}})))
            .unwrap();
        assert_eq!(run(&mut s, &inbox, 0..100), vec![(42, id)]);
    }

    #[test]
    fn at_in_s_counts_from_arrival() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        run(&mut s, &inbox, 0..20);
        let id = inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"in_s": 1.5}})))
            .unwrap();
        assert_eq!(run(&mut s, &inbox, 20..100), vec![(65, id)]);
    }

    #[test]
    fn at_timecode_is_show_time() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        let id = inbox
            .submit_one(cue(
                json!({"type": "freeze", "at": {"timecode": "00:00:02:10"}}),
            ))
            .unwrap();
        assert_eq!(run(&mut s, &inbox, 0..100), vec![(70, id)]);
    }

    #[test]
    fn past_frames_apply_now_and_say_when_they_were_for() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        run(&mut s, &inbox, 0..50);
        inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": 10}})))
            .unwrap();
        let applied = s.due(&inbox, 50, FPS);
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].record.frame, 50);
        assert_eq!(applied[0].cue().at, Some(At::Frame(10)));
    }

    #[test]
    fn same_frame_cues_apply_in_arrival_order() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        let a = inbox
            .submit_one(cue(json!({"type": "freeze", "at": {"frame": 5}})))
            .unwrap();
        let b = inbox.submit_one(cue(json!({"type": "resume"}))).unwrap();
        let c = inbox
            .submit_one(cue(json!({"type": "resume", "at": {"frame": 5}})))
            .unwrap();
        assert_eq!(run(&mut s, &inbox, 0..10), vec![(0, b), (5, a), (5, c)]);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let inbox = inbox();
        let e = inbox
            .submit(
                vec![
                    cue(json!({"type": "freeze"})),
                    cue(json!({"type": "scene", "name": "x"})),
                ],
                None,
            )
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1].name"));
        let mut s = Scheduler::default();
        assert!(run(&mut s, &inbox, 0..3).is_empty());
    }

    #[test]
    fn watcher_hears_latency_and_frames() {
        let (inbox, mut s) = (inbox(), Scheduler::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        inbox
            .submit(
                vec![cue(json!({"type": "freeze"}))],
                Some(Arc::new(move |a: &AppliedCue| sink.lock().push(a.clone()))),
            )
            .unwrap();
        let due = s.due(&inbox, 30, FPS);
        let (record, watcher) = due.into_iter().next().unwrap().shown(31, Instant::now());
        // The watcher is the caller's to tell, once its status is up to date.
        assert!(seen.lock().is_empty());
        watcher.expect("the cue's watcher")(&record);
        assert_eq!(
            (record.frame, record.shown_frame, record.pts_ns),
            (30, 31, 1_000_000_000)
        );
        assert_eq!(seen.lock().as_slice(), &[record]);
    }
}
