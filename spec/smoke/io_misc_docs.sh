#!/usr/bin/env bash
# Every ```lua block that requires "tide" in the UDP, DNS, Signals and Files
# sections of docs/io.md runs under the binary and exits with status 0.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/io.md "$tmp" UDP DNS Signals Files)
for f in "$tmp"/example_*.lua; do
  out=$(timeout 20 "$TIDE_BIN" "$f" 2>&1) || { echo "example failed:"; cat "$f"; echo "$out"; exit 1; }
done
echo "$n examples ran"
[ "$n" -ge 4 ]
