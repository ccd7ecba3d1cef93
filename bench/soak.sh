#!/usr/bin/env bash
# Soak: a steady mixed load on one `conversa serve` for a long time, watching that its
# memory and file descriptors stay flat. Usage: bench/soak.sh [--valgrind]
#
# Starts a private PostgreSQL + Redis in a temporary folder, migrates, seeds the demo
# company, makes an API token of its admin, starts `conversa fake-meta` (the stand-in
# Cloud API the agents' replies go through; its status webhooks come back) and
# `conversa serve` (ACCESS_LOG=off, rate limits far above the load). Then, for
# SOAK_SECONDS, four wrk processes (bench/soak.lua, one thread, SOAK_CONNECTIONS
# connections each) offer about SOAK_RATE requests/s in all, each connection pausing
# between requests:
#   reads     50 %  cached reads: status counts, conversation pages, a conversation's
#                   messages, notifications, the unread count, connections
#   lookups   20 %  uncached reads: contact searches and list, one conversation, a
#                   contact by phone, campaigns, /api/health
#   writes    15 %  a conversation's status flipped open/pending, a new contact, read_all,
#                   one notification read, an agent's reply (sent through fake-meta)
#   webhooks  15 %  Meta's signed text webhooks for the demo connection (slug demo,
#                   app secret demo-app-secret) from 100 contacts (bench/webhook_gen.c)
#
# Every SOAK_SAMPLE_SECONDS it records the server's VmRSS and Threads
# (/proc/PID/status), its open fds (/proc/PID/fd) and, from /api/metrics,
# http_connections_open (the sampler's own connection included) and
# db_connections_ready, into bench/results/soak-<UTC stamp>.csv.
#
# Then it fits a least-squares line to RSS and to fds over the samples after
# SOAK_WARMUP_SECONDS and fails (exit 1) when the fitted growth over that period is
# more than max(SOAK_MAX_RSS_GROWTH_KIB, SOAK_MAX_RSS_GROWTH_PCT % of the RSS when the
# warm-up ended), or more than SOAK_MAX_FD_GROWTH fds; also when a kind of request
# had more than SOAK_MAX_ERROR_PCT % socket errors and non-2xx/3xx answers, or the
# server did not exit 0 on SIGTERM at the end. Prints the slopes, RSS first/last/max
# and the verdict; draws RSS and fds with the fitted lines (gnuplot) into
# soak-<stamp>.png; writes soak-<stamp>.json. Each has a soak-latest.* copy.
#
# --valgrind: the same, lighter, with `conversa serve` under valgrind's memcheck
# (THREADS=1, --leak-check=full, definite and indirect leaks count as errors). After
# the load it is stopped with SIGTERM; fails when valgrind reports any error or a
# definite or indirect leak, and prints its LEAK SUMMARY and ERROR SUMMARY. The
# suppressions in SOAK_VALGRIND_SUPP (bench/soak-valgrind.supp: h2o's per-thread pool
# chunks, lost when a loop thread exits; empty: none) apply, and what they suppress
# must stay within SOAK_VALGRIND_MAX_SUPPRESSED_KIB (64: h2o keeps at most 16 chunks of
# 4 KiB per thread). No fit and no plot (RSS under valgrind says nothing); writes
# soak-valgrind-<stamp>.json and the valgrind log as soak-valgrind-<stamp>.log (and
# soak-valgrind-latest.*).
#
# Environment: SOAK_SECONDS (1800; 30 with --valgrind), SOAK_SAMPLE_SECONDS (5),
# SOAK_WARMUP_SECONDS (10 % of the run, at least 30 s but at most half the run),
# SOAK_RATE (300; 40 with --valgrind), SOAK_CONNECTIONS (2 per kind),
# SOAK_MAX_RSS_GROWTH_KIB (2048), SOAK_MAX_RSS_GROWTH_PCT (5), SOAK_MAX_FD_GROWTH (5),
# SOAK_MAX_ERROR_PCT (1), SOAK_VALGRIND_SUPP (bench/soak-valgrind.supp),
# SOAK_VALGRIND_MAX_SUPPRESSED_KIB (64), CONVERSA_BIN (build/release/conversa),
# WEBHOOK_GEN (build/release/bench/webhook-gen), RESULTS_DIR (bench/results).
# Needs wrk, curl, gnuplot (valgrind with --valgrind), postgresql-15, redis-server:
# scripts/deps.sh --install servers test bench.
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_help "$@"

mode=trend
for arg in "$@"; do
  case "$arg" in
    --valgrind) mode=valgrind ;;
    *) echo "soak.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $mode == valgrind ]]; then
  SOAK_SECONDS=${SOAK_SECONDS:-30}
  SOAK_RATE=${SOAK_RATE:-40}
