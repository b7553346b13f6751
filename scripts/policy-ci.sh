#!/usr/bin/env bash
# CI gate for a policy repository (schema + *.cedar + entities.json + tests/*.yaml):
#   1. validate --prove   the directory loads, and every policy never errors, is not
#                         dead, and (a permit) is not completely overridden by forbids;
#   2. test               the policy unit tests pass;
#   3. diff               against the target branch: fail when the change grants access
#                         (gains), unless the change is labelled as intended.
#
# Usage: scripts/policy-ci.sh [POLICY_DIR] [BASE_REV]
#   POLICY_DIR  the policy directory in the repository (default: cedar)
#   BASE_REV    the revision to compare with (default: origin/main, or $POLICY_CI_BASE)
# Environment:
#   CEDAR_GATE          the cedar-gate binary (default: cedar-gate on PATH)
#   CVC5                the cvc5 1.3.1 solver (see docs/policy-review.md; `make solver`)
#   POLICY_CI_ALLOW_GAINS=1   the change is labelled (e.g. `access-change-approved`): report
#                       gains but do not fail on them; losses never fail the gate
#   POLICY_CI_REPORT    write the diff report (JSON) here, e.g. for a PR comment
# Exit: 0 pass, 1 invalid / unprovable / failing tests / tool error, 3 unapproved gains.
set -euo pipefail

dir=${1:-cedar}
base=${2:-${POLICY_CI_BASE:-origin/main}}
gate=${CEDAR_GATE:-cedar-gate}

echo "== validate --prove $dir"
"$gate" validate --prove --policy-dir "$dir"

if compgen -G "$dir/tests/*.yaml" >/dev/null; then
  echo "== test $dir/tests/*.yaml"
  "$gate" test --policy-dir "$dir" "$dir"/tests/*.yaml
fi

if ! git cat-file -e "$base:./$dir/schema.cedarschema" 2>/dev/null; then
  echo "== diff: $base has no $dir/schema.cedarschema, nothing to compare"
  exit 0
fi
echo "== diff $base:$dir -> $dir"
fail_on=(--fail-on gains)
if [[ "${POLICY_CI_ALLOW_GAINS:-0}" == 1 ]]; then
  fail_on=()
  echo "   (gains allowed: the change is labelled as an intended access change)"
fi
set +e
"$gate" diff "$base:$dir" "$dir" "${fail_on[@]}"
code=$?
set -e
if [[ -n "${POLICY_CI_REPORT:-}" ]]; then
  "$gate" diff "$base:$dir" "$dir" --json > "$POLICY_CI_REPORT" || true
fi
if [[ $code == 3 ]]; then
  echo "policy-ci: the change grants access (gains above); label the change to approve it" >&2
fi
exit $code
