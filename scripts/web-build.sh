#!/usr/bin/env bash
# Builds the browser app for serving: every file of SRC but index.html becomes
# DEST/assets/NAME.HASH.EXT (HASH: the first 16 hex digits of its SHA-256), the
# references to it in index.html are rewritten to that name, and each text file gets
# a .gz and a .br beside it, made once here so conversa never compresses per request.
# The result replaces DEST whole, so no stale asset survives a rebuild.
# Fails when index.html refers to a file SRC lacks or carries an inline script (the
# page's Content-Security-Policy would refuse it in the browser).
# Usage: scripts/web-build.sh SRC DEST
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ $# -ne 2 ]; then
    echo "usage: $0 SRC DEST   (make web calls it)"; [ "${1:-}" = "--help" ]; exit $?
fi
src=$1 dest=$2
[ -f "$src/index.html" ] || { echo "web-build: $src/index.html is missing" >&2; exit 1; }

tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/assets"
trap 'rm -rf "$tmp"' EXIT

if grep -Eqi '<script([^>]*[^a-z>])?>' <(grep -Eio '<script[^>]*>' "$src/index.html" | grep -vi 'src=') ||
    grep -Eqi '<style|[[:space:]]style=|[[:space:]]on[a-z]+=' "$src/index.html"; then
    echo "web-build: $src/index.html has inline script, style or event handler; CSP forbids them" >&2
    exit 1
fi

cp "$src/index.html" "$tmp/index.html"
for f in "$src"/*; do
    name=$(basename "$f")
    [ -f "$f" ] && [ "$name" != index.html ] || continue
    case "$name" in *[!A-Za-z0-9._-]*) echo "web-build: $name: use letters, digits, . _ - only" >&2; exit 1 ;; esac
    hash=$(sha256sum "$f" | cut -c1-16)
    hashed="${name%.*}.$hash.${name##*.}"
    cp "$f" "$tmp/assets/$hashed"
    # the only references index.html may hold: src="name" and href="name"
    sed -i -e "s#\(src\|href\)=\"$name\"#\1=\"/assets/$hashed\"#g" "$tmp/index.html"
done

missing=$(grep -Eo '(src|href)="[^"]*"' "$tmp/index.html" | grep -Ev '"(/assets/|data:|#)' || true)
if [ -n "$missing" ]; then
    echo "web-build: index.html refers to files $src does not have: $missing" >&2
    exit 1
fi

for f in "$tmp/index.html" "$tmp"/assets/*; do
    case "$f" in *.html | *.js | *.css | *.svg | *.json | *.txt | *.map)
        gzip -9 -n -k "$f"
        brotli -q 11 -k "$f" ;;
    esac
done

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