else
  SOAK_SECONDS=${SOAK_SECONDS:-1800}
  SOAK_RATE=${SOAK_RATE:-300}
fi
SOAK_SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-5}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-2}
SOAK_MAX_RSS_GROWTH_KIB=${SOAK_MAX_RSS_GROWTH_KIB:-2048}
SOAK_MAX_RSS_GROWTH_PCT=${SOAK_MAX_RSS_GROWTH_PCT:-5}
SOAK_MAX_FD_GROWTH=${SOAK_MAX_FD_GROWTH:-5}
SOAK_MAX_ERROR_PCT=${SOAK_MAX_ERROR_PCT:-1}
SOAK_VALGRIND_SUPP=${SOAK_VALGRIND_SUPP-bench/soak-valgrind.supp}
SOAK_VALGRIND_MAX_SUPPRESSED_KIB=${SOAK_VALGRIND_MAX_SUPPRESSED_KIB:-64}
WEBHOOK_GEN=${WEBHOOK_GEN:-build/release/bench/webhook-gen}
for v in SOAK_SECONDS SOAK_SAMPLE_SECONDS SOAK_RATE SOAK_CONNECTIONS SOAK_MAX_RSS_GROWTH_KIB SOAK_MAX_FD_GROWTH; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
for v in SOAK_MAX_RSS_GROWTH_PCT SOAK_MAX_ERROR_PCT SOAK_VALGRIND_MAX_SUPPRESSED_KIB; do
  [[ "${!v}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number"
done
[[ $SOAK_SECONDS -ge 10 ]] || die "SOAK_SECONDS must be at least 10"
if [[ -z "${SOAK_WARMUP_SECONDS:-}" ]]; then
  # 10 % of the run, at least 30 s, at most half of it
  SOAK_WARMUP_SECONDS=$((SOAK_SECONDS / 10))
  [[ $SOAK_WARMUP_SECONDS -ge 30 ]] || SOAK_WARMUP_SECONDS=30
  [[ $SOAK_WARMUP_SECONDS -le $((SOAK_SECONDS / 2)) ]] || SOAK_WARMUP_SECONDS=$((SOAK_SECONDS / 2))
fi
[[ "$SOAK_WARMUP_SECONDS" =~ ^[0-9]+$ && $SOAK_WARMUP_SECONDS -lt $SOAK_SECONDS ]] ||
  die "SOAK_WARMUP_SECONDS must be an integer below SOAK_SECONDS"
if [[ $mode == trend && $(((SOAK_SECONDS - SOAK_WARMUP_SECONDS) / SOAK_SAMPLE_SECONDS)) -lt 3 ]]; then
  die "fewer than 4 samples after the warm-up: lower SOAK_SAMPLE_SECONDS or SOAK_WARMUP_SECONDS"
fi

need=(wrk curl awk psql)
[[ $mode == trend ]] && need+=(gnuplot)
[[ $mode == valgrind ]] && need+=(valgrind)
for cmd in "${need[@]}"; do
  command -v "$cmd" >/dev/null || die "$cmd not found; run: scripts/deps.sh --install servers test bench"
done
[[ -x "$CONVERSA_BIN" ]] || die "no conversa binary at $CONVERSA_BIN; run: make"
[[ -x "$WEBHOOK_GEN" ]] || die "$WEBHOOK_GEN not found; run: make $WEBHOOK_GEN"
[[ $mode == trend || -z "$SOAK_VALGRIND_SUPP" || -r "$SOAK_VALGRIND_SUPP" ]] ||
  die "no suppressions file $SOAK_VALGRIND_SUPP (SOAK_VALGRIND_SUPP= for none)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
started=$EPOCHREALTIME
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/conversa-soak.XXXXXX")
BENCH_DIR=$BENCH_TMP

fake_pid=""
wrk_pids=()
# Stop whatever was started, whatever the exit path: the load, conversa (SIGTERM, then
# SIGKILL after a while), the stand-in, the servers, the temporary folder.
soak_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${wrk_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n "$conv_pid" ]]; then
    kill "$conv_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$conv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$conv_pid" 2>/dev/null || true
  fi
  [[ -z "$fake_pid" ]] || kill "$fake_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  scripts/stack.sh stop "$BENCH_DIR/stack" >/dev/null 2>&1 || true
  rm -rf "$BENCH_TMP"
  exit "$rc"
}
bench_stack_up
trap soak_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() { [[ -s "$1" ]] && { echo "--- last lines of $(basename "$1") ---" >&2; tail -n 20 "$1" >&2; }; return 0; }

