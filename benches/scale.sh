#!/usr/bin/env bash
# authz with N generated per-project policies beside the shipped ones (N = 0, 100, 1000, 10000
# by default): start to ready, RSS once ready, /auth requests/s for one of those projects
# (decisions never seen before: another user every request, so the memo does not answer),
# and how long a one-file edit takes to be in force.
#
#   benches/scale.sh                 # SIZES="0 100 1000 10000" DURATION=10
#
# authz runs on CPU 0, wrk and the probes on CPU 1. The policies are spread over ten files;
# the edit writes a small eleventh file (a forbid for the probed request) and the probe asks
# every 5 ms until the answer changes.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
SIZES=${SIZES:-0 100 1000 10000}
DURATION=${DURATION:-10}
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p authz --bin authz
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

PROJECT=0190a1b2-c3d4-7e5f-8a9b-000000000007
probe() {
  curl -s -o /dev/null -w '%{http_code}' -H "X-Proxy-Secret: $SECRET" -H 'X-User-Email: alice@example.com' \
    -H 'X-Original-Method: GET' -H "X-Original-URI: /api/projects/$PROJECT" "http://$ADDR/auth"
}
now_ms() { date +%s%3N; }

cat >"$TMP/auth.lua" <<LUA
wrk.method = "GET"
wrk.headers["X-Proxy-Secret"] = "$SECRET"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Original-URI"] = "/api/projects/$PROJECT"
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-User-Email"] = "user" .. n .. "@example.com"
  return wrk.format()
end
LUA

printf '%-7s %-14s %-9s %-10s %-14s\n' policies start_to_ready rss_mb auth_rps edit_in_force
for n in $SIZES; do
  dir="$TMP/policies-$n"
  cp -r policies "$dir"
  rm -rf "$dir/examples"
  python3 - "$dir" "$n" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
files = [open(f"{d}/generated-{k}.cedar", "w") for k in range(10)]
for i in range(n):
    # One in ten projects belongs to alice's group: the probed project (7) is one of them.
    group = "photographers" if i % 10 == 7 else f"team-{i % 50}"
    files[i % 10].write(
        f'@id("gen-{i}")\npermit (principal in Group::"{group}", action in [Action::"Read"], '
        f'resource == Project::"0190a1b2-c3d4-7e5f-8a9b-{i:012x}");\n')
for f in files:
    f.close()
PY
  ADDR=127.0.0.1:$(free_port)
  start=$(now_ms)
  env -i PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" AUTHZ_LISTEN="$ADDR" AUTHZ_GRPC_LISTEN=off \
    POLICY_DIR="$dir" GROUPS_FILE="$dir/groups.toml" LOG_FILE="$TMP/app-$n.json" \
    taskset -c 0 "$TARGET/release/authz" serve >"$TMP/out-$n.log" 2>&1 &
  pid=$!
  # Bounded: a start that fails ends the bench with authz's output instead of hanging it.
  for _ in $(seq 1 6000); do
    curl -fs -o /dev/null "http://$ADDR/readyz" && break
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/out-$n.log" >&2; exit 1; }
    sleep 0.005
  done
  curl -fs -o /dev/null "http://$ADDR/readyz" || { echo "N=$n: not ready after 30 s" >&2; exit 1; }
  ready=$(( $(now_ms) - start ))
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
  if [ "$n" -gt 7 ]; then want=200; else want=403; fi
  got=$(probe); [ "$got" = "$want" ] || { echo "N=$n: the probe answered $got, expected $want" >&2; exit 1; }
  out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s "$TMP/auth.lua" "http://$ADDR/auth")
  rate=$(echo "$out" | rps)
  # The edit: a forbid for alice on that project, in its own small file.
  start=$(now_ms)
  printf '@id("edit")\nforbid (principal == User::"alice@example.com", action, resource == Project::"%s");\n' \
    "$PROJECT" >"$dir/edit.cedar"
  if [ "$want" != 403 ]; then
    for _ in $(seq 1 2000); do [ "$(probe)" = 403 ] && break; sleep 0.005; done
    [ "$(probe)" = 403 ] || { echo "N=$n: the edit was not in force after 10 s" >&2; exit 1; }
  fi
  edit=$(( $(now_ms) - start ))
  [ "$want" = 403 ] && edit="n/a"
  printf '%-7s %-14s %-9s %-10s %-14s\n' "$n" "${ready} ms" "$rss" "$rate" "${edit} ms"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
