# A throwaway PostgreSQL server for the tests: initdb in a temp dir as the `postgres` user
# (initdb refuses to run as root), listening on 127.0.0.1 and a Unix socket in that dir.
# Sourced by .ci/run; also usable by hand: `source .ci/postgres.sh; start_postgres`.

start_postgres() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    PG_DIR="$(mktemp -d /tmp/tracker-pg.XXXXXX)"
    chown postgres "$PG_DIR"
    local run=(runuser -u postgres --)
    [ "$(id -u)" = 0 ] || run=()
    "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust >"$PG_DIR/initdb.log" 2>&1
    # A free port: PostgreSQL refuses to start on a taken one.
    PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # fsync off: the tests crash clients, not the server; max_connections for the races of 100.
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -o \
        "-k $PG_DIR -p $PG_PORT -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    export TRACKER_TEST_PG="postgres://postgres@localhost:$PG_PORT/postgres?host=$PG_DIR"
    export PG_BIN="$bin" PG_DIR PG_PORT
    echo "PostgreSQL on port $PG_PORT (socket in $PG_DIR): TRACKER_TEST_PG=$TRACKER_TEST_PG"
}

stop_postgres() {
    [ -n "${PG_DIR:-}" ] || return 0
    local run=(runuser -u postgres --)
    [ "$(id -u)" = 0 ] || run=()
    "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
