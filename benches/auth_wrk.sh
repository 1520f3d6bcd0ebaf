#!/usr/bin/env bash
# Throughput and latency of authz's /auth (full decision: secret, email, groups, Cedar, logging)
# against a minimal warp server answering 200, same machine, same run: the same decision
# repeated (answered from the snapshot's decision memo after the first), and decisions never
# seen before (each request names another project, so every one is decided by Cedar). ROUNDS
# alternates the three runs and prints each round's ratios; then p50/p99 of /auth at half its
# peak rate.
#
#   benches/auth_wrk.sh            # DURATION=10 CONNS=32 ROUNDS=1 by default
#   AUTHZ_BIN=/elsewhere/release/authz benches/auth_wrk.sh   # another build, for an A/B
#
# Servers run on CPU 0, wrk on CPU 1, so neither steals the other's core.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-1}
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p authz --bin authz --example baseline_server
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

wait_up() {
  for _ in $(seq 1 200); do
    curl -fs -o /dev/null "http://$1/healthz" && return 0
    curl -s -o /dev/null "http://$1/" && return 0
    sleep 0.05
  done
  echo "server at $1 did not start" >&2; exit 1
}

AUTHZ=127.0.0.1:$(free_port)
BASE=127.0.0.1:$(free_port)
env -i PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" AUTHZ_LISTEN="$AUTHZ" AUTHZ_GRPC_LISTEN=off POLICY_DIR=policies \
  GROUPS_FILE=policies/groups.toml LOG_FILE="$TMP/app.json" \
  taskset -c 0 "${AUTHZ_BIN:-$TARGET/release/authz}" serve >/dev/null 2>&1 &
pids+=($!)
taskset -c 0 "$TARGET/release/examples/baseline_server" "$BASE" >/dev/null 2>&1 &
pids+=($!)
wait_up "$AUTHZ"; wait_up "$BASE"

cat >"$TMP/auth.lua" <<LUA
wrk.method = "GET"
wrk.headers["X-Proxy-Secret"] = "$SECRET"
wrk.headers["X-User-Email"] = "admin@example.com"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Original-URI"] = "/api/projects?limit=20"
LUA
# Same headers, paced: each connection waits 2 ms between requests.
cp "$TMP/auth.lua" "$TMP/paced.lua"
echo 'function delay() return 2 end' >>"$TMP/paced.lua"

check=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Proxy-Secret: $SECRET" -H 'X-User-Email: admin@example.com' \
  -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/projects' "http://$AUTHZ/auth")
[ "$check" = 200 ] || { echo "/auth answered $check, expected 200" >&2; exit 1; }

run() { taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@"; }
# Another project on every request: a decision never seen before.
cp "$TMP/auth.lua" "$TMP/unique.lua"
cat >>"$TMP/unique.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Original-URI"] = string.format("/api/projects/0190a1b2-c3d4-7e5f-8a9b-%012x", n)
  return wrk.format()
end
LUA
check=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Proxy-Secret: $SECRET" -H 'X-User-Email: admin@example.com' \
  -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/projects/0190a1b2-c3d4-7e5f-8a9b-000000000001' "http://$AUTHZ/auth")
[ "$check" = 200 ] || { echo "/auth answered $check for a project, expected 200" >&2; exit 1; }

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: baseline (minimal warp server)"
  base_out=$(run "http://$BASE/auth" -s "$TMP/auth.lua"); echo "$base_out" | grep -E 'Requests/sec|  50%|  99%'
  echo "== round $round: authz /auth, the same decision repeated"
  auth_out=$(run "http://$AUTHZ/auth" -s "$TMP/auth.lua"); echo "$auth_out" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
  echo "== round $round: authz /auth, a decision never seen before on every request"
  uniq_out=$(run "http://$AUTHZ/auth" -s "$TMP/unique.lua"); echo "$uniq_out" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
  base_rps=$(echo "$base_out" | rps); auth_rps=$(echo "$auth_out" | rps); uniq_rps=$(echo "$uniq_out" | rps)
  python3 -c "print(f'round $round: repeated/baseline {float($auth_rps)/float($base_rps)*100:.1f}% (target >= 85%), never seen/baseline {float($uniq_rps)/float($base_rps)*100:.1f}% (target >= 50%)')"
done
curl -s "http://$AUTHZ/metrics" | grep -E '^authz_decision_memo' || true

half=$(python3 -c "print(int(float($auth_rps)/2))")
conns=$(python3 -c "print(max(1, int($half * 0.002)))")
echo "== authz /auth at ~half its peak ($half req/s: $conns connections x 500 req/s)"
taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/paced.lua" "http://$AUTHZ/auth" \
  | grep -E 'Requests/sec|  50%|  90%|  99%|Non-2xx'
