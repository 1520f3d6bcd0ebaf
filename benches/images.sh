#!/usr/bin/env bash
# Image upload and download throughput of a release ipm-api against copies of the same file in
# the same run (the baselines), on local storage and on S3 (s3s-fs on loopback); and the peak
# RSS of ipm-api (VmHWM) while it takes a large upload.
#
#   benches/images.sh                  # BENCH_MIB=1024, BENCH_ROUNDS=3
#   BENCH_MIB=256 benches/images.sh
#
# Baselines: `cp` (GNU cp copies inside the kernel, copy_file_range), `cp` then a sync of the
# copy (ipm-api syncs each object before answering), and `dd bs=1M` (a copy through user space,
# as any HTTP client and server must do). Rounds interleave baseline, upload and download, each
# after a sync, and every copy and image is removed before the next round, so page-cache
# pressure weighs on all alike; figures are medians of the rounds.
#
# Uploads stream from curl (`-T`, or `-F` for multipart/form-data); downloads are written to a
# file, as cp writes its copy. S3 runs when s3s-fs is at S3S_FS_BIN or $IPM_TOOLS/bin/s3s-fs
# (scripts/install-s3.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
MIB="${BENCH_MIB:-1024}"
ROUNDS="${BENCH_ROUNDS:-3}"
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

