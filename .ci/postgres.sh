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
    # TLS with a certificate for "localhost" signed by a CA of its own, root.crt (the tests verify
    # it with verify-ca and verify-full), and one role that must give a password over TCP (the
    # tests give it through PGPASSWORD and a pgpass file); everyone else is trusted on this
    # throwaway server.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tracker test CA" \
        -keyout "$PG_DIR/root.key" -out "$PG_DIR/root.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$PG_DIR/server.key" -out "$PG_DIR/server.csr" >/dev/null 2>&1
    printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=CA:FALSE" >"$PG_DIR/server.ext"
    openssl x509 -req -in "$PG_DIR/server.csr" -CA "$PG_DIR/root.crt" -CAkey "$PG_DIR/root.key" \
        -CAcreateserial -days 2 -extfile "$PG_DIR/server.ext" -out "$PG_DIR/server.crt" >/dev/null 2>&1
    chown postgres "$PG_DIR/server.key" "$PG_DIR/server.crt"
    chmod 600 "$PG_DIR/server.key"
    printf '%s\n' "local all all trust" \
        "host all tracker_pw 127.0.0.1/32 scram-sha-256" \
        "host all all 127.0.0.1/32 trust" "host all all ::1/128 trust" >"$PG_DIR/data/pg_hba.conf"
    # A free port: PostgreSQL refuses to start on a taken one.
    PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # fsync off: the tests crash clients, not the server; max_connections for the races of 100.
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -o \
        "-k $PG_DIR -p $PG_PORT -c listen_addresses=localhost -c fsync=off -c max_connections=300 -c ssl=on -c ssl_cert_file=$PG_DIR/server.crt -c ssl_key_file=$PG_DIR/server.key" start >/dev/null
    "$bin/psql" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
        -c "CREATE ROLE tracker_pw LOGIN PASSWORD 'pw-s3cret'" -c "CREATE DATABASE tracker_pw OWNER tracker_pw" \
        -c "CREATE ROLE tracker_nocreate LOGIN" -c "CREATE DATABASE tracker_nocreate" >/dev/null
    "$bin/psql" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d tracker_nocreate \
        -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC" >/dev/null
    export TRACKER_TEST_PG="postgres://postgres@localhost:$PG_PORT/postgres?host=$PG_DIR"
    export TRACKER_TEST_PG_PORT="$PG_PORT" TRACKER_TEST_PG_DIR="$PG_DIR"
    # A role that may connect but not create tables (as on PostgreSQL 15's public schema), in a
    # database of its own that no other test writes: `init` must say which right it lacks.
    export TRACKER_TEST_PG_NOCREATE="postgres://tracker_nocreate@localhost:$PG_PORT/tracker_nocreate?host=$PG_DIR"
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
