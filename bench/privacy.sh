#!/usr/bin/env bash
# Privacy request benchmark: in a store of PROFILES profiles and EVENTS
# events, time an access request and a deletion (KEK rotation timed
# separately) for a person with 1,000 events in Custody, and PostgreSQL 15's
# equivalent SELECTs and DELETEs on the same volume in the same run. Run from
# the repository root (`make bench-privacy`, also part of `make bench`).
# PostgreSQL listens on loopback only; everything lives in a temporary
# directory removed on exit, also on failure or Ctrl-C.
#
# Environment knobs (defaults in brackets):
#   PROFILES [1000000]  EVENTS [10000000]   the issue's figure; smaller for a quick run,
#                                           e.g. PROFILES=100000 EVENTS=1000000
#   TARGET_EVENTS [1000]  ROUNDS [5] (+1 warm-up; the median is reported)
#   SKIP_PG [0]  PG_SHARED_BUFFERS [1GB]  PG_BIN [auto, else apt-get postgresql-15]
#   BENCH_TMP [$TMPDIR or /tmp]  OUT [bench/out/privacy.json]
set -euo pipefail

cd "$(dirname "$0")/.."
export PROFILES=${PROFILES:-1000000}
export EVENTS=${EVENTS:-10000000}
export TARGET_EVENTS=${TARGET_EVENTS:-1000}
export ROUNDS=${ROUNDS:-5}
SKIP_PG=${SKIP_PG:-0}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-1GB}
OUT=${OUT:-bench/out/privacy.json}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/privacy.sh: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/custody-privacy-bench.XXXXXX")
PG_DATA=""
PG_CTL=""
PG_AS=()

cleanup() {
	local rc=$?
	set +e
	if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
		"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- postgresql: find_pg, pg_start (bench/pg.sh) ---------------------------
# shellcheck source=bench/pg.sh
. "$(dirname "$0")/pg.sh"

log "building bench/privacy"
go build -o "$TMP/privacy-bench" ./bench/privacy
PG_ARGS=()
if [[ $SKIP_PG != 1 ]]; then
	pg_start
	PG_ARGS=(-pg "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable")
fi
mkdir -p "$(dirname "$OUT")"
log "running: $PROFILES profiles, $EVENTS events, a person with $TARGET_EVENTS events, $ROUNDS rounds"
log "load on this machine before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the CPU)"
"$TMP/privacy-bench" -dir "$TMP/work" -out "$OUT" "${PG_ARGS[@]}"
log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg); figures in $OUT"
