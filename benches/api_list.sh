#!/usr/bin/env bash
# GET /api/projects latency (p50/p99) with 100k projects across 1k groups in PostgreSQL, for a
# user in 10 groups, against GET /healthz on the same server in the same run (the baseline).
# The API authorizes every request in-process (secret, email, groups, Cedar) and logs it.
#
#   benches/api_list.sh            # BENCH_REQUESTS=3000 by default
#
# Needs PostgreSQL at TEST_PG_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres]; the
# bench creates its own database and drops it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p ipm-api --bench api_list >/dev/null
