#!/usr/bin/env bash
# Every ```lua block of docs/http.md that requires "tide" (the server and
# client examples) runs under the binary and exits with status 0; stderr
# holds nothing but the report of the handler that fails on purpose.
set -euo pipefail
. spec/smoke/lib/doc_examples.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/http.md "$tmp")
[ "$n" -ge 4 ]
STDERR_OK='^tide: http handler error: GET /fail: |^stack traceback:|^\s'
run_examples "$tmp"
echo "$n examples ran"
