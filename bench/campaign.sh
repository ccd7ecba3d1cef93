#!/usr/bin/env bash
# A broadcast campaign at Meta's pace: RECIPIENTS (100,000) contacts through
# `conversa fake-meta` (the stand-in Cloud API: answers at once, sends the sent,
# delivered and read statuses back as signed webhooks) with the connection's rate set
# to RATE (1,000) messages/s, Meta's highest tier.
#
# A company of its own ("bench-campaign", re-created each run) with RECIPIENTS contacts,
# 1,000 conversations and a connection at messages_per_second=RATE; `conversa serve`
# with its defaults (SEND_CONCURRENCY=2, QUEUE_CONCURRENCY=2) and the stand-in.
#
#   1. baseline: GET /api/v1/conversations/status at API_RATE requests/s over
#      API_CONNECTIONS connections for API_DURATION, no campaign: p50/p95/p99 as wrk
#      saw them, and the share of the requests conversa itself took over 5 ms (from
#      its http_request_duration_seconds histogram: from the request parsed to the
#      answer written; the rest of wrk's time is the sockets and the wait for a core).
#      Then the same load on the reference, a private nginx answering a fixed body
#      (bench/nginx.conf.in, as bench/run.sh): what this machine gives a server that
#      does no work at all. Beside each of these loads, bench/stall_probe.c counts the
#      times the machine kept a ready thread from a core over 4 ms, and the longest.
#   2. the campaign is triggered; 5 s in, the same API load for API_DURATION while it
#      sends, then the same on nginx (so the campaign must last 5 s + twice
#      API_DURATION: the script says so when the reference ran past its end).
#      conversa's CPU (utime + stime, % of one core) and resident memory (sampled
#      each second), and the CPU of PostgreSQL, Redis and the stand-in, are measured
#      from the trigger to the campaign's completion.
#   3. once it completes: the achieved rate as the stand-in saw it (requests / time
#      from first to last), the requests in each whole second (median, lowest, highest,
#      leaving out the first and last), recipients accounted for (progress), and the
#      duplicates the stand-in saw (biz_opaque_callback_data accepted twice); then the
#      time until every status has come back (all read).
#
# Prints a table; writes bench/results/campaign-<UTC stamp>.json and campaign-latest.json.
#
# Environment: CONVERSA_BIN (default build/release/conversa), STALL_PROBE
# (build/release/bench/stall-probe), RECIPIENTS (100000), RATE (1000), API_RATE (1000),
# API_CONNECTIONS (8), API_DURATION (30s), BENCH_DIR (.data/bench), RESULTS_DIR
# (bench/results).
set -euo pipefail
RECIPIENTS=${RECIPIENTS:-100000}
RATE=${RATE:-1000}
API_RATE=${API_RATE:-1000}
API_CONNECTIONS=${API_CONNECTIONS:-8}
API_DURATION=${API_DURATION:-30s}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_help "$@"
for v in RECIPIENTS RATE API_RATE API_CONNECTIONS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ "$RATE" -le 1000 ]] || die "RATE must be at most 1000 (Meta's highest tier)"
command -v wrk >/dev/null || die "wrk not found; run: scripts/deps.sh --install bench"
command -v jq >/dev/null || die "jq not found; run: scripts/deps.sh --install bench"
stall_probe_check

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/conversa-campaign.XXXXXX")
fake_pid=""
cleanup_fake() { [[ -n "$fake_pid" ]] && kill "$fake_pid" 2>/dev/null; true; }
trap 'cleanup_fake; bench_cleanup' EXIT
bench_stack_up
trap 'cleanup_fake; bench_cleanup' EXIT
"$CONVERSA_BIN" migrate up >/dev/null 2>&1 || die "migrate failed"

slug=bench-campaign
phone_id=990000000000002
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
access=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
note "re-creating company $slug with $RECIPIENTS contacts"
bench_company "$slug" "Bench campaign" "$phone_id"
psql_q "INSERT INTO contacts (company_id, phone_number, wa_id, name)
        SELECT $company, '5541' || lpad(g::text, 9, '0'), '5541' || lpad(g::text, 9, '0'), 'Contact ' || g
        FROM generate_series(1, $RECIPIENTS) g" >/dev/null

