//! Histograms the engine fills as it runs, read by whoever reports on the show (the
//! daemon's Prometheus `/metrics`, benchmarks).
//!
//! Fixed buckets and atomic counters: recording costs a few relaxed atomic adds on the
//! model thread, never a lock, and any thread can read a consistent-enough snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds, in milliseconds, of the step-time buckets.
pub const STEP_MS_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 33.0, 40.0, 50.0, 75.0, 100.0, 250.0, 1000.0,
];
/// Upper bounds, in milliseconds, of the cue-to-frame latency buckets.
pub const LATENCY_MS_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 33.0, 50.0, 67.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

/// A cumulative histogram in the Prometheus sense: counts per upper bound, plus the
/// total count and sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow (+Inf) bucket; not cumulative.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum in microseconds, so it can be an integer atomic.
    sum_us: AtomicU64,
}

/// A histogram's numbers at one moment, cumulative per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, ending with `(+Inf, count)`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, ms: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms.max(0.0) * 1e3) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, total));
        }
        HistogramSnapshot {
            buckets,
            count: total,
            sum: self.sum_us.load(Ordering::Relaxed) as f64 / 1e3,
        }
    }
}

impl HistogramSnapshot {
    /// The bucket bound below which a fraction `q` of observations fall (an upper
    /// estimate, as Prometheus' `histogram_quantile` would interpolate within it).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let rank = (q * self.count as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank.max(1))
            .map(|(b, _)| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 10.0]);
        for ms in [0.5, 1.0, 3.0, 50.0] {
            h.observe(ms);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 54.5).abs() < 1e-9);
        assert_eq!(s.quantile_bound(0.5), Some(1.0));
        assert_eq!(s.quantile_bound(0.75), Some(10.0));
        assert_eq!(s.quantile_bound(1.0), Some(f64::INFINITY));
    }
}
