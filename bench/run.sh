#!/usr/bin/env bash
# Throughput and latency of conversa's cheapest endpoints, measured next to a
# private nginx serving a fixed body on the same machine: the ratio to nginx
# stays comparable across machines where the raw numbers do not.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"

usage() {
  cat <<'EOF'
Usage: bench/run.sh

Starts a private PostgreSQL + Redis (scripts/stack.sh), runs migrations,
starts two `conversa serve`: one with the rate limiter on (every limit set
far above what wrk sends, so it counts every request in Redis and refuses
none) and one with RATE_LIMIT=off. Starts a private nginx answering a
15-byte JSON body, then runs wrk against, in order: nginx, /api/health/live,
/api/health, /api/v1/conversations/status of the demo admin (served from the
Redis cache), then that cached route again with the limiter off, on, off, on,
then nginx and the cached route in turn three times, and nginx again. The
mean of the first and last nginx runs is the table's reference; the
limiter's cost is the mean of its three "on" runs of the cached route
against the mean of its two "off" runs; the cached route's paired ratio is
the median of its three runs, each against the nginx run just before it
(the figure to compare on a machine whose speed drifts). Prints a table
and writes it as JSON to bench/results/<UTC timestamp>.json and
bench/results/latest.json.
Everything runs on 127.0.0.1 and is stopped and removed on exit.

Environment:
  CONVERSA_BIN     conversa binary (default: build/release/conversa)
  DURATION         wrk duration per run (default: 10s)
  CONNECTIONS      wrk connections (default: 64)
  WRK_THREADS      wrk threads (default: 1)
  RESULTS_DIR      where the JSON goes (default: bench/results)
  BENCH_ONLY_NGINX set to 1 to run only the nginx reference (no conversa,
                   no database); writes the timestamped JSON but leaves
                   latest.json alone

Needs: wrk, nginx-light, curl, postgresql-15, redis-server
(scripts/deps.sh --install bench servers test).
EOF
}

for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

CONVERSA_BIN=${CONVERSA_BIN:-$ROOT/build/release/conversa}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BENCH_ONLY_NGINX=${BENCH_ONLY_NGINX:-0}

die() {
  echo "run.sh: $*" >&2
  exit 1
}

note() {
  echo "run.sh: $*" >&2
}

show_log() {
  if [[ -s "$1" ]]; then
    echo "--- last lines of $1 ---" >&2
    tail -n 30 "$1" >&2
    echo "---" >&2
  fi
}

