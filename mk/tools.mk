# Project-local tools for `make test` and `make bench`, installed without root into
# $(TOOLS_DIR) (git-ignored, removed by `make clean`). Included from the Makefile.
#
#   .tools/deb/prometheus/bin/promtool  Debian package `prometheus`, only promtool kept
#   .tools/deb/wrk/bin/wrk              Debian packages `wrk` + `libluajit2-5.1-2`
#   .tools/deb/h2load/bin/h2load        Debian package `nghttp2-client` + its libraries
#   .tools/deb/valgrind/                Debian package `valgrind` (make bench-stages, only
#                                       when no valgrind is on PATH)
#   .tools/deb/apt/                     the private Debian package index used to fetch them
#   .tools/cargo/bin/cargo-fuzz         crates.io `cargo-fuzz` (cargo install --root; `make fuzz`
#                                       only)
#
# A program already on PATH wins over a local copy (PROMTOOL=/path/to/promtool, WRK=... too).
# The Debian downloads (scripts/deb-tool.sh, no root: a private package index, `download`
# and dpkg-deb -x into .tools/) need Debian's package tools; elsewhere (macOS) put
# promtool and wrk on PATH yourself (`brew install prometheus wrk`), or the alert-rule
# tests are skipped with a notice.

TOOLS_DIR ?= .tools
PROMTOOL_LOCAL := $(TOOLS_DIR)/deb/prometheus/bin/promtool
WRK_LOCAL := $(TOOLS_DIR)/deb/wrk/bin/wrk
H2LOAD_LOCAL := $(TOOLS_DIR)/deb/h2load/bin/h2load
CARGO_FUZZ_VERSION ?= 0.13.2
CARGO_FUZZ := $(TOOLS_DIR)/cargo/bin/cargo-fuzz
# The dated nightly the fuzz targets build with: fuzz/rust-toolchain.toml is the one place
# it is written down.
FUZZ_TOOLCHAIN := $(shell sed -n 's/^channel *= *"\(.*\)"/\1/p' fuzz/rust-toolchain.toml)

# Prints the promtool to use, installing the local one if needed; prints nothing when none
# can be had (the caller skips).
PROMTOOL_SH = $${PROMTOOL:-$$(command -v promtool || { [ -x $(PROMTOOL_LOCAL) ] \
  || scripts/deb-tool.sh $(TOOLS_DIR)/deb/prometheus promtool prometheus >&2 || true; \
  [ -x $(PROMTOOL_LOCAL) ] && echo $(abspath $(PROMTOOL_LOCAL)); } || true)}

.PHONY: tools
tools: $(CARGO_FUZZ) fuzz-toolchain ## install the project-local tools (promtool; cargo-fuzz and nightly for make fuzz)
	@echo "promtool: $(PROMTOOL_SH)"

.PHONY: wrk
wrk: ## make sure wrk is available (for `make bench`)
	@if [ -z "$${WRK:-}" ] && ! command -v wrk >/dev/null && [ ! -x $(WRK_LOCAL) ]; then \
	  echo "installing wrk into $(WRK_LOCAL) (Debian package, no root)"; \
	  scripts/deb-tool.sh $(TOOLS_DIR)/deb/wrk wrk wrk libluajit2-5.1-2; \
	fi

.PHONY: h2load
h2load: ## make sure h2load is available (the open-loop figure of `make bench`)
	@if ! command -v h2load >/dev/null && [ ! -x $(H2LOAD_LOCAL) ]; then \
	  echo "installing h2load into $(H2LOAD_LOCAL) (Debian package nghttp2-client, no root)"; \
	  scripts/deb-tool.sh $(TOOLS_DIR)/deb/h2load h2load nghttp2-client libev4 libjansson4 \
	    libjemalloc2 libnghttp2-14; \
	fi

# The toolchain file pins the date; rustup installs it once (minimal profile, ~250 MB in
# ~/.rustup, shared by every checkout).
.PHONY: fuzz-toolchain
fuzz-toolchain:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)' || { \
	  echo "installing Rust $(FUZZ_TOOLCHAIN) for the fuzz targets (rustup, minimal profile)"; \
	  rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal; }

$(CARGO_FUZZ):
	@echo "installing cargo-fuzz $(CARGO_FUZZ_VERSION) into $(TOOLS_DIR)/cargo (about 2 minutes, once)"
	$(CARGO) install --locked --root $(TOOLS_DIR)/cargo --version $(CARGO_FUZZ_VERSION) cargo-fuzz

# The alert rules and their unit tests. Without promtool (not Debian/Ubuntu and none on
# PATH) this says so loudly and passes, except in CI (CI=true), where a missing promtool
# must not silently drop the checks.
.PHONY: rules-test
rules-test: ## check the Prometheus alert rules and run their unit tests (promtool)
	@promtool="$(PROMTOOL_SH)"; \
	if [ -z "$$promtool" ]; then \
	  echo "################################################################################"; \
	  echo "# SKIPPED: alert-rule tests. No promtool on PATH and none could be installed."; \
	  echo "# Install Prometheus' promtool (brew install prometheus) or set PROMTOOL=...";   \
	  echo "################################################################################"; \
	  if [ -n "$${CI:-}" ]; then echo "CI is set: failing instead of skipping" >&2; exit 1; fi; \
	  exit 0; \
	fi; \
	echo "promtool: $$promtool"; \
	"$$promtool" check rules deploy/prometheus/cedar-gate-rules.yaml; \
	"$$promtool" test rules deploy/prometheus/cedar-gate-rules.test.yaml
