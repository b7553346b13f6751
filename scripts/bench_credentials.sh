# Sourced (not run) by scripts/bench.sh and scripts/check_stages.sh: the inputs of the
# `credential` and `api-key` scenarios (issue 14), made one way for both, so the timed
# runs and the instruction counts measure the same server.
#
# Source it after OUT (absolute) and BIN are set. It defines:
#   CRED_DIR          where the credential file, the key store and keys.txt go
#   PROVIDER_CONFIG   cedar-gate YAML: a provider route (plain HTTP, so a request is the same
#                     `Action::"http"` on `Route::"/v1/chat/completions"` as in spiffe-*)
#                     whose credential is a made-up key in a file under CRED_DIR
#   API_KEY_CONFIG    cedar-gate YAML: the API key store under CRED_DIR
#   credential_inputs [keys]   writes the credential file and the policy set p100-cred (a copy
#                     of $OUT/policies/p100 with `@credential` on every team permit, and no
#                     route default: an allow that selected none would be refused, never
#                     forwarded bare); with `keys`, also issues the API keys
#   injects SCENARIO  whether cedar-gate injects a provider credential in that scenario
#   expect_injected JSON   exits 1 (and says why) unless every allow in a loadgen row carried
#                     the credential (and, if the row has `server_injections`, the server's
#                     injection counter agrees)
# and, for the jwt-* scenarios, the bench tokens:
#   JWT_ISSUER, JWT_AUDIENCE, JWT_DIR ($OUT/jwt)
#   JWT_CONFIG        cedar-gate YAML (under `identity:`): the bench issuer, its JWKS file in JWT_DIR
#   mint_tokens COUNT one RS256 key and COUNT tokens (user-N in team-(N mod 100) by its groups
#                     claim) into JWT_DIR, with the JWKS cedar-gate reads; needs openssl

JWT_ISSUER=https://idp.example.com
JWT_AUDIENCE=https://models.example.com
JWT_DIR=$OUT/jwt
JWT_CONFIG="  issuers:
    - issuer: $JWT_ISSUER
      jwks_file: $JWT_DIR/jwks.json
      audiences: [$JWT_AUDIENCE]
      algorithms: [RS256]
      entity_type: User
      groups_claim: groups
"

mint_tokens() {
  command -v openssl > /dev/null || { echo "the jwt-* scenarios need openssl (or leave them out)" >&2; exit 2; }
  mkdir -p "$JWT_DIR"
  openssl genrsa -out "$JWT_DIR/key.pem" 2048 2> /dev/null
  "$BIN/examples/loadgen" mint-jwt --key "$JWT_DIR/key.pem" --count "$1" --groups 100 \
    --issuer "$JWT_ISSUER" --audience "$JWT_AUDIENCE" \
    --tokens-out "$JWT_DIR/tokens.txt" --jwks-out "$JWT_DIR/jwks.json" >&2
}

CRED_DIR=$OUT/credentials
# API keys the api-key scenario cycles over: one per team of p100 (key i: App::"bench-app-i"
# in team-i), so every team permit answers, as in spiffe-distinct. Not one per principal:
# each is a run of the real CLI rewriting the store, and a key's per-request work (parse,
# lookup, SHA-256, compare) does not depend on how many there are.
API_KEYS=100

PROVIDER_CONFIG="routes:
  - { name: provider, path_prefix: /v1/, protocol: http }
provider_credentials:
  credentials:
    - { id: bench-provider, header: bearer, file: $CRED_DIR/provider-key }
  routes:
    - { route: provider }
"
API_KEY_CONFIG="api_keys:
  store: $CRED_DIR/keys.json
"

credential_inputs() {
  local i
  mkdir -p "$CRED_DIR"
  (umask 077 && printf 'sk-bench-not-a-real-provider-key-0123456789\n' > "$CRED_DIR/provider-key")
  rm -rf "$OUT/policies/p100-cred"
  cp -r "$OUT/policies/p100" "$OUT/policies/p100-cred"
  sed -i 's/^@owner(/@credential("bench-provider")\n@owner(/' "$OUT/policies/p100-cred/bench.cedar"
  [[ ${1:-} == keys ]] || return 0
  # Issued with the real CLI (not measured), each printed once into keys.txt: loadgen's
  # `--tokens` for api-key.
  rm -f "$CRED_DIR/keys.json"
  for ((i = 0; i < API_KEYS; i++)); do
    "$BIN/cedar-gate" keys issue --store "$CRED_DIR/keys.json" --principal "App::\"bench-app-$i\"" \
      --groups "team-$((i % 100))" --owner bench --expires 1d 2> /dev/null
  done > "$CRED_DIR/keys.txt"
}

injects() { [[ $1 == credential || $1 == api-key ]]; }

expect_injected() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
where = f"{r.get('label', '?')} {r.get('scenario', '?')}"
problems = []
if r.get("injected") != r.get("allow"):
    problems.append(f"{r.get('injected')} of {r.get('allow')} allows set the injected authorization header")
if "server_injections" in r and r["server_injections"] != r.get("server_allow"):
    problems.append(f"server injected {r['server_injections']} credentials for {r.get('server_allow')} allows")
if problems:
    print(f"UNEXPECTED in {where}: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
extra = f" (server: {r['server_injections']:,} injections)" if "server_injections" in r else ""
print(f"{where}: credential injected into all {r.get('injected', 0):,} allows{extra}", file=sys.stderr)
EOF
}
