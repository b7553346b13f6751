# Benchmark and fuzzing targets (issue 7). Included from the main Makefile:
#     include mk/bench.mk
# It uses CARGO, ENVOY_STAMP and ENVOY_BIN from there, and the tools of mk/tools.mk.

FUZZ_TARGETS := spiffe_id xfcc cert_pem check_request classify_body jwt_token request_target
# Per target, for `fuzz-smoke`: a bounded number of runs over the seeds plus mutations.
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
# target/fuzz (so `cargo clean` / `make clean` remove it with the rest). FUZZ_CARGO runs it.
FUZZ_CARGO = RUSTUP_TOOLCHAIN=$(FUZZ_TOOLCHAIN) $(abspath $(CARGO_FUZZ)) fuzz
FUZZ_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/fuzz

# Each target runs the committed seeds, then mutations, for FUZZ_SMOKE_RUNS executions.
# Built unoptimized (`--dev`): the optimized sanitizer build took about 15 of a fresh
# clone's 30 minutes on 2 cores, and 2,000 runs need no speed. Without AddressSanitizer
# (`--sanitizer none`): the smoke run is there so the targets build and run (panics are
# still caught); ASan finds memory errors, which only dependencies' unsafe code and
# aws-lc's C can have, at the price of instrumenting all of them. `make fuzz` keeps it. New inputs go to fuzz/corpus/<target>
# (git-ignored).
.PHONY: fuzz-smoke
fuzz-smoke: $(CARGO_FUZZ) fuzz-toolchain ## build every fuzz target and run each briefly (so they cannot rot)
	@echo "fuzz-smoke: building $(words $(FUZZ_TARGETS)) fuzz targets with $(FUZZ_TOOLCHAIN) into $(FUZZ_TARGET_DIR) (a few minutes on a fresh clone)"
	@# Target by target: a whole-workspace build would also link the make-seeds helper,
	@# which has no libFuzzer and so, without ASan's runtime, no coverage callbacks.
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_CARGO) build --dev --sanitizer none --target-dir $(FUZZ_TARGET_DIR) $$t || exit 1; \
	done
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  echo "fuzz $$t: $(FUZZ_SMOKE_RUNS) runs"; \
	  $(FUZZ_CARGO) run --dev --sanitizer none --target-dir $(FUZZ_TARGET_DIR) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -runs=$(FUZZ_SMOKE_RUNS) -max_len=65536 -print_final_stats=1 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|==|SUMMARY|Done)'; \
	done

.PHONY: fuzz
fuzz: $(CARGO_FUZZ) fuzz-toolchain ## run every fuzz target for FUZZ_TIME seconds each (default 60)
	$(FUZZ_CARGO) build --target-dir $(FUZZ_TARGET_DIR)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  $(FUZZ_CARGO) run --target-dir $(FUZZ_TARGET_DIR) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_TIME) -max_len=65536 -print_final_stats=1 || exit 1; \
	done