bench_nginx_up
fake_port=$(free_port)
start_conversa "$BENCH_DIR/conversa-campaign.log" META_GRAPH_URL="http://127.0.0.1:$fake_port"
"$CONVERSA_BIN" fake-meta --port "$fake_port" --window open \
  --webhook-url "http://127.0.0.1:$port/api/webhooks/meta/$slug" --app-secret "$secret" \
  >"$BENCH_DIR/fake-meta-campaign.log" 2>&1 &
fake_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$fake_port/_fake/stats" >/dev/null 2>&1 && break
  sleep 0.1
done
api() { curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
conn=$(api -X POST "http://127.0.0.1:$port/api/v1/connections" \
  -d "{\"name\":\"Bench\",\"slug\":\"$slug\",\"phone_number_id\":\"$phone_id\",\"access_token\":\"$access\",
       \"app_secret\":\"$secret\",\"verify_token\":\"bench\",\"messages_per_second\":$RATE}" | jq -r .data.id)
psql_q "INSERT INTO conversations (company_id, contact_id, connection_id, status)
        SELECT company_id, id, $conn, (ARRAY['open', 'pending', 'resolved'])[1 + id % 3] FROM contacts
        WHERE company_id = $company ORDER BY id LIMIT 1000" >/dev/null
bench_settle

# status_hist: conversa's own count of status requests answered within 5 ms, and of all
status_hist() {
  curl -fsS "http://127.0.0.1:$port/api/metrics" | awk '
    index($0, "route=\"/api/v1/conversations/status\",status=\"200\"") == 0 { next }
    /_bucket/ && /le="0.005"/ { fast = $2 }
    /_count/ { all = $2 }
    END { printf "%d %d\n", fast, all }'
}

# api_load conversa|nginx: the API load on conversa or on the reference; prints its
# RESULT line, with slow5= the share (%) of its requests that conversa itself (request
# parsed to response written) took over 5 ms (null for nginx), and stalls4= and
# stallmax= from the stall probe run beside it (bench/stall_probe.c: how often and how
# long the machine kept a ready thread from a core over 4 ms meanwhile)
api_load() {
  local fast0 all0 fast1 all1 line url="http://127.0.0.1:$port/api/v1/conversations/status"
  [[ $1 == conversa ]] || url=$nginx_url
  [[ $1 != conversa ]] || read -r fast0 all0 < <(status_hist)
  stall_probe_start
  line=$(wrk -t1 -c"$API_CONNECTIONS" -d"$API_DURATION" -s bench/report.lua -H "Authorization: Bearer $token" \
    "$url" -- "$API_RATE" "$API_CONNECTIONS" | grep '^RESULT')
  stall_probe_stop
  line+=" stalls4=$(field over4 "$stall_line") stallmax=$(field max "$stall_line")"
  if [[ $1 != conversa ]]; then
    echo "$line slow5=null"
    return
  fi
  read -r fast1 all1 < <(status_hist)
  echo "$line $(awk -v n=$((all1 - all0)) -v fast=$((fast1 - fast0)) \
    'BEGIN { printf("slow5=%.3f", (n > 0) ? 100 * (n - fast) / n : 0) }')"
}

note "baseline: /api/v1/conversations/status at $API_RATE/s for $API_DURATION, no campaign, then nginx"
base=$(api_load conversa)
base_ref=$(api_load nginx)

cid=$(api -X POST "http://127.0.0.1:$port/api/v1/campaigns" \
  -d "{\"name\":\"Bench\",\"connection_id\":$conn,\"template\":{\"name\":\"black_friday\",\"language\":\"pt_BR\",
       \"parameters\":[\"30%\"]},\"audience\":{\"all\":true}}" | jq -r .data.id)
ticks=$(getconf CLK_TCK)
# CPU ticks (utime + stime) of a process; of PostgreSQL: the postmaster and its children
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu() { cpu_of "$conv_pid"; }
pg_cpu() {
  local pm
  pm=$(head -n 1 "$BENCH_DIR/stack/pg/postmaster.pid")
  awk -v pm="$pm" '{ if ($1 == pm || $4 == pm) t += $14 + $15 } END { print t + 0 }' /proc/[0-9]*/stat 2>/dev/null
}
redis_pid=$(cat "$BENCH_DIR/stack/redis.pid" 2>/dev/null || echo "")
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$conv_pid/status"; }
cpu0=$(cpu)
pg0=$(pg_cpu)
fake0=$(cpu_of "$fake_pid")
redis0=$([[ -n "$redis_pid" ]] && cpu_of "$redis_pid" || echo 0)
t0=$(date +%s.%N)
api -X POST "http://127.0.0.1:$port/api/v1/campaigns/trigger" -d "{\"campaign_id\":$cid}" >/dev/null
note "campaign $cid triggered: $RECIPIENTS recipients at $RATE/s"
(
  sleep 5
  api_load conversa >"$BENCH_TMP/during.txt"
  api_load nginx >"$BENCH_TMP/during-ref.txt"
  date +%s.%N >"$BENCH_TMP/ref-end.txt"
) &
load_pid=$!
rss_max=0
deadline=$(( $(date +%s) + RECIPIENTS / RATE * 3 + 120 ))
while :; do
  r=$(rss_kb); [[ "$r" -gt "$rss_max" ]] && rss_max=$r
  state=$(api "http://127.0.0.1:$port/api/v1/campaigns/$cid")
  [[ $(jq -r .data.status <<<"$state") == completed ]] && break
  [[ $(date +%s) -lt $deadline ]] || die "the campaign did not complete: $state"
  kill -0 "$conv_pid" 2>/dev/null || die "conversa exited during the campaign"
  sleep 1
done
t1=$(date +%s.%N)
cpu1=$(cpu)
pg1=$(pg_cpu)
fake1=$(cpu_of "$fake_pid")
redis1=$([[ -n "$redis_pid" ]] && cpu_of "$redis_pid" || echo 0)
wait "$load_pid" || true
during=$(cat "$BENCH_TMP/during.txt")
during_ref=$(cat "$BENCH_TMP/during-ref.txt")
if awk -v e="$(cat "$BENCH_TMP/ref-end.txt")" -v t1="$t1" 'BEGIN { exit !(e > t1) }'; then
  note "the nginx reference ran past the campaign's end: more RECIPIENTS or a shorter API_DURATION"
fi
stats=$(curl -fsS "http://127.0.0.1:$fake_port/_fake/stats?per_second=1")
read_deadline=$(( $(date +%s) + 120 ))
while [[ $(api "http://127.0.0.1:$port/api/v1/campaigns/$cid" | jq .data.progress.read) -lt "$RECIPIENTS" ]]; do
  [[ $(date +%s) -lt $read_deadline ]] || { note "not every status came back within 120 s"; break; }
  sleep 1
done
t2=$(date +%s.%N)
state=$(api "http://127.0.0.1:$port/api/v1/campaigns/$cid")

requests=$(jq .requests <<<"$stats")
accepted=$(jq .accepted <<<"$stats")
dups=$(jq .duplicates <<<"$stats")
recips=$(jq .recipients <<<"$stats")
span=$(jq .seconds <<<"$stats")
achieved=$(awk -v n="$requests" -v s="$span" 'BEGIN { printf "%.1f", (n - 1) / s }')
deviation=$(awk -v a="$achieved" -v r="$RATE" 'BEGIN { printf "%.2f", 100 * (a - r) / r }')
read -r sec_median sec_min sec_max <<<"$(jq -r '.per_second | .[1:-1] | sort | "\(.[length/2|floor]) \(.[0]) \(.[-1])"' <<<"$stats")"
accounted=$(jq '[.data.progress[]] | add' <<<"$state")
final_read=$(jq .data.progress.read <<<"$state")
failed=$(jq .data.progress.failed <<<"$state")
pct() { awk -v c0="$1" -v c1="$2" -v hz="$ticks" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", 100 * (c1 - c0) / hz / (t1 - t0) }'; }
cpu_pct=$(pct "$cpu0" "$cpu1")
pg_pct=$(pct "$pg0" "$pg1")
fake_pct=$(pct "$fake0" "$fake1")
redis_pct=$(pct "$redis0" "$redis1")
per_second=$(jq -c .per_second <<<"$stats")
slow=$(jq -r --argjson r "$RATE" '.per_second | to_entries | .[1:-1] | map(select(.value < 0.95 * $r)) | map("\(.key)s:\(.value)") | join(" ")' <<<"$stats")
send_s=$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", t1 - t0 }')
statuses_s=$(awk -v t0="$t0" -v t2="$t2" 'BEGIN { printf "%.1f", t2 - t0 }')
rss_mb=$(awk -v k="$rss_max" 'BEGIN { printf "%.1f", k / 1024 }')

printf '\ncampaign of %s recipients at %s messages/s through the stand-in\n' "$RECIPIENTS" "$RATE"
printf '  achieved rate          %s msg/s (%s %% from the limit); per second: median %s, lowest %s, highest %s\n' \
  "$achieved" "$deviation" "$sec_median" "$sec_min" "$sec_max"
printf '  requests / accepted    %s / %s; distinct recipients %s; duplicates %s\n' "$requests" "$accepted" "$recips" "$dups"
printf '  accounted recipients   %s (failed %s); all read after %s s\n' "$accounted" "$failed" "$statuses_s"
printf '  trigger to completed   %s s; conversa CPU %s %% of one core, peak RSS %s MiB\n' "$send_s" "$cpu_pct" "$rss_mb"
printf '  meanwhile              PostgreSQL %s %%, Redis %s %%, the stand-in %s %% of one core\n' "$pg_pct" "$redis_pct" "$fake_pct"
printf '  seconds under 95 %%     %s\n' "${slow:-none}"
printf '  %-30s %9s %8s %8s %8s %7s %12s %16s\n' "API /conversations/status" "req/s" "p50 ms" "p95 ms" "p99 ms" errors \
  "server >5ms" "stalls >4ms/max"
for run in baseline during "nginx, baseline" "nginx, during"; do
  case $run in
  baseline) line=$base ;;
  during) line=$during ;;
  "nginx, baseline") line=$base_ref ;;
  *) line=$during_ref ;;
  esac
  slow=$(field slow5 "$line")
  [[ $slow == null ]] && slow=- || slow=$slow%
  printf '  %-30s %9.0f %8.2f %8.2f %8.2f %7s %12s %10s %5.1f\n' "$run" "$(field rps "$line")" "$(field p50 "$line")" \
    "$(field p95 "$line")" "$(field p99 "$line")" "$(field errors "$line")" "$slow" "$(field stalls4 "$line")" \
    "$(field stallmax "$line")"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
