#!/usr/bin/env bash
# Every ```lua block of docs/websocket.md runs under the binary and exits
# with status 0, with nothing on stderr.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/websocket.md "$tmp")
[ "$n" -ge 3 ]
for f in "$tmp"/example_*.lua; do
  if ! timeout 20 "$TIDE_BIN" "$f" >"$tmp/out" 2>"$tmp/err"; then
    echo "example failed:"; cat "$f" "$tmp/out" "$tmp/err"; exit 1
  fi
  echo "== $f"; cat "$tmp/out"
  if [ -s "$tmp/err" ]; then echo "unexpected stderr:"; cat "$tmp/err"; exit 1; fi
done
echo "$n examples ran"
