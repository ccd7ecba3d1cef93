#!/usr/bin/env bash
# Sums the execution ledger (fuzz/executions.tsv, written by fuzz/run.sh) per target.
# Usage: fuzz/totals.sh [TARGET...]   (default: every target of fuzz/fuzz.mk)
# FUZZ_LEDGER names another ledger, FUZZ_GOAL the executions each target needs (10000000).
#
# Prints, per target, its runs, seconds, executions, crashes and whether it reached the
# goal; exits 1 when a target is short of it or has a crash in the ledger.
set -euo pipefail
cd "$(dirname "$0")/.."

ledger=${FUZZ_LEDGER:-fuzz/executions.tsv}
goal=${FUZZ_GOAL:-10000000}
if [ "${1:-}" = "--help" ]; then
    echo "usage: $0 [TARGET...]   (FUZZ_LEDGER, FUZZ_GOAL from the environment)"
    exit 0
fi
if [ $# -eq 0 ]; then
    read -r -a targets <<<"$(sed -n 's/^FUZZ_TARGETS *?= *//p' fuzz/fuzz.mk)"
else
    targets=("$@")
fi
[ -f "$ledger" ] || {
    echo "fuzz: no ledger at $ledger (fuzz/run.sh writes it)" >&2
    exit 2
}

awk -F '\t' -v goal="$goal" -v list="${targets[*]}" '
    NR == 1 && $1 == "date" { next }
    NF >= 5 {
        runs[$2]++
        secs[$2] += $3
        execs[$2] += $4
        if ($5 ~ /^crash/)
            crashes[$2]++
    }
    END {
        n = split(list, t, " ")
        printf "%-8s %5s %8s %14s %7s  %s\n", "target", "runs", "seconds", "executions", "crashes", "goal " goal
        short = 0
        for (i = 1; i <= n; ++i) {
            x = t[i]
            ok = execs[x] >= goal && crashes[x] == 0
            if (!ok)
                short = 1
            verdict = crashes[x] > 0 ? "crash in the ledger" : execs[x] >= goal ? "reached" : sprintf("short by %.0f", goal - execs[x])
            printf "%-8s %5d %8.0f %14.0f %7d  %s\n", x, runs[x], secs[x], execs[x], crashes[x], verdict
        }
        exit short
    }' "$ledger"