"$CONVERSA_BIN" migrate up >"$BENCH_TMP/migrate.log" 2>&1 || { show_log "$BENCH_TMP/migrate.log"; die "migrate failed"; }
"$CONVERSA_BIN" seed --demo >"$BENCH_TMP/seed.log" 2>&1 || { show_log "$BENCH_TMP/seed.log"; die "seed --demo failed"; }
token=$(LOG_LEVEL=warn "$CONVERSA_BIN" token create --company demo --user admin@demo.conversa.dev --name soak \
  2>"$BENCH_TMP/token.log") || { show_log "$BENCH_TMP/token.log"; die "token create failed"; }

port=$(free_port)
fake_port=$(free_port)
while [[ $fake_port == "$port" ]]; do fake_port=$(free_port); done
"$CONVERSA_BIN" fake-meta --port "$fake_port" --window open --app-secret demo-app-secret \
  --webhook-url "http://127.0.0.1:$port/api/webhooks/meta/demo" >"$BENCH_TMP/fake-meta.log" 2>&1 &
fake_pid=$!

# `conversa serve` (under valgrind with --valgrind) on $port; sets conv_pid.
log=$BENCH_TMP/conversa.log
vg_log=$BENCH_TMP/valgrind.log
high=100000000/60/60
serve_env=(HOST=127.0.0.1 PORT="$port" ACCESS_LOG=off LOG_LEVEL=warn RATE_LIMIT_PUBLIC="$high"
  RATE_LIMIT_TOKEN="$high" RATE_LIMIT_IP="$high" RATE_LIMIT_WEBHOOKS="$high" RATE_LIMIT_EXEMPT=127.0.0.1
  META_GRAPH_URL="http://127.0.0.1:$fake_port")
prefix=()
# a sanitizer build (make soak SANITIZE=1) reports h2o's per-thread buffer cache at exit
# as a leak unless told what tests/lsan.supp says
serve_env+=(LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}")
start_ticks=200
timeout=10
if [[ $mode == valgrind ]]; then
  serve_env+=(THREADS=1)
  prefix=(valgrind --tool=memcheck --leak-check=full "--show-leak-kinds=definite,indirect"
    "--errors-for-leak-kinds=definite,indirect" --error-exitcode=23 --num-callers=40
    --log-file="$vg_log")
  [[ -z "$SOAK_VALGRIND_SUPP" ]] || prefix+=(--suppressions="$SOAK_VALGRIND_SUPP")
  start_ticks=1200
  timeout=30
fi
env "${serve_env[@]}" "${prefix[@]}" "$CONVERSA_BIN" serve >"$log" 2>&1 &
conv_pid=$!
up=0
for _ in $(seq 1 "$start_ticks"); do
  if curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/api/health/live" 2>/dev/null; then up=1; break; fi
  kill -0 "$conv_pid" 2>/dev/null || break
  sleep 0.1
done
[[ $up == 1 ]] || { show_log "$log"; show_log "$vg_log"; die "conversa did not start"; }
for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$fake_port/_fake/stats" 2>/dev/null && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$timeout" -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/conversations/status" || true)
[[ $code == 200 ]] || die "/api/v1/conversations/status answered $code to the soak token"

# What the load works on: the demo's conversations, the admin's notifications, the
# contacts' phone numbers.
data=$BENCH_TMP/data.txt
{
  echo "token $token"
  echo "run $((10#${stamp:9:4}))"
  psql_q "SELECT 'conv ' || cv.id FROM conversations cv JOIN companies co ON co.id = cv.company_id
           WHERE co.slug = 'demo' ORDER BY cv.id"
  psql_q "SELECT 'notif ' || n.id FROM notifications n JOIN users u ON u.id = n.user_id
           WHERE u.email = 'admin@demo.conversa.dev' ORDER BY n.id"
  psql_q "SELECT 'phone ' || ct.phone_number FROM contacts ct JOIN companies co ON co.id = ct.company_id
           WHERE co.slug = 'demo' ORDER BY ct.id"
} >"$data"
grep -q '^conv ' "$data" || die "the demo has no conversations"

rate_reads=$((SOAK_RATE * 50 / 100)) rate_lookups=$((SOAK_RATE * 20 / 100))
rate_writes=$((SOAK_RATE * 15 / 100)) rate_webhooks=$((SOAK_RATE * 15 / 100))
kinds=(reads lookups writes webhooks)
declare -A rate=([reads]=$rate_reads [lookups]=$rate_lookups [writes]=$rate_writes [webhooks]=$rate_webhooks)
for k in "${kinds[@]}"; do [[ ${rate[$k]} -ge 1 ]] || rate[$k]=1; done

# Distinct webhooks for the whole run (up to 20,000; past that they wrap around and
# come back as duplicates, which conversa acknowledges and applies once).
count=$((rate_webhooks * SOAK_SECONDS + 100))
[[ $count -le 20000 ]] || count=20000
hooks=$BENCH_TMP/webhooks.txt
"$WEBHOOK_GEN" demo-app-secret 100000000000001 "$count" 100 "soak$stamp" >"$hooks"

