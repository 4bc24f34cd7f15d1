#!/usr/bin/env bash
# Every ```lua block of README.md and docs/lua-api.md that requires "tide"
# runs under the binary and exits with status 0.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/readme" "$tmp/api"
n=$(( $(python3 spec/smoke/lib/lua_blocks.py README.md "$tmp/readme") +
      $(python3 spec/smoke/lib/lua_blocks.py docs/lua-api.md "$tmp/api") ))
for f in "$tmp"/*/example_*.lua; do
  timeout 20 "$TIDE_BIN" "$f" >/dev/null || { echo "example $f failed:"; cat "$f"; exit 1; }
done
echo "$n examples ran"
[ "$n" -ge 7 ]
