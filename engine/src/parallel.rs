//! Work shared across the machine's cores, for the CPU paths that touch every pixel or
//! texel (terrain building, rendering, frame conversion).
//!
//! Jobs are small and each thread takes the next one when it is free: on a shared
//! machine a core can stall for milliseconds, and a fixed share per core would make the
//! whole frame wait for the stalled share.

use std::sync::Mutex;

/// Threads to use: one per core, at most 8.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Runs `work` on every job, on [`threads`] threads (this one included).
pub(crate) fn in_parallel<J: Send>(jobs: impl Iterator<Item = J> + Send, work: impl Fn(J) + Sync) {
    let queue = Mutex::new(jobs);
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    std::thread::scope(|scope| {
        for _ in 1..threads() {
            scope.spawn(|| {
                while let Some(job) = next() {
                    work(job);
                }
            });
        }
        while let Some(job) = next() {
            work(job);
        }
    });
}

/// Fills `out` in jobs of `chunk` elements: `work(index of the first element, elements)`.
pub(crate) fn fill<T: Send>(out: &mut [T], chunk: usize, work: impl Fn(usize, &mut [T]) + Sync) {
    in_parallel(out.chunks_mut(chunk.max(1)).enumerate(), |(n, part)| {
        work(n * chunk.max(1), part)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_filled_once_with_its_own_index() {
        let mut v = vec![0usize; 1000];
        fill(&mut v, 7, |start, part| {
            for (i, x) in part.iter_mut().enumerate() {
                *x += start + i;
            }
        });
        assert!(v.iter().enumerate().all(|(i, x)| *x == i));
    }
}
