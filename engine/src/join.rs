//! Ending a thread without waiting for ever: a thread that stops at a request is joined,
//! one stuck in a call that cannot be interrupted (a model's step, a pipeline's state
//! change) is left to end by itself, so that a show's end is bounded.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Joins `t` if it ends by `deadline`; whether it did (if not, it is left running).
pub fn join_until<T>(t: JoinHandle<T>, deadline: Instant) -> bool {
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if t.is_finished() {
        let _ = t.join();
        true
    } else {
        false
    }
}
