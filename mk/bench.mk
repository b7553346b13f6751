# Benchmark and fuzzing targets (issue 7). Included from the main Makefile:
#     include mk/bench.mk
# It uses CARGO, ENVOY_STAMP and ENVOY_BIN from there.

FUZZ_TARGETS := spiffe_id xfcc cert_pem check_request classify_body jwt_token request_target
# Per target, for `fuzz-smoke`: a bounded number of runs over the seeds plus mutations.
FUZZ_SMOKE_RUNS ?= 2000
FUZZ_TIME ?= 60

# wrk drives HTTP through Envoy in the benchmark's Envoy part (Debian package `wrk`).
.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (Debian package wrk) for the through-Envoy benchmark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

.PHONY: bench
bench: $(ENVOY_STAMP) bench-tools ## benchmarks (gRPC vs null, policy scaling, Envoy, memory); see BENCHMARKS.md
	ENVOY_BIN="$(ENVOY_BIN_SH)" CARGO="$(CARGO)" scripts/bench.sh

.PHONY: bench-smoke
bench-smoke: $(ENVOY_STAMP) bench-tools ## a one-minute run of the benchmark harness (figures not meaningful)
	ENVOY_BIN="$(ENVOY_BIN_SH)" CARGO="$(CARGO)" scripts/bench.sh --smoke

# Each target runs the committed seeds, then mutations, for FUZZ_SMOKE_RUNS executions,
# built unoptimized (`--dev`): the optimized sanitizer build took about 15 of a fresh
# clone's 30 minutes on 2 cores, and 2,000 runs need no speed;
# new inputs go to fuzz/corpus/<target> (git-ignored). Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`).
.PHONY: fuzz-smoke
fuzz-smoke: ## build every fuzz target and run each briefly (so they cannot rot)
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	cargo +nightly fuzz build --dev
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  echo "fuzz $$t: $(FUZZ_SMOKE_RUNS) runs"; \
	  cargo +nightly fuzz run --dev $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -runs=$(FUZZ_SMOKE_RUNS) -max_len=65536 -print_final_stats=1 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|==|SUMMARY|Done)'; \
	done

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZ_TIME seconds each (default 60)
	cargo +nightly fuzz build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  cargo +nightly fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_TIME) -max_len=65536 -print_final_stats=1 || exit 1; \
	done
