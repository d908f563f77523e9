//! Detail: how finely a model that can draw cheaper frames draws them, chosen from how
//! late its steps run.
//!
//! A show on a busy machine must keep its frame rate: a step that misses its budget is a
//! repeated frame on air. Models that can trade detail for time (the procedural world
//! draws a coarser internal image and scales it up) are asked for less detail while
//! steps run late, and for full detail again once there is room for it. The level is a
//! per-frame input like the camera, so it is recorded with each frame of a take and a
//! replay draws every frame at the detail it had on air, bit for bit.
//!
//! The rule, with hysteresis so that it does not flap:
//! - a few steps in a row over [`LATE`] of the frame's budget lower the detail one level;
//! - two seconds of steps that would fit under [`ROOM`] of the budget at the next level
//!   up (a step's cost grows with the square of the detail) raise it one level.

use std::time::Duration;

/// The levels, finest first: the scale of the model's internal image on each axis.
pub const LEVELS: [f32; 3] = [1.0, 0.75, 0.5];
/// The least detail any frame is drawn at (a replay's recorded value is held to it).
pub const COARSEST: f32 = LEVELS[LEVELS.len() - 1];
/// A step over this share of the frame's budget is late.
pub const LATE: f64 = 0.85;
/// Late steps in a row that lower the detail.
pub const LATE_STEPS: u32 = 3;
/// The share of the budget a step at the next finer level must be expected to fit in.
pub const ROOM: f64 = 0.6;
/// Seconds of steps with room that raise the detail.
pub const ROOM_SECONDS: f64 = 2.0;

/// A change of detail, for status and the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub from: f32,
    pub to: f32,
    /// The step that caused it.
    pub step: Duration,
    pub budget: Duration,
}

#[derive(Debug, Default)]
pub struct DetailControl {
    level: usize,
    late: u32,
    room: u32,
}

impl DetailControl {
    /// The detail to draw the next frame at.
    pub fn detail(&self) -> f32 {
        LEVELS[self.level]
    }

    /// Back to full detail (a new show, or a model that cannot scale).
    pub fn reset(&mut self) {
        *self = DetailControl::default();
    }

    /// Takes one step's time against the frame's budget (`fps` frames a second);
    /// returns the change it caused, if any.
    pub fn observe(&mut self, step: Duration, fps: f64) -> Option<Change> {
        let budget = Duration::from_secs_f64(1.0 / fps.max(1.0));
        let share = step.as_secs_f64() / budget.as_secs_f64();
        let from = self.detail();
        if share > LATE {
            self.room = 0;
            self.late += 1;
            if self.late >= LATE_STEPS && self.level + 1 < LEVELS.len() {
                self.level += 1;
                self.late = 0;
                return Some(Change {
                    from,
                    to: self.detail(),
                    step,
                    budget,
                });
            }
            return None;
        }
        self.late = 0;
        if self.level == 0 {
            return None;
        }
        let finer = f64::from(LEVELS[self.level - 1] / from);
        if share * finer * finer < ROOM {
            self.room += 1;
            if f64::from(self.room) >= ROOM_SECONDS * fps {
                self.level -= 1;
                self.room = 0;
                return Some(Change {
                    from,
                    to: self.detail(),
                    step,
                    budget,
                });
            }
        } else {
            self.room = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: f64 = 30.0;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1e3)
    }

    #[test]
    fn late_steps_lower_the_detail_one_level_at_a_time() {
        let mut d = DetailControl::default();
        assert_eq!(d.observe(ms(31.0), FPS), None);
        assert_eq!(d.observe(ms(31.0), FPS), None);
        let change = d.observe(ms(31.0), FPS).expect("third late step lowers it");
        assert_eq!((change.from, change.to), (1.0, 0.75));
        assert_eq!(d.detail(), 0.75);
        for _ in 0..3 {
            d.observe(ms(40.0), FPS);
        }
        assert_eq!(d.detail(), 0.5);
        for _ in 0..30 {
            d.observe(ms(40.0), FPS);
        }
        assert_eq!(d.detail(), 0.5, "there is no level below the last");
    }

    #[test]
    fn one_late_step_among_good_ones_changes_nothing() {
        let mut d = DetailControl::default();
        for _ in 0..100 {
            d.observe(ms(31.0), FPS);
            d.observe(ms(31.0), FPS);
            d.observe(ms(20.0), FPS);
        }
        assert_eq!(d.detail(), 1.0);
    }

    #[test]
    fn detail_comes_back_after_two_seconds_with_room_for_it() {
        let mut d = DetailControl::default();
        for _ in 0..6 {
            d.observe(ms(40.0), FPS);
        }
        assert_eq!(d.detail(), 0.5);
        // 9 ms at 0.5 would be ~20 ms at 0.75: 61 % of 33 ms, not room enough.
        for _ in 0..300 {
            d.observe(ms(9.0), FPS);
        }
        assert_eq!(d.detail(), 0.5);
        // 8 ms at 0.5 would be 18 ms at 0.75: room, after two seconds of it.
        for _ in 0..59 {
            assert_eq!(d.observe(ms(8.0), FPS), None);
        }
        let change = d.observe(ms(8.0), FPS).expect("the 60th step with room");
        assert_eq!((change.from, change.to), (0.5, 0.75));
        // A late step restarts the count.
        for _ in 0..59 {
            d.observe(ms(10.0), FPS);
        }
        d.observe(ms(30.0), FPS);
        for _ in 0..59 {
            d.observe(ms(10.0), FPS);
        }
        assert_eq!(d.detail(), 0.75);
        d.observe(ms(10.0), FPS);
        assert_eq!(d.detail(), 1.0);
    }
}
