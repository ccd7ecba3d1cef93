#!/usr/bin/env bash
# Runs fuzz targets one after the other (make fuzz / make fuzz-smoke build them first).
# Usage: fuzz/run.sh TARGET...   with FUZZ_SECONDS (60), FUZZ_NICE (19), FUZZ_BUILD (build/fuzz)
#
# Each target starts from its seeds in fuzz/corpus/<target>/ (read only) and from what
# earlier runs found in build/fuzz/corpus/<target>/, where new inputs go, so the tree's
# corpus stays as committed. Crash, leak and timeout inputs go to build/fuzz/artifacts/.
# Prints one line per target (executions, verdict) and exits 1 when any target failed.
#
# Every run also appends a line to the execution ledger, fuzz/executions.tsv (FUZZ_LEDGER
# names another file; empty: none): when it ended (UTC), the target, the seconds it ran,
# libFuzzer's count of executions and "clean", "crash <artifact>" (or "interrupted": a
# run stopped from outside). fuzz/totals.sh sums it per target.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--help" ] || [ $# -eq 0 ]; then
    echo "usage: $0 TARGET...   (FUZZ_SECONDS, FUZZ_NICE, FUZZ_BUILD from the environment)"
    exit $([ "${1:-}" = "--help" ] && echo 0 || echo 2)
fi

build=${FUZZ_BUILD:-build/fuzz}
seconds=${FUZZ_SECONDS:-60}
niceness=${FUZZ_NICE:-19}
artifacts=$build/artifacts
ledger=${FUZZ_LEDGER-fuzz/executions.tsv}
mkdir -p "$artifacts" "$build/logs"
if [ -n "$ledger" ] && [ ! -s "$ledger" ]; then
    printf 'date\ttarget\tseconds\texecutions\tresult\n' >"$ledger"
fi

failed=()
summary=()
for t in "$@"; do
    bin=$build/fuzz_$t
    seeds=fuzz/corpus/$t
    work=$build/corpus/$t
    log=$build/logs/$t.log
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is not built (make fuzz builds it)" >&2
        exit 2
    fi
    mkdir -p "$work"
    opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/$t-")
    # A dictionary of the target's own tokens, or the JSON one for targets fed JSON.
    if [ -f "fuzz/$t.dict" ]; then
        opts+=(-dict="fuzz/$t.dict")
    elif [ "$t" = webhook ] || [ "$t" = body ]; then
        opts+=(-dict=fuzz/json.dict)
    fi
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    echo "fuzz: $t for ${seconds}s (log: $log)"
    rc=0
    started=$SECONDS
    nice -n "$niceness" "$bin" "${opts[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
    elapsed=$((SECONDS - started))
    # libFuzzer's own count: the final stats, or "Done N runs" when they are missing.
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=0
    if [ "$rc" -eq 0 ]; then
        verdict="ok"
        result="clean"
    elif grep -q 'libFuzzer: run interrupted' "$log"; then
        # stopped from outside (SIGINT, SIGTERM): its executions count, nothing failed
        verdict="interrupted"
        result="interrupted"
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        verdict="FAILED (exit $rc${artifact:+, input: $artifact})"
        result="crash ${artifact:+$(basename "$artifact")}"
        [ -n "$artifact" ] || result="crash (no input written, exit $rc)"
        failed+=("$t")
        echo "---- $t: end of $log ----"
        tail -n 60 "$log"
        echo "----"
    fi
    summary+=("$(printf '%-8s %12s runs  %s' "$t" "$runs" "$verdict")")
    # one write per line, so that runs side by side append whole lines
    if [ -n "$ledger" ]; then
        line=$(printf '%s\t%s\t%s\t%s\t%s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$t" "$elapsed" "$runs" "$result")
        printf '%s\n' "$line" >>"$ledger"
    fi
done

echo
echo "fuzz: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in $artifacts/; replay with $build/fuzz_<target> <input>)"
    exit 1
fi
