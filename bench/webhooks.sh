#!/usr/bin/env bash
# Meta's webhooks at full tilt: how fast conversa acknowledges them durably, and how
# fast the queue's workers apply them.
#
# A company of its own ("bench-webhooks", an admin and two agents, re-created each run)
# with a connection whose app secret signs COUNT distinct inbound text webhooks from
# CONTACTS contacts (bench/webhook_gen.c, signed over the exact bytes sent).
#
#   1. paced: `conversa serve` with QUEUE_CONCURRENCY=0 (no worker), wrk at
#      CONNECTIONS connections for DURATION after a 2 s warm-up, sending on a schedule
#      of RATE webhooks/s (bench/webhooks.lua): acknowledgements/s and p50/p90/p99 at
#      that load. Every acknowledgement is a committed job. Then the reference: the
#      same paced load on a private nginx answering a fixed body ("nginx, paced"), the
#      latency this machine gives a server that does no work, at that moment.
#   2. the same with QUEUE_CONCURRENCY=2 (the default: workers apply while webhooks
#      keep arriving).
#   3. both again without pauses (ingest+workers, ingest): the most the machine acks.
#   Each starts from an empty queue after a checkpoint (bench_settle in bench/lib.sh);
#   the last leaves the backlog for 4.
#   Beside each measured load, bench/stall_probe.c sleeps 1 ms in a loop: the sleeps
#   that ended over 4 ms late (a thread kept waiting for a CPU that long), the
#   latest, and the median time between such stalls, in the "stalls" columns.
#   When the machine stalls every thread, every request in flight waits too, and on
#   two cores a few such stalls a second are a p99 of their own; the probe tells
#   that p99 from one the server makes.
#   4. drain: `conversa serve` with no HTTP load, QUEUE_CONCURRENCY=2 for DRAIN seconds,
#      then QUEUE_CONCURRENCY=8 for DRAIN seconds on what is left: jobs applied per
#      second, from the server's queue_jobs_completed_total after a 2 s warm-up (each
#      job is one message: contact upsert, conversation, message, notifications for
#      the company's two agents).
#
# Prints a table; writes bench/results/webhooks-<UTC stamp>.json and webhooks-latest.json.
#
# Environment: CONVERSA_BIN (default build/release/conversa), WEBHOOK_GEN
# (build/release/bench/webhook-gen), STALL_PROBE (build/release/bench/stall-probe),
# DURATION (15s), CONNECTIONS (64), COUNT (300000), CONTACTS (5000), DRAIN (20),
# RATE (5000), BENCH_DIR (.data/bench), RESULTS_DIR (bench/results).
set -euo pipefail
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
COUNT=${COUNT:-300000}
CONTACTS=${CONTACTS:-5000}
DRAIN=${DRAIN:-20}
RATE=${RATE:-5000}
WARMUP=2s
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_help "$@"
WEBHOOK_GEN=${WEBHOOK_GEN:-build/release/bench/webhook-gen}
for v in CONNECTIONS COUNT CONTACTS DRAIN RATE; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
command -v wrk >/dev/null || die "wrk not found; run: scripts/deps.sh --install bench"
[[ -x "$WEBHOOK_GEN" ]] || die "$WEBHOOK_GEN not found; run: make $WEBHOOK_GEN"
stall_probe_check

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/conversa-webhooks.XXXXXX")
bench_stack_up
"$CONVERSA_BIN" migrate up >/dev/null 2>&1 || die "migrate failed"

slug=bench-webhooks
phone_id=990000000000001
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
bench_nginx_up
note "re-creating company $slug"
bench_company "$slug" "Bench webhooks" "$phone_id"
psql_q "INSERT INTO users (company_id, email, name, role) VALUES ($company, 'agent1@$slug.test', 'Agent 1', 'agent'),
        ($company, 'agent2@$slug.test', 'Agent 2', 'agent')" >/dev/null

note "signing $COUNT webhooks from $CONTACTS contacts"
data=$BENCH_TMP/webhooks.txt
"$WEBHOOK_GEN" "$secret" "$phone_id" "$COUNT" "$CONTACTS" "b$(date +%s)" >"$data"

waiting() { psql_q "SELECT count(*) FROM jobs WHERE company_id = $company AND status IN ('queued', 'running')"; }

# run_wrk DURATION RATE [BASE PATH]: the webhooks to conversa, or to BASE PATH; RATE
# empty for no pacing
run_wrk() {
  wrk -t1 -c"$CONNECTIONS" -d"$1" -s bench/webhooks.lua "${3:-http://127.0.0.1:$port}" -- "$data" \
    "${4:-/api/webhooks/meta/$slug}" ${2:+"$2"}
}

# measure MODE RATE [BASE PATH]: a warm-up, then the measured load (run_wrk) with the
# stall probe beside it; sets result[MODE] and stalls[MODE] to their RESULT and STALLS lines
declare -A result stalls
measure() {
  run_wrk "$WARMUP" "$2" "${@:3}" >"$BENCH_TMP/warmup.txt" 2>&1 || { cat "$BENCH_TMP/warmup.txt" >&2; die "wrk failed"; }
  stall_probe_start
  run_wrk "$DURATION" "$2" "${@:3}" >"$BENCH_TMP/wrk.txt" 2>&1 || { cat "$BENCH_TMP/wrk.txt" >&2; die "wrk failed"; }
  stall_probe_stop
  stalls[$1]=$stall_line
  result[$1]=$(grep '^RESULT' "$BENCH_TMP/wrk.txt") || { cat "$BENCH_TMP/wrk.txt" >&2; die "no RESULT line"; }
}

