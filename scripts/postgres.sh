#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `scripts/postgres.sh start` installs the server
# from Debian's packages if it is missing, creates a cluster in a temporary folder, starts it on
# 127.0.0.1 and prints its SQLAlchemy URL (also written to .services/postgres.url);
# `scripts/postgres.sh stop` stops it and removes the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.services/postgres
port=${GLUCOSESTREAM_TEST_POSTGRES_PORT:-54329}

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if [ -z "$(bin_dir)" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL server not installed; run: sudo apt-get install -y postgresql" >&2
      exit 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  local bin; bin=$(bin_dir)
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"
  local data; data=$(mktemp -d /tmp/glucosestream-pg-XXXXXX)
  echo "$data" > "$state/data_dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  as_owner "$bin/initdb" -D "$data/cluster" -U postgres --auth=trust -E UTF8 >/dev/null
  as_owner "$bin/pg_ctl" -D "$data/cluster" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null
  local url="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  echo "$url" > "$state/../postgres.url"
  echo "$url"
}

stop() {
  [ -f "$state/data_dir" ] || return 0
  local data; data=$(cat "$state/data_dir")
  local bin; bin=$(bin_dir)
  if [ -d "$data/cluster" ]; then
    as_owner "$bin/pg_ctl" -D "$data/cluster" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data" "$state" .services/postgres.url
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
