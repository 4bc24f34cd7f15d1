#!/usr/bin/env bash
# examples/hello.lua shows progress events, ticks, both callbacks and a timeout.
set -euo pipefail
out=$("$TIDE_BIN" examples/hello.lua)
echo "$out"
grep -q "progress 4/4" <<<"$out"
grep -q "^tick 1" <<<"$out"
grep -q "callback: got file.bin (4 parts)" <<<"$out"
grep -q "awaited: file.bin, 4 parts" <<<"$out"
grep -q "timeout: ETIMEDOUT: timed out" <<<"$out"
# progress events come before the settlement callbacks
[ "$(grep -n 'progress 4/4' <<<"$out" | cut -d: -f1)" -lt "$(grep -n 'callback:' <<<"$out" | cut -d: -f1)" ]
