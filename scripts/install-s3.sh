#!/usr/bin/env bash
# Installs the S3-compatible server the image tests run on loopback: s3s-fs (checks SigV4
# signatures, stores plain files) at $IPM_TOOLS/bin/s3s-fs (IPM_TOOLS default /var/cache/ipm-tools).
# Idempotent: skips when the binary is there. Callers set S3S_FS_BIN to that path.
set -euo pipefail

IPM_TOOLS="${IPM_TOOLS:-/var/cache/ipm-tools}"
S3S_FS_VERSION="${S3S_FS_VERSION:-0.14.1}" # 0.15 needs a newer rustc
bin="$IPM_TOOLS/bin/s3s-fs"

if [ -x "$bin" ]; then
	echo "s3s-fs: $bin"
	exit 0
fi
mkdir -p "$IPM_TOOLS"
# A target directory of its own: never the workspace's, and removed afterwards.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked \
	--root "$IPM_TOOLS" --target-dir "$build" --quiet
"$bin" --help >/dev/null
echo "s3s-fs: installed $bin"
