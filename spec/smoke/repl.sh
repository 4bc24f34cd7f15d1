#!/usr/bin/env bash
# The REPL on a pseudo-terminal (spec/smoke/lib/repl_pty.py): line editing,
# history, await at the prompt, Ctrl-C and Ctrl-D; then `tide -i script`,
# whose script runs first and whose timers go on at the prompt.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
timeout 60 python3 spec/smoke/lib/repl_pty.py "$TIDE_BIN"
cat >"$T/script.lua" <<'LUA'
greeting = "hello from the script"
tide.timer(0.3, function() print("tick") end)
LUA
timeout 60 python3 spec/smoke/lib/repl_pty.py "$TIDE_BIN" -i "$T/script.lua"
