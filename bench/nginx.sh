# shellcheck shell=bash
# The benches' reference server: a private nginx answering a fixed 15-byte JSON body
# (bench/nginx.conf.in), the least any HTTP server can do for a request on this
# machine. Sourced by bench/run.sh and bench/lib.sh, not run.

# nginx_start DIR PORT: starts nginx from DIR (its config, pid file nginx.pid, logs and
# temporary files all go there) on 127.0.0.1:PORT, and returns once
# http://127.0.0.1:PORT/static answers; non-zero when it does not start or answer
# within 5 s (its logs, nginx-start.log and nginx-error.log, are in DIR). The caller
# stops it with the pid in DIR/nginx.pid.
nginx_start() {
  local dir=$1 port=$2 user_line="# runs as the calling user" root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
  # workers drop to nobody when the master runs as root, and must enter the folder;
  # otherwise nginx keeps the caller's user and would warn about a user directive
  [[ $EUID -ne 0 ]] || user_line="user nobody nogroup;"
  chmod 0755 "$dir"
  mkdir -p "$dir/nginx-tmp"
  sed -e "s|@TMP@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$(nproc)|g" -e "s|@USER@|$user_line|g" \
    "$root/bench/nginx.conf.in" >"$dir/nginx.conf"
  # -e: the error log is opened before the config is read; keep it in DIR too
  nginx -p "$dir/" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" 2>"$dir/nginx-start.log" || return 1
  for _ in $(seq 1 50); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/static" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
