#!/usr/bin/env bash
# Soak: authz (release) at half its peak /auth rate for DURATION seconds, decisions logged at
# info to stdout appended beside the policy directory (`authz serve >> srv/authz.log`) and to
# LOG_FILE in the same folder, while a policy or groups edit lands every 2 s (saved, removed,
# broken, repaired, symlink swapped in and out, groups changed). Prints each kind of edit's
# time to be in force (median, max), the broken edits refused, the load's errors, and authz's
# resident memory, open files and threads over the run.
#
#   benches/soak.sh                 # DURATION=600 PEAK_SECONDS=10 CONNS=32
#
# authz runs on CPU 0, wrk on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-600}
PEAK_SECONDS=${PEAK_SECONDS:-10}
CONNS=${CONNS:-32}
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p authz --bin authz
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
SRV=$TMP/srv
POL=$SRV/policies
mkdir -p "$POL"
cp policies/*.cedar policies/*.cedarschema policies/*.toml "$POL"/
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

AUTHZ=127.0.0.1:$(free_port)
env -i PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" AUTHZ_LISTEN="$AUTHZ" AUTHZ_GRPC_LISTEN=off \
  POLICY_DIR="$POL" GROUPS_FILE="$POL/groups.toml" LOG_FILE="$SRV/authz-file.json" RUST_LOG=info \
  taskset -c 0 "$TARGET/release/authz" serve >>"$SRV/authz.log" 2>&1 &
AUTHZ_PID=$!
pids+=("$AUTHZ_PID")
for _ in $(seq 1 200); do curl -fs -o /dev/null "http://$AUTHZ/healthz" && break; sleep 0.05; done

status() { # user -> /auth status for GET /api/projects
  curl -s -o /dev/null -w '%{http_code}' -H "X-Proxy-Secret: $SECRET" -H "X-User-Email: $1" \
    -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/projects' "http://$AUTHZ/auth"
}
ready() { curl -s -o /dev/null -w '%{http_code}' "http://$AUTHZ/readyz"; }
policy_hash() { curl -s "http://$AUTHZ/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["policies"]["hash"])'; }
now_ms() { date +%s%3N; }
# Polls until `alice carol readyz` answer as wanted; prints the milliseconds it took, or
# "late" after 5 s.
in_force() {
  local start; start=$(now_ms)
  while :; do
    if [ "$(status alice@example.com)" = "$1" ] && [ "$(status carol@example.com)" = "$2" ] \
      && [ "$(ready)" = 200 ]; then echo $(($(now_ms) - start)); return; fi
    [ $(($(now_ms) - start)) -gt 5000 ] && { echo late; return; }
    sleep 0.01
  done
}
save() { printf '%s' "$2" >"$POL/.$1.tmp" && mv "$POL/.$1.tmp" "$POL/$1"; }

[ "$(status admin@example.com)" = 200 ] || { echo "/auth does not answer 200 for admin" >&2; exit 1; }

# The load: admin lists projects, which no edit changes, so every answer must be a 200.
cat >"$TMP/auth.lua" <<LUA
wrk.method = "GET"
wrk.headers["X-Proxy-Secret"] = "$SECRET"
wrk.headers["X-User-Email"] = "admin@example.com"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Original-URI"] = "/api/projects"
LUA
cp "$TMP/auth.lua" "$TMP/paced.lua"
echo 'function delay() return 2 end' >>"$TMP/paced.lua"

echo "== peak /auth with decision logging (${PEAK_SECONDS}s, $CONNS connections)"
peak=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${PEAK_SECONDS}s" -s "$TMP/auth.lua" "http://$AUTHZ/auth" \
  | awk '/Requests\/sec/ {print $2}')
half=$(python3 -c "print(int(float($peak)/2))")
# Each connection waits 2 ms between requests, plus the request itself: about 3 ms a round.
conns=$(python3 -c "print(max(1, int($half * 0.003)))")
echo "peak $peak req/s; soak aiming at ~$half req/s ($conns paced connections) for ${DURATION}s"

taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$TMP/paced.lua" "http://$AUTHZ/auth" \
  >"$TMP/wrk.out" 2>&1 &
WRK=$!
pids+=("$WRK")

NO_LISTING='@id("photographers-may-not-list")
forbid (principal in Group::"photographers", action == Action::"ListProjects", resource);
'
BROKEN='@id("suspended-forbid-all")
forbid (principal in Group::"suspended", action, resource)
  when { principal.nope ==  };
'
GUARDS=$(cat "$POL/guards.cedar")
GROUPS_TEXT=$(cat "$POL/groups.toml")
mkdir -p "$POL/.versions"
echo "kind,ms" >"$TMP/edits.csv"
echo "seconds,rss_kib,fds,threads" >"$TMP/usage.csv"
refused=0; kept=0; n=0
start=$(date +%s)
next=$start
while kill -0 "$WRK" 2>/dev/null; do
  elapsed=$(($(date +%s) - start))
  if [ $((n % 5)) = 0 ]; then
    echo "$elapsed,$(awk '/VmRSS/ {print $2}' "/proc/$AUTHZ_PID/status"),$(ls "/proc/$AUTHZ_PID/fd" | wc -l),$(ls "/proc/$AUTHZ_PID/task" | wc -l)" >>"$TMP/usage.csv"
  fi
  case $((n % 8)) in
    0) save extra.cedar "$NO_LISTING"; echo "save,$(in_force 403 200)" >>"$TMP/edits.csv" ;;
    1) rm -f "$POL/extra.cedar"; echo "remove,$(in_force 200 200)" >>"$TMP/edits.csv" ;;
    2) before=$(policy_hash); save guards.cedar "$BROKEN"
       for _ in $(seq 1 500); do [ "$(ready)" = 503 ] && break; sleep 0.01; done
       [ "$(ready)" = 503 ] && refused=$((refused + 1))
       [ "$(policy_hash)" = "$before" ] && [ "$(status mallory@example.com)" = 403 ] && kept=$((kept + 1)) ;;
    3) save guards.cedar "$GUARDS"; echo "repair,$(in_force 200 200)" >>"$TMP/edits.csv" ;;
    4) printf '%s' "$NO_LISTING" >"$POL/.versions/v$n.cedar"
       ln -sfn ".versions/v$n.cedar" "$POL/.extra.link" && mv -T "$POL/.extra.link" "$POL/extra.cedar"
       echo "swap_in,$(in_force 403 200)" >>"$TMP/edits.csv" ;;
    5) echo "// nothing forbidden" >"$POL/.versions/v$n.cedar"
       ln -sfn ".versions/v$n.cedar" "$POL/.extra.link" && mv -T "$POL/.extra.link" "$POL/extra.cedar"
       echo "swap_out,$(in_force 200 200)" >>"$TMP/edits.csv" ;;
    6) save groups.toml "${GROUPS_TEXT/suspended = \[\"mallory@example.com\"\]/suspended = [\"mallory@example.com\", \"carol@example.com\"]}"
       echo "groups,$(in_force 200 403)" >>"$TMP/edits.csv" ;;
    7) save groups.toml "$GROUPS_TEXT"; echo "groups_back,$(in_force 200 200)" >>"$TMP/edits.csv" ;;
  esac
  n=$((n + 1))
  next=$((next + 2))
  while [ "$(date +%s)" -lt "$next" ]; do sleep 0.05; done
done
wait "$WRK" || true

echo "== load"
grep -E 'Requests/sec|requests in|  50%|  99%|Non-2xx|Socket errors' "$TMP/wrk.out" || true
echo "== edits ($n made): milliseconds until in force"
python3 - "$TMP/edits.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
kinds = {}
for r in rows:
    kinds.setdefault(r["kind"], []).append(r["ms"])
for k, v in kinds.items():
    late = [x for x in v if x == "late"]
    ms = sorted(int(x) for x in v if x != "late")
    print(f"{k:12} n={len(v):4} median={statistics.median(ms) if ms else '-':>5} max={ms[-1] if ms else '-':>5} late(>5s)={len(late)}")
PY
echo "broken edits: $refused refused, $kept with the old set kept (of $(( (n + 5) / 8 )))"
echo "== authz usage (seconds, rss KiB, fds, threads): first, last, max rss"
sed -n 2p "$TMP/usage.csv"; tail -1 "$TMP/usage.csv"
sort -t, -k2 -n "$TMP/usage.csv" | tail -1
echo "log beside the policies: $(wc -l <"$SRV/authz.log") lines, $(du -h "$SRV/authz.log" | cut -f1)"
