# Benchmark and fuzzing targets (issue 7). Included from the main Makefile:
#     include mk/bench.mk
# It uses CARGO, ENVOY_STAMP and ENVOY_BIN from there, and the tools of mk/tools.mk.

FUZZ_TARGETS := spiffe_id xfcc cert_pem check_request classify_body jwt_token request_target
# Per target, for `fuzz-smoke` and `make test`: mutations run after the seeds and corpus.
FUZZ_SMOKE_RUNS ?= 2000
FUZZ_TIME ?= 60

# wrk (closed loop) and h2load (open loop) drive HTTP through Envoy in the benchmark's Envoy
# part: from PATH, else the project-local copies `make wrk h2load` unpack from Debian's
# packages (mk/tools.mk, no root).
BENCH_PATH = PATH="$(abspath $(TOOLS_DIR))/deb/wrk/bin:$(abspath $(TOOLS_DIR))/deb/h2load/bin:$$PATH"

.PHONY: bench
bench: $(ENVOY_STAMP) wrk h2load ## benchmarks (gRPC vs null, policy scaling, Envoy, memory); see BENCHMARKS.md
	$(BENCH_PATH) ENVOY_BIN="$(ENVOY_BIN_SH)" CARGO="$(CARGO)" scripts/bench.sh

.PHONY: bench-smoke
bench-smoke: $(ENVOY_STAMP) wrk h2load ## a one-minute run of the benchmark harness (figures not meaningful)
	$(BENCH_PATH) ENVOY_BIN="$(ENVOY_BIN_SH)" CARGO="$(CARGO)" scripts/bench.sh --smoke

# Instructions per Check by stage and for the whole server (callgrind: exact, unlike timings
# on a shared machine). valgrind from PATH, else Debian's package unpacked into .tools/.
.PHONY: bench-stages
bench-stages: ## instructions per Check, by stage and whole server vs null (callgrind); see BENCHMARKS.md
	CARGO="$(CARGO)" scripts/check_stages.sh

# cargo-fuzz runs with the dated nightly of fuzz/rust-toolchain.toml and builds into
# target/fuzz (so `cargo clean` / `make clean` remove it with the rest). FUZZ_CARGO runs it;
# the libFuzzer binaries need the fuzz crate's `libfuzzer` feature.
FUZZ_CARGO = RUSTUP_TOOLCHAIN=$(FUZZ_TOOLCHAIN) $(abspath $(CARGO_FUZZ)) fuzz
FUZZ_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/fuzz

# Every target's body over its seeds, any local corpus and FUZZ_SMOKE_RUNS deterministic
# mutations (fuzz/tests/smoke.rs), on stable. `make test` runs the same test inside its
# `cargo test --workspace`, in the one debug build: the libFuzzer build this replaced needed
# a nightly toolchain, cargo-fuzz and a second, instrumented build of every dependency,
# about 160 of a fresh clone's 580 seconds on 2 cores. Coverage-guided runs: `make fuzz`.
.PHONY: fuzz-smoke
fuzz-smoke: ## run every fuzz target over its seeds and 2,000 mutations (stable, no libFuzzer)
	FUZZ_SMOKE_RUNS=$(FUZZ_SMOKE_RUNS) $(CARGO) test -p cedar-gate-fuzz --test smoke

.PHONY: fuzz
fuzz: $(CARGO_FUZZ) fuzz-toolchain ## run every fuzz target for FUZZ_TIME seconds each (default 60)
	$(FUZZ_CARGO) build --features libfuzzer --target-dir $(FUZZ_TARGET_DIR)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  $(FUZZ_CARGO) run --features libfuzzer --target-dir $(FUZZ_TARGET_DIR) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_TIME) -max_len=65536 -print_final_stats=1 || exit 1; \
	done
