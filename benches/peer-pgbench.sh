#!/usr/bin/env bash
# pgbench beside the tracker on PostgreSQL: the same design as a tracker drain in raw SQL
# (benches/pgbench-same-design.sql), so the tracker's rates have an anchor from the same server.
# Usage: peer-pgbench.sh URL init [ITEMS]               tables with ITEMS open items (100000)
#        peer-pgbench.sh URL run CLIENTS SECONDS [-C]   prints transactions/s (-C: a new
#                                                       connection per transaction)
#        peer-pgbench.sh URL                            both, 8 clients, 10 s each way
# URL is a libpq connection URI; add ?options=-csearch_path%3DSCHEMA to keep to one schema.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pgbench=${PGBENCH:-${bin:+$bin/}pgbench}
url=$1; shift
init() { psql -q -X -v ON_ERROR_STOP=1 -v items="${1:-100000}" -f "$here/pgbench-init.sql" "$url" >/dev/null; }
run() {
    local out
    out=$("$pgbench" -n -D phase=0 -c "$1" -j "$1" -T "$2" ${3:+"$3"} -f "$here/pgbench-same-design.sql" "$url" 2>&1) \
        || { echo "$out" >&2; exit 1; }
    # Under -C pgbench counts the reconnections in (each transaction pays its connection).
    echo "$out" | sed -n 's/^tps = \([0-9.]*\) (.*)$/\1/p' | head -1
}
case ${1:-all} in
  init) init "${2:-}" ;;
  run) run "$2" "$3" "${4:-}" ;;
  all) init 100000; echo "8 clients, new connection per transaction (-C): $(run 8 10 -C) tx/s"
       init 100000; echo "8 clients, persistent connections: $(run 8 10) tx/s" ;;
esac
