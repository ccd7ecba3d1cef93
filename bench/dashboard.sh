#!/usr/bin/env bash
# Agents polling their inbox on data at scale (the `conversa seed --scale` data in
# .data/bench, as bench/api.sh uses it): AGENTS users of the COMPANIES companies with
# the most conversations, each with an API token of its own, one conversation it looks
# at and a few of its unread notifications. Each agent cycles through four reads (status
# counts, notifications, whose page carries the unread count, conversation list page 1,
# its conversation's messages); WRITE_PCT percent of the requests are writes instead
# (half new messages, a quarter status changes, a quarter notification reads), drawn
# with a fixed seed.
#
# Every write changes some cached bodies, and each changed body must be read from
# PostgreSQL once more: the hit rate cannot exceed 1 - (bodies a write changes) x
# (writes / reads). A status change alone changes every agent's status counts of the
# company (they include the agent's own "mine") and its list page.
#
# Three runs on the same data, conversa restarted before each, each after a 2 s warm-up:
# cache on (the default configuration) with every connection sending as soon as it has
# its answer (saturation: the latency is mostly the queue the 64 connections make, 64
# divided by the rate, by Little's law); cache on again at PACE_PCT percent of that
# rate, offered as Poisson arrivals (the latency an agent sees on a server with room
# to spare, which is how a server is run); the same paced load on a private nginx that
# answers every request with a fixed body (bench/nginx.conf.in), the latency this
# machine gives a server that does no work at all, for reference; cache off
# (CACHE_ENABLED=0). Prints req/s,
# p50/p95/p99, socket errors, non-2xx answers and the cache hit rate from the
# cache_hits_total / cache_misses_total counters of /api/metrics over the run (n/a when
# the server has none), overall and per cache, and beside each measured load what the
# stall probe saw (bench/stall_probe.c: the times the machine kept a ready thread from
# a core over 4 ms, and the longest); writes the JSON to
# bench/results/dashboard-<UTC stamp>.json and dashboard-latest.json.
#
# Environment: CONVERSA_BIN (default build/release/conversa), STALL_PROBE
# (build/release/bench/stall-probe), DURATION (15s),
# CONNECTIONS (64), AGENTS (256), COMPANIES (64), WRITE_PCT (2), PACE_PCT (50), SCALE_ARGS (extra
# flags for `conversa seed --scale`), BENCH_DIR (.data/bench), RESULTS_DIR (bench/results).
set -euo pipefail
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
AGENTS=${AGENTS:-256}
COMPANIES=${COMPANIES:-64}
WRITE_PCT=${WRITE_PCT:-2}
PACE_PCT=${PACE_PCT:-50}
WARMUP=2s
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_help "$@"

