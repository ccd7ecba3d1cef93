#!/usr/bin/env bash
# Runs the test binaries against throw-away PostgreSQL and Redis servers made for
# this run, then removes them. Unit tests (unit_*) run in parallel; integration
# tests (it_*) run one at a time because some stop and freeze those servers.
# Prints the failed tests' names, then a closing line "tests: N passed, N failed", and
# exits non-zero on failure.
# Usage: tests/run.sh TEST_BINARY...
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ $# -eq 0 ]; then
    echo "usage: $0 TEST_BINARY...   (make test builds them and calls this)"
    [ "${1:-}" = "--help" ]; exit $?
fi
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

tmp=$(mktemp -d /tmp/conversa-test.XXXXXX)
chmod 755 "$tmp"
cleanup() {
    scripts/stack.sh stop "$tmp/stack" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

scripts/stack.sh start "$tmp/stack" --pg-port 0 --redis-port 0
# shellcheck disable=SC1091
. "$tmp/stack/env"
export DATABASE_URL REDIS_URL
export STACK_DIR="$tmp/stack"
export CONVERSA_BIN="$here/${BUILD:-build/release}/conversa"
# One random key for the whole run: seed seals the demo's secrets with it and every
# conversa the tests start inherits it.
ENCRYPTION_KEY=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ENCRYPTION_KEY
unset ENCRYPTION_KEY_PREVIOUS
# No test ever reaches Meta: sends go to the stand-in a test starts, or nowhere.
export META_GRAPH_URL=http://127.0.0.1:9
# Limits no test reaches, so the limiter runs on every request without refusing any;
# tests of the limiter set their own.
export RATE_LIMIT_PUBLIC=1000000/60/60 RATE_LIMIT_WEBHOOKS=1000000/60/60 \
    RATE_LIMIT_TOKEN=1000000/60/60 RATE_LIMIT_IP=1000000/60/60
if [ "${SANITIZE:-0}" = 1 ]; then
    # leaks fail the run; a report names the leak's allocation site
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
    export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

"$CONVERSA_BIN" migrate up
"$CONVERSA_BIN" seed --demo >/dev/null

passed=0 failed=0
failures=()
for t in "$@"; do
    name=$(basename "$t")
    jobs=()
    case "$name" in it_* | faults) jobs=(--jobs 1) ;; esac
    echo "== $name"
    set +e
    "$t" "${jobs[@]}" --timeout 300 2>&1 | tee "$tmp/$name.out"
    rc=${PIPESTATUS[0]}
    set -e
    line=$(grep -a 'Synthesis: Tested:' "$tmp/$name.out" | tail -n 1 || true)
    tested=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' <<<"$line")
    passing=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
    if [ -z "$tested" ] || [ "$rc" -ne 0 ] && [ "${passing:-0}" = "${tested:-0}" ]; then
        # the binary died before its summary, or exited non-zero with all passing
        echo "$name: exited with status $rc" >&2
        failures+=("$name (exited with status $rc)")
        failed=$((failed + 1))
        passed=$((passed + ${passing:-0}))
        continue
    fi
    if [ "${SANITIZE:-0}" = 1 ] &&
        grep -aqE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$tmp/$name.out"; then
        # a report from a test's own process: Criterion counts the test by its
        # assertions, and the process's exit status after them is not seen
        echo "$name: sanitizer report above" >&2
        failures+=("$name (sanitizer report)")
        failed=$((failed + 1))
        passed=$((passed + ${passing:-0}))
        continue
    fi
    passed=$((passed + passing))
    failed=$((failed + tested - passing))
    # Criterion prints "[FAIL] suite::test: (…)" for each failed or crashed test
    while IFS= read -r f; do
        failures+=("$name $f")
    done < <(grep -a '\[FAIL\]' "$tmp/$name.out" | sed 's/.*\[FAIL\] *//; s/: *(.*//' || true)
done
# The key that seals stored secrets must never be printed: not by a test, not in any
# server's log.
if grep -rqaF -- "$ENCRYPTION_KEY" "$tmp"/*.out "$tmp/stack" 2>/dev/null; then
    echo "ENCRYPTION_KEY appears in a test's output or a server's log:" >&2
    grep -rlaF -- "$ENCRYPTION_KEY" "$tmp"/*.out "$tmp/stack" >&2 || true
    failed=$((failed + 1))
fi
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
