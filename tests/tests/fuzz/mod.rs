//! What the property-based fuzz tests share: how many cases, and a runner with a fixed
//! seed (so a failure in CI is the same failure on a developer's machine).

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// `CUECAST_FUZZ_CASES` (what `make fuzz` sets), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("CUECAST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner for `cases` cases from the fixed `seed`, persisting nothing.
pub fn runner(cases: u32, seed: u8) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}
