#!/usr/bin/env bash
# examples/fetch_many.lua: its own demo (40 pages, at most 8 at once), then
# URLs given on the command line, served by examples/http_hello.lua, with
# a limit of 3; a refused URL makes it fail.
set -euo pipefail
source spec/smoke/lib/servers.sh
out=$(timeout 30 "$TIDE_BIN" examples/fetch_many.lua)
echo "$out" | tail -1
echo "$out" | grep -q "^40 fetched, 0 failed, .* at most 8 at once$"
start examples/http_hello.lua 0
urls=()
for i in $(seq 10); do urls+=("http://127.0.0.1:$PORT/$i"); done
out=$(timeout 30 "$TIDE_BIN" examples/fetch_many.lua -c 3 "${urls[@]}")
echo "$out" | grep -q "^10 fetched, 0 failed, 130 bytes in .* at most 3 at once$"
[ "$(echo "$out" | grep -c "^200 ")" -eq 10 ]
if timeout 30 "$TIDE_BIN" examples/fetch_many.lua "http://127.0.0.1:1/" >"$T/refused"; then
  echo "a refused URL did not fail"; exit 1
fi
grep -q "ECONNREFUSED" "$T/refused"
clean_exit 1
echo "http_fetch_many ok"
