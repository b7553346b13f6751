# Helm chart checks, offline: no cluster and no helm binary. Included by the Makefile
# (`include mk/helm.mk`); `make test` depends on `helm-test`.
#
# PyPI `helm-python-sdk` (the Helm v4 SDK as a Python module) renders and lints the
# chart, `kubernetes-validate` carries the Kubernetes 1.31 schemas. Both go into their
# own virtualenv so they never disturb the Envoy one.

HELM_VENV ?= .venv-helm
HELM_PYTHON ?= python3
HELM_KUBE_VERSION ?= 1.31.0
HELM_STAMP := $(HELM_VENV)/.helm-tools
# The debug binary `cargo build` just made (honours CARGO_TARGET_DIR).
CEDAR_GATE_DEBUG_BIN ?= $(or $(CARGO_TARGET_DIR),target)/debug/cedar-gate

$(HELM_STAMP):
	$(HELM_PYTHON) -m venv $(HELM_VENV)
	$(HELM_VENV)/bin/pip install --quiet helm-python-sdk kubernetes-validate pyyaml
	touch $@

.PHONY: helm-venv
helm-venv: $(HELM_STAMP) ## install the chart-checking tools into .venv-helm (once)

# Renders the chart (default values, ci/full-values.yaml, existingConfigMap), lints it
# strictly, validates every manifest against the Kubernetes schemas, checks the policies
# land verbatim in the ConfigMap and that `cedar-gate validate` accepts them, and that
# values.schema.json rejects a wrong type. See scripts/check-chart.py.
.PHONY: helm-test
helm-test: $(HELM_STAMP) ## render, lint and validate the Helm chart offline
	$(CARGO) build --quiet --bin cedar-gate
	PATH="$(abspath $(HELM_VENV))/bin:$$PATH" $(HELM_VENV)/bin/python scripts/check-chart.py \
	  --cedar-gate $(CEDAR_GATE_DEBUG_BIN) --kube-version $(HELM_KUBE_VERSION)
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian package prometheus) for the alert-rule checks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	promtool check rules deploy/prometheus/cedar-gate-rules.yaml
	promtool test rules deploy/prometheus/cedar-gate-rules.test.yaml
