#!/usr/bin/env bash
# bench/tools/ir_per_req.sh — the user-space instructions a server spends per
# HTTP request: valgrind (cachegrind, no cache simulation) counts the
# instructions of the server process(es) after N keep-alive requests
# (http_fixed_load.py, 50 connections) and after none; the difference over N
# is the figure. Deterministic, unlike CPU time on a shared machine.
# usage: ir_per_req.sh N CMD...   (CMD gets the port as its last argument)
# Prints "Ir/request X"; exits 1 when a run failed.
set -u
n=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
ir() {  # ir REQUESTS -> total instructions of the server process(es)
  local out pid i ok=1
  out=$(mktemp -d)
  valgrind --tool=cachegrind --cache-sim=no --trace-children=yes \
    --cachegrind-out-file="$out/cg.%p" "$@" "$port" >"$out/log" 2>&1 </dev/null &
  pid=$!
  for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  if [ "$REQS" -gt 0 ] && ! timeout 300 python3 "$here/http_fixed_load.py" "$port" "$REQS" 50 >/dev/null; then
    ok=0
  fi
  kill -TERM "$pid" 2>/dev/null; sleep 0.5; pkill -TERM -P "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  [ "$ok" = 1 ] && cat "$out"/cg.* 2>/dev/null | awk '/^summary:/ { s += $2 } END { printf "%.0f\n", s }'
  rm -rf "$out"
}
a=$(REQS=0 ir "$@"); b=$(REQS=$n ir "$@")
if [ -z "$a" ] || [ -z "$b" ] || [ "$b" -le "$a" ]; then echo "ir_per_req: run failed" >&2; exit 1; fi
echo "Ir/request $(((b - a) / n))"
