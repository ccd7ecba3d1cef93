# shellcheck shell=bash
# What bench/api.sh and bench/dashboard.sh share: the private stack in BENCH_DIR, the
# migrations, the `conversa seed --scale` data (kept between runs), API tokens, and a
# `conversa serve` on a free port. Sourced, not run; messages are prefixed with
# BENCH_NAME (default: the script's file name).
#
# Sets ROOT (and cd's there), CONVERSA_BIN and STALL_PROBE (absolute), BENCH_DIR,
# RESULTS_DIR and SCALE_ARGS; bench_stack_up sets DATABASE_URL, REDIS_URL, PG_PORT and ENCRYPTION_KEY;
# start_conversa sets port and conv_pid.

BENCH_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit
CONVERSA_BIN=${CONVERSA_BIN:-build/release/conversa}
[[ "$CONVERSA_BIN" == /* ]] || CONVERSA_BIN=$ROOT/$CONVERSA_BIN
BENCH_DIR=${BENCH_DIR:-$ROOT/.data/bench}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
SCALE_ARGS=${SCALE_ARGS:-}
STALL_PROBE=${STALL_PROBE:-build/release/bench/stall-probe}
[[ "$STALL_PROBE" == /* ]] || STALL_PROBE=$ROOT/$STALL_PROBE
BENCH_NAME=${BENCH_NAME:-$(basename "$0")}
# a folder of the script's own, removed on exit when set
BENCH_TMP=${BENCH_TMP:-}

note() { echo "$BENCH_NAME: $*" >&2; }

# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"

# bench_help "$@": with -h or --help, prints the script's header comment and exits.
bench_help() {
  if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,/^[^#]/p' "$BENCH_SCRIPT" | sed -n 's/^# \{0,1\}//p'
    exit 0
  fi
}
die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

conv_pid=""
port=""
nginx_pid_file=""
stall_pid=""
bench_cleanup() {
  local rc=$?
  [[ -n "$conv_pid" ]] && kill "$conv_pid" 2>/dev/null && wait "$conv_pid" 2>/dev/null
  [[ -n "$stall_pid" ]] && kill "$stall_pid" 2>/dev/null
  [[ -n "$nginx_pid_file" && -s "$nginx_pid_file" ]] && kill "$(<"$nginx_pid_file")" 2>/dev/null
  scripts/stack.sh stop "$BENCH_DIR/stack" >/dev/null 2>&1 || true
  [[ -n "$BENCH_TMP" ]] && rm -rf "$BENCH_TMP"
  exit "$rc"
}

# The private PostgreSQL + Redis of BENCH_DIR, stopped on exit.
bench_stack_up() {
  mkdir -p "$BENCH_DIR" "$RESULTS_DIR"
  chmod 0755 "$BENCH_DIR"
  trap bench_cleanup EXIT
  scripts/stack.sh start "$BENCH_DIR/stack" --pg-port 0 --redis-port 0 >/dev/null
  # shellcheck disable=SC1091
  . "$BENCH_DIR/stack/env"
  export DATABASE_URL REDIS_URL
  export ENCRYPTION_KEY=${ENCRYPTION_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  bench_clear_jobs
}

# Every bench starts with an empty job table. The stack is shared by the benches, and
# work one of them leaves queued (bench/webhooks.sh leaves the backlog its drains did
# not finish) would otherwise be applied by the next one's `conversa serve`, on the
# same two cores as the load it measures; the completed jobs would weigh on its
# queue's plans. Nothing in this private database is kept.
bench_clear_jobs() {
  local left
  # a new database has no jobs table before its first `migrate up`
  [[ $(psql_q "SELECT to_regclass('jobs') IS NOT NULL") == t ]] || return 0
  left=$(psql_q "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
  [[ "$left" == 0 ]] || note "dropping $left queued jobs an earlier run left"
  psql_q "TRUNCATE jobs" >/dev/null
  psql_q "ANALYZE jobs" >/dev/null
}

# bench_settle: writes out what the setup dirtied before anything is measured. A
# bench's setup deletes what the previous run left (a re-created company takes its
# messages, conversations and notifications with it: 80,000 rows and more after a
# webhook bench) and bulk-loads its own data; left to itself PostgreSQL writes those
# pages and recycles that WAL at its next checkpoint, in the middle of the load being
# measured, where the flushes queue in front of every commit's. The workload's own
# checkpoints (every 5 minutes, spread over 90 % of that) are not what this removes.
bench_settle() {
  psql_su "CHECKPOINT" >/dev/null
}

# field NAME LINE: the value of NAME=... in a RESULT (wrk) or STALLS (stall probe) line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

psql_q() { psql -X -qtA -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }
psql_su() { psql -X -qtA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d conversa -c "$1"; }

# Migrations, then the scale data (`seed --scale` does nothing when it is already there).
bench_data_up() {
  local t0
  "$CONVERSA_BIN" migrate up >/dev/null 2>&1 || die "migrate failed"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$CONVERSA_BIN" seed --scale $SCALE_ARGS
  note "data ready in $(($(date +%s) - t0)) s"
}

# new_tokens N: N API tokens, one a line, as `conversa token create` makes them: cv_ +
# base64url (no padding) of 32 random bytes. api_tokens.token_hash is the SHA-256 of
# the token's text; in SQL: sha256(convert_to('cv_...', 'UTF8')).
new_tokens() {
  head -c $((32 * $1)) /dev/urandom | od -An -v -tx1 -w32 | tr -d ' ' | awk '
    BEGIN {
      b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      for (i = 0; i < 16; i++) hex[substr("0123456789abcdef", i + 1, 1)] = i
    }
    function byte(k) { return hex[substr($0, 2 * k + 1, 1)] * 16 + hex[substr($0, 2 * k + 2, 1)] }
    {
      n = length($0) / 2
      out = "cv_"
      for (i = 0; i < n; i += 3) {
        v = byte(i) * 65536 + (i + 1 < n ? byte(i + 1) * 256 : 0) + (i + 2 < n ? byte(i + 2) : 0)
        out = out substr(b64, int(v / 262144) + 1, 1) substr(b64, int(v / 4096) % 64 + 1, 1)
        if (i + 1 < n) out = out substr(b64, int(v / 64) % 64 + 1, 1)
        if (i + 2 < n) out = out substr(b64, v % 64 + 1, 1)
      }
      print out
    }'
}

# bench_company SLUG NAME PHONE_ID: re-creates a company of the bench's own (everything
# it owned goes with it) with an admin, and frees PHONE_ID from any other connection;
# sets company, admin and token (an API token of the admin's).
bench_company() {
  psql_q "DELETE FROM companies WHERE slug = '$1'" >/dev/null
  psql_q "UPDATE connections SET phone_number_id = NULL WHERE phone_number_id = '$3'" >/dev/null
  company=$(psql_q "INSERT INTO companies (slug, name) VALUES ('$1', '$2') RETURNING id")
  admin=$(psql_q "INSERT INTO users (company_id, email, name, role) VALUES ($company, 'admin@$1.test', 'Admin', 'admin') RETURNING id")
  token=$(new_tokens 1)
  psql_q "INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind)
          VALUES ($company, $admin, sha256(convert_to('$token', 'UTF8')), '$1', 'api')" >/dev/null
}

# A port nobody answers on, below the kernel's ephemeral range (32768-).
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break
  done
  echo "$p"
}

# start_conversa LOG [NAME=VALUE...]: `conversa serve` on a free port (in $port), with
# the extra environment given, logging to LOG; returns once it answers. The rate
# limiter runs with limits no load generator here reaches (bench/run.sh measures its cost).
start_conversa() {
  local log=$1 up=0 high=100000000/60/60
  shift
  port=$(free_port)
  env HOST=127.0.0.1 PORT="$port" ACCESS_LOG=off LOG_LEVEL=warn RATE_LIMIT_PUBLIC=$high RATE_LIMIT_TOKEN=$high \
    RATE_LIMIT_IP=$high RATE_LIMIT_WEBHOOKS=$high "$@" "$CONVERSA_BIN" serve >"$log" 2>&1 &
  conv_pid=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/api/health/live" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$conv_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ $up == 1 ]] || { tail -n 5 "$log" >&2; die "conversa did not start"; }
}

# bench_nginx_up: the reference of bench/nginx.sh, run from BENCH_TMP and stopped on
# exit; sets nginx_url. Under the same load as conversa, its latency is what this
# machine gives a server that does no work at all.
bench_nginx_up() {
  local p
  [[ -n "$BENCH_TMP" ]] || die "bench_nginx_up needs BENCH_TMP"
  command -v nginx >/dev/null || die "nginx not found; run: scripts/deps.sh --install bench"
  p=$(free_port)
  nginx_pid_file=$BENCH_TMP/nginx.pid
  nginx_start "$BENCH_TMP" "$p" ||
    { cat "$BENCH_TMP/nginx-start.log" "$BENCH_TMP/nginx-error.log" >&2 2>/dev/null; die "nginx did not start"; }
  # shellcheck disable=SC2034 # for the bench that sourced this
  nginx_url="http://127.0.0.1:$p/static"
}

# stall_probe_check: dies unless STALL_PROBE was built (call it before any setup).
# stall_probe_start: bench/stall_probe.c in the background until stall_probe_stop,
# which sets stall_line to its STALLS line: how long this machine kept a sleeping
# thread from running meanwhile. Needs BENCH_TMP. Not to be called in a subshell
# ($(...)): only this shell can wait for the probe to write its line.
# stall_json LINE: a STALLS line as the JSON object the benches write.
stall_probe_check() {
  [[ -x "$STALL_PROBE" ]] || die "$STALL_PROBE not found; run: make build/release/bench/stall-probe"
}
stall_probe_start() {
  "$STALL_PROBE" >"$BENCH_TMP/stalls.txt" &
  stall_pid=$!
}
stall_probe_stop() {
  kill -INT "$stall_pid" 2>/dev/null || true
  wait "$stall_pid" 2>/dev/null || true
  stall_pid=""
  # shellcheck disable=SC2034 # for the bench that sourced this
  stall_line=$(grep '^STALLS' "$BENCH_TMP/stalls.txt") || die "stall-probe printed no STALLS line"
}
stall_json() {
  printf '{"samples":%s,"over4":%s,"over10":%s,"p99_ms":%s,"max_ms":%s,"period_ms":%s}' "$(field samples "$1")" \
    "$(field over4 "$1")" "$(field over10 "$1")" "$(field p99 "$1")" "$(field max "$1")" "$(field period "$1")"
}

# Stops the server start_conversa started (SIGTERM: it finishes in-flight requests).
stop_conversa() {
  [[ -n "$conv_pid" ]] || return 0
  kill "$conv_pid" 2>/dev/null || true
  wait "$conv_pid" 2>/dev/null || true
  conv_pid=""
}
