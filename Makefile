# Shortcuts; scripts/ holds the real steps.
.PHONY: show test bench bench-quick fuzz

show:
	scripts/show

test:
	scripts/test

# Runs the benchmark suite (about 25 minutes) and writes docs/benchmarks.md,
# docs/benchmarks.json and the plots in docs/bench/.
bench:
	scripts/setup
	cargo run --release -p cuecast-bench

# The same, every run shortened: for trying the harness, not for figures.
bench-quick:
	scripts/setup
	cargo run --release -p cuecast-bench -- --quick --out target/bench-quick/benchmarks.md

# The property-based fuzz tests of the cue parser and the OSC decoder, far longer than
# CI runs them (CUECAST_FUZZ_CASES cases each; each test prints how many it tried).
fuzz:
	scripts/setup
	CUECAST_FUZZ_CASES=$${CUECAST_FUZZ_CASES:-200000} cargo test --release -p cuecast-tests --test fuzz_cues -- --nocapture
	CUECAST_FUZZ_CASES=$${CUECAST_FUZZ_CASES:-200000} cargo test --release -p cuecast-tests --test fuzz_osc -- --nocapture
