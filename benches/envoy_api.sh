#!/usr/bin/env bash
# The cost of Envoy's ext_authz in front of the real API. Requests/s and latency of
# GET /api/projects through the shipped envoy/envoy.yaml (Envoy → authz over gRPC → ipm-api)
# against the same config without the ext_authz filter (Envoy → ipm-api), in the same run,
# back to back. Prints both and the ratios, as benches/nginx_wrk.sh does for nginx.
#
#   benches/envoy_api.sh            # DURATION=10 CONNS=32 ROUNDS=3 by default; MODE=http for envoy-http.yaml
#
# Envoy (one worker), authz and ipm-api share CPU 0 and wrk runs on CPU 1, so the ratio is the
# whole cost of the check on one core: Envoy's extra work plus authz's decision. The token is a
# real HS256 JWT that Envoy verifies on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
MODE=${MODE:-grpc}
ENVOY_BIN=${ENVOY_BIN:-${IPM_TOOLS:-/var/cache/ipm-tools}/envoy-venv/bin/envoy}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[ -x "$ENVOY_BIN" ] || { echo "Envoy is missing: scripts/install-envoy.sh" >&2; exit 1; }
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q --locked -p authz --bin authz -p ipm-api --bin ipm-api
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
umask 077


# --- authz and ipm-api on loopback, one SQLite database, a copy of the shipped policies ---
openssl rand -hex 32 >"$TMP/proxy-secret"
AUTHZ=127.0.0.1:$(free_port)
GRPC=127.0.0.1:$(free_port)
API=127.0.0.1:$(free_port)
mkdir -p "$TMP/policies"
cp policies/*.* "$TMP/policies/"
common=(PATH="$PATH" PROXY_SHARED_SECRET_FILE="$TMP/proxy-secret" POLICY_DIR="$TMP/policies"
  GROUPS_FILE="$TMP/policies/groups.toml" LOG_FILE="$TMP/app.json")
env -i "${common[@]}" API_LISTEN="$API" DATABASE_URL="sqlite://$TMP/ipm.db?mode=rwc" \
  taskset -c 0 "$TARGET/release/ipm-api" serve >"$TMP/api.out" 2>&1 &
pids+=($!)
wait_up "http://$API/healthz"
env -i "${common[@]}" AUTHZ_LISTEN="$AUTHZ" AUTHZ_GRPC_LISTEN="$GRPC" DATABASE_URL="sqlite://$TMP/ipm.db" \
  taskset -c 0 "$TARGET/release/authz" serve >"$TMP/authz.out" 2>&1 &
pids+=($!)
wait_up "http://$AUTHZ/healthz"

# A few of bob's projects, so the list has something to return.
for name in alpha beta gamma; do
  curl -sf -o /dev/null -H "X-Proxy-Secret: $(cat "$TMP/proxy-secret")" -H 'X-User-Email: bob@example.com' \
    -H 'Content-Type: application/json' -d "{\"name\":\"$name\",\"meta_group_id\":\"editors\"}" \
    "http://$API/api/projects"
done

# --- the identity provider: a key, its JWKS, and bob's token ---
TOKEN=$(python3 - "$TMP/jwks.json" <<'PY'
import base64, hashlib, hmac, json, os, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = os.urandom(32)
open(sys.argv[1], "w").write(json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k", "k": b64(key)}]}))
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k"}).encode())
now = int(time.time())
claims = b64(json.dumps({"iss": "https://idp.example.com", "aud": "ipm", "email": "bob@example.com",
                         "email_verified": True, "iat": now, "exp": now + 3600}).encode())
sig = b64(hmac.new(key, f"{head}.{claims}".encode(), hashlib.sha256).digest())
print(f"{head}.{claims}.{sig}")
PY
)

# --- two Envoys on the shipped config: with ext_authz, and without the filter ---
FILE=envoy.yaml
[ "$MODE" = http ] && FILE=envoy-http.yaml
start_envoy() { # NAME WITH(on|off) PORT
  local dir="$TMP/$1"
  mkdir -p "$dir"
  sed -e "s#address: 0.0.0.0, port_value: 10000#address: 127.0.0.1, port_value: $3#" \
      -e "s#/run/envoy/admin.sock#$dir/admin.sock#" -e "s#/etc/envoy/jwks.json#$TMP/jwks.json#" \
      -e "s#/etc/envoy/secrets/proxy-secret#$TMP/proxy-secret#" \
      -e "s#port_value: 8000#port_value: ${API##*:}#" -e "s#port_value: 9191#port_value: ${GRPC##*:}#" \
      -e "s#127.0.0.1:8181#$AUTHZ#" -e "s#port_value: 8181#port_value: ${AUTHZ##*:}#" \
      "envoy/$FILE" >"$dir/envoy.yaml"
  if [ "$2" = off ]; then
    # Drop the ext_authz filter: from its `- name:` line to the next filter's comment.
    python3 - "$dir/envoy.yaml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s, n = re.subn(r"\n *- name: envoy\.filters\.http\.ext_authz\n.*?(?=\n *# 6\.)", "", s, flags=re.S)
assert n == 1, "the ext_authz filter is not where it was"
open(p, "w").write(s)
PY
  fi
  taskset -c 0 "$ENVOY_BIN" -c "$dir/envoy.yaml" --concurrency 1 --disable-hot-restart \
    --log-level error >"$dir/envoy.log" 2>&1 &
  pids+=($!)
}
WITH=$(free_port)
WITHOUT=$(free_port)
start_envoy with-authz on "$WITH"
start_envoy without-authz off "$WITHOUT"
wait_up "http://127.0.0.1:$WITH/"
wait_up "http://127.0.0.1:$WITHOUT/"

check() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1$2"; }
for port in "$WITH" "$WITHOUT"; do
  [ "$(check "$port" /api/projects)" = 200 ] || { echo "bob is not allowed on :$port" >&2; cat "$TMP"/*/envoy.log >&2; exit 1; }
done
# The check really happens: authz's own denial on one (no route), the API's 404 on the other.
[ "$(check "$WITH" /no/such/route)" = 403 ]
[ "$(check "$WITHOUT" /no/such/route)" = 404 ]

cat >"$TMP/bob.lua" <<LUA
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Accept"] = "application/json"
LUA
run() { taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$TMP/bob.lua" "http://127.0.0.1:$1/api/projects"; }
decisions() { curl -s "http://$AUTHZ/metrics" | awk '/^authz_decisions_total\{.*adapter="envoy_/ {s+=$2} END {print s+0}'; }

run "$WITHOUT" >/dev/null # warm-up: connections, SQLite page cache
# Everything shares one core, so a run's rate wanders with what else that core does (SQLite,
# the logs): ROUNDS pairs, alternated, and the median of the pairs' ratios.
ratios=()
for round in $(seq 1 "${ROUNDS:-3}"); do
  echo "== round $round: Envoy → ipm-api (no ext_authz), $FILE"
  direct=$(run "$WITHOUT"); echo "$direct" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
  before=$(decisions)
  echo "== round $round: Envoy → authz → ipm-api (the shipped config), $FILE"
  authed=$(run "$WITH"); echo "$authed" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
  after=$(decisions)
  compare "$direct" "$authed" "$((after - before))"
  ratios+=("$(python3 -c "print($(echo "$authed" | rps) / $(echo "$direct" | rps))")")
done
python3 -c "import statistics, sys; r = sorted(map(float, sys.argv[1:])); print(f'median requests/s through authz / direct over {len(r)} rounds: {statistics.median(r) * 100:.1f}% (range {r[0] * 100:.1f}-{r[-1] * 100:.1f}%)')" "${ratios[@]}"
