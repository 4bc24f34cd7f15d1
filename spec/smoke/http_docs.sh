#!/usr/bin/env bash
# Every ```lua block of docs/http.md that requires "tide" (the server and
# client examples) runs under the binary and exits with status 0; stderr
# holds nothing but the report of the handler that fails on purpose.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/http.md "$tmp")
[ "$n" -ge 4 ]
for f in "$tmp"/example_*.lua; do
  if ! timeout 20 "$TIDE_BIN" "$f" >"$tmp/out" 2>"$tmp/err"; then
    echo "example failed:"; cat "$f" "$tmp/out" "$tmp/err"; exit 1
  fi
  echo "== $f"; cat "$tmp/out"
  if grep -vE "^tide: http handler error: GET /fail: |^stack traceback:|^\s" "$tmp/err" | grep -q .; then
    echo "unexpected stderr:"; cat "$tmp/err"; exit 1
  fi
done
echo "$n examples ran"
