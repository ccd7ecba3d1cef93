#!/usr/bin/env bash
# Private PostgreSQL 15 and Redis 7 servers kept in one data folder, so that
# development, tests and benchmarks never depend on (or disturb) system services.
set -euo pipefail

# Debian's own binaries: /usr/local/bin may hold a different pg_ctl wrapper.
PGBIN=/usr/lib/postgresql/15/bin
PG_WAIT_SECS=30
REDIS_WAIT_TICKS=100 # 0.1 s each
DEFAULT_PG_PORT=5433
DEFAULT_REDIS_PORT=6380

usage() {
  cat <<'EOF'
Usage: scripts/stack.sh COMMAND DIR [options]

Runs private PostgreSQL 15 and Redis servers whose data, sockets, logs and
pid files all live in DIR, listening on 127.0.0.1 only.

Commands:
  start DIR [--pg-port N] [--redis-port N]
                    create (if needed) and start both servers. Ports default
                    to 5433 and 6380; 0 picks a free port. Once DIR/env exists
                    its recorded ports are reused, and servers already running
                    are left alone.
  stop DIR          stop both servers (fine when they are not running)
  status DIR        show each server's state; exit 0 when both run, else 3
  pg-start DIR      start PostgreSQL again on its recorded port
  pg-stop DIR       stop PostgreSQL
  pg-freeze DIR     stop (SIGSTOP) every PostgreSQL process: the server hangs
                    with its connections open, as on a stalled network
  pg-thaw DIR       resume (SIGCONT) them
  redis-start DIR   start Redis again on its recorded port
  redis-stop DIR    stop Redis
  redis-freeze DIR  stop (SIGSTOP) Redis: it hangs with its connections open
  redis-thaw DIR    resume (SIGCONT) it
  env DIR           print DIR/env: PG_PORT, REDIS_PORT, DATABASE_URL, REDIS_URL

The database is "conversa", owned by the role "conversa" (LOGIN CREATEDB);
authentication is trust, so DATABASE_URL carries no password.
When run as root, PostgreSQL runs as the "postgres" system user, which must
be able to reach DIR.

Example:
  scripts/stack.sh start .data/stack
  set -a; . .data/stack/env; set +a
EOF
}

die() {
  echo "stack.sh: $*" >&2
  exit 1
}

note() {
  echo "stack.sh: $*" >&2
}

# Show the end of a server log so a failure explains itself.
show_log() {
  if [[ -s "$1" ]]; then
    echo "--- last lines of $1 ---" >&2
    tail -n 30 "$1" >&2
    echo "---" >&2
  fi
}

