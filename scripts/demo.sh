#!/usr/bin/env bash
# `make demo`: cedar-gate and a real Envoy on this machine, two requests through them.
#
#   curl ──mTLS, SPIFFE client certificate──▶ Envoy :DEMO_ENVOY_PORT ──▶ a tiny upstream
#                                               │
#                                               └─Check─▶ cedar-gate :DEMO_GRPC_PORT
#
# Everything is generated in a temporary directory (openssl: a CA, Envoy's server
# certificate, a client certificate for spiffe://example.org/ns/agents/sa/research-agent)
# and listens on 127.0.0.1 only, on uncommon ports (47xxx; override with DEMO_*_PORT).
# The research agent asks for a standard-tier model (allowed by the example policies) and
# for a frontier model (denied); the script prints both answers, Envoy's access-log
# decision fields and cedar-gate's audit lines, then stops everything it started.
#
# Needs: CEDAR_GATE (the binary), ENVOY_BIN, openssl, curl, python3.
set -euo pipefail

: "${CEDAR_GATE:?set CEDAR_GATE to the cedar-gate binary}"
: "${ENVOY_BIN:?set ENVOY_BIN to the Envoy binary (make envoy-bin)}"
GRPC_PORT=${DEMO_GRPC_PORT:-47191}
ADMIN_PORT=${DEMO_ADMIN_PORT:-47464}
ENVOY_PORT=${DEMO_ENVOY_PORT:-47443}
ENVOY_ADMIN_PORT=${DEMO_ENVOY_ADMIN_PORT:-47901}
UPSTREAM_PORT=${DEMO_UPSTREAM_PORT:-47080}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "demo: needs $tool" >&2; exit 1; }
done
for port in "$GRPC_PORT" "$ADMIN_PORT" "$ENVOY_PORT" "$ENVOY_ADMIN_PORT" "$UPSTREAM_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is in use; set DEMO_*_PORT (see scripts/demo.sh)" >&2
    exit 1
  fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/cedar-gate-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "certificates (openssl, in $dir)"
certs="$dir/certs"
mkdir -p "$certs"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj "/CN=cedar-gate demo CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
issue() { # name subject extensions...
  local name=$1 subject=$2
  shift 2
  openssl req "${ec[@]}" -subj "$subject" -keyout "$certs/$name.key" -out "$certs/$name.csr" 2>/dev/null
  printf '%s\n' "$@" > "$certs/$name.ext"
  openssl x509 -req -in "$certs/$name.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
    -CAcreateserial -days 1 -extfile "$certs/$name.ext" -out "$certs/$name.crt" 2>/dev/null
}
issue server /CN=localhost "subjectAltName=DNS:localhost" "extendedKeyUsage=serverAuth" \
  "keyUsage=critical,digitalSignature"
AGENT=spiffe://example.org/ns/agents/sa/research-agent
issue agent /CN=research-agent "subjectAltName=critical,URI:$AGENT" "extendedKeyUsage=clientAuth" \
  "keyUsage=critical,digitalSignature"
echo "CA, Envoy server certificate (localhost), client SVID $AGENT"

step "upstream (a stand-in model server on 127.0.0.1:$UPSTREAM_PORT)"
cat > "$dir/upstream.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        model = json.loads(body or b"{}").get("model")
        out = json.dumps({"object": "chat.completion", "model": model,
                          "choices": [{"message": {"role": "assistant", "content": "hello from the upstream"}}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$dir/upstream.py" "$UPSTREAM_PORT" &
pids+=($!)

step "cedar-gate (example policies in cedar/, gRPC 127.0.0.1:$GRPC_PORT, admin :$ADMIN_PORT)"
sed -e "s#^grpc_listen: .*#grpc_listen: 127.0.0.1:$GRPC_PORT#" \
    -e "s#^admin_listen: .*#admin_listen: 127.0.0.1:$ADMIN_PORT#" \
    -e "s#^policy_dir: .*#policy_dir: $ROOT/cedar#" \
    -e "s#^  sink: stdout#  sink: file\n  path: $dir/audit.jsonl#" \
    "$ROOT/config/cedar-gate.yaml" > "$dir/cedar-gate.yaml"
"$CEDAR_GATE" serve --config "$dir/cedar-gate.yaml" > "$dir/cedar-gate.out" 2> "$dir/cedar-gate.log" &
pids+=($!)

step "Envoy (envoy/envoy.yaml: mTLS listener 127.0.0.1:$ENVOY_PORT, ext_authz to cedar-gate)"
# The shipped front proxy, with this demo's ports, loopback and certificate directory.
sed -e "s#port_value: 8443#port_value: $ENVOY_PORT#" \
    -e "s#port_value: 9901#port_value: $ENVOY_ADMIN_PORT#" \
    -e "s#port_value: 9191#port_value: $GRPC_PORT#" \
    -e "s#port_value: 8080#port_value: $UPSTREAM_PORT#" \
    -e "s#address: 0.0.0.0#address: 127.0.0.1#" \
    -e "s#/etc/envoy/certs/#$certs/#g" \
    "$ROOT/envoy/envoy.yaml" > "$dir/envoy.yaml"
"$ENVOY_BIN" -c "$dir/envoy.yaml" --concurrency 1 --disable-hot-restart -l warn --file-flush-interval-msec 100 \
  --log-path "$dir/envoy.log" > "$dir/envoy-access.log" 2>&1 &
pids+=($!)

wait_for() { # what url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: $1 did not come up ($2)" >&2
  cat "$dir/cedar-gate.log" "$dir/envoy.log" >&2 2>/dev/null || true
  exit 1
}
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$UPSTREAM_PORT") 2>/dev/null && break
  sleep 0.1
done
wait_for cedar-gate "http://127.0.0.1:$ADMIN_PORT/readyz"
wait_for Envoy "http://127.0.0.1:$ENVOY_ADMIN_PORT/ready"
echo "cedar-gate ready, Envoy ready"

ask() { # label model
  step "$1"
  echo "POST /v1/chat/completions {\"model\":\"$2\"} as $AGENT"
  curl -sS --cacert "$certs/ca.crt" --cert "$certs/agent.crt" --key "$certs/agent.key" \
    --resolve "localhost:$ENVOY_PORT:127.0.0.1" -H 'content-type: application/json' \
    -d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
    -w '\nHTTP %{http_code}\n' "https://localhost:$ENVOY_PORT/v1/chat/completions"
}
ask "allowed: a standard-tier model" gpt-4o-mini
ask "denied: a frontier model (only the ml-research group may use those)" o1

# The audit writer batches and Envoy flushes its access log about once a second: wait
# (at most 5 s) for both lines of each.
for _ in $(seq 1 50); do
  [ "$(grep -c '"decision"' "$dir/envoy-access.log" 2>/dev/null)" -ge 2 ] \
    && [ "$(wc -l < "$dir/audit.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break
  sleep 0.1
done
step "Envoy access log (decision fields from cedar-gate's dynamic metadata)"
python3 - "$dir/envoy-access.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    print({k: e.get(k) for k in ("method", "path", "response_code", "decision", "reason", "model", "policies", "decision_id")})
PY
step "cedar-gate audit log ($dir/audit.jsonl, one line per decision)"
cat "$dir/audit.jsonl"
echo
echo "demo done: everything it started is stopped, $dir is removed"