now() { date +%s.%N; }
mbps() { python3 -c "print(f'{$MIB / ($2 - $1):.0f}')"; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
maximum() { sort -n | tail -1; }
pct() { echo $((100 * $1 / $2)); }
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
# Forget the peak so far (Linux: 5 > clear_refs resets VmHWM to the current RSS).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

# The policies in a folder of their own: their watcher also watches the folder's parent.
mkdir -p "$WORK/conf/policies" "$WORK/out"
cp policies/*.cedar policies/*.cedarschema policies/routes.toml "$WORK/conf/policies/"
printf '[groups]\nbench = ["bench@example.com"]\n' >"$WORK/conf/policies/groups.toml"

echo "making a ${MIB} MiB PNG-headed file"
SRC="$WORK/source.png"
{
	printf '\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x10\0\0\0\x10\0\x08\x06\0\0\0\x1f\x15\xc4\x89'
	head -c $((MIB * 1024 * 1024 - 33)) /dev/urandom
} >"$SRC"
SHA=$(sha256sum "$SRC" | cut -d' ' -f1)

# One baseline copy: cp, cp + sync, or dd.
copy_once() {
	local t0 t1 dst="$WORK/out/copy"
	sync
	t0=$(now)
	case "$1" in
	cp) cp "$SRC" "$dst" ;;
	cp-sync) cp "$SRC" "$dst" && sync -f "$dst" ;;
	dd) dd if="$SRC" of="$dst" bs=1M status=none ;;
	esac
	t1=$(now)
	rm -f "$dst"
	mbps "$t0" "$t1"
}

# Starts ipm-api with extra environment ($@), sets API_PID and API.
start_api() {
	local port
	port=$(free_port)
	env -i PATH="$PATH" HOME="$WORK" \
		PROXY_SHARED_SECRET="$SECRET" API_LISTEN="127.0.0.1:$port" \
		DATABASE_URL="sqlite://$WORK/ipm-$port.db?mode=rwc" POLICY_DIR="$WORK/conf/policies" \
		GROUPS_FILE="$WORK/conf/policies/groups.toml" LOG_FILE= RUST_LOG=warn \
		MAX_UPLOAD_BYTES=$(((MIB + 1) * 1024 * 1024)) "$@" \
		"$BIN" serve >"$WORK/api-$port.log" 2>&1 &
	API_PID=$!
	pids+=("$API_PID")
	wait_port "$port"
	API="http://127.0.0.1:$port"
	PROJECT=$(curl -sS "${hdr[@]}" -H 'Content-Type: application/json' \
		-d '{"name":"bench","meta_group_id":"bench"}' "$API/api/projects" | json_field id)
}

hdr=(-H "X-Proxy-Secret: $SECRET" -H "X-User-Email: bench@example.com")

# Uploads $SRC (raw body, or multipart/form-data with $1 = form); prints
# "<MB/s> <peak RSS MiB during the upload> <image id>".
upload() {
	local out t0 t1 body
	if [ "${1:-raw}" = form ]; then
		body=(-F "file=@$SRC;filename=bench.png" "$API/api/projects/$PROJECT/images")
	else
		body=(-X POST -T "$SRC" -H 'Content-Type: application/octet-stream'
			"$API/api/projects/$PROJECT/images?filename=bench.png")
	fi
	sync
	reset_hwm "$API_PID"
	t0=$(now)
	out=$(curl -sS -H 'Expect:' "${hdr[@]}" "${body[@]}")
	t1=$(now)
	[ "$(echo "$out" | json_field sha256)" = "$SHA" ] || {
		echo "upload stored the wrong bytes: $out" >&2
		exit 1
	}
	echo "$(mbps "$t0" "$t1") $(hwm "$API_PID") $(echo "$out" | json_field id)"
}

# Downloads image $1 to a file (or to /dev/null with $2 = null: the server's side alone);
# prints "<MB/s> <peak RSS MiB during the download>".
download() {
	local t0 t1 dst="$WORK/out/downloaded"
	[ "${2:-}" != null ] || dst=/dev/null
	sync
	reset_hwm "$API_PID"
	t0=$(now)
	curl -sS -o "$dst" "${hdr[@]}" "$API/api/images/$1/content"
	t1=$(now)
	if [ "$dst" != /dev/null ]; then
		[ "$(sha256sum "$dst" | cut -d' ' -f1)" = "$SHA" ] || { echo "download differs" >&2; exit 1; }
		rm -f "$dst"
	fi
	echo "$(mbps "$t0" "$t1") $(hwm "$API_PID")"
}

remove() { curl -sS -o /dev/null -X DELETE "${hdr[@]}" "$API/api/images/$1"; }

declare -A R # R[name]="values..."
add() { R[$1]="${R[$1]:-} $2"; }
med() { printf '%s\n' ${R[$1]} | median; }
peak() { printf '%s\n' ${R[$1]} | maximum; }

echo "local storage: $ROUNDS rounds"
start_api STORAGE_BACKEND=local STORAGE_DIR="$WORK/images"
IDLE=$(rss "$API_PID")
for _ in $(seq 1 "$ROUNDS"); do
	add cp "$(copy_once cp)"
	add cp_sync "$(copy_once cp-sync)"
	add dd "$(copy_once dd)"
	read -r speed rss id < <(upload)
	add up "$speed"
	add up_rss "$rss"
	read -r speed rss < <(download "$id")
	add down "$speed"
	add down_rss "$rss"
	read -r speed _ < <(download "$id" null)
	add down_null "$speed"
	remove "$id"
	read -r speed rss id < <(upload form)
	add form "$speed"
	add form_rss "$rss"
	remove "$id"
done

S3_LINES="s3: skipped (no s3s-fs at $S3S_FS_BIN; run scripts/install-s3.sh)"
if [ -x "$S3S_FS_BIN" ]; then
	echo "S3 storage (s3s-fs): $ROUNDS rounds"
	S3_PORT=$(free_port)
	mkdir -p "$WORK/s3/bench"
	"$S3S_FS_BIN" --host 127.0.0.1 --port "$S3_PORT" --access-key benchkey \
		--secret-key bench-secret-key-0123456789 "$WORK/s3" >/dev/null 2>&1 &
	pids+=($!)
	wait_port "$S3_PORT"
	start_api STORAGE_BACKEND=s3 S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=bench \
		S3_ACCESS_KEY_ID=benchkey S3_SECRET_ACCESS_KEY=bench-secret-key-0123456789 \
		S3_FORCE_PATH_STYLE=true
	for _ in $(seq 1 "$ROUNDS"); do
		add s3_cp "$(copy_once cp)"
		read -r speed rss id < <(upload)
		add s3_up "$speed"
		add s3_up_rss "$rss"
		read -r speed rss < <(download "$id")
		add s3_down "$speed"
		add s3_down_rss "$rss"
		remove "$id"
	done
	S3_LINES="s3 (s3s-fs): upload $(med s3_up) MB/s = $(pct "$(med s3_up)" "$(med s3_cp)")% of cp ($(med s3_cp) MB/s), peak RSS $(peak s3_up_rss) MiB
             download $(med s3_down) MB/s = $(pct "$(med s3_down)" "$(med s3_cp)")% of cp, peak RSS $(peak s3_down_rss) MiB"
fi

CP=$(med cp) CP_SYNC=$(med cp_sync) DD=$(med dd)
UP=$(med up) FORM=$(med form) DOWN=$(med down) DOWN_NULL=$(med down_null)
cat <<TXT

file ${MIB} MiB, medians of ${ROUNDS} rounds (MB = MiB)
baselines:   cp ${CP} MB/s, cp + sync ${CP_SYNC} MB/s, dd bs=1M ${DD} MB/s
upload:      ${UP} MB/s = $(pct "$UP" "$CP")% of cp, $(pct "$UP" "$CP_SYNC")% of cp + sync, $(pct "$UP" "$DD")% of dd   (rounds:${R[up]})
  multipart: ${FORM} MB/s = $(pct "$FORM" "$CP_SYNC")% of cp + sync   (rounds:${R[form]})
download:    ${DOWN} MB/s = $(pct "$DOWN" "$CP")% of cp, $(pct "$DOWN" "$DD")% of dd   (rounds:${R[down]})
  to /dev/null (no client-side write): ${DOWN_NULL} MB/s = $(pct "$DOWN_NULL" "$CP")% of cp   (rounds:${R[down_null]})
ipm-api RSS: ${IDLE} MiB idle; peak $(peak up_rss) MiB during raw uploads (rounds:${R[up_rss]}),
             $(peak form_rss) MiB during multipart uploads (rounds:${R[form_rss]}), $(peak down_rss) MiB during downloads
$S3_LINES
TXT
