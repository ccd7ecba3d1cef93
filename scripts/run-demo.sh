#!/usr/bin/env bash
# Starts the demo: private PostgreSQL and Redis under DATA_DIR, migrations, the demo
# seed, then `conversa serve` in the background on PORT, sending through
# `conversa fake-meta` (the stand-in Cloud API on PORT + 80, which sends the statuses
# back to the demo connection's webhook), so replies and campaigns work without Meta.
# Running it again reuses the data (and restarts both). `make stop` stops everything.
# Usage: scripts/run-demo.sh BIN DATA_DIR PORT
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ $# -ne 3 ]; then
    echo "usage: $0 BIN DATA_DIR PORT"; [ "${1:-}" = "--help" ]; exit $?
fi
bin=$1 data=$2 port=$3
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$data"
data=$(cd "$data" && pwd)
"$here/stack.sh" start "$data"
# shellcheck disable=SC1091
. "$data/env"
export DATABASE_URL REDIS_URL

# The key that seals stored secrets: made once, kept beside the data (readable by its
# owner only) and reused, since the data sealed with it needs it. To change it, see
# `conversa keys --help`.
secrets="$data/secrets.env"
if [ ! -s "$secrets" ]; then
    (umask 077 && printf 'ENCRYPTION_KEY=%s\n' "$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$secrets.tmp")
    mv -f "$secrets.tmp" "$secrets"
fi
chmod 600 "$secrets"
# shellcheck disable=SC1090
. "$secrets"
export ENCRYPTION_KEY

if [ -f "$data/fake-meta.pid" ]; then
    kill "$(cat "$data/fake-meta.pid")" 2>/dev/null || true
    rm -f "$data/fake-meta.pid"
fi
if [ -f "$data/conversa.pid" ] && kill -0 "$(cat "$data/conversa.pid")" 2>/dev/null; then
    echo "stopping the conversa started earlier (pid $(cat "$data/conversa.pid"))"
    kill "$(cat "$data/conversa.pid")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$data/conversa.pid")" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$data/conversa.pid"

"$bin" migrate up
seed_out=$("$bin" seed --demo)
token=$(printf '%s\n' "$seed_out" | awk '/api token:/ {print $3}')

fake_port=$((port + 80))
# the demo connection's app secret (conversa seed): the stand-in signs with it
nohup "$bin" fake-meta --port "$fake_port" --window open --app-secret demo-app-secret \
    --webhook-url "http://127.0.0.1:$port/api/webhooks/meta/demo" >>"$data/fake-meta.log" 2>&1 &
echo $! >"$data/fake-meta.pid"
# This machine is the demo's monitor: its scrapes and liveness probes are not rate limited.
PORT=$port META_GRAPH_URL="http://127.0.0.1:$fake_port" RATE_LIMIT_EXEMPT="${RATE_LIMIT_EXEMPT-127.0.0.1 ::1}" \
  nohup "$bin" serve >>"$data/conversa.log" 2>&1 &
echo $! >"$data/conversa.pid"
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/api/health/live" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$(cat "$data/conversa.pid")" 2>/dev/null; then
        echo "conversa exited at start; the end of $data/conversa.log:" >&2
        tail -n 20 "$data/conversa.log" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<EOT

conversa is serving on http://localhost:$port  (pid $(cat "$data/conversa.pid"), log: $data/conversa.log)
open http://localhost:$port/ in a browser and sign in with the demo credentials below
sending through the stand-in WhatsApp Cloud API on http://localhost:$fake_port (conversa fake-meta)
$seed_out

Try:
  curl http://localhost:$port/api/health
  curl -H 'Authorization: Bearer $token' http://localhost:$port/api/v1/conversations/status
  curl -H 'Authorization: Bearer $token' 'http://localhost:$port/api/v1/conversations?page=1&limit=20'
  curl -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' -d '{"text":"Hello!"}' \
       http://localhost:$port/api/v1/conversations/1/messages

(the token belongs to the demo admin; /api/metrics has the Prometheus figures)

Stop everything with: make stop
EOT
