# Shared by the wrk benches that compare a proxy with and without authz; sourced, not run.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something answers HTTP(S) at URL.
wait_up() {
  for _ in $(seq 1 200); do
    curl -sk -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "nothing answers at $1" >&2; exit 1
}

rps() { awk '/Requests\/sec/ {print $2}'; }
# wrk prints latencies with units (us, ms, s); in milliseconds.
p() { awk -v q="$1%" '$1 == q { v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else {sub(/s$/,"",v); v*=1000}; print v }'; }

# compare DIRECT AUTHED DECISIONS: the ratios of two `wrk --latency` outputs, the run without
# authz and the run through it, and how many decisions authz made during the second.
compare() {
  python3 - "$(echo "$1" | rps)" "$(echo "$2" | rps)" \
    "$(echo "$1" | p 50)" "$(echo "$2" | p 50)" "$(echo "$1" | p 99)" "$(echo "$2" | p 99)" "$3" <<'PY'
import sys
d_rps, a_rps, d50, a50, d99, a99 = map(float, sys.argv[1:7])
decided = int(sys.argv[7])
print(f"authz decisions during the authorized run: {decided}")
print(f"requests/s  through authz / direct: {a_rps:.0f} / {d_rps:.0f} = {a_rps / d_rps * 100:.1f}%")
print(f"p50 (ms)    through authz / direct: {a50:.2f} / {d50:.2f} = {a50 / d50:.2f}x")
print(f"p99 (ms)    through authz / direct: {a99:.2f} / {d99:.2f} = {a99 / d99:.2f}x")
PY
}
