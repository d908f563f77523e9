# Shortcuts; scripts/ holds the real steps.
.PHONY: show test bench bench-quick

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
