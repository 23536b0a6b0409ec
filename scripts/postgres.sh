#!/usr/bin/env bash
# postgres.sh start|stop|status — a throwaway PostgreSQL cluster for development
# and tests, under <repo>/.dev/postgres, listening on 127.0.0.1:${HUIFANG_PG_PORT:-9432}
# (below the kernel's ephemeral ports, which any listener on port 0 may take, and
# below the ports pkg/ports hands to test processes)
# with trust authentication for the user postgres.
#
#   start   initialises the cluster when needed and starts it (idempotent); prints
#           only the connection URL on stdout, everything else goes to stderr
#   stop    stops it (fast mode); the data stays for the next start
#   status  says whether it runs; exit 0 when it does, 3 when it does not
#
# HUIFANG_PG_SHARED_BUFFERS and HUIFANG_PG_MAX_WAL_SIZE override two settings
# (see start); they take effect when the cluster starts.
set -euo pipefail

port="${HUIFANG_PG_PORT:-9432}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# bindir finds the newest installed PostgreSQL, installing it when there is none.
bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then
    echo "$dir"
    return
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    die "no PostgreSQL found in /usr/lib/postgresql/*/bin; install it (sudo apt-get install -y postgresql) or run this script as root"
  fi
  log "no PostgreSQL found; installing it with apt-get"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$dir" && -x "$dir/pg_ctl" ]] || die "PostgreSQL installed but pg_ctl not found under /usr/lib/postgresql"
  echo "$dir"
}

# as_owner runs a command as the cluster's owner: postgres when we are root
# (initdb refuses root), ourselves otherwise.
as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# datadir picks the cluster's folder: <repo>/.dev/postgres, or, when we are
# root and the user postgres cannot reach that folder, one under /tmp.
datadir() {
  local dir="$repo/.dev/postgres"
  if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the cluster (initdb refuses root)"
    mkdir -p "$repo/.dev"
    if ! runuser -u postgres -- test -x "$repo/.dev"; then
      dir="/tmp/huifang-postgres-${port}"
    fi
  fi
  echo "$dir"
}

# shared_buffers prints a quarter of the machine's memory, from 128 MB to 2 GB.
shared_buffers() {
  local kb
  kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || true)"
  local mb=$(( ${kb:-0} / 4096 ))
  (( mb < 128 )) && mb=128
  (( mb > 2048 )) && mb=2048
  echo "${mb}MB"
}

running() {
  local bin="$1" data="$2"
  [[ -f "$data/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
  local bin data
  bin="$(bindir)"
  data="$(datadir)"
  if running "$bin" "$data"; then
    log "already running in $data"
    echo "$url"
    return
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising a cluster in $data"
    mkdir -p "$data"
    if [[ "$(id -u)" -eq 0 ]]; then
      chown postgres: "$data"
    fi
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-instructions >&2
  fi
  local opts="-p $port -k $data -c listen_addresses=127.0.0.1"
  # Sized for bulk work (docs/scaling.md, "Postgres settings"): shared_buffers a
  # quarter of the memory, from 128 MB to 2 GB, and max_wal_size 4 GB, so that an
  # import of a large archive is not checkpointed every gigabyte of WAL.
  opts="$opts -c shared_buffers=${HUIFANG_PG_SHARED_BUFFERS:-$(shared_buffers)}"
  opts="$opts -c max_wal_size=${HUIFANG_PG_MAX_WAL_SIZE:-4GB}"
  # pg_stat_statements, when installed, lets make bench count statements per event.
  if [[ -f "$(dirname "$bin")/lib/pg_stat_statements.so" ]]; then
    opts="$opts -c shared_preload_libraries=pg_stat_statements"
  fi
  log "starting on 127.0.0.1:$port (log: $data/server.log)"
  as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" \
    -o "$opts" -w start >&2 \
    || die "PostgreSQL did not start; see $data/server.log"
  echo "$url"
}

stop() {
  local bin data
  bin="$(bindir)"
  data="$(datadir)"
  if ! running "$bin" "$data"; then
    log "not running"
    return
  fi
  as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
}

status() {
  local bin data
  bin="$(bindir)"
  data="$(datadir)"
  if running "$bin" "$data"; then
    log "running in $data: $url"
    return 0
  fi
  log "not running ($data)"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