how="sampling every ${SOAK_SAMPLE_SECONDS} s, warm-up ${SOAK_WARMUP_SECONDS} s"
[[ $mode == trend ]] || how="conversa under valgrind"
note "$mode run of ${SOAK_SECONDS} s at about $SOAK_RATE requests/s (reads ${rate[reads]}, lookups ${rate[lookups]}," \
  "writes ${rate[writes]}, webhooks ${rate[webhooks]}; $SOAK_CONNECTIONS connections each), $how"
for k in "${kinds[@]}"; do
  args=("$k" "${rate[$k]}" "$SOAK_CONNECTIONS" "$data")
  [[ $k == webhooks ]] && args=("$k" "${rate[$k]}" "$SOAK_CONNECTIONS" "$hooks" /api/webhooks/meta/demo)
  # a second longer than the sampling, so that its last sample is still under load
  wrk -t1 -c"$SOAK_CONNECTIONS" -d"$((SOAK_SECONDS + 1))s" --timeout "${timeout}s" -s bench/soak.lua \
    "http://127.0.0.1:$port" -- "${args[@]}" >"$BENCH_TMP/wrk-$k.txt" 2>&1 &
  wrk_pids+=($!)
done

# One CSV line: seconds since the load started, unix time, VmRSS KiB, fds, threads,
# http_connections_open, db_connections_ready (empty when /api/metrics did not answer).
csv=$BENCH_TMP/soak.csv
echo "elapsed_s,unix_time,rss_kib,fds,threads,http_connections_open,db_connections_ready" >"$csv"
sample() {
  local now rss threads fds metrics
  now=$EPOCHREALTIME
  read -r rss threads < <(awk '/^VmRSS:/ { r = $2 } /^Threads:/ { t = $2 } END { print r, t }' \
    "/proc/$conv_pid/status" 2>/dev/null) || return 1
  [[ -n "$rss" ]] || return 1
  fds=$(find "/proc/$conv_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  metrics=$( (curl -fsS --max-time 5 "http://127.0.0.1:$port/api/metrics" 2>/dev/null || true) |
    awk '$1 == "http_connections_open" { h = $2 } $1 == "db_connections_ready" { d = $2 }
         END { printf "%s,%s", h, d }')
  awk -v n="$now" -v t0="$t0" -v r="$rss" -v f="$fds" -v th="$threads" -v m="$metrics" \
    'BEGIN { printf "%.1f,%d,%d,%d,%d,%s\n", n - t0, n, r, f, th, m }' >>"$csv"
}

t0=$EPOCHREALTIME
for ((k = 0; ; k++)); do
  tick=$((k * SOAK_SAMPLE_SECONDS))
  [[ $tick -le $SOAK_SECONDS ]] || break
  wait_s=$(awk -v t0="$t0" -v k="$tick" -v now="$EPOCHREALTIME" 'BEGIN { d = t0 + k - now; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$wait_s"
  if ! kill -0 "$conv_pid" 2>/dev/null; then
    show_log "$log"
    show_log "$vg_log"
    die "conversa exited during the run (after $tick s)"
  fi
  if [[ $mode == trend ]]; then
    sample || { show_log "$log"; die "could not read /proc/$conv_pid"; }
  fi
  for i in "${!wrk_pids[@]}"; do
    if [[ $tick -lt $((SOAK_SECONDS - 2)) ]] && ! kill -0 "${wrk_pids[$i]}" 2>/dev/null; then
      cat "$BENCH_TMP/wrk-${kinds[$i]}.txt" >&2
      die "wrk (${kinds[$i]}) stopped early"
    fi
  done
  if [[ $mode == trend && $((k % 12)) == 0 && $k -gt 0 ]]; then
    note "$(tail -n 1 "$csv" | awk -F, '{ printf "%ds: RSS %.1f MiB, %d fds, %s client connections", $1, $3 / 1024, $4, $6 }')"
  fi
done
for p in "${wrk_pids[@]}"; do wait "$p" || true; done
wrk_pids=()

# The load is over: stop conversa with SIGTERM and see how it exits.
stop_t0=$EPOCHREALTIME
kill -TERM "$conv_pid"
stop_limit=300
[[ $mode == valgrind ]] && stop_limit=1800
for _ in $(seq 1 "$stop_limit"); do kill -0 "$conv_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$conv_pid" 2>/dev/null; then
  kill -KILL "$conv_pid" 2>/dev/null || true
  note "conversa did not exit within $((stop_limit / 10)) s of SIGTERM: killed"
fi
serve_rc=0
wait "$conv_pid" || serve_rc=$?
conv_pid=""
stop_s=$(awk -v a="$stop_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')

# ---- the load's figures --------------------------------------------------------------
declare -A result
fails=()
printf '%-9s %9s %9s %8s %8s %8s %7s %8s  %s\n' kind "offered/s" "done/s" "p50 ms" "p99 ms" requests errors non-2xx codes
for k in "${kinds[@]}"; do
  line=$(grep '^RESULT' "$BENCH_TMP/wrk-$k.txt") || { cat "$BENCH_TMP/wrk-$k.txt" >&2; die "no RESULT line from wrk ($k)"; }
  result[$k]=$line
  printf '%-9s %9s %9.1f %8.2f %8.2f %8s %7s %8s  %s\n' "$k" "${rate[$k]}" "$(field rps "$line")" "$(field p50 "$line")" \
    "$(field p99 "$line")" "$(field requests "$line")" "$(field errors "$line")" "$(field non2xx "$line")" "$(field codes "$line")"
  bad=$(awk -v r="$(field requests "$line")" -v e="$(field errors "$line")" -v s="$(field non2xx "$line")" -v max="$SOAK_MAX_ERROR_PCT" \
    'BEGIN { if (r == 0) { print "no request answered"; exit } p = 100 * (e + s) / r
             if (p > max) printf "%.2f %% socket errors and non-2xx answers (more than %s %%)", p, max }')
  [[ -z "$bad" ]] || fails+=("$k: $bad")
done
if [[ $serve_rc == 0 ]]; then
  echo "conversa stopped on SIGTERM in $stop_s s, exit status 0"
elif [[ $mode == valgrind && $serve_rc == 23 ]]; then
  echo "conversa stopped on SIGTERM in $stop_s s; valgrind's exit status 23: it found errors"
else
  fails+=("conversa exited with status $serve_rc after SIGTERM")
  show_log "$log"
fi

# "200:12,201:3" -> {"200":12,"201":3}
json_map() { [[ $1 == - ]] && { echo '{}'; return; }; awk -v s="$1" 'BEGIN { n = split(s, a, ","); o = "{"
  for (i = 1; i <= n; i++) { split(a[i], kv, ":"); o = o (i > 1 ? "," : "") "\"" kv[1] "\":" kv[2] } print o "}" }'; }
kinds_json=""
for k in "${kinds[@]}"; do
  line=${result[$k]}
  kinds_json+="${kinds_json:+,}\"$k\":{\"offered_per_s\":${rate[$k]},\"rps\":$(field rps "$line"),\"p50_ms\":$(field p50 "$line"),\
\"p99_ms\":$(field p99 "$line"),\"max_ms\":$(field max "$line"),\"requests\":$(field requests "$line"),\
\"errors\":$(field errors "$line"),\"non2xx\":$(field non2xx "$line"),\"codes\":$(json_map "$(field codes "$line")"),\
\"x_cache\":$(json_map "$(field cache "$line")")}"
done
json_str() { printf '"%s"' "$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1")"; }
fails_json() { local out="" f; for f in "${fails[@]}"; do out+="${out:+,}$(json_str "$f")"; done; echo "[$out]"; }
elapsed_total() { awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
mkdir -p "$RESULTS_DIR"

# ---- valgrind ---------------------------------------------------------------------------
if [[ $mode == valgrind ]]; then
  [[ -s "$vg_log" ]] || die "valgrind wrote no log"
  out=$RESULTS_DIR/soak-valgrind-$stamp
  # kept with the results, paths relative to the repository
  awk -v r="$ROOT/" '{ while ((i = index($0, r)) > 0) $0 = substr($0, 1, i - 1) substr($0, i + length(r)); print }' \
    "$vg_log" >"$out.log"
  # "==PID== " off each line
  sed 's/^==[0-9]*== \{0,1\}//' "$vg_log" >"$BENCH_TMP/vg.txt"
  errors=$(awk '/^ERROR SUMMARY:/ { n = $3 } END { print n + 0 }' "$BENCH_TMP/vg.txt")
  # "   definitely lost: 1,234 bytes in 5 blocks" -> "1234 5"
  leak() { awk -v k="$1" '$1 == k && $2 == "lost:" { b = $3; n = $6; gsub(/,/, "", b); gsub(/,/, "", n) }
    END { print (b == "" ? 0 : b) " " (n == "" ? 0 : n) }' "$BENCH_TMP/vg.txt"; }
  read -r def_b def_n < <(leak definitely)
  read -r ind_b ind_n < <(leak indirectly)
  read -r pos_b pos_n < <(leak possibly)
  reach_b=$(awk '$1 == "still" && $2 == "reachable:" { b = $3; gsub(/,/, "", b) } END { print b + 0 }' "$BENCH_TMP/vg.txt")
  # "        suppressed: 24,576 bytes in 6 blocks" of the LEAK SUMMARY
  read -r sup_b sup_n < <(awk '$1 == "suppressed:" && $3 == "bytes" { b = $2; n = $5; gsub(/,/, "", b); gsub(/,/, "", n) }
    END { print (b == "" ? 0 : b) " " (n == "" ? 0 : n) }' "$BENCH_TMP/vg.txt")
  if grep -q '^LEAK SUMMARY' "$BENCH_TMP/vg.txt"; then
    sed -n '/^LEAK SUMMARY/,/suppressed:/p' "$BENCH_TMP/vg.txt"
  elif grep -q 'All heap blocks were freed' "$BENCH_TMP/vg.txt"; then
    grep -A1 '^HEAP SUMMARY' "$BENCH_TMP/vg.txt"
    echo "All heap blocks were freed -- no leaks are possible"
  else
    fails+=("valgrind's log has no leak summary (did conversa exit?)")
  fi
  grep '^ERROR SUMMARY' "$BENCH_TMP/vg.txt" | tail -n 1
  if grep -q '^Process terminating with default action' "$BENCH_TMP/vg.txt"; then
    # conversa died of a signal: where
    echo "--- conversa was killed by a signal ---"
    sed -n '/^Process terminating with default action/,/^$/p' "$BENCH_TMP/vg.txt" | head -n 40
  fi
  [[ $errors == 0 ]] || fails+=("valgrind: $errors errors (definite and indirect leaks included)")
  [[ $def_b == 0 && $ind_b == 0 ]] || fails+=("valgrind: $def_b bytes definitely and $ind_b bytes indirectly lost")
  [[ $sup_b -le $((SOAK_VALGRIND_MAX_SUPPRESSED_KIB * 1024)) ]] ||
    fails+=("valgrind: the suppressions hid $sup_b bytes of leaks (more than $SOAK_VALGRIND_MAX_SUPPRESSED_KIB KiB)")
  if [[ $errors != 0 ]]; then
    # the reports themselves: after the banner (up to its first blank line), the
    # errors as they happened, then the leaks, each with its stack
    echo "--- valgrind's reports (full log: ${RESULTS_DIR#"$ROOT"/}/soak-valgrind-$stamp.log) ---"
    awk 'banner && /^$/ { banner = 0; next } banner { next } /^(HEAP|LEAK) SUMMARY/ { skip = 1 }
         skip && /^$/ { skip = 0; next } !skip && !/^(ERROR SUMMARY|For lists of|For counts of|Rerun with)/ { print }' \
      banner=1 "$BENCH_TMP/vg.txt" | head -n 400 || true
  fi
  verdict=pass
  [[ ${#fails[@]} == 0 ]] || verdict=fail
  cat >"$out.json" <<EOF
{"date":"$stamp","mode":"valgrind","seconds":$SOAK_SECONDS,"rate":$SOAK_RATE,"connections_per_kind":$SOAK_CONNECTIONS,
 "kinds":{$kinds_json},
 "serve_exit_status":$serve_rc,"stop_seconds":$stop_s,
 "valgrind":{"errors":$errors,"definitely_lost_bytes":$def_b,"definitely_lost_blocks":$def_n,
  "indirectly_lost_bytes":$ind_b,"indirectly_lost_blocks":$ind_n,"possibly_lost_bytes":$pos_b,
  "possibly_lost_blocks":$pos_n,"still_reachable_bytes":$reach_b,"suppressed_bytes":$sup_b,
  "suppressed_blocks":$sup_n,"suppressions":$(json_str "$SOAK_VALGRIND_SUPP")},
 "wall_seconds":$(elapsed_total),"verdict":"$verdict","failures":$(fails_json)}
EOF
  cp "$out.json" "$RESULTS_DIR/soak-valgrind-latest.json"
  cp "$out.log" "$RESULTS_DIR/soak-valgrind-latest.log"
  for f in "${fails[@]}"; do echo "FAIL: $f"; done
  echo "verdict: $verdict (valgrind log: ${out#"$ROOT"/}.log)"
  note "results written to ${out#"$ROOT"/}.json ($(elapsed_total) s in all)"
  [[ $verdict == pass ]] || exit 1
  exit 0
fi

# ---- the trend ------------------------------------------------------------------------
# Least squares over the samples at or after the warm-up: y = a + b t, for RSS (KiB)
# and fds; the growth is b times the time those samples span.
fit=$(awk -F, -v w="$SOAK_WARMUP_SECONDS" -v maxkib="$SOAK_MAX_RSS_GROWTH_KIB" -v pct="$SOAK_MAX_RSS_GROWTH_PCT" \
  -v maxfd="$SOAK_MAX_FD_GROWTH" '
  NR == 1 { next }
  {
    t = $1; r = $3; f = $4; all++
    if (all == 1) { first_r = r; first_f = f; min_r = r; min_f = f; min_h = max_h = $6; min_d = max_d = $7 }
    last_r = r; last_f = f
    if (r > max_r) max_r = r
    if (r < min_r) min_r = r
    if (f > max_f) max_f = f
    if (f < min_f) min_f = f
    if ($6 != "") { if ($6 > max_h) max_h = $6; if ($6 < min_h || min_h == "") min_h = $6 }
    if ($7 != "") { if ($7 > max_d) max_d = $7; if ($7 < min_d || min_d == "") min_d = $7; last_d = $7 }
    if (t + 0.5 >= w) {
      n++
      if (n == 1) { t_w = t; warm_r = r; warm_f = f }
      t_end = t
      sx += t; sxx += t * t; sr += r; sxr += t * r; sf += f; sxf += t * f
    }
  }
  END {
    d = n * sxx - sx * sx
    if (n < 3 || d <= 0) { print "n=" n; exit }
    br = (n * sxr - sx * sr) / d; ar = (sr - br * sx) / n
    bf = (n * sxf - sx * sf) / d; af = (sf - bf * sx) / n
    span = t_end - t_w
    limit_r = pct / 100 * warm_r; if (limit_r < maxkib) limit_r = maxkib
    printf "n=%d\nsamples=%d\nt_warm=%.1f\nt_end=%.1f\n", n, all, t_w, t_end
    printf "rss_a=%.3f\nrss_b=%.6f\nrss_slope_kib_min=%.1f\nrss_growth_kib=%.0f\nrss_limit_kib=%.0f\n", ar, br, br * 60, br * span, limit_r
    printf "rss_first_kib=%d\nrss_warm_kib=%d\nrss_last_kib=%d\nrss_max_kib=%d\nrss_min_kib=%d\n", first_r, warm_r, last_r, max_r, min_r
    printf "fd_a=%.3f\nfd_b=%.6f\nfd_slope_min=%.2f\nfd_growth=%.1f\nfd_limit=%d\n", af, bf, bf * 60, bf * span, maxfd
    printf "fd_first=%d\nfd_warm=%d\nfd_last=%d\nfd_max=%d\nfd_min=%d\n", first_f, warm_f, last_f, max_f, min_f
    printf "http_min=%s\nhttp_max=%s\ndb_min=%s\ndb_max=%s\ndb_last=%s\n", min_h, max_h, min_d, max_d, last_d
    printf "rss_fail=%d\nfd_fail=%d\n", (br * span > limit_r), (bf * span > maxfd)
  }' "$csv")
declare -A F
while IFS='=' read -r k v; do F[$k]=$v; done <<<"$fit"
[[ ${F[n]} -ge 3 && -n "${F[rss_b]:-}" ]] || die "only ${F[n]} samples after the warm-up: nothing to fit"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo "samples: ${F[samples]} (every ${SOAK_SAMPLE_SECONDS} s); fitted: ${F[n]} from ${F[t_warm]} s to ${F[t_end]} s"
printf 'RSS: first %s MiB, after warm-up %s MiB, last %s MiB, max %s MiB\n' "$(mib "${F[rss_first_kib]}")" \
  "$(mib "${F[rss_warm_kib]}")" "$(mib "${F[rss_last_kib]}")" "$(mib "${F[rss_max_kib]}")"
printf 'RSS slope: %s KiB/min, fitted growth %s KiB after warm-up (limit %s KiB)\n' "${F[rss_slope_kib_min]}" \
  "${F[rss_growth_kib]}" "${F[rss_limit_kib]}"
printf 'fds: first %s, last %s, max %s; slope %s fds/min, fitted growth %s (limit %s)\n' "${F[fd_first]}" \
  "${F[fd_last]}" "${F[fd_max]}" "${F[fd_slope_min]}" "${F[fd_growth]}" "${F[fd_limit]}"
printf 'client connections open: %s to %s; PostgreSQL connections ready: %s to %s\n' "${F[http_min]:-?}" \
  "${F[http_max]:-?}" "${F[db_min]:-?}" "${F[db_max]:-?}"
[[ ${F[rss_fail]} == 0 ]] || fails+=("RSS grew ${F[rss_growth_kib]} KiB after the warm-up (limit ${F[rss_limit_kib]} KiB)")
[[ ${F[fd_fail]} == 0 ]] || fails+=("fds grew ${F[fd_growth]} after the warm-up (limit ${F[fd_limit]})")
if [[ -n "${F[db_min]}" && -n "${F[db_last]}" && "${F[db_last]}" != "${F[db_max]}" ]]; then
  note "warning: db_connections_ready ended at ${F[db_last]} (it was up to ${F[db_max]})"
fi
verdict=pass
[[ ${#fails[@]} == 0 ]] || verdict=fail

out=$RESULTS_DIR/soak-$stamp
cp "$csv" "$out.csv"

# The plot: RSS with its fitted line above, fds (and client and PostgreSQL connections)
# with theirs below; the dashed vertical line is the end of the warm-up.
cat >"$BENCH_TMP/plot.gp" <<EOF
set terminal pngcairo size 1200,900 noenhanced font ",10"
set output '$out.png'
set datafile separator ','
set grid
set key top left
set xlabel 'minutes since the load started'
ra = ${F[rss_a]}; rb = ${F[rss_b]}; fa = ${F[fd_a]}; fb = ${F[fd_b]}
w = ${F[t_warm]} / 60.0; e = ${F[t_end]} / 60.0
set arrow 1 from w, graph 0 to w, graph 1 nohead dt 2 lc rgb '#888888'
set multiplot layout 2,1 title "conversa soak $stamp: $verdict -- ${SOAK_SECONDS} s at ~${SOAK_RATE} req/s"
set ylabel 'VmRSS (MiB)'
plot '$csv' every ::1 using (\$1/60):(\$3/1024) with linespoints pt 7 ps 0.4 lc rgb '#1f77b4' title 'VmRSS', \
     (x >= w && x <= e) ? (ra + rb * x * 60) / 1024 : 1/0 with lines lw 2 dt 2 lc rgb '#d62728' \
     title sprintf('fit: %+.1f KiB/min, growth %+.0f KiB', rb * 60, rb * (e - w) * 60)
set ylabel 'count'
plot '$csv' every ::1 using (\$1/60):4 with linespoints pt 7 ps 0.4 lc rgb '#2ca02c' title 'open fds', \
     (x >= w && x <= e) ? fa + fb * x * 60 : 1/0 with lines lw 2 dt 2 lc rgb '#d62728' \
     title sprintf('fit: %+.2f fds/min, growth %+.1f', fb * 60, fb * (e - w) * 60), \
     '' every ::1 using (\$1/60):6 with lines lc rgb '#ff7f0e' title 'http_connections_open', \
     '' every ::1 using (\$1/60):7 with lines lc rgb '#9467bd' title 'db_connections_ready'
unset multiplot
EOF
gnuplot "$BENCH_TMP/plot.gp" 2>"$BENCH_TMP/gnuplot.log" || { cat "$BENCH_TMP/gnuplot.log" >&2; die "gnuplot failed"; }

cat >"$out.json" <<EOF
{"date":"$stamp","mode":"trend","seconds":$SOAK_SECONDS,"sample_seconds":$SOAK_SAMPLE_SECONDS,
 "warmup_seconds":$SOAK_WARMUP_SECONDS,"rate":$SOAK_RATE,"connections_per_kind":$SOAK_CONNECTIONS,
 "machine":{"nproc":$(nproc),"kernel":"$(uname -r)"},
 "kinds":{$kinds_json},
 "samples":${F[samples]},"fitted_samples":${F[n]},"fit_from_s":${F[t_warm]},"fit_to_s":${F[t_end]},
 "rss":{"first_kib":${F[rss_first_kib]},"warmup_kib":${F[rss_warm_kib]},"last_kib":${F[rss_last_kib]},
  "max_kib":${F[rss_max_kib]},"min_kib":${F[rss_min_kib]},"slope_kib_per_min":${F[rss_slope_kib_min]},
  "growth_kib":${F[rss_growth_kib]},"limit_kib":${F[rss_limit_kib]}},
 "fds":{"first":${F[fd_first]},"warmup":${F[fd_warm]},"last":${F[fd_last]},"max":${F[fd_max]},"min":${F[fd_min]},
  "slope_per_min":${F[fd_slope_min]},"growth":${F[fd_growth]},"limit":${F[fd_limit]}},
 "http_connections_open":{"min":${F[http_min]:-null},"max":${F[http_max]:-null}},
 "db_connections_ready":{"min":${F[db_min]:-null},"max":${F[db_max]:-null},"last":${F[db_last]:-null}},
 "serve_exit_status":$serve_rc,"stop_seconds":$stop_s,
 "wall_seconds":$(elapsed_total),"verdict":"$verdict","failures":$(fails_json)}
EOF
for ext in csv png json; do cp "$out.$ext" "$RESULTS_DIR/soak-latest.$ext"; done
for f in "${fails[@]}"; do echo "FAIL: $f"; done
echo "verdict: $verdict"
note "results written to ${out#"$ROOT"/}.{csv,png,json} ($(elapsed_total) s in all)"
[[ $verdict == pass ]] || exit 1
