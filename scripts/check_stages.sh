#!/usr/bin/env bash
# Instructions per Check, by stage and for the whole server, counted by callgrind (exact and
# repeatable, unlike the timings on a shared 2-core machine). Writes $OUT/stages.jsonl and
# $OUT/stages.md (the tables of BENCHMARKS.md, "Per stage") and prints the tables.
#
#   1. Per stage, in process (examples/check_stages.rs): one callgrind run per request
#      shape and pass, each stage a batch of ITERS requests in its own function; the
#      inclusive count of that function / ITERS is the stage's cost per Check.
#   2. Whole server: the null ext_authz server and cedar-gate, each under callgrind, driven
#      by `loadgen` over loopback gRPC; counters zeroed after a warm-up, then REQUESTS
#      checks, then dumped: instructions of the whole process (tonic, h2, prost, the
#      handler, the audit writer) per Check. The null server's count is the floor.
#      `credential` and `api-key` (issue 14) run against cedar-gate configured as
#      scripts/bench.sh configures it (scripts/bench_credentials.sh makes the inputs of both).
#
# Usage: scripts/check_stages.sh       (or `make bench-stages`; about 10 minutes)
# Environment (defaults in brackets):
#   ITERS [1000] requests per stage batch; REQUESTS [2000] checks per whole-server run
#   PARTS ["stages server"]; OUT [target/bench/stages-<UTC time>]; BASE_PORT [29200]
#   STAGES [all: "hit spiffe-cold spiffe-principal jwt-cold jwt-principal jwt-hit openai-cold openai-hit mcp-cold mcp-hit"];
#   SERVER_SCENARIOS [all: "spiffe-repeat spiffe-distinct jwt-repeat jwt-distinct openai mcp
#     credential api-key"]
#   CARGO [cargo]; CARGO_TARGET_DIR [target]: binaries from $CARGO_TARGET_DIR/release
#   VALGRIND [valgrind on PATH, else Debian's package unpacked into .tools/deb/valgrind]
# Needs openssl (a fresh RSA key for the bench tokens) and perl (callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."

ITERS=${ITERS:-1000}
REQUESTS=${REQUESTS:-2000}
PARTS=${PARTS:-stages server}
BASE_PORT=${BASE_PORT:-29200}
CARGO=${CARGO:-cargo}
OUT=${OUT:-target/bench/stages-$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${CARGO_TARGET_DIR:-target}/release
NULL_PORT=$BASE_PORT
GATE_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
read -r -a SCENARIOS <<< "${SERVER_SCENARIOS:-spiffe-repeat spiffe-distinct jwt-repeat jwt-distinct openai mcp credential api-key}"
UNEXPECTED=()

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/stages.jsonl
: > "$RESULTS"
# credential, api-key: CRED_DIR, PROVIDER_CONFIG, API_KEY_CONFIG, credential_inputs,
# injects, expect_injected (shared with scripts/bench.sh).
source scripts/bench_credentials.sh

log() { printf '== %s\n' "$*" >&2; }
part() { [[ " $PARTS " == *" $1 "* ]]; }
server_on() { part server && [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
stop_pid() {
  local pid=$1 keep=() p
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# --- valgrind: from PATH, else Debian's package unpacked without root -------------------
if [[ -z ${VALGRIND:-} ]]; then
  if command -v valgrind > /dev/null; then
    VALGRIND=valgrind
  else
    local_vg=.tools/deb/valgrind
    if [[ ! -x $local_vg/root/usr/bin/valgrind ]]; then
      log "installing valgrind into $local_vg (Debian package, no root)"
      # The whole tree: valgrind finds its tools through VALGRIND_LIB.
      KEEP_ROOT=1 scripts/deb-tool.sh "$local_vg" valgrind valgrind > /dev/null
    fi
    root=$(cd "$local_vg/root" && pwd)
    export VALGRIND_LIB=$root/usr/libexec/valgrind
    export PATH=$root/usr/bin:$PATH
    VALGRIND=$root/usr/bin/valgrind
  fi
fi
CG_ANNOTATE=$(dirname "$(command -v "$VALGRIND")")/callgrind_annotate
CG_CONTROL=$(dirname "$(command -v "$VALGRIND")")/callgrind_control
log "valgrind: $("$VALGRIND" --version)"

log "building release (cedar-gate, loadgen, null-authz, check_stages)"
"$CARGO" build --release --quiet --bin cedar-gate --example loadgen --example null-authz \
  --example check_stages

# --- inputs: policy sets, tokens, configs (as scripts/bench.sh makes them) --------------
log "generating policy sets and tokens"
# Principals: six fresh ranges of ITERS for a cold stage pass, REQUESTS for a server run.
TOKENS=$((6 * ITERS > REQUESTS + 16 ? 6 * ITERS : REQUESTS + 16))
WORKLOADS=$((TOKENS > 10000 ? TOKENS : 10000))
for kind in "" ai mcp; do
  dir=$OUT/policies/p100${kind:+-$kind}
  [[ -d $dir ]] || python3 scripts/gen_policies.py --policies 100 --workloads "$WORKLOADS" ${kind:+--$kind} "$dir" >&2
done
[[ -s $JWT_DIR/tokens.txt ]] || mint_tokens "$TOKENS"
if server_on credential || server_on api-key; then
  log "credential file, p100-cred and $API_KEYS API keys (cedar-gate keys issue)"
  credential_inputs keys
fi
ROUTES_CONFIG=$(awk '/^routes:/ { on = 1; print; next } on && /^[^ #]/ { on = 0 } on' config/cedar-gate.yaml)
# The config scripts/bench.sh's start_gate writes: $2 (YAML) right after the trust domain,
# audit to /dev/null, warnings only.
write_config() {
  {
    printf 'identity:\n  trust_domains: [example.org]\n%s' "$2"
    printf 'audit:\n  sink: file\n  path: /dev/null\nlogging:\n  level: warn\n'
  } > "$1"
}
# plain and routes also know the bench token issuer (harmless without a token); credential
# and api-key are exactly bench.sh's.
write_config "$OUT/plain.yaml" "$JWT_CONFIG"
write_config "$OUT/routes.yaml" "$JWT_CONFIG$ROUTES_CONFIG"$'\n'
write_config "$OUT/credential.yaml" "$PROVIDER_CONFIG"
write_config "$OUT/api-key.yaml" "$PROVIDER_CONFIG$API_KEY_CONFIG"
# scenario -> policy set and config
policies_of() { case $1 in openai) echo p100-ai ;; mcp) echo p100-mcp ;; *) echo p100 ;; esac; }
config_of() { case $1 in openai | mcp) echo "$OUT/routes.yaml" ;; *) echo "$OUT/plain.yaml" ;; esac; }

