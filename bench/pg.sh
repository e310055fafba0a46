# PostgreSQL 15 for the benchmarks' baselines, sourced by bench/*.sh.
# The caller defines log, die, TMP (removed on exit) and PG_SHARED_BUFFERS,
# optionally PG_BIN, PG_MAX_CONNECTIONS, PG_INFO_TABLES; pg_start sets
# PG_CTL, PG_DATA, PG_PORT, PG_AS, PG_INFO. The caller stops the server:
#   "${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m fast -w -t 60 stop
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
	PG_VERSION=$("$pgbin/postgres" --version | awk '{print $3}')
	[[ $PG_VERSION == 15.* ]] || log "warning: PostgreSQL $PG_VERSION is not 15"

	# PostgreSQL refuses to run as root: use the postgres system user.
	PG_DIR=$TMP/pg
	mkdir -p "$PG_DIR"
	if [[ $(id -u) == 0 ]]; then
		id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
		chmod 755 "$TMP"
		chown postgres: "$PG_DIR"
		PG_AS=(runuser -u postgres --)
	fi
	log "postgres: initdb $PG_DIR/data (PostgreSQL $PG_VERSION)"
	"${PG_AS[@]}" "$pgbin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
	PG_DATA=$PG_DIR/data

	# A free loopback port: probe candidates with bash's /dev/tcp.
	PG_PORT=""
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PG_PORT=$p; break; fi
	done
	[[ -n $PG_PORT ]] || die "no free port for postgres"

	# Durability is PostgreSQL's default (fsync=on, synchronous_commit=on,
	# full_page_writes=on), stated explicitly; only memory and checkpoint
	# spacing are raised.
	local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR"
	opts+=" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
	opts+=" -c shared_buffers=$PG_SHARED_BUFFERS -c max_wal_size=4GB -c maintenance_work_mem=512MB -c max_connections=${PG_MAX_CONNECTIONS:-50}"
	"${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -o "$opts" -w -t 60 start >/dev/null ||
		{ cat "$PG_DIR/postgres.log" >&2; die "postgres did not start"; }
	log "postgres: listening on 127.0.0.1:$PG_PORT and $PG_DIR/.s.PGSQL.$PG_PORT (pid $(head -1 "$PG_DATA/postmaster.pid"))"
	PG_INFO="PostgreSQL $PG_VERSION: fsync=on, synchronous_commit=on, full_page_writes=on (the defaults), shared_buffers=$PG_SHARED_BUFFERS, max_wal_size=4GB; TCP 127.0.0.1; ${PG_INFO_TABLES:-}"
}