api_json() {
  printf '{"rps":%s,"p50_ms":%s,"p95_ms":%s,"p99_ms":%s,"errors":%s,"server_over_5ms_pct":%s,"stalls_over4":%s,"stall_max_ms":%s}' \
    "$(field rps "$1")" "$(field p50 "$1")" "$(field p95 "$1")" "$(field p99 "$1")" "$(field errors "$1")" \
    "$(field slow5 "$1")" "$(field stalls4 "$1")" "$(field stallmax "$1")"
}
cat >"$RESULTS_DIR/campaign-$stamp.json" <<EOT
{"date":"$stamp","recipients":$RECIPIENTS,"rate":$RATE,"achieved_per_s":$achieved,"deviation_pct":$deviation,
 "per_second":{"median":$sec_median,"lowest":$sec_min,"highest":$sec_max},"requests":$requests,"accepted":$accepted,
 "distinct_recipients":$recips,"duplicates":$dups,"accounted":$accounted,"failed":$failed,"read":$final_read,
 "send_seconds":$send_s,"all_read_seconds":$statuses_s,"cpu_pct_one_core":$cpu_pct,"peak_rss_mib":$rss_mb,
 "postgres_cpu_pct":$pg_pct,"redis_cpu_pct":$redis_pct,"fake_meta_cpu_pct":$fake_pct,"requests_per_second":$per_second,
 "api_rate":$API_RATE,"api_connections":$API_CONNECTIONS,"api_baseline":$(api_json "$base"),"api_during":$(api_json "$during"),
 "nginx_baseline":$(api_json "$base_ref"),"nginx_during":$(api_json "$during_ref")}
EOT
cp "$RESULTS_DIR/campaign-$stamp.json" "$RESULTS_DIR/campaign-latest.json"
note "results written to $RESULTS_DIR/campaign-$stamp.json"
