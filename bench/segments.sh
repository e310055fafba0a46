#!/usr/bin/env bash
# Segment benchmark: bench/segments (a store built through core.Ingest,
# segments evaluated through the policy gate, live membership updates)
# against PostgreSQL 15 (installed from Debian if missing, loopback only)
# answering the same segments with SQL over the same data in the same run.
# Everything lives in a temporary directory removed on exit.
#
# Environment knobs (defaults in brackets):
#   PEOPLE [1000000]  EVENTS_PER [10]  STREAM [20000]  SEED [1]
#   SKIP_PG [0]  PG_SHARED_BUFFERS [1GB]  PG_BIN [auto]
#   BENCH_TMP [$TMPDIR or /tmp]  OUT [bench/out/segments.txt]
#   CONFIG [none]: a custody.yaml whose settings replace the defaults (the
#   benchmark sets the Go runtime from server.gc_percent and
#   server.memory_limit_mib, as `custody serve` does)
#   MEMCG_MIB [none]: run the Custody side inside a memory cgroup (v1) of
#   this size, as a container with that memory would: its RSS, mapped store
#   pages included, cannot exceed it (PostgreSQL runs outside)
set -euo pipefail

cd "$(dirname "$0")/.."
PEOPLE=${PEOPLE:-1000000}
EVENTS_PER=${EVENTS_PER:-10}
STREAM=${STREAM:-20000}
SEED=${SEED:-1}
SKIP_PG=${SKIP_PG:-0}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-1GB}
OUT=${OUT:-bench/out/segments.txt}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/segments.sh: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/custody-segbench.XXXXXX")
PG_DATA=""
PG_CTL=""
PG_AS=()
CG=""
cleanup() {
	local rc=$?
	set +e
	if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
		"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	[[ -z $CG ]] || rmdir "$CG" 2>/dev/null
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PG_INFO_TABLES="profiles, consent (history), events (user_id, name, ts, total, coupon); indexes (user_id, name, ts), (name, ts), consent (user_id, purpose, collected_at)"
# shellcheck source=bench/pg.sh
. "$(dirname "$0")/pg.sh"

log "building bench/segments"
go build -o "$TMP/segments" ./bench/segments
ARGS=(-people "$PEOPLE" -events-per "$EVENTS_PER" -stream "$STREAM" -seed "$SEED" -dir "$TMP/custody")
[[ -z ${CONFIG:-} ]] || ARGS+=(-config "$CONFIG")
if [[ $SKIP_PG != 1 ]]; then
	pg_start
	ARGS+=(-pg "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable")
fi
mkdir -p "$(dirname "$OUT")"
log "running: $PEOPLE profiles x ~$EVENTS_PER events"
RUN=("$TMP/segments")
MEMCG_LINE=""
if [[ -n ${MEMCG_MIB:-} ]]; then
	[[ $MEMCG_MIB =~ ^[0-9]+$ ]] || die "MEMCG_MIB: $MEMCG_MIB is not a number of MiB"
	mkdir "/sys/fs/cgroup/memory/custody-segbench.$$" 2>/dev/null ||
		die "MEMCG_MIB: cannot create a memory cgroup (cgroup v1 memory controller, as root)"
	CG=/sys/fs/cgroup/memory/custody-segbench.$$ # removed by cleanup
	echo $((MEMCG_MIB << 20)) >"$CG/memory.limit_in_bytes"
	[[ ! -e $CG/memory.memsw.limit_in_bytes ]] || echo $((MEMCG_MIB << 20)) >"$CG/memory.memsw.limit_in_bytes"
	RUN=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$TMP/segments")
	MEMCG_LINE="memcg         ${MEMCG_MIB} MiB (memory.limit_in_bytes of the cgroup the Custody side runs in)"
fi
{
	[[ -z $MEMCG_LINE ]] || echo "$MEMCG_LINE"
	"${RUN[@]}" "${ARGS[@]}"
} | tee "$OUT"
[[ -z $CG ]] || echo "memcg         peak usage $(($(cat "$CG/memory.max_usage_in_bytes") >> 20)) MiB (memory.max_usage_in_bytes: RSS and page cache)" | tee -a "$OUT"
[[ $SKIP_PG == 1 ]] || echo "postgres      $PG_INFO" | tee -a "$OUT"
