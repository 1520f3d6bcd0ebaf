#!/usr/bin/env bash
# Evaluations per second of authz's AuthZEN endpoint against /auth, same server, same run, one
# core: the server is pinned to CPU 1 (taskset -c 1), wrk to CPU 0.
#
#   benches/authzen_wrk.sh            # DURATION=10 CONNS=32 by default
#
# 1. /auth (nginx auth_request: secret, email, route, groups, Cedar, logging) vs
#    POST /access/v1/evaluation asking the same question (User::"bob@example.com",
#    ListProjects, Application::"ipm"; groups from the same groups file), shipped policies.
# 2. The interop Todo set (policies/examples/authzen-todo): one evaluation per request, then
#    100 per request (/access/v1/evaluations), in evaluations per second.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p authz --bin authz
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

wait_up() {
  for _ in $(seq 1 200); do
    curl -fs -o /dev/null "http://$1/healthz" && return 0
    sleep 0.05
  done
  echo "server at $1 did not start" >&2; exit 1
}

start() { # ADDR POLICY_DIR GROUPS_FILE LOG
  env -i PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" AUTHZ_LISTEN="$1" AUTHZ_GRPC_LISTEN=off POLICY_DIR="$2" \
    GROUPS_FILE="$3" LOG_FILE="$4" taskset -c 1 "$TARGET/release/authz" serve >/dev/null 2>&1 &
  pids+=($!)
  wait_up "$1"
}

post_lua() { # FILE BODY_FILE
  python3 - "$1" "$2" "$SECRET" <<'PY'
import json, sys
out, body, secret = sys.argv[1:]
with open(body) as f:
    text = json.dumps(f.read())
with open(out, "w") as f:
    f.write(f'wrk.method = "POST"\nwrk.body = {text}\n'
            f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-Proxy-Secret"] = "{secret}"\n')
PY
}

SHIPPED=127.0.0.1:$(free_port)
TODO=127.0.0.1:$(free_port)
echo '[groups]' >"$TMP/empty-groups.toml"
start "$SHIPPED" policies policies/groups.toml "$TMP/shipped.json"
start "$TODO" policies/examples/authzen-todo "$TMP/empty-groups.toml" "$TMP/todo.json"

cat >"$TMP/auth.lua" <<LUA
wrk.method = "GET"
wrk.headers["X-Proxy-Secret"] = "$SECRET"
wrk.headers["X-User-Email"] = "bob@example.com"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Original-URI"] = "/api/projects?limit=20"
LUA
cat >"$TMP/same.json" <<'JSON'
{"subject":{"type":"User","id":"bob@example.com"},"action":{"name":"ListProjects"},
 "resource":{"type":"Application","id":"ipm"},"context":{"method":"GET","path":"/api/projects"}}
JSON
post_lua "$TMP/same.lua" "$TMP/same.json"
MORTY=CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs
cat >"$TMP/todo.json" <<JSON
{"subject":{"type":"user","id":"$MORTY"},"action":{"name":"can_update_todo"},
 "resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"morty@the-citadel.com"}}}
JSON
post_lua "$TMP/todo.lua" "$TMP/todo.json"
python3 - "$MORTY" >"$TMP/batch.json" <<'PY'
import json, sys
morty = sys.argv[1]
print(json.dumps({
    "subject": {"type": "user", "id": morty},
    "action": {"name": "can_update_todo"},
    "evaluations": [{"resource": {"type": "todo", "id": f"todo-{i}",
                                  "properties": {"ownerID": "morty@the-citadel.com" if i % 2 else "rick@the-citadel.com"}}}
                    for i in range(100)],
}))
PY
post_lua "$TMP/batch.lua" "$TMP/batch.json"

expect() { # URL LUA-less: curl check of a decision
  got=$(curl -s -H "X-Proxy-Secret: $SECRET" -H 'Content-Type: application/json' --data-binary @"$2" "http://$1")
  [ "$got" = "$3" ] || { echo "$1 answered $got, expected $3" >&2; exit 1; }
}
expect "$SHIPPED/access/v1/evaluation" "$TMP/same.json" '{"decision":true}'
expect "$TODO/access/v1/evaluation" "$TMP/todo.json" '{"decision":true}'
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Proxy-Secret: $SECRET" -H 'X-User-Email: bob@example.com' \
  -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/projects' "http://$SHIPPED/auth")" = 200 ]

rps() { awk '/Requests\/sec/ {print $2}'; }
run() { taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@"; }
show() { grep -E 'Requests/sec|  50%|  99%|Non-2xx'; }

echo "== /auth (shipped policies)"
auth_out=$(run "http://$SHIPPED/auth" -s "$TMP/auth.lua"); echo "$auth_out" | show
echo "== /access/v1/evaluation, the same question (shipped policies)"
same_out=$(run "http://$SHIPPED/access/v1/evaluation" -s "$TMP/same.lua"); echo "$same_out" | show
echo "== /access/v1/evaluation, Todo set: one evaluation per request"
todo_out=$(run "http://$TODO/access/v1/evaluation" -s "$TMP/todo.lua"); echo "$todo_out" | show
echo "== /access/v1/evaluations, Todo set: 100 evaluations per request"
batch_out=$(run "http://$TODO/access/v1/evaluations" -s "$TMP/batch.lua"); echo "$batch_out" | show

auth=$(echo "$auth_out" | rps); same=$(echo "$same_out" | rps)
todo=$(echo "$todo_out" | rps); batch=$(echo "$batch_out" | rps)
python3 - "$auth" "$same" "$todo" "$batch" <<'PY'
import sys
auth, same, todo, batch = map(float, sys.argv[1:])
print(f"/auth:                          {auth:10.0f} decisions/s")
print(f"AuthZEN, same question:         {same:10.0f} evaluations/s ({same / auth * 100:.0f}% of /auth)")
print(f"AuthZEN Todo, 1 per request:    {todo:10.0f} evaluations/s")
print(f"AuthZEN Todo, 100 per request:  {batch * 100:10.0f} evaluations/s ({batch:.0f} requests/s; "
      f"{batch * 100 / todo:.1f}x the singles)")
PY
