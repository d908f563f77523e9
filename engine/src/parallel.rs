//! Work shared across the machine's cores, for the CPU paths that touch every pixel or
//! texel (terrain building, rendering, frame conversion).
//!
//! Jobs are small and each thread takes the next one when it is free: on a shared
//! machine a core can stall for milliseconds, and a fixed share per core would make the
//! whole frame wait for the stalled share. The threads are one rayon pool, started once
//! and kept: spawning threads for every frame cost more than some of the jobs.

use std::sync::LazyLock;

use rayon::iter::{IndexedParallelIterator, ParallelIterator};
use rayon::slice::ParallelSliceMut;

/// The pool the CPU paths share, named so that a profiler or `top -H` shows whose
/// threads they are.
static POOL: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .thread_name(|i| format!("cuecast-cpu-{i}"))
        .build()
        .expect("a thread pool can be started")
});

/// Threads to use: one per core, at most 8.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Runs `work` on every job on the pool's [`threads`] threads, each job on its own (so
/// a free thread steals the next), and returns when all are done.
pub(crate) fn in_parallel<J: Send>(
    jobs: impl IndexedParallelIterator<Item = J>,
    work: impl Fn(J) + Sync + Send,
) {
    POOL.install(|| jobs.with_max_len(1).for_each(work));
}

/// Fills `out` in jobs of `chunk` elements: `work(index of the first element, elements)`.
pub(crate) fn fill<T: Send>(out: &mut [T], chunk: usize, work: impl Fn(usize, &mut [T]) + Sync) {
    in_parallel(out.par_chunks_mut(chunk.max(1)).enumerate(), |(n, part)| {
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
