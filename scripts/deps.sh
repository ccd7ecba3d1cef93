#!/usr/bin/env bash
# The one list of Debian packages conversa needs, and the way to install them.
# Every other script and CI call this instead of keeping lists of their own.
set -euo pipefail

# Compiler, headers and libraries that the build links against; brotli precompresses
# the browser app's files (scripts/web-build.sh).
BUILD=(build-essential pkg-config libh2o-evloop-dev libpq-dev
  libhiredis-dev libjansson-dev libsodium-dev libcurl4-openssl-dev libssl-dev libsystemd-dev brotli)
# Servers that scripts/stack.sh runs privately (never as system services).
SERVERS=(postgresql-15 postgresql-client-15 redis-server)
# Test runner, HTTP client for smoke tests, promtool for checking /metrics and the
# rules in deploy/, and what checks the other files there (nginx -t with a throw-away
# certificate, systemd-analyze verify); clang with its libFuzzer runtime for the fuzz
# targets (make fuzz); valgrind for memcheck under `bench/soak.sh --valgrind`; Node.js
# and Chromium for the browser tests (tests/browser, playwright-core from npm).
TEST=(libcriterion-dev curl prometheus nginx-light openssl systemd clang libclang-rt-14-dev valgrind
  nodejs chromium)
# Load generator, the reference server of bench/run.sh, jq for the stand-in's figures,
# and gnuplot without X for the memory and fd plots of bench/soak.sh.
BENCH=(wrk nginx-light jq gnuplot-nox)

usage() {
  cat <<'EOF'
Usage: scripts/deps.sh [--check|--install] [GROUP...]

Checks that the Debian packages conversa needs are installed.
GROUPs: build, servers, test, bench (default: all of them).

  --install  (default) install what is missing: as root with apt-get
             (services are kept from starting), otherwise print the
             apt-get command to run and exit 1
  --check    only report: exit 0 when nothing is missing, otherwise print
             the apt-get command to run and exit 1
  --help     show this help

Prints nothing and exits 0 when every package is already installed.
EOF
}

mode=install
groups=()
for arg in "$@"; do
  case "$arg" in
    --help | -h) usage; exit 0 ;;
    --check) mode=check ;;
    --install) mode=install ;;
    build | servers | test | bench) groups+=("$arg") ;;
    *) echo "deps.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [[ ${#groups[@]} -eq 0 ]]; then
  groups=(build servers test bench)
fi

wanted=()
for g in "${groups[@]}"; do
  case "$g" in
    build) wanted+=("${BUILD[@]}") ;;
    servers) wanted+=("${SERVERS[@]}") ;;
    test) wanted+=("${TEST[@]}") ;;
    bench) wanted+=("${BENCH[@]}") ;;
  esac
done

# dpkg-query fails for packages dpkg has never heard of; those are missing too.
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    # A group may repeat a package; list it once.
    case " ${missing[*]} " in
      *" $pkg "*) ;;
      *) missing+=("$pkg") ;;
    esac
  fi
done

# Debian's nodejs comes without npm, which is a package of its own; Node.js from
# elsewhere (NodeSource's package) carries its own npm and conflicts with Debian's.
if [[ " ${groups[*]} " == *" test "* ]] && ! command -v npm >/dev/null 2>&1 &&
  ! dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then
  missing+=(npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "$mode" == check || $EUID -ne 0 ]]; then
  echo "missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

# Debian's maintainer scripts start postgresql, redis, nginx and prometheus
# through invoke-rc.d; a policy-rc.d that exits 101 forbids that, since the
# project runs its own private instances. Keep one that is already there.
policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [[ $created_policy -eq 1 ]]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\n# Temporary: keep services from starting during install.\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi

# Package lists may be absent or stale on a fresh machine: refresh once.
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