# --- 1. per stage ----------------------------------------------------------------------
# label scenario pass
STAGE_RUNS=(
  "hit spiffe-repeat hot"
  "spiffe-cold spiffe-distinct cold"
  "jwt-cold jwt-distinct cold"
  "jwt-hit jwt-repeat hot"
  "openai-cold openai cold"
  "openai-hit openai hot"
  "mcp-cold mcp cold"
  "mcp-hit mcp hot"
  "spiffe-principal spiffe-distinct principal"
  "jwt-principal jwt-distinct principal"
)
STAGES=${STAGES:-hit spiffe-cold spiffe-principal jwt-cold jwt-principal jwt-hit openai-cold openai-hit mcp-cold mcp-hit}
part stages && for run in "${STAGE_RUNS[@]}"; do
  read -r label scenario pass <<< "$run"
  [[ " $STAGES " == *" $label "* ]] || continue
  log "stages: $label ($scenario, $pass pass, $ITERS requests per stage)"
  cg=$OUT/cg-stages-$label.out
  "$VALGRIND" --tool=callgrind --callgrind-out-file="$cg" \
    "$BIN/examples/check_stages" --scenario "$scenario" --pass "$pass" \
    --config "$(config_of "$scenario")" --policy-dir "$OUT/policies/$(policies_of "$scenario")" \
    --tokens "$JWT_DIR/tokens.txt" --iters "$ITERS" > "$OUT/stages-$label.txt" 2> "$OUT/valgrind-$label.log"
  "$CG_ANNOTATE" --inclusive=yes --threshold=100 "$cg" > "$OUT/annotate-$label.txt" 2> /dev/null
  python3 scripts/stages_report.py stages "$label" "$pass" "$ITERS" "$OUT/annotate-$label.txt" >> "$RESULTS"
done

