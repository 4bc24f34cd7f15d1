#!/usr/bin/env bash
# Every ```lua block that requires "tide" in the Streams, TCP, Unix pipes,
# stdio and Processes sections of docs/io.md runs under the binary (stdin
# from a small file) and exits with status 0, with nothing on stderr but
# what the example prints there itself.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/io.md "$tmp" Streams TCP "Unix pipes" stdio Processes)
[ "$n" -ge 5 ]
printf 'first\nsecond\n' >"$tmp/input"
for f in "$tmp"/example_*.lua; do
  if ! timeout 20 "$TIDE_BIN" "$f" <"$tmp/input" >"$tmp/out" 2>"$tmp/err"; then
    echo "example failed:"; cat "$f"; cat "$tmp/out" "$tmp/err"; exit 1
  fi
  echo "== $f"; cat "$tmp/out" "$tmp/err"
  if grep -E "^tide: |AddressSanitizer|runtime error" "$tmp/err"; then exit 1; fi
done
echo "$n examples ran"