# flood MODE CONCURRENCY [RATE]: one ingest run; sets result[MODE]
flood() {
  local mode=$1 conc=$2 rate=${3:-} log="$BENCH_DIR/conversa-webhooks-$1.log"
  start_conversa "$log" QUEUE_CONCURRENCY="$conc"
  if [[ -z "${conn_made:-}" ]]; then
    code=$(curl -s -o "$BENCH_TMP/conn.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' "http://127.0.0.1:$port/api/v1/connections" \
      -d "{\"name\":\"Bench\",\"slug\":\"$slug\",\"phone_number_id\":\"$phone_id\",\"app_secret\":\"$secret\"}")
    [[ "$code" == 201 ]] || die "creating the connection answered $code: $(cat "$BENCH_TMP/conn.json")"
    conn_made=1
  fi
  note "$mode: warm-up $WARMUP, then $DURATION at $CONNECTIONS connections (QUEUE_CONCURRENCY=$conc${rate:+, paced to $rate/s})"
  measure "$mode" "$rate"
  kill -0 "$conv_pid" 2>/dev/null || { tail -n 5 "$log" >&2; die "conversa exited during the run"; }
  stop_conversa
}

# reference RATE: the same paced load on nginx (bench_nginx_up), which answers every
# POST with its fixed body; sets result[nginx, paced]. Run next to the paced run, its
# p99 is what this machine's scheduling gives a server that does no work at that
# moment: on a shared machine the one figure says little without the other.
reference() {
  note "nginx, paced: warm-up $WARMUP, then $DURATION at $CONNECTIONS connections (paced to $1/s)"
  measure "nginx, paced" "$1" "${nginx_url%/static}" /static
}

# completed_total: the server's queue_jobs_completed_total (no load on the database)
completed_total() {
  curl -fsS --max-time 5 "http://127.0.0.1:$port/api/metrics" |
    awk '$1 == "queue_jobs_completed_total" { printf "%.0f\n", $2 }'
}

# drain CONCURRENCY: jobs (= messages) applied per second over DRAIN seconds, counted by
# the server itself after a 2 s warm-up, on the backlog the floods left.
declare -A rate backlog
drain() {
  local conc=$1 log="$BENCH_DIR/conversa-webhooks-drain-$1.log" c0 c1 t0 t1 left
  left=$(waiting)
  backlog[$conc]=$left
  [[ "$left" -gt 0 ]] || { rate[$conc]=null; note "drain at $conc: no backlog left"; return; }
  start_conversa "$log" QUEUE_CONCURRENCY="$conc"
  sleep 2
  c0=$(completed_total)
  t0=$(date +%s.%N)
  sleep "$DRAIN"
  c1=$(completed_total)
  t1=$(date +%s.%N)
  stop_conversa
  rate[$conc]=$(awk -v a="$((c1 - c0))" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", a / (t1 - t0) }')
  note "drain at $conc: $((c1 - c0)) jobs applied in $DRAIN s (backlog was $left)"
  [[ "$((c1 - c0))" -lt "$left" ]] || note "drain at $conc: the backlog ran out: the rate is a lower bound"
}

# every run starts from an empty queue, with what the previous one wrote on disk; the
# last one (no worker) leaves the backlog the drains use
reset_queue() {
  bench_clear_jobs
  bench_settle
}
reset_queue
flood paced 0 "$RATE"
reference "$RATE"
reset_queue
flood "paced+workers" 2 "$RATE"
reset_queue
flood "ingest+workers" 2
reset_queue
flood ingest 0
drain 2
drain 8

printf '%-16s %9s %8s %8s %8s %7s %8s %21s\n' run "acks/s" "p50 ms" "p90 ms" "p99 ms" errors non-2xx \
  "stalls >4ms/max/every"
for mode in paced "nginx, paced" "paced+workers" ingest "ingest+workers"; do
  line=${result[$mode]} st=${stalls[$mode]}
  printf '%-16s %9.0f %8.2f %8.2f %8.2f %7s %8s %8s %5.1f %5s ms\n' "$mode" "$(field rps "$line")" \
    "$(field p50 "$line")" "$(field p90 "$line")" "$(field p99 "$line")" "$(field errors "$line")" \
    "$(field non2xx "$line")" "$(field over4 "$st")" "$(field max "$st")" "$(field period "$st")"
done
for c in 2 8; do
  printf 'workers at concurrency %s: %s jobs (messages) applied/s (backlog %s jobs)\n' "$c" "${rate[$c]}" "${backlog[$c]}"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
# run_json MODE: result[MODE] and stalls[MODE] as a JSON object
run_json() {
  local line=${result[$1]}
  printf '{"run":"%s","acks_per_s":%s,"p50_ms":%s,"p90_ms":%s,"p99_ms":%s,"errors":%s,"non2xx":%s,"requests":%s,"stalls":%s}' \
    "$1" "$(field rps "$line")" "$(field p50 "$line")" "$(field p90 "$line")" "$(field p99 "$line")" \
    "$(field errors "$line")" "$(field non2xx "$line")" "$(field requests "$line")" "$(stall_json "${stalls[$1]}")"
}
runs=()
for mode in paced "paced+workers" ingest "ingest+workers"; do
  runs+=("$(run_json "$mode")")
done
{
  printf '{"date":"%s","duration":"%s","connections":%s,"contacts":%s,"runs":[' "$stamp" "$DURATION" "$CONNECTIONS" "$CONTACTS"
  (IFS=,; printf '%s' "${runs[*]}")
  printf '],"reference":%s,"applied_per_s":{"2":%s,"8":%s}}\n' "$(run_json "nginx, paced")" "${rate[2]}" "${rate[8]}"
} >"$RESULTS_DIR/webhooks-$stamp.json"
cp "$RESULTS_DIR/webhooks-$stamp.json" "$RESULTS_DIR/webhooks-latest.json"
note "results written to $RESULTS_DIR/webhooks-$stamp.json"
