#!/usr/bin/env bash
# The cost of nginx's authorization subrequest. Requests/s and latency of GET /api/projects
# through the shipped nginx/ipm.conf (nginx → authz → ipm-api) against the same config with
# `auth_request off` (nginx → ipm-api), both running in the same run, measured back to back.
# Prints both and the ratios.
#
#   benches/nginx_wrk.sh            # DURATION=10 CONNS=32 by default
#
# nginx, authz and ipm-api share CPU 0 and wrk runs on CPU 1, so the ratio is the whole cost
# of the subrequest on one core: nginx's extra work plus authz's decision. wrk plays the
# identity layer (the config trusts its address) and talks HTTPS with keep-alive.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
SECRET=$(openssl rand -hex 32)

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[ -x "$NGINX_BIN" ] || { echo "nginx is missing: apt-get install -y nginx" >&2; exit 1; }
cargo build --release -q --locked -p authz --bin authz -p ipm-api --bin ipm-api
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT


# --- authz and ipm-api on loopback, one SQLite database, a copy of the shipped policies ---
AUTHZ=127.0.0.1:$(free_port)
API=127.0.0.1:$(free_port)
mkdir -p "$TMP/policies"
cp policies/*.* "$TMP/policies/"
common=(PATH="$PATH" PROXY_SHARED_SECRET="$SECRET" POLICY_DIR="$TMP/policies"
  GROUPS_FILE="$TMP/policies/groups.toml" LOG_FILE="$TMP/app.json")
env -i "${common[@]}" API_LISTEN="$API" DATABASE_URL="sqlite://$TMP/ipm.db?mode=rwc" \
  taskset -c 0 "$TARGET/release/ipm-api" serve >"$TMP/api.out" 2>&1 &
pids+=($!)
wait_up "http://$API/healthz"
env -i "${common[@]}" AUTHZ_LISTEN="$AUTHZ" AUTHZ_GRPC_LISTEN=off DATABASE_URL="sqlite://$TMP/ipm.db" \
  taskset -c 0 "$TARGET/release/authz" serve >"$TMP/authz.out" 2>&1 &
pids+=($!)
wait_up "http://$AUTHZ/healthz"

# A few of bob's projects, so the list has something to return.
for name in alpha beta gamma; do
  curl -sf -o /dev/null -H "X-Proxy-Secret: $SECRET" -H 'X-User-Email: bob@example.com' \
    -H 'Content-Type: application/json' -d "{\"name\":\"$name\",\"meta_group_id\":\"editors\"}" \
    "http://$API/api/projects"
done

# --- two nginx instances on the shipped config: with the subrequest, and without it ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$TMP/server.key" -out "$TMP/server.pem" 2>/dev/null
start_nginx() { # NAME AUTH(on|off) HTTPS_PORT
  local dir="$TMP/$1" https=$3 http
  http=$(free_port)
  mkdir -p "$dir/ipm" "$dir/www" "$dir/temp"
  cp nginx/ipm/* "$dir/ipm/"
  printf 'map "" $ipm_proxy_secret { default "%s"; }\n' "$SECRET" >"$dir/ipm/proxy-secret.conf"
  if [ "$2" = off ]; then
    sed -i 's#^auth_request /_ipm/authz;#auth_request off;#' "$dir/ipm/api.conf"
    grep -q '^auth_request off;' "$dir/ipm/api.conf"
  fi
  # The documented substitutions; wrk connects from 127.0.0.1, the identity layer's address.
  sed -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https ssl http2;#" -e 's#listen \[::\]:443 ssl http2;##' \
      -e "s#listen 80;#listen 127.0.0.1:$http;#" -e 's#listen \[::\]:80;##' \
      -e "s#/etc/ssl/certs/ipm.example.com.pem#$TMP/server.pem#" \
      -e "s#/etc/ssl/private/ipm.example.com.key#$TMP/server.key#" \
      -e "s#127.0.0.1:8181#$AUTHZ#" -e "s#127.0.0.1:8000#$API#" -e 's#10.0.0.5#127.0.0.1#' \
      -e "s#/var/www/ipm#$dir/www#" nginx/ipm.conf >"$dir/site.conf"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/temp/client_body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    default_type application/octet-stream;
    include site.conf;
}
CONF
  taskset -c 0 "$NGINX_BIN" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >/dev/null 2>&1 &
  pids+=($!)
}
WITH=$(free_port)
WITHOUT=$(free_port)
start_nginx with-authz on "$WITH"
start_nginx without-authz off "$WITHOUT"
wait_up "https://127.0.0.1:$WITH/healthz"
wait_up "https://127.0.0.1:$WITHOUT/healthz"

check() { curl -sk -o /dev/null -w '%{http_code}' -H "X-Forwarded-Email: $2" "https://127.0.0.1:$1/api/projects"; }
[ "$(check "$WITH" bob@example.com)" = 200 ] || { echo "through authz: bob is not allowed" >&2; exit 1; }
[ "$(check "$WITHOUT" bob@example.com)" = 200 ] || { echo "direct: bob is not allowed" >&2; exit 1; }
# The subrequest really happens: authz's own denial (nginx's body) on one, the API's on the other.
curl -sk -H 'X-Forwarded-Email: mallory@example.com' "https://127.0.0.1:$WITH/api/projects" | grep -q denied_by_proxy
curl -sk -H 'X-Forwarded-Email: mallory@example.com' "https://127.0.0.1:$WITHOUT/api/projects" | grep -q policy_denied

cat >"$TMP/bob.lua" <<'LUA'
wrk.method = "GET"
wrk.headers["X-Forwarded-Email"] = "bob@example.com"
wrk.headers["Accept"] = "application/json"
LUA
decisions() { curl -s "http://$AUTHZ/metrics" | awk '/^authz_decisions_total\{.*adapter="nginx"/ {s+=$2} END {print s+0}'; }
run() { taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$TMP/bob.lua" "https://127.0.0.1:$1/api/projects"; }

run "$WITHOUT" >/dev/null # warm-up: connections, SQLite page cache
echo "== nginx → ipm-api (auth_request off)"
direct=$(run "$WITHOUT"); echo "$direct" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
before=$(decisions)
echo "== nginx → authz → ipm-api (the shipped config)"
authed=$(run "$WITH"); echo "$authed" | grep -E 'Requests/sec|  50%|  99%|Non-2xx'
after=$(decisions)

compare "$direct" "$authed" "$((after - before))"
