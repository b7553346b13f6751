# The SMT solver behind `cedar-gate diff`, `access` and `validate --prove`. Included by the
# Makefile (`include mk/analysis.mk`); `make test` depends on `solver`.
#
# cedar-policy-symcc runs a cvc5 1.3.1 *executable* (env `CVC5`, else `cvc5` on PATH) and
# talks SMT-LIB with it. No registry here ships that executable; PyPI `cvc5==1.3.1` ships
# the solver library with its Python API. scripts/cvc5-driver.py is a small `cvc5` over that
# API; this installs both into the project venv as $(CVC5_BIN). `serve` never needs it.

CVC5_VERSION ?= 1.3.1
CVC5_STAMP := $(VENV)/.cvc5-$(CVC5_VERSION)
CVC5_BIN := $(CURDIR)/$(VENV)/bin/cvc5

$(CVC5_STAMP): scripts/cvc5-driver.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'cvc5==$(CVC5_VERSION)'
	{ echo "#!$(CURDIR)/$(VENV)/bin/python"; tail -n +2 scripts/cvc5-driver.py; } > $(CVC5_BIN)
	chmod +x $(CVC5_BIN)
	printf '(set-logic ALL)\n(declare-const x Int)\n(assert (> x 1))\n(check-sat)\n' \
	  | $(CVC5_BIN) --lang smt | grep -qx sat || { echo "$(CVC5_BIN) does not answer" >&2; exit 1; }
	touch $@

.PHONY: solver
solver: $(CVC5_STAMP) ## install the cvc5 solver (PyPI wheel + driver) into .venv for policy analysis
	@echo "CVC5=$(CVC5_BIN)"

# The analysis commands on the shipped policies (the test suite runs them too).
.PHONY: prove-policies
prove-policies: $(CVC5_STAMP) ## prove the shipped policies never error, are live, are not overridden, and no guardrails always deny an example's group
	CVC5="$(CVC5_BIN)" $(CARGO) run --quiet -- validate --prove --policy-dir cedar
