#!/usr/bin/env bash
# Image upload and download throughput of a release ipm-api, against `cp` of the same file in
# the same run (the baseline), on local storage and on S3 (s3s-fs on loopback); and the peak
# RSS of ipm-api (VmHWM) while it takes a large upload.
#
#   benches/images.sh               # BENCH_MIB=1024 by default
#   BENCH_MIB=256 benches/images.sh
#
# S3 runs when s3s-fs is at S3S_FS_BIN or $IPM_TOOLS/bin/s3s-fs (scripts/install-s3.sh).
# Uploads stream from curl (`-T`, never loaded into memory); downloads are written to a file,
# as `cp` writes its copy. ipm-api syncs each object to disk before answering; the baseline is
# shown with and without a sync too.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB="${BENCH_MIB:-1024}"
IPM_TOOLS="${IPM_TOOLS:-/var/cache/ipm-tools}"
S3S_FS_BIN="${S3S_FS_BIN:-$IPM_TOOLS/bin/s3s-fs}"
SECRET=bench-secret-0123456789abcdef0123456789

cargo build -q --release --locked -p ipm-api --bin ipm-api
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET/release/ipm-api"

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ipm-images-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
mbps() { python3 -c "print(f'{$MIB / ($2 - $1):.0f}')"; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
# Forget the peak so far (Linux: 5 > clear_refs resets VmHWM).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}

mkdir -p "$WORK/policies"
cp policies/*.cedar policies/*.cedarschema policies/routes.toml "$WORK/policies/"
printf '[groups]\nbench = ["bench@example.com"]\n' >"$WORK/policies/groups.toml"

echo "making a ${MIB} MiB PNG-headed file"
SRC="$WORK/source.png"
{
	printf '\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x10\0\0\0\x10\0\x08\x06\0\0\0\x1f\x15\xc4\x89'
	head -c $((MIB * 1024 * 1024 - 33)) /dev/urandom
} >"$SRC"
SHA=$(sha256sum "$SRC" | cut -d' ' -f1)

# The baseline: cp of the same file on the same filesystem, without and with a sync.
sync
t0=$(now); cp "$SRC" "$WORK/cp-copy"; t1=$(now)
CP=$(mbps "$t0" "$t1")
rm -f "$WORK/cp-copy"; sync
t0=$(now); cp "$SRC" "$WORK/cp-copy"; sync -f "$WORK/cp-copy"; t1=$(now)
CP_SYNC=$(mbps "$t0" "$t1")
rm -f "$WORK/cp-copy"

# Starts ipm-api with extra environment ($@), sets API_PID and API.
start_api() {
	local port
	port=$(free_port)
	env -i PATH="$PATH" HOME="$WORK" \
		PROXY_SHARED_SECRET="$SECRET" API_LISTEN="127.0.0.1:$port" \
		DATABASE_URL="sqlite://$WORK/ipm-$port.db?mode=rwc" POLICY_DIR="$WORK/policies" \
		GROUPS_FILE="$WORK/policies/groups.toml" LOG_FILE= RUST_LOG=warn \
		MAX_UPLOAD_BYTES=$(((MIB + 1) * 1024 * 1024)) "$@" \
		"$BIN" serve >"$WORK/api-$port.log" 2>&1 &
	API_PID=$!
	pids+=("$API_PID")
	wait_port "$port"
	API="http://127.0.0.1:$port"
}

hdr=(-H "X-Proxy-Secret: $SECRET" -H "X-User-Email: bench@example.com")

# Uploads $SRC (raw body, or multipart/form-data with $1 = form), prints
# "<MB/s> <peak RSS MiB during the upload> <image id>".
upload() {
	local project out t0 t1 body
	project=$(curl -sS "${hdr[@]}" -H 'Content-Type: application/json' \
		-d "{\"name\":\"bench-$RANDOM$RANDOM\",\"meta_group_id\":\"bench\"}" "$API/api/projects" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	if [ "${1:-raw}" = form ]; then
		body=(-F "file=@$SRC;filename=bench.png" "$API/api/projects/$project/images")
	else
		body=(-X POST -T "$SRC" -H 'Content-Type: application/octet-stream'
			"$API/api/projects/$project/images?filename=bench.png")
	fi
	reset_hwm "$API_PID"
	t0=$(now)
	out=$(curl -sS -H 'Expect:' "${hdr[@]}" "${body[@]}")
	t1=$(now)
	local id sha
	id=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	sha=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
	[ "$sha" = "$SHA" ] || { echo "upload stored the wrong bytes: $out" >&2; exit 1; }
	echo "$(mbps "$t0" "$t1") $(hwm "$API_PID") $id"
}

# Downloads image $1 to a file, prints "<MB/s> <peak RSS MiB during the download>".
download() {
	local t0 t1
	rm -f "$WORK/downloaded"
	reset_hwm "$API_PID"
	t0=$(now)
	curl -sS -o "$WORK/downloaded" "${hdr[@]}" "$API/api/images/$1/content"
	t1=$(now)
	[ "$(sha256sum "$WORK/downloaded" | cut -d' ' -f1)" = "$SHA" ] || { echo "download differs" >&2; exit 1; }
	rm -f "$WORK/downloaded"
	echo "$(mbps "$t0" "$t1") $(hwm "$API_PID")"
}

echo "local storage"
start_api STORAGE_BACKEND=local STORAGE_DIR="$WORK/images"
IDLE=$(rss "$API_PID")
read -r L_UP L_UP_HWM L_ID < <(upload)
read -r L_DOWN L_DOWN_HWM < <(download "$L_ID")
read -r L_UP2 L_UP2_HWM _ < <(upload)
read -r L_FORM L_FORM_HWM _ < <(upload form)

S3_LINE="s3: skipped (no s3s-fs at $S3S_FS_BIN; run scripts/install-s3.sh)"
if [ -x "$S3S_FS_BIN" ]; then
	echo "S3 storage (s3s-fs)"
	S3_PORT=$(free_port)
	mkdir -p "$WORK/s3/bench"
	"$S3S_FS_BIN" --host 127.0.0.1 --port "$S3_PORT" --access-key benchkey \
		--secret-key bench-secret-key-0123456789 "$WORK/s3" >/dev/null 2>&1 &
	pids+=($!)
	wait_port "$S3_PORT"
	start_api STORAGE_BACKEND=s3 S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=bench \
		S3_ACCESS_KEY_ID=benchkey S3_SECRET_ACCESS_KEY=bench-secret-key-0123456789 \
		S3_FORCE_PATH_STYLE=true
	read -r S_UP S_UP_HWM S_ID < <(upload)
	read -r S_DOWN S_DOWN_HWM < <(download "$S_ID")
	S3_LINE=$(printf 's3 (s3s-fs):  upload %5s MB/s (%s%% of cp), peak RSS %s MiB; download %5s MB/s (%s%% of cp), peak RSS %s MiB' \
		"$S_UP" "$((100 * S_UP / CP))" "$S_UP_HWM" "$S_DOWN" "$((100 * S_DOWN / CP))" "$S_DOWN_HWM")
fi

cat <<TXT

file: ${MIB} MiB; cp: ${CP} MB/s, cp + sync: ${CP_SYNC} MB/s (MB = MiB)
local upload:   ${L_UP} MB/s (${L_UP2} MB/s again) = $((100 * L_UP / CP))% of cp, $((100 * L_UP / CP_SYNC))% of cp + sync
local upload as multipart/form-data: ${L_FORM} MB/s = $((100 * L_FORM / CP))% of cp, peak RSS ${L_FORM_HWM} MiB
local download: ${L_DOWN} MB/s = $((100 * L_DOWN / CP))% of cp
ipm-api RSS: ${IDLE} MiB idle; peak ${L_UP_HWM} MiB (${L_UP2_HWM} MiB) during the upload, ${L_DOWN_HWM} MiB during the download
$S3_LINE
TXT
