#!/usr/bin/env bash
# Every ```lua block that requires "tide" in docs/testing.md runs and exits
# with status 0, with nothing on stderr but what the example prints there
# itself: the busted specs (blocks with describe) under busted, the scripts
# under a stock lua5.4 (tide.test runs outside tasks), the rest under the
# binary. Runs with the paths run.sh exports (LUA_PATH, LUA_CPATH).
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# lua5.4 loads tide.so: a sanitizer build needs its runtime preloaded.
preload=""
if [[ "${TIDE_BUILD:-}" == *check* ]]; then
  for lib in asan ubsan; do p=$(gcc -print-file-name=lib$lib.so); [ -f "$p" ] && preload="$preload $p"; done
fi
n=$(python3 spec/smoke/lib/lua_blocks.py docs/testing.md "$tmp")
[ "$n" -ge 4 ]
for f in "$tmp"/example_*.lua; do
  if grep -q 'describe(' "$f"; then
    mv "$f" "${f%.lua}_spec.lua"; f="${f%.lua}_spec.lua"
    cmd=(env LD_PRELOAD="${preload# }" lua5.4 /usr/bin/busted -o TAP "$f")
  elif grep -q 'tide.test' "$f"; then
    cmd=(env LD_PRELOAD="${preload# }" lua5.4 "$f")
  else
    cmd=("$TIDE_BIN" "$f")
  fi
  if ! timeout 20 "${cmd[@]}" >"$tmp/out" 2>"$tmp/err"; then
    echo "example failed:"; cat "$f"; cat "$tmp/out" "$tmp/err"; exit 1
  fi
  echo "== $f"; cat "$tmp/out" "$tmp/err"
  if grep -E "^tide: |AddressSanitizer|runtime error|^not ok" "$tmp/out" "$tmp/err"; then exit 1; fi
done
echo "$n examples ran"
