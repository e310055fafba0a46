#!/usr/bin/env bash
# Ingestion benchmark: Custody (POST /v1/batch, durable group commit) against
# PostgreSQL 15 (one multi-row INSERT transaction per batch, fsync and
# synchronous_commit on) with the same realistic Segment messages, batch size
# and concurrency. Run from the repository root after `make build`
# (`make bench` does both). Everything listens on loopback only and lives in
# a temporary directory that is removed on exit, also on failure or Ctrl-C.
#
# Environment knobs (defaults in brackets):
#   CUSTODY_BIN [bin/custody]   MESSAGES [1000000]  BATCH [100]
#   CONCURRENCY [64]            USERS [100000]      SEED [42]
#   ROUNDS [1]  alternating custody/postgres rounds; the median is reported
#   MAX_TIME [180s] per run     SKIP_PG [0]         PG_SHARED_BUFFERS [1GB]
#   PG_BIN [auto: /usr/local/bin, /usr/lib/postgresql/15/bin, else apt-get]
#   BENCH_TMP [$TMPDIR or /tmp] OUT [bench/out/ingest.json]
set -euo pipefail

cd "$(dirname "$0")/.."
CUSTODY_BIN=${CUSTODY_BIN:-bin/custody}
MESSAGES=${MESSAGES:-1000000}
BATCH=${BATCH:-100}
CONCURRENCY=${CONCURRENCY:-64}
USERS=${USERS:-100000}
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-1}
MAX_TIME=${MAX_TIME:-180s}
SKIP_PG=${SKIP_PG:-0}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-1GB}
OUT=${OUT:-bench/out/ingest.json}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/ingest.sh: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/custody-bench.XXXXXX")
SERVER_PID=""
PG_DATA=""
PG_CTL=""
PG_AS=()

cleanup() {
	local rc=$?
	set +e
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
		"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

# --- build ----------------------------------------------------------------
[[ -x $CUSTODY_BIN ]] || { log "building $CUSTODY_BIN"; go build -o "$CUSTODY_BIN" ./cmd/custody; }
log "building bench/ingest"
go build -o "$TMP/ingest" ./bench/ingest
LOADGEN=("$TMP/ingest" -messages "$MESSAGES" -batch "$BATCH" -concurrency "$CONCURRENCY"
	-users "$USERS" -seed "$SEED" -max-time "$MAX_TIME")
mkdir -p "$(dirname "$OUT")"
FAILED=0

# --- custody --------------------------------------------------------------
# custody_round N: a fresh data directory and server, one load run, the
# server's peak RSS from /proc, then SIGTERM.
custody_round() {
	local n=$1 cdata=$TMP/custody-$1 key addr hwm rss
	log "custody round $n: init $cdata"
	"$CUSTODY_BIN" --data "$cdata" init >"$TMP/init.log" 2>&1 || { cat "$TMP/init.log" >&2; die "custody init failed"; }
	key=$("$CUSTODY_BIN" --data "$cdata" apikey create --role ingest --name bench --json 2>>"$TMP/init.log" |
		sed -n 's/^[[:space:]]*"key":[[:space:]]*"\([^"]*\)".*/\1/p')
	[[ $key == cus_* ]] || { cat "$TMP/init.log" >&2; die "could not create an ingest key"; }

	# Port 0: the kernel picks a free loopback port; the server prints it.
	"$CUSTODY_BIN" --data "$cdata" serve --addr 127.0.0.1:0 >"$TMP/custody.out" 2>"$TMP/custody-$n.log" &
	SERVER_PID=$!
	addr=""
	for _ in $(seq 1 300); do
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/custody-$n.log" >&2; die "custody serve exited"; }
		addr=$(sed -n 's#^custody serving on http://\([^ ]*\).*#\1#p' "$TMP/custody.out")
		if [[ -n $addr ]] && curl -fsS --max-time 2 "http://$addr/healthz" >/dev/null 2>&1; then break; fi
		addr=""
		sleep 0.1
	done
	[[ -n $addr ]] || die "custody serve did not become ready in 30s"
	log "custody round $n: serving on $addr (pid $SERVER_PID); sending $MESSAGES messages"

	"${LOADGEN[@]}" -url "http://$addr" -key "$key" -pid "$SERVER_PID" -out "$TMP/custody-$n.json" || FAILED=1
	[[ -f $TMP/custody-$n.json ]] || die "custody round $n produced no result"

	# Peak RSS of the server, read before it stops.
	read -r hwm rss < <(awk '/^VmHWM:/{h=$2} /^VmRSS:/{r=$2} END{print h+0, r+0}' "/proc/$SERVER_PID/status")
	log "custody round $n: server VmHWM $((hwm / 1024)) MiB, VmRSS $((rss / 1024)) MiB; stopping (SIGTERM)"
	((hwm > PEAK_KB)) && PEAK_KB=$hwm
	kill -TERM "$SERVER_PID"
	for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$SERVER_PID" 2>/dev/null && log "custody did not stop within 30s of SIGTERM"
	wait "$SERVER_PID" 2>/dev/null || log "custody serve exited with status $?"
	SERVER_PID=""
	rm -rf "$cdata"
	CUSTODY_RESULTS+=${CUSTODY_RESULTS:+,}$TMP/custody-$n.json
}

# --- postgresql -----------------------------------------------------------
# find_pg, pg_start: bench/pg.sh (shared with bench/segments.sh).
PG_MAX_CONNECTIONS=$((CONCURRENCY + 20))
# shellcheck source=bench/pg.sh
. "$(dirname "$0")/pg.sh"
PG_INFO_TABLES="events(id bigserial pk, message_id text unique, ..., payload jsonb), index (user_id, ts)"

# pg_round N: the load generator drops and re-creates the events table.
pg_round() {
	local n=$1
	log "postgres round $n: sending $MESSAGES messages"
	"${LOADGEN[@]}" -pg "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -pid "$(head -1 "$PG_DATA/postmaster.pid")" -out "$TMP/postgres-$n.json" || FAILED=1
	[[ -f $TMP/postgres-$n.json ]] || die "postgres round $n produced no result"
	PG_RESULTS+=${PG_RESULTS:+,}$TMP/postgres-$n.json
}

CUSTODY_RESULTS=""
PG_RESULTS=""
PEAK_KB=0
PG_INFO=""
[[ $SKIP_PG == 1 ]] || pg_start
for n in $(seq 1 "$ROUNDS"); do
	custody_round "$n"
	[[ $SKIP_PG == 1 ]] || pg_round "$n"
done
if [[ $SKIP_PG != 1 ]]; then
	"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
fi

# --- report ---------------------------------------------------------------
echo
"$TMP/ingest" -report -custody-results "$CUSTODY_RESULTS" -postgres-results "$PG_RESULTS" -report-out "$OUT" -server-peak-kb "$PEAK_KB" \
	-custody-info "custody serve, default config (group commit; 200 only once the group is fsynced); TCP 127.0.0.1" \
	-postgres-info "$PG_INFO"

[[ $FAILED == 0 ]] || die "a run had errors or timed out (see above)"
