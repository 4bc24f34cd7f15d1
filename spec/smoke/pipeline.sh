#!/usr/bin/env bash
# examples/pipeline.lua: printf | sort | uniq -c | sort -rn built with
# tide.process gives the counts, most frequent first.
set -euo pipefail
out=$(timeout 20 "$TIDE_BIN" examples/pipeline.lua pear fig pear kiwi pear fig)
echo "$out"
[ "$out" = "$(printf 'pear       3\nfig        2\nkiwi       1')" ]
out=$(timeout 20 "$TIDE_BIN" examples/pipeline.lua)
echo "$out"
[ "$(head -n 1 <<<"$out")" = "apple      3" ]