[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ "$WRK_THREADS" =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"
[[ "$CONNECTIONS" -ge "$WRK_THREADS" ]] || die "CONNECTIONS must be at least WRK_THREADS"

need=(wrk nginx curl awk)
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  need+=(redis-server redis-cli)
fi
for cmd in "${need[@]}"; do
  command -v "$cmd" >/dev/null ||
    die "$cmd not found; run: scripts/deps.sh --install bench servers test"
done
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  # The binary is run from the repository root (migrations live there), so
  # a relative CONVERSA_BIN is taken relative to where run.sh was started.
  if [[ "$CONVERSA_BIN" != /* ]]; then
    CONVERSA_BIN=$PWD/$CONVERSA_BIN
  fi
  [[ -x "$CONVERSA_BIN" ]] || die "no conversa binary at $CONVERSA_BIN; build it first or set CONVERSA_BIN"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/conversa-bench.XXXXXX")
# As root, stack.sh runs PostgreSQL as the postgres user, who must be able
# to enter this folder (mktemp makes it 0700).
chmod 0755 "$tmp"
conv_pid=""
off_pid=""

# A process that has exited but is not reaped yet (nginx's daemonized master
# belongs to init) still answers kill -0; count it as gone.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n "$state" && "$state" != Z ]]
}

# Stop whatever was started, whatever the exit path.
stop_pid() {
  local pid=$1 sig=$2 i
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$conv_pid" ]]; then
    stop_pid "$conv_pid" TERM
  fi
  if [[ -n "$off_pid" ]]; then
    stop_pid "$off_pid" TERM
  fi
  if [[ -s "$tmp/nginx.pid" ]]; then
    stop_pid "$(<"$tmp/nginx.pid")" TERM
  fi
  if [[ -d "$tmp/stack" ]]; then
    "$ROOT/scripts/stack.sh" stop "$tmp/stack" >/dev/null || rc=1
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nobody accepts connections on; $1 is one to avoid.
free_port() {
  local avoid=${1:-0} start p i
  start=$((20000 + RANDOM % 12000)) # below the kernel's ephemeral range (32768-)
  for ((i = 0; i < 500; i++)); do
    p=$((start + i))
    if [[ $p -ne $avoid ]] && ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "found no free port between $start and $((start + 499))"
}

# Poll URL every 0.1 s for at most $2 ticks; give up early if process $3 died.
wait_http() {
  local url=$1 ticks=$2 pid=${3:-} i
  for ((i = 0; i < ticks; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! alive "$pid"; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# Prints "rps p50_ms p99_ms bad_responses socket_errors" from wrk --latency.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); sockerr += v }
    }
    END {
      if (rps == "" || p50 == "" || p99 == "") exit 1
      printf "%.1f %.3f %.3f %d %d\n", rps, p50, p99, bad, sockerr
    }
  ' "$1"
}

# run_wrk NAME URL [HEADER]: prints the parsed figures; keeps wrk's own output in $tmp.
run_wrk() {
  local name=$1 url=$2 out figures bad sockerr
  local -a extra=()
  [[ -z "${3:-}" ]] || extra=(-H "$3")
  out="$tmp/wrk-$name.txt"
  note "wrk $url (${DURATION}, $CONNECTIONS connections, $WRK_THREADS threads)"
  if ! wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${extra[@]}" "$url" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk failed on $url"
  fi
  figures=$(parse_wrk "$out") || { cat "$out" >&2; die "could not read wrk's output for $url"; }
  read -r _ _ _ bad sockerr <<<"$figures"
  if [[ "$bad" -gt 0 || "$sockerr" -gt 0 ]]; then
    note "warning: $url gave $bad non-2xx/3xx responses and $sockerr socket errors"
  fi
  echo "$figures"
}

conv_port=0
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  "$ROOT/scripts/stack.sh" start "$tmp/stack" --pg-port 0 --redis-port 0 >/dev/null
  # shellcheck source=/dev/null
  . "$tmp/stack/env"

  if ! (cd "$ROOT" && DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL LOG_LEVEL=warn \
    "$CONVERSA_BIN" migrate up) >"$tmp/migrate.log" 2>&1; then
    show_log "$tmp/migrate.log"
    die "conversa migrate up failed"
  fi
  # The demo data and a token of its admin, for the cached read.
  if ! (cd "$ROOT" && DATABASE_URL=$DATABASE_URL LOG_LEVEL=warn "$CONVERSA_BIN" seed --demo) \
    >"$tmp/seed.log" 2>&1; then
    show_log "$tmp/seed.log"
    die "conversa seed --demo failed"
  fi
  bench_token=$(cd "$ROOT" && DATABASE_URL=$DATABASE_URL LOG_LEVEL=warn "$CONVERSA_BIN" token create \
    --company demo --user admin@demo.conversa.dev --name bench 2>"$tmp/token.log") ||
    { show_log "$tmp/token.log"; die "conversa token create failed"; }

  conv_port=$(free_port)
  cd "$ROOT"
  # A throw-away key: serve needs one, and nothing sealed with it outlives the run.
  bench_key=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # Limits wrk cannot reach in a run: the limiter does all its work and refuses nothing.
  high=100000000/60/60
  PORT=$conv_port DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL LOG_LEVEL=warn \
    RATE_LIMIT_PUBLIC=$high RATE_LIMIT_TOKEN=$high RATE_LIMIT_IP=$high RATE_LIMIT_WEBHOOKS=$high \
    ACCESS_LOG=off ENCRYPTION_KEY=$bench_key "$CONVERSA_BIN" serve >"$tmp/conversa.log" 2>&1 &
  conv_pid=$!
  # Stopped by pid in cleanup; disown keeps bash from reporting its end.
  disown "$conv_pid"
  off_port=$(free_port "$conv_port")
  PORT=$off_port DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL LOG_LEVEL=warn RATE_LIMIT=off \
    QUEUE_CONCURRENCY=0 SEND_CONCURRENCY=0 ACCESS_LOG=off ENCRYPTION_KEY=$bench_key "$CONVERSA_BIN" serve \
    >"$tmp/conversa-off.log" 2>&1 &
  off_pid=$!
  disown "$off_pid"
  for pp in "$conv_port:$conv_pid:conversa" "$off_port:$off_pid:conversa-off"; do
    IFS=: read -r p pid log <<<"$pp"
    if ! wait_http "http://127.0.0.1:$p/api/health/live" 150 "$pid"; then
      show_log "$tmp/$log.log"
      alive "$pid" || die "conversa serve exited before answering"
      die "conversa did not answer /api/health/live on port $p within 15 s"
    fi
  done
fi

nginx_port=$(free_port "$conv_port")
while [[ "$nginx_port" == "${off_port:-0}" ]]; do nginx_port=$(free_port "$conv_port"); done
if ! nginx_start "$tmp" "$nginx_port"; then
  show_log "$tmp/nginx-start.log"
  show_log "$tmp/nginx-error.log"
  die "nginx did not start and answer on port $nginx_port within 5 s"
fi
nginx_url="http://127.0.0.1:$nginx_port/static"

names=()
rps=()
p50=()
p99=()

read -r n1_rps n1_p50 n1_p99 _ <<<"$(run_wrk nginx-1 "$nginx_url")"
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  for path in /api/health/live /api/health /api/v1/conversations/status; do
    header=""
    [[ "$path" != /api/v1/* ]] || header="Authorization: Bearer $bench_token"
    read -r r a b _ <<<"$(run_wrk "conversa${path//\//-}" "http://127.0.0.1:$conv_port$path" "$header")"
    names+=("$path")
    rps+=("$r")
    p50+=("$a")
    p99+=("$b")
  done
  # The status counts were served from the cache: the last answer says so.
  cached=$(curl -fsS -D - -o /dev/null -H "Authorization: Bearer $bench_token" \
    "http://127.0.0.1:$conv_port/api/v1/conversations/status" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { print $2 }')
  [[ "$cached" == HIT ]] || note "warning: /api/v1/conversations/status answered X-Cache: ${cached:-none}"

  # The limiter's cost on that cached route: off and on alternate, so drift on a
  # shared machine falls on both. The first "on" run is the one above.
  auth="Authorization: Bearer $bench_token"
  status_path=/api/v1/conversations/status
  rl_on=("${rps[2]}") rl_on_p99=("${p99[2]}") rl_off=() rl_off_p99=()
  for k in 1 2; do
    read -r r _ b _ <<<"$(run_wrk "limiter-off-$k" "http://127.0.0.1:$off_port$status_path" "$auth")"
    rl_off+=("$r")
    rl_off_p99+=("$b")
    read -r r _ b _ <<<"$(run_wrk "limiter-on-$k" "http://127.0.0.1:$conv_port$status_path" "$auth")"
    rl_on+=("$r")
    rl_on_p99+=("$b")
  done
  # The cached route against nginx in pairs, one right after the other: on a shared
  # machine whose speed drifts over minutes, a pair sees the same machine, where the
  # mean of runs far apart does not. The ratio reported is the median of the pairs'.
  paired=() paired_ngx=() paired_conv=()
  for k in 1 2 3; do
    read -r a _ _ _ <<<"$(run_wrk "paired-nginx-$k" "$nginx_url")"
    read -r r _ _ _ <<<"$(run_wrk "paired-status-$k" "http://127.0.0.1:$conv_port$status_path" "$auth")"
    paired_ngx+=("$a")
    paired_conv+=("$r")
    paired+=("$(awk -v a="$r" -v b="$a" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')")
  done
  paired_median=$(printf '%s\n' "${paired[@]}" | sort -g | sed -n 2p)
  limited=$(curl -fsS "http://127.0.0.1:$conv_port/api/metrics" |
    awk '/^ratelimit_requests_total\{group="(token|ip)",result="allowed"\}/ { n += $2 } END { print n + 0 }')
  [[ "$limited" -gt 0 ]] || note "warning: the limiter counted no request: it was not on"
fi
read -r n2_rps n2_p50 n2_p99 _ <<<"$(run_wrk nginx-2 "$nginx_url")"

avg() {
  printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.3f", n ? s / n : 0 }'
}
ratelimit_json=null
paired_json=null
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  paired_json=$(printf '{"route": "%s", "median_ratio": %s, "ratios": [%s], "nginx_runs": [%s], "conversa_runs": [%s]}' \
    "$status_path" "$paired_median" "$(IFS=,; echo "${paired[*]}")" "$(IFS=,; echo "${paired_ngx[*]}")" \
    "$(IFS=,; echo "${paired_conv[*]}")")
  on_rps=$(avg "${rl_on[@]}")
  off_rps=$(avg "${rl_off[@]}")
  on_p99=$(avg "${rl_on_p99[@]}")
  off_p99=$(avg "${rl_off_p99[@]}")
  overhead=$(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%.1f", (b > 0 ? 100 * (1 - a / b) : 0) }')
  ratelimit_json=$(printf '{"route": "%s", "on_rps": %s, "off_rps": %s, "on_p99_ms": %s, "off_p99_ms": %s, "overhead_pct": %s, "on_runs": [%s], "off_runs": [%s], "requests_counted": %s}' \
    "$status_path" "$on_rps" "$off_rps" "$on_p99" "$off_p99" "$overhead" \
    "$(IFS=,; echo "${rl_on[*]}")" "$(IFS=,; echo "${rl_off[*]}")" "$limited")
fi

peak_rss=null
if [[ -n "$conv_pid" ]]; then
  alive "$conv_pid" || { show_log "$tmp/conversa.log"; die "conversa exited during the benchmark"; }
  # VmHWM is the peak resident set over the process's life, in kB.
  peak_rss=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$conv_pid/status")
fi

mean() {
  awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, (a + b) / 2 }'
}
ngx_rps=$(mean "$n1_rps" "$n2_rps" %.1f)
ngx_p50=$(mean "$n1_p50" "$n2_p50" %.3f)
ngx_p99=$(mean "$n1_p99" "$n2_p99" %.3f)

ratios=()
for i in "${!names[@]}"; do
  ratios+=("$(awk -v a="${rps[$i]}" -v b="$ngx_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
done

row() {
  printf '%-30s %12s %9s %9s %9s\n' "$@"
}
fmt() {
  awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'
}
row target req/s "p50 ms" "p99 ms" "vs nginx"
row "nginx static" "$(fmt "$ngx_rps" %.0f)" "$(fmt "$ngx_p50" %.2f)" "$(fmt "$ngx_p99" %.2f)" 1.00x
for i in "${!names[@]}"; do
  row "${names[$i]}" "$(fmt "${rps[$i]}" %.0f)" "$(fmt "${p50[$i]}" %.2f)" \
    "$(fmt "${p99[$i]}" %.2f)" "${ratios[$i]}x"
done
if [[ "$peak_rss" != null ]]; then
  echo "conversa peak RSS: $peak_rss MB"
fi
if [[ "$paired_json" != null ]]; then
  printf '%s against nginx, run right after it, three times: %s (median %.2fx)\n' "$status_path" \
    "$(printf '%.2fx\n' "${paired[@]}" | paste -sd' ')" "$paired_median"
fi
if [[ "$ratelimit_json" != null ]]; then
  printf 'rate limiter on %s: %.0f req/s (p99 %.2f ms) on vs %.0f req/s (p99 %.2f ms) off: costs %s%% of req/s\n' \
    "$status_path" "$on_rps" "$on_p99" "$off_rps" "$off_p99" "$overhead"
fi

date_iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
targets_json=""
for i in "${!names[@]}"; do
  [[ -z "$targets_json" ]] || targets_json+=","
  targets_json+=$(printf '\n    {"name": "%s", "rps": %s, "p50_ms": %s, "p99_ms": %s, "ratio": %s}' \
    "${names[$i]}" "${rps[$i]}" "${p50[$i]}" "${p99[$i]}" "${ratios[$i]}")
done
[[ -z "$targets_json" ]] || targets_json+=$'\n  '

mkdir -p "$RESULTS_DIR"
json="$RESULTS_DIR/$stamp.json"
cat >"$json.tmp" <<EOF
{
  "date": "$date_iso",
  "machine": {"nproc": $(nproc), "kernel": "$(uname -r)"},
  "duration": "$DURATION",
  "connections": $CONNECTIONS,
  "threads": $WRK_THREADS,
  "nginx": {
    "rps": $ngx_rps, "p50_ms": $ngx_p50, "p99_ms": $ngx_p99,
    "runs": [
      {"rps": $n1_rps, "p50_ms": $n1_p50, "p99_ms": $n1_p99},
      {"rps": $n2_rps, "p50_ms": $n2_p50, "p99_ms": $n2_p99}
    ]
  },
  "targets": [$targets_json],
  "ratelimit": $ratelimit_json,
  "status_paired": $paired_json,
  "peak_rss_mb": $peak_rss
}
EOF
mv -f "$json.tmp" "$json"
if [[ "$BENCH_ONLY_NGINX" != 1 ]]; then
  cp "$json" "$RESULTS_DIR/latest.json.tmp"
  mv -f "$RESULTS_DIR/latest.json.tmp" "$RESULTS_DIR/latest.json"
fi
note "results written to $json"
