#!/usr/bin/env bash
# The platform API on data at scale (1M conversations, 10M messages by default):
# requests/s and p50/p95/p99 per endpoint at 32 connections for the largest company,
# with PostgreSQL's own per-query mean from pg_stat_statements. The cache is off
# (CACHE_ENABLED=0): this measures each endpoint's database path.
#
# The data lives in .data/bench (kept between runs: seeding takes minutes); its
# servers are started for the run and stopped after it.
#
# Environment: CONVERSA_BIN (default build/release/conversa), DURATION (10s),
# CONNECTIONS (32), SCALE_ARGS (extra flags for `conversa seed --scale`),
# BENCH_DIR (.data/bench), RESULTS_DIR (bench/results).
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_stack_up
bench_data_up

company=$(psql_q "SELECT company_id FROM conversation_counts GROUP BY 1 ORDER BY sum(n) DESC LIMIT 1")
user=$(psql_q "SELECT id FROM users WHERE company_id = $company AND role = 'admin' LIMIT 1")
conv=$(psql_q "SELECT conversation_id FROM messages WHERE company_id = $company GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
cursor=$(psql_q "SELECT (extract(epoch FROM updated_at) * 1000000)::bigint || '.' || id FROM conversations
                 WHERE company_id = $company ORDER BY updated_at DESC, id DESC OFFSET 9999 LIMIT 1")
phone=$(psql_q "SELECT phone_number FROM contacts WHERE company_id = $company ORDER BY id LIMIT 1 OFFSET 500")
total=$(psql_q "SELECT sum(n) FROM conversation_counts WHERE company_id = $company")
token=$(new_tokens 1)
psql_q "INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind)
        VALUES ($company, $user, sha256(convert_to('$token', 'UTF8')), 'bench', 'api')" >/dev/null
note "largest company $company: $total conversations"

# The database path of each endpoint, without the cache in front (bench/dashboard.sh
# measures the cache).
start_conversa "$BENCH_DIR/conversa.log" CACHE_ENABLED=0

targets=(
  "conversations page 1|/api/v1/conversations?page=1&limit=20"
  "conversations page 50|/api/v1/conversations?page=50&limit=20"
  "cursor 10,000 deep|/api/v1/conversations?limit=20&cursor=$cursor"
  "status counts|/api/v1/conversations/status"
  "notifications list|/api/v1/notifications?limit=20"
  "messages of a conversation|/api/v1/conversations/$conv/messages?limit=50"
  "contact lookup|/api/v1/contacts/lookup?phone=%2B$phone"
)

json_rows=()
printf '%-28s %9s %8s %8s %8s %10s\n' target "req/s" "p50 ms" "p95 ms" "p99 ms" "db mean ms"
for t in "${targets[@]}"; do
  name=${t%%|*} path=${t#*|}
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" || true)
  if [[ "$code" != 200 ]]; then
    note "$name: $path answered $code; skipped"
    continue
  fi
  psql_su "SELECT pg_stat_statements_reset()" >/dev/null
  line=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s bench/report.lua -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port$path" | grep '^RESULT')
  # the busiest statement of the run is the endpoint's query
  db=$(psql_su "SELECT round(mean_exec_time::numeric, 3) || ' ' || round((mean_exec_time + 1.645 * stddev_exec_time)::numeric, 3)
                FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 1")
  read -r rps p50 p95 p99 errors <<<"$(sed 's/[a-z0-9]*=//g; s/RESULT //' <<<"$line")"
  read -r db_mean db_p95 <<<"$db"
  printf '%-28s %9.0f %8.2f %8.2f %8.2f %10s\n' "$name" "$rps" "$p50" "$p95" "$p99" "$db_mean"
  [[ "$errors" == 0 ]] || note "$name: $errors errors"
  json_rows+=("{\"name\":\"$name\",\"rps\":$rps,\"p50_ms\":$p50,\"p95_ms\":$p95,\"p99_ms\":$p99,\"db_mean_ms\":$db_mean,\"db_p95_estimate_ms\":$db_p95,\"errors\":$errors}")
done
echo "(db mean: pg_stat_statements mean_exec_time of the endpoint's query; the JSON adds mean + 1.645 sd as a p95 estimate)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
{
  printf '{"date":"%s","connections":%s,"duration":"%s","company_conversations":%s,"targets":[' \
    "$stamp" "$CONNECTIONS" "$DURATION" "$total"
  (IFS=,; printf '%s' "${json_rows[*]}")
  printf ']}\n'
} >"$RESULTS_DIR/api-$stamp.json"
cp "$RESULTS_DIR/api-$stamp.json" "$RESULTS_DIR/api-latest.json"
note "results written to $RESULTS_DIR/api-$stamp.json"
