#!/usr/bin/env bash
# Regenerates authz/proto/ext_authz.bin, the descriptor set authz serves over gRPC reflection
# (grpcurl needs it to describe envoy.service.auth.v3.Authorization). Run after bumping envoy-types.
# Needs protoc from grpcio-tools: scripts/install-envoy.sh installs it in $IPM_TOOLS/xds-venv.
set -euo pipefail

cd "$(dirname "$0")/.."
IPM_TOOLS="${IPM_TOOLS:-/var/cache/ipm-tools}"
manifest="$(cargo metadata --format-version 1 2>/dev/null |
	"$IPM_TOOLS/xds-venv/bin/python" -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "envoy-types"))')"
proto="$(dirname "$manifest")/proto"
"$IPM_TOOLS/xds-venv/bin/python" -m grpc_tools.protoc \
	-I"$proto/data-plane-api" -I"$proto/xds" -I"$proto/protoc-gen-validate" \
	-I"$proto/googleapis" -I"$proto/cel-spec/proto" \
	--include_imports --descriptor_set_out=authz/proto/ext_authz.bin \
	envoy/service/auth/v3/external_auth.proto
echo "wrote authz/proto/ext_authz.bin from $proto"