[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ "$AGENTS" =~ ^[1-9][0-9]*$ ]] || die "AGENTS must be a positive integer"
[[ "$COMPANIES" =~ ^[1-9][0-9]*$ ]] || die "COMPANIES must be a positive integer"
[[ "$PACE_PCT" =~ ^[1-9][0-9]?$ ]] || die "PACE_PCT must be an integer from 1 to 99"
if ! [[ "$WRITE_PCT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v p="$WRITE_PCT" 'BEGIN { exit !(p <= 100) }'; then
  die "WRITE_PCT must be a number from 0 to 100"
fi
WRITE_PCT=$(awk -v p="$WRITE_PCT" 'BEGIN { print p + 0 }')
command -v wrk >/dev/null || die "wrk not found; run: scripts/deps.sh --install bench"
stall_probe_check
# "cache on" is the default configuration, whatever the caller's environment says
unset CACHE_ENABLED

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/conversa-dashboard.XXXXXX")
bench_stack_up
bench_data_up

# Agents: the users of the COMPANIES scale companies with the most conversations, taken
# company by company (every company's first user, then every company's second, ...).
# Each looks at one of its company's newest conversations that has messages (the k-th
# newest for the company's k-th agent) and reads up to 5 of its unread notifications.
agents_sql="
WITH top AS (
  SELECT cc.company_id, row_number() OVER (ORDER BY sum(cc.n) DESC, cc.company_id) AS crank
    FROM conversation_counts cc JOIN companies co ON co.id = cc.company_id
   WHERE co.slug LIKE 'scale-%'
   GROUP BY cc.company_id ORDER BY sum(cc.n) DESC, cc.company_id LIMIT $COMPANIES
), ranked AS (
  SELECT t.company_id, t.crank, u.id AS user_id,
         row_number() OVER (PARTITION BY u.company_id ORDER BY u.id) AS urank
    FROM top t JOIN users u ON u.company_id = t.company_id
), picked AS (
  SELECT * FROM ranked ORDER BY urank, crank LIMIT $AGENTS
), viewed AS (
  SELECT p.*, coalesce(
           (SELECT c.id FROM conversations c
             WHERE c.company_id = p.company_id
               AND (SELECT true FROM messages m
                     WHERE m.company_id = c.company_id AND m.conversation_id = c.id LIMIT 1)
             ORDER BY c.updated_at DESC, c.id DESC OFFSET p.urank - 1 LIMIT 1),
           (SELECT m.conversation_id FROM messages m WHERE m.company_id = p.company_id LIMIT 1)) AS conv
    FROM picked p
)
SELECT v.company_id, v.user_id, v.conv,
       coalesce((SELECT string_agg(n.id::text, ',')
                   FROM (SELECT id FROM notifications
                          WHERE company_id = v.company_id AND user_id = v.user_id AND is_read = false
                          LIMIT 5) n), '-')
  FROM viewed v WHERE v.conv IS NOT NULL ORDER BY v.urank, v.crank"
mapfile -t rows < <(psql_q "$agents_sql" | tr '|' ' ')
[[ ${#rows[@]} -gt 0 ]] || die "no agents found: is the scale data there?"
[[ ${#rows[@]} -eq $AGENTS ]] || note "only ${#rows[@]} agents available (AGENTS=$AGENTS)"

# Agents' replies go out through their conversation's WhatsApp connection: each
# company gets one (without secrets) and the viewed conversations use it. Nothing is
# sent: conversa runs here without senders (SEND_CONCURRENCY=0), so a reply is stored
# and its send queued, as for a sending process elsewhere; the next bench starts by
# dropping them (bench_clear_jobs).
pairs=()
for row in "${rows[@]}"; do
  read -r company _ conv _ <<<"$row"
  pairs+=("($company, $conv)")
done
psql_q "WITH v (company_id, conv) AS (VALUES $(IFS=,; printf '%s' "${pairs[*]}")),
  c AS (INSERT INTO connections (company_id, slug, name)
        SELECT DISTINCT company_id, 'bench-dash-' || company_id, 'bench' FROM v
        ON CONFLICT (slug) DO UPDATE SET name = excluded.name RETURNING company_id, id)
  UPDATE conversations cv SET connection_id = c.id
    FROM v JOIN c USING (company_id) WHERE cv.company_id = v.company_id AND cv.id = v.conv" >/dev/null

# one API token each; the previous run's are dropped
agents_file=$BENCH_TMP/agents.txt
mapfile -t tokens < <(new_tokens "${#rows[@]}")
values=()
companies=()
no_unread=0
: >"$agents_file"
for i in "${!rows[@]}"; do
  read -r company user conv notes <<<"${rows[$i]}"
  values+=("($company, $user, sha256(convert_to('${tokens[$i]}', 'UTF8')), 'bench-dashboard', 'api')")
  printf '%s %s %s\n' "${tokens[$i]}" "$conv" "$notes" >>"$agents_file"
  companies+=("$company")
  [[ "$notes" != - ]] || no_unread=$((no_unread + 1))
done
psql_q "DELETE FROM api_tokens WHERE name = 'bench-dashboard'" >/dev/null
psql_q "INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind)
        VALUES $(IFS=,; printf '%s' "${values[*]}")" >/dev/null
ncompanies=$(printf '%s\n' "${companies[@]}" | sort -u | wc -l)
nagents=${#rows[@]}
note "$nagents agents in $ncompanies companies ($no_unread with no unread notification: they use read_all)"
bench_settle

# cache_hits_total and cache_misses_total in a copy of /api/metrics, summed per cache
# label: lines "hits|misses LABEL VALUE"; nothing when the server has no such counters.
scrape_cache() {
  awk '
    /^#/ { next }
    {
      name = $1; sub(/\{.*/, "", name)
      if (name ~ /(^|_)cache_hits_total$/) kind = "hits"
      else if (name ~ /(^|_)cache_misses_total$/) kind = "misses"
      else next
      label = "-"
      if (match($1, /cache="[^"]*"/)) label = substr($1, RSTART + 7, RLENGTH - 8)
      sum[kind " " label] += $2
    }
    END { for (k in sum) printf "%s %.0f\n", k, sum[k] }' "$1"
}

# slow_share BEFORE AFTER: from two copies of /api/metrics, the requests conversa
# itself took over 5 ms (request parsed to response written, its
# http_request_duration_seconds histogram), reads (GET) and writes apart:
# "READS_PCT READS WRITES_PCT WRITES", "n/a" for a share of nothing. Beside the p99
# wrk sees, it tells what the server spent from what the machine and the queue of
# connections added, and which requests the slow ones are.
slow_share() {
  awk '
    !/^http_request_duration_seconds_(count|bucket)\{/ { next }
    /_bucket\{/ && !/le="0.005"/ { next }
    {
      side = "a"
      if (FILENAME == ARGV[1]) side = "b"
      kind = "w"
      if ($0 ~ /method="GET"/) kind = "r"
      what = "fast"
      if ($0 ~ /_count\{/) what = "all"
      v[side " " kind " " what] += $2
    }
    END {
      out = ""
      for (i = 1; i <= 2; i++) {
        k = "w"
        if (i == 1) k = "r"
        all = v["a " k " all"] - v["b " k " all"]
        slow = all - (v["a " k " fast"] - v["b " k " fast"])
        pct = "n/a"
        if (all > 0) pct = sprintf("%.2f", 100 * slow / all)
        out = out (out == "" ? "" : " ") pct " " sprintf("%d", all)
      }
      print out
    }' "$1" "$2"
}

# hit_rates BEFORE AFTER: "OVERALL|LABEL=RATE ..." over the deltas, rates as fractions;
# OVERALL is "n/a" when there are no counters or nothing was looked up, and caches
# nothing was looked up in are left out.
hit_rates() {
  awk '
    FILENAME == ARGV[1] { before[$1 " " $2] = $3; next }
    { d = $3 - before[$1 " " $2]; seen = 1; labels[$2] = 1
      if ($1 == "hits") { h[$2] += d; H += d } else { m[$2] += d; M += d } }
    END {
      overall = (seen && H + M > 0) ? sprintf("%.4f", H / (H + M)) : "n/a"
      n = 0
      for (l in labels) names[++n] = l
      for (i = 2; i <= n; i++) { v = names[i]; for (j = i - 1; j >= 1 && names[j] > v; j--) names[j + 1] = names[j]; names[j + 1] = v }
      out = ""
      for (i = 1; i <= n; i++) {
        l = names[i]
        if (h[l] + m[l] > 0) out = out (out == "" ? "" : " ") l "=" sprintf("%.4f", h[l] / (h[l] + m[l]))
      }
      print overall "|" out
    }' "$1" "$2"
}


pct() {
  if [[ "$1" == n/a ]]; then echo n/a; else awk -v r="$1" 'BEGIN { printf "%.1f%%", r * 100 }'; fi
}

# run_wrk DURATION [RATE [URL]]: URL defaults to conversa's
run_wrk() {
  wrk -t1 -c"$CONNECTIONS" -d"$1" -s bench/dashboard.lua "${3:-http://127.0.0.1:$port}" -- "$agents_file" \
    "$WRITE_PCT" "${2:-0}" "$CONNECTIONS"
}

# warm_up MODE RATE [URL] and measure MODE RATE [URL]: the warm-up, then the measured
# run with the stall probe beside it, which sets result[MODE] and stalls[MODE]
warm_up() {
  run_wrk "$WARMUP" "$2" "${@:3}" >"$BENCH_TMP/warmup.txt" 2>&1 || { cat "$BENCH_TMP/warmup.txt" >&2; die "$1: wrk failed"; }
}
measure() {
  stall_probe_start
  run_wrk "$DURATION" "$2" "${@:3}" >"$BENCH_TMP/wrk.txt" 2>&1 || { cat "$BENCH_TMP/wrk.txt" >&2; die "$1: wrk failed"; }
  stall_probe_stop
  stalls[$1]=$stall_line
  result[$1]=$(grep '^RESULT' "$BENCH_TMP/wrk.txt") || { cat "$BENCH_TMP/wrk.txt" >&2; die "$1: no RESULT line from wrk"; }
}

# save_metrics MODE FILE: a copy of conversa's /api/metrics
save_metrics() {
  curl -fsS --max-time 5 "http://127.0.0.1:$port/api/metrics" >"$2" || die "$1: /api/metrics failed"
}

modes=("cache on" "cache on, paced" "nginx, paced" "cache off")
declare -A result rates stalls slow
bench_nginx_up
for mode in "${modes[@]}"; do
  if [[ "$mode" == nginx* ]]; then
    note "$mode: warm-up $WARMUP, then $DURATION at $CONNECTIONS connections, $paced_rate req/s offered"
    warm_up "$mode" "$paced_rate" "${nginx_url%/static}"
    measure "$mode" "$paced_rate" "${nginx_url%/static}"
    rates[$mode]="n/a|"
    continue
  fi
  env_extra=(SEND_CONCURRENCY=0)
  [[ "$mode" == "cache off" ]] && env_extra+=(CACHE_ENABLED=0)
  log="$BENCH_DIR/conversa-dashboard-${mode// /-}.log"
  start_conversa "$log" "${env_extra[@]}"
  token1=$(head -n 1 "$agents_file" | cut -d' ' -f1)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token1" \
    "http://127.0.0.1:$port/api/v1/conversations/status" || true)
  [[ "$code" == 200 ]] || die "$mode: /api/v1/conversations/status answered $code to an agent's token"

  rate=0
  if [[ "$mode" == *paced ]]; then
    rate=$(awk -v r="$(field rps "${result[cache on]}")" -v p="$PACE_PCT" 'BEGIN { printf "%d", r * p / 100 }')
    paced_rate=$rate
  fi
  offered=""
  [[ $rate -gt 0 ]] && offered=", $rate req/s offered"
  note "$mode: warm-up $WARMUP, then $DURATION at $CONNECTIONS connections$offered"
  warm_up "$mode" "$rate"
  save_metrics "$mode" "$BENCH_TMP/metrics-before.txt"
  measure "$mode" "$rate"
  save_metrics "$mode" "$BENCH_TMP/metrics-after.txt"
  kill -0 "$conv_pid" 2>/dev/null || { tail -n 5 "$log" >&2; die "$mode: conversa exited during the run"; }
  stop_conversa

  scrape_cache "$BENCH_TMP/metrics-before.txt" >"$BENCH_TMP/before.txt"
  scrape_cache "$BENCH_TMP/metrics-after.txt" >"$BENCH_TMP/after.txt"
  rates[$mode]=$(hit_rates "$BENCH_TMP/before.txt" "$BENCH_TMP/after.txt")
  slow[$mode]=$(slow_share "$BENCH_TMP/metrics-before.txt" "$BENCH_TMP/metrics-after.txt")
done

printf '%-15s %9s %8s %8s %8s %7s %8s %9s %16s\n' mode "req/s" "p50 ms" "p95 ms" "p99 ms" errors non-2xx "hit rate" \
  "stalls >4ms/max"
for mode in "${modes[@]}"; do
  line=${result[$mode]} st=${stalls[$mode]}
  printf '%-15s %9.0f %8.2f %8.2f %8.2f %7s %8s %9s %10s %5.1f\n' "$mode" "$(field rps "$line")" "$(field p50 "$line")" \
    "$(field p95 "$line")" "$(field p99 "$line")" "$(field errors "$line")" "$(field non2xx "$line")" \
    "$(pct "${rates[$mode]%%|*}")" "$(field over4 "$st")" "$(field max "$st")"
done
for mode in "${modes[@]}"; do
  line=${result[$mode]}
  by=""
  for kv in ${rates[$mode]#*|}; do by+="${by:+, }${kv%%=*} $(pct "${kv#*=}")"; done
  printf '%-16s %s requests, %s writes; hit rate by cache: %s\n' "$mode:" \
    "$(field requests "$line")" "$(field writes "$line")" "${by:-n/a}"
done
for mode in "${modes[@]}"; do
  [[ "$mode" != nginx* ]] || continue
  read -r rp rn wp wn <<<"${slow[$mode]}"
  printf '%-16s conversa took over 5 ms for %s%% of %s reads and %s%% of %s writes\n' "$mode:" "$rp" "$rn" "$wp" "$wn"
done

# slow_json "READS_PCT READS WRITES_PCT WRITES": that as a JSON object; null for
# nothing (the nginx run, which has no such histogram)
slow_json() {
  local rp rn wp wn
  [[ -n "$1" ]] || { echo null; return; }
  read -r rp rn wp wn <<<"$1"
  [[ "$rp" != n/a ]] || rp=null
  [[ "$wp" != n/a ]] || wp=null
  printf '{"reads_pct":%s,"reads":%s,"writes_pct":%s,"writes":%s}' "$rp" "$rn" "$wp" "$wn"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
json_runs=()
for mode in "${modes[@]}"; do
  line=${result[$mode]}
  overall=${rates[$mode]%%|*}
  [[ "$overall" == n/a ]] && overall=null
  by=""
  for kv in ${rates[$mode]#*|}; do
    v=${kv#*=}
    [[ "$v" == n/a ]] && v=null
    by+="${by:+,}\"${kv%%=*}\":$v"
  done
  json_runs+=("{\"mode\":\"$mode\",\"cache_enabled\":$(case $mode in "cache on"*) echo true ;; nginx*) echo null ;; *) echo false ;; esac),\
\"offered_rps\":$([[ "$mode" == *paced ]] && echo "$paced_rate" || echo null),\
\"rps\":$(field rps "$line"),\"p50_ms\":$(field p50 "$line"),\"p95_ms\":$(field p95 "$line"),\"p99_ms\":$(field p99 "$line"),\
\"errors\":$(field errors "$line"),\"non2xx\":$(field non2xx "$line"),\"requests\":$(field requests "$line"),\
\"writes\":$(field writes "$line"),\"hit_rate\":$overall,\"hit_rate_by_cache\":{$by},\
\"server_over_5ms\":$(slow_json "${slow[$mode]:-}"),\"stalls\":$(stall_json "${stalls[$mode]}")}")
done
{
  printf '{"date":"%s","duration":"%s","warmup":"%s","connections":%s,"agents":%s,"companies":%s,"write_pct":%s,"pace_pct":%s,"runs":[' \
    "$stamp" "$DURATION" "$WARMUP" "$CONNECTIONS" "$nagents" "$ncompanies" "$WRITE_PCT" "$PACE_PCT"
  (IFS=,; printf '%s' "${json_runs[*]}")
  printf ']}\n'
} >"$RESULTS_DIR/dashboard-$stamp.json"
cp "$RESULTS_DIR/dashboard-$stamp.json" "$RESULTS_DIR/dashboard-latest.json"
note "results written to $RESULTS_DIR/dashboard-$stamp.json"
