#!/usr/bin/env bash
# Every ```lua block of docs/websocket.md runs under the binary and exits
# with status 0, with nothing on stderr.
set -euo pipefail
. spec/smoke/lib/doc_examples.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(python3 spec/smoke/lib/lua_blocks.py docs/websocket.md "$tmp")
[ "$n" -ge 3 ]
run_examples "$tmp"
echo "$n examples ran"
