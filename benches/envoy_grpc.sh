#!/usr/bin/env bash
# Envoy ext_authz gRPC `Check` against nginx's `/auth`, in the same run, on the same authz: peak
# throughput of each (closed loop) and authz's requests per CPU-second, their ratios, then
# p50/p99 of each at a fixed rate.
# Both go through the full decision (secret, email, groups, Cedar, decision log).
#
#   benches/envoy_grpc.sh          # DURATION=10 RATE=10000 by default; SKIP_BUILD=1 reuses binaries
#
# authz runs on CPU 0, the load generator (authz/examples/ext_authz_load.rs) on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10}
RATE=${RATE:-10000}
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AUTHZ_SECRET="$SECRET"

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p authz --bin authz --example ext_authz_load
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

HTTP=127.0.0.1:$(free_port)
GRPC=127.0.0.1:$(free_port)
env -i PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" AUTHZ_LISTEN="$HTTP" AUTHZ_GRPC_LISTEN="$GRPC" \
  POLICY_DIR=policies GROUPS_FILE=policies/groups.toml LOG_FILE="$TMP/app.json" \
  taskset -c 0 "$TARGET/release/authz" serve >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  curl -fs -o /dev/null "http://$HTTP/healthz" && break
  sleep 0.05
done

HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# Runs the load generator and adds authz's own CPU use: requests per CPU-second of authz is its
# capacity per core, a figure that other work on the machine does not skew the way rates are.
load() {
  local before after out
  before=$(cpu)
  out=$(taskset -c 1 "$TARGET/release/examples/ext_authz_load" "$@" --seconds "$DURATION")
  after=$(cpu)
  echo "$out, authz CPU $(python3 -c "print(f'{($after - $before) / $HZ:.2f} s')")," \
    "$(python3 -c "n=int('$out'.split(':')[1].split()[0]); print(f'{n / max(1, $after - $before) * $HZ:.0f} per authz CPU-second')")"
}
per_cpu() { sed -E 's/.* ([0-9]+) per authz CPU-second/\1/'; }
rate() { sed -E 's/.* = ([0-9]+)\/s.*/\1/'; }

echo "== peak (closed loop, 32 in flight; gRPC over 4 HTTP/2 connections, /auth over 32 HTTP/1.1)"
grpc=$(load grpc "$GRPC" --conns 4 --inflight 32); echo "$grpc"
auth=$(load auth "$HTTP" --inflight 32); echo "$auth"
python3 -c "print(f'ratio Check/auth: {$(echo "$grpc" | rate)/$(echo "$auth" | rate)*100:.1f}% of the rate,' \
  f' {$(echo "$grpc" | per_cpu)/$(echo "$auth" | per_cpu)*100:.1f}% per authz CPU-second (target >= 80%)')"

echo "== latency at $RATE req/s (64 workers)"
load grpc "$GRPC" --conns 4 --inflight 64 --rate "$RATE"
load auth "$HTTP" --inflight 64 --rate "$RATE"