# A port is taken when something accepts a TCP connection on it.
port_in_use() {
  (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Pick an unused port from a random start; $1 is a port to avoid (chosen
# earlier in this run but not listening yet).
pick_free_port() {
  local avoid=${1:-0} start p i
  # below the kernel's ephemeral range (32768-): no outgoing connection takes it meanwhile
  start=$((20000 + RANDOM % 12000))
  for ((i = 0; i < 500; i++)); do
    p=$((start + i))
    if [[ $p -ne $avoid ]] && ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "found no free port between $start and $((start + 499))"
}

env_get() {
  [[ -f "$DIR/env" ]] || return 0
  sed -n "s/^$1=//p" "$DIR/env" | tail -n 1
}

write_env() {
  local pg_port=$1 redis_port=$2
  cat >"$DIR/env.tmp" <<EOF
PG_PORT=$pg_port
REDIS_PORT=$redis_port
DATABASE_URL=postgresql://conversa@127.0.0.1:$pg_port/conversa
REDIS_URL=redis://127.0.0.1:$redis_port
EOF
  mv -f "$DIR/env.tmp" "$DIR/env"
}

recorded_port() {
  local port
  port=$(env_get "$1")
  [[ -n "$port" ]] || die "no $1 in $DIR/env; run: scripts/stack.sh start $DIR"
  echo "$port"
}

# True when /proc says process $1 is still running and its command line
# mentions $2 (guards against a stale pid file naming a recycled pid).
proc_matches() {
  [[ -r "/proc/$1/cmdline" ]] && grep -qa -- "$2" "/proc/$1/cmdline"
}

# A daemon that has exited but is not reaped yet (its parent is init) still
# answers kill -0; count it as gone.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n "$state" && "$state" != Z ]]
}

wait_gone() {
  local pid=$1 ticks=$2 i
  for ((i = 0; i < ticks; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  ! alive "$pid"
}

# ---------------------------------------------------------------- PostgreSQL

# PostgreSQL refuses to run as root, so root hands its binaries to the
# postgres system user; cd / keeps them from failing on an unreadable cwd.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_prepare_dirs() {
  [[ -x "$PGBIN/postgres" ]] ||
    die "PostgreSQL 15 is not installed in $PGBIN; run: scripts/deps.sh --install servers"
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 ||
      die "there is no 'postgres' system user; run: scripts/deps.sh --install servers"
    runuser -u postgres -- test -x "$DIR" ||
      die "the postgres user cannot reach $DIR (a parent folder is not searchable by it, e.g. a 0700 home); use a data folder it can reach, such as one under /tmp, or give the parents o+x"
  fi
  mkdir -p "$DIR/pg" "$DIR/pg-sock"
  touch "$DIR/pg.log"
  if [[ $EUID -eq 0 && $(stat -c %U "$DIR/pg") != postgres ]]; then
    chown -R postgres:postgres "$DIR/pg"
  fi
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$DIR/pg-sock" "$DIR/pg.log"
  fi
  chmod 0700 "$DIR/pg"
}

pg_is_running() {
  [[ -d "$DIR/pg" ]] || return 1
  as_pg "$PGBIN/pg_ctl" status -D "$DIR/pg" >/dev/null 2>&1
}

psql_admin() {
  psql_admin_db "$1" postgres "$2"
}

# As the superuser, in database $2.
psql_admin_db() {
  PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
    -p "$1" -U postgres -d "$2" -Atc "$3"
}

pg_ensure_db() {
  local port=$1
  if [[ $(psql_admin "$port" "SELECT 1 FROM pg_roles WHERE rolname = 'conversa'") != 1 ]]; then
    psql_admin "$port" "CREATE ROLE conversa LOGIN CREATEDB"
  fi
  if [[ $(psql_admin "$port" "SELECT 1 FROM pg_database WHERE datname = 'conversa'") != 1 ]]; then
    psql_admin "$port" "CREATE DATABASE conversa OWNER conversa"
  fi
  # Per-query figures for the benchmark (make bench reads pg_stat_statements).
  psql_admin_db "$port" conversa "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
}

pg_start() {
  local port
  port=$(recorded_port PG_PORT)
  [[ "$DIR" != *"'"* ]] || die "DIR must not contain a single quote: $DIR"
  pg_prepare_dirs
  if [[ ! -f "$DIR/pg/PG_VERSION" ]]; then
    if ! as_pg "$PGBIN/initdb" -D "$DIR/pg" --auth=trust --username=postgres \
      -E UTF8 --locale=C >>"$DIR/pg.log" 2>&1; then
      show_log "$DIR/pg.log"
      die "initdb failed for $DIR/pg"
    fi
  fi
  if pg_is_running; then
    echo "postgresql: already running on 127.0.0.1:$port"
  else
    if port_in_use "$port"; then
      die "port $port is taken by another process; free it or remove $DIR/env and start with --pg-port 0"
    fi
    # autovacuum every 5 s: the jobs table is a queue, all churn (see docs/architecture.md)
    if ! as_pg "$PGBIN/pg_ctl" start -w -t "$PG_WAIT_SECS" -D "$DIR/pg" -l "$DIR/pg.log" \
      -o "-p $port -c listen_addresses=127.0.0.1 -k '$DIR/pg-sock' -c max_connections=200 -c shared_buffers=128MB -c fsync=on -c autovacuum_naptime=5s -c shared_preload_libraries=pg_stat_statements" \
      >/dev/null; then
      show_log "$DIR/pg.log"
      die "PostgreSQL did not start within ${PG_WAIT_SECS}s (log: $DIR/pg.log)"
    fi
    echo "postgresql: started on 127.0.0.1:$port"
  fi
  pg_ensure_db "$port"
}

pg_stop() {
  if ! pg_is_running; then
    echo "postgresql: not running"
    return 0
  fi
  if ! as_pg "$PGBIN/pg_ctl" stop -D "$DIR/pg" -m fast -w -t "$PG_WAIT_SECS" >/dev/null; then
    show_log "$DIR/pg.log"
    die "PostgreSQL did not stop within ${PG_WAIT_SECS}s"
  fi
  echo "postgresql: stopped"
}

# The postmaster and all its children: a frozen server keeps every socket open
# and answers nothing, which is what a stalled network looks like to a client.
pg_signal_all() {
  local sig=$1 pid
  [[ -f "$DIR/pg/postmaster.pid" ]] || die "PostgreSQL is not running"
  pid=$(head -n 1 "$DIR/pg/postmaster.pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || die "bad postmaster.pid"
  if [[ "$sig" == STOP ]]; then
    kill -STOP "$pid"
    pkill -STOP -P "$pid" || true
  else
    pkill -CONT -P "$pid" || true
    kill -CONT "$pid"
  fi
  echo "postgresql: SIG$sig sent"
}

# --------------------------------------------------------------------- Redis

redis_pid() {
  local pid
  [[ -f "$DIR/redis.pid" ]] || return 1
  pid=$(<"$DIR/redis.pid")
  [[ "$pid" =~ ^[0-9]+$ ]] && proc_matches "$pid" redis-server || return 1
  echo "$pid"
}

redis_wait_pong() {
  local port=$1 i out
  for ((i = 0; i < REDIS_WAIT_TICKS; i++)); do
    out=$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)
    [[ "$out" == PONG ]] && return 0
    sleep 0.1
  done
  return 1
}

redis_signal() {
  local pid
  pid=$(redis_pid) || die "Redis is not running"
  kill -s "$1" "$pid"
}

redis_start() {
  local port
  port=$(recorded_port REDIS_PORT)
  command -v redis-server >/dev/null ||
    die "redis-server is not installed; run: scripts/deps.sh --install servers"
  mkdir -p "$DIR/redis"
  if redis_pid >/dev/null; then
    redis_wait_pong "$port" || die "Redis (pid $(redis_pid)) runs but does not answer on port $port"
    echo "redis: already running on 127.0.0.1:$port"
    return 0
  fi
  if port_in_use "$port"; then
    die "port $port is taken by another process; free it or remove $DIR/env and start with --redis-port 0"
  fi
  rm -f "$DIR/redis.pid"
  if ! redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/redis" \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" \
    --save "" --appendonly no; then
    show_log "$DIR/redis.log"
    die "redis-server failed to start"
  fi
  if ! redis_wait_pong "$port"; then
    show_log "$DIR/redis.log"
    die "Redis did not answer PING on port $port within $((REDIS_WAIT_TICKS / 10))s"
  fi
  echo "redis: started on 127.0.0.1:$port"
}

redis_stop() {
  local pid port
  if ! pid=$(redis_pid); then
    rm -f "$DIR/redis.pid"
    echo "redis: not running"
    return 0
  fi
  port=$(env_get REDIS_PORT)
  # Ask politely first; fall back to signals from the pid file.
  if [[ -n "$port" ]]; then
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  fi
  if ! wait_gone "$pid" 50; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 50; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 20 || die "Redis (pid $pid) would not stop"
    fi
  fi
  rm -f "$DIR/redis.pid"
  echo "redis: stopped"
}

# ------------------------------------------------------------------ commands

cmd_start() {
  local pg_port=$1 redis_port=$2 rec
  rec=$(env_get PG_PORT)
  if [[ -n "$rec" ]]; then
    if [[ "$pg_port" != "" && "$pg_port" != 0 && "$pg_port" != "$rec" ]]; then
      note "keeping PostgreSQL port $rec recorded in $DIR/env (not $pg_port)"
    fi
    pg_port=$rec
  fi
  rec=$(env_get REDIS_PORT)
  if [[ -n "$rec" ]]; then
    if [[ "$redis_port" != "" && "$redis_port" != 0 && "$redis_port" != "$rec" ]]; then
      note "keeping Redis port $rec recorded in $DIR/env (not $redis_port)"
    fi
    redis_port=$rec
  fi
  pg_port=${pg_port:-$DEFAULT_PG_PORT}
  redis_port=${redis_port:-$DEFAULT_REDIS_PORT}
  if [[ "$pg_port" == 0 ]]; then
    pg_port=$(pick_free_port "$redis_port")
  fi
  if [[ "$redis_port" == 0 ]]; then
    redis_port=$(pick_free_port "$pg_port")
  fi
  [[ "$pg_port" != "$redis_port" ]] || die "PostgreSQL and Redis cannot share port $pg_port"
  write_env "$pg_port" "$redis_port"
  pg_start
  redis_start
}

cmd_status() {
  local rc=0 pid
  if pg_is_running; then
    echo "postgresql: running on 127.0.0.1:$(env_get PG_PORT) (data $DIR/pg)"
  else
    echo "postgresql: stopped"
    rc=3
  fi
  if pid=$(redis_pid); then
    echo "redis: running on 127.0.0.1:$(env_get REDIS_PORT) (pid $pid)"
  else
    echo "redis: stopped"
    rc=3
  fi
  return "$rc"
}

check_port_arg() {
  [[ "$2" =~ ^[0-9]+$ && "$2" -le 65535 ]] || die "$1 needs a port number (0 = pick a free one), got '$2'"
}

main() {
  local cmd dir pg_port="" redis_port=""
  case "${1:-}" in
    "" | -h | --help | help) usage; exit 0 ;;
  esac
  cmd=$1
  shift
  case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "" | -*) die "$cmd needs a DIR (see --help)" ;;
  esac
  dir=$1
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --pg-port | --redis-port)
        [[ "$cmd" == start ]] || die "$1 only applies to start"
        [[ $# -ge 2 ]] || die "$1 needs a value"
        check_port_arg "$1" "$2"
        if [[ "$1" == --pg-port ]]; then pg_port=$2; else redis_port=$2; fi
        shift 2
        ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
  done

  case "$cmd" in
    start) mkdir -p "$dir" ;;
    stop | status | pg-stop | redis-stop | pg-freeze | pg-thaw | redis-freeze | redis-thaw)
      if [[ ! -d "$dir" ]]; then
        echo "nothing in $dir: not running"
        [[ "$cmd" == status ]] && exit 3
        exit 0
      fi
      ;;
    pg-start | redis-start | env)
      [[ -f "$dir/env" ]] || die "$dir/env not found; run: scripts/stack.sh start $dir"
      ;;
    *) die "unknown command: $cmd (see --help)" ;;
  esac
  DIR=$(cd "$dir" && pwd -P)

  case "$cmd" in
    start) cmd_start "$pg_port" "$redis_port" ;;
    stop)
      # Stop both even when the first one fails.
      local rc=0
      (pg_stop) || rc=1
      (redis_stop) || rc=1
      return "$rc"
      ;;
    status) cmd_status ;;
    pg-start) pg_start ;;
    pg-freeze) pg_signal_all STOP ;;
    pg-thaw) pg_signal_all CONT ;;
    pg-stop) pg_stop ;;
    redis-start) redis_start ;;
    redis-stop) redis_stop ;;
    redis-freeze) redis_signal STOP ;;
    redis-thaw) redis_signal CONT ;;
    env) cat "$DIR/env" ;;
  esac
}

main "$@"