# --- 2. whole server ---------------------------------------------------------------------
# Starts $@ under callgrind (counters on), records the pid in SERVER_PID.
start_cg() {
  local name=$1
  shift
  "$VALGRIND" --tool=callgrind --callgrind-out-file="$OUT/cg-server-$name.out" "$@" \
    > "$OUT/server-$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}
# Waits (bounded) until a Check on $1 answers with gRPC OK: the server is up and, for
# cedar-gate, has its policy snapshot (loading is slow under valgrind).
wait_grpc() {
  local port=$1 i
  for ((i = 0; i < 600; i++)); do
    if "$BIN/examples/loadgen" --target "127.0.0.1:$port" --scenario spiffe-repeat --requests 1 \
      --connections 1 --inflight 1 --duration 30s --warmup 0s --json 2> /dev/null \
      | grep -q '"grpc_status":{"OK":1}'; then
      return 0
    fi
    sleep 1
  done
  echo "timed out waiting for a gRPC server on $port" >&2
  return 1
}
# One measured run against the server under callgrind: warm-up with the scenario's repeat
# shape (so the measured run's first principals stay cold), zero, REQUESTS checks, dump.
# api-key warms with its own 100 keys: every measured Check is then a decision cache hit,
# as in spiffe-repeat and as in bench.sh's long runs. Appends the dumped total
# instructions and the loadgen JSON to $RESULTS.
measure() {
  local pid=$1 port=$2 label=$3 scenario=$4 warm tokens=$JWT_DIR/tokens.txt dump total run
  case $scenario in
    jwt-*) warm=jwt-repeat ;;
    api-key) warm=api-key; tokens=$CRED_DIR/keys.txt ;;
    *) warm=spiffe-repeat ;;
  esac
  "$BIN/examples/loadgen" --target "127.0.0.1:$port" --scenario "$warm" --tokens "$tokens" \
    --requests 200 --duration 120s --warmup 0s --json > /dev/null
  "$CG_CONTROL" -z "$pid" > /dev/null
  run=$("$BIN/examples/loadgen" --target "127.0.0.1:$port" --scenario "$scenario" \
    --tokens "$tokens" --principals "$TOKENS" --requests "$REQUESTS" \
    --duration 600s --warmup 0s --json --label "$label")
  "$CG_CONTROL" -d "$pid" > /dev/null
  # The newest dump of this process holds the measured run.
  dump=$(ls -t "$OUT"/cg-server-*.out.* 2> /dev/null | head -n1)
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  python3 scripts/stages_report.py server "$label" "$scenario" "$total" "$run" >> "$RESULTS"
  if [[ $label == cedar-gate ]] && injects "$scenario"; then
    expect_injected "$run" || UNEXPECTED+=("$scenario")
  fi
}

# cedar-gate servers: policy set, config, the scenarios measured against it.
GATE_RUNS=(
  "p100 plain spiffe-repeat spiffe-distinct jwt-repeat jwt-distinct"
  "p100-ai routes openai"
  "p100-mcp routes mcp"
  "p100-cred credential credential"
  "p100-cred api-key api-key"
)
if part server; then
  log "whole server: null ext_authz server under callgrind"
  start_cg null "$BIN/examples/null-authz" --listen "127.0.0.1:$NULL_PORT"
  wait_grpc "$NULL_PORT"
  for scenario in "${SCENARIOS[@]}"; do
    log "whole server: null, $scenario ($REQUESTS checks)"
    measure "$SERVER_PID" "$NULL_PORT" null "$scenario"
  done
  stop_pid "$SERVER_PID"
  for run in "${GATE_RUNS[@]}"; do
    read -r set cfg all <<< "$run"
    scen=()
    for x in $all; do server_on "$x" && scen+=("$x"); done
    ((${#scen[@]})) || continue
    log "whole server: cedar-gate ($set, $cfg.yaml) under callgrind"
    start_cg "gate-$set-$cfg" "$BIN/cedar-gate" serve --config "$OUT/$cfg.yaml" \
      --policy-dir "$OUT/policies/$set" \
      --grpc-listen "127.0.0.1:$GATE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
    wait_grpc "$GATE_PORT"
    for scenario in "${scen[@]}"; do
      log "whole server: cedar-gate, $scenario ($REQUESTS checks)"
      measure "$SERVER_PID" "$GATE_PORT" cedar-gate "$scenario"
    done
    stop_pid "$SERVER_PID"
  done
fi

python3 scripts/stages_report.py table "$RESULTS" | tee "$OUT/stages.md"
log "results: $OUT/stages.md ($RESULTS)"
if ((${#UNEXPECTED[@]})); then
  log "not every allow carried the injected credential in: ${UNEXPECTED[*]}"
  exit 1
fi
