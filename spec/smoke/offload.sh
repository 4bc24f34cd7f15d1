#!/usr/bin/env bash
# examples/offload.lua: primes counted on the pool (two jobs) while the
# ticker keeps printing, with a progress bar drawn from progress events.
set -euo pipefail
out=$(timeout 60 "$TIDE_BIN" examples/offload.lua 2000000 2 | tr '\r' '\n')
echo "$out"
# the right count, from both jobs
grep -q "^148933 primes below 2000000: 2 jobs on [0-9]* workers" <<<"$out"
# the loop kept ticking while the workers counted
[ "$(grep -c '^tick [0-9]*: the loop is free' <<<"$out")" -ge 2 ]
ticks=$(sed -n 's/.*s, \([0-9]*\) ticks meanwhile$/\1/p' <<<"$out")
[ "$ticks" -ge 2 ]
# the bar only moves forward and ends full
pcts=$(sed -n 's/^\[[#.]*\] *\([0-9]*\)%$/\1/p' <<<"$out")
[ "$(wc -l <<<"$pcts")" -ge 10 ]
sort -n -c <<<"$pcts"
[ "$(tail -1 <<<"$pcts")" = 100 ]
# bad arguments are refused with a message, not a hang
if timeout 10 "$TIDE_BIN" examples/offload.lua 1 2>/dev/null; then exit 1; fi
