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
#   PROFILES [100000]  EVENTS [1000000]   the issue's figure: PROFILES=1000000 EVENTS=10000000
#   TARGET_EVENTS [1000]  ROUNDS [5] (+1 warm-up; the median is reported)
#   SKIP_PG [0]  PG_SHARED_BUFFERS [1GB]  PG_BIN [auto, else apt-get postgresql-15]
#   BENCH_TMP [$TMPDIR or /tmp]  OUT [bench/out/privacy.json]
set -euo pipefail

cd "$(dirname "$0")/.."
export PROFILES=${PROFILES:-100000}
export EVENTS=${EVENTS:-1000000}
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

# --- postgresql (as bench/ingest.sh) -------------------------------------
find_pg() {
	local d
	for d in ${PG_BIN:-} /usr/local/bin /usr/lib/postgresql/15/bin; do
		if [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	return 1
}

pg_start() {
	local pgbin p
	if ! pgbin=$(find_pg); then
		log "PostgreSQL 15 server binaries not found: apt-get install postgresql-15"
		[[ $(id -u) == 0 ]] || die "need root to install postgresql-15 (or set PG_BIN, or SKIP_PG=1)"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
		pgbin=$(find_pg) || die "postgresql-15 installed but pg_ctl/initdb/postgres not found"
	fi
	PG_CTL=$pgbin/pg_ctl
	PG_DIR=$TMP/pg
	mkdir -p "$PG_DIR"
	if [[ $(id -u) == 0 ]]; then
		id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
		chmod 755 "$TMP"
		chown postgres: "$PG_DIR"
		PG_AS=(runuser -u postgres --)
	fi
	"${PG_AS[@]}" "$pgbin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
	PG_DATA=$PG_DIR/data
	PG_PORT=""
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PG_PORT=$p; break; fi
	done
	[[ -n $PG_PORT ]] || die "no free port for postgres"
	# Durability is PostgreSQL's default, stated explicitly.
	local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR"
	opts+=" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
	opts+=" -c shared_buffers=$PG_SHARED_BUFFERS -c max_wal_size=4GB -c maintenance_work_mem=512MB"
	"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -o "$opts" -w -t 60 start >/dev/null ||
		{ cat "$PG_DIR/postgres.log" >&2; die "postgres did not start"; }
	log "postgres: listening on 127.0.0.1:$PG_PORT"
}

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
