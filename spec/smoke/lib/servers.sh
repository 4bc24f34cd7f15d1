# spec/smoke/lib/servers.sh — sourced by the smoke tests of the example
# servers (not a test itself: run.sh runs spec/smoke/*.sh only).
#
#   start FILE ARGS...   runs `tide FILE ARGS...` in the background, waits
#                        (10 s at most) for its "listening on HOST:PORT"
#                        line and sets PORT; its output goes to $T/N.out
#                        and $T/N.err (N counts the servers started)
#   wait_for FILE TEXT   waits (10 s at most) until FILE contains TEXT
#   clean_exit N         fails when server N's stderr shows a sanitizer
#                        report or a Lua error
#
# Every server and client started in the background is killed on exit.
set -euo pipefail
T=$(mktemp -d)
N=0
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

start() {
  N=$((N + 1))
  # Made here: the background job may open them after the first look below.
  : >"$T/$N.out"; : >"$T/$N.err"
  "$TIDE_BIN" "$@" >"$T/$N.out" 2>"$T/$N.err" &
  local pid=$! i
  for i in $(seq 100); do
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$T/$N.out")
    [ -n "$PORT" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server $* exited:"; cat "$T/$N.out" "$T/$N.err"; return 1
    fi
    sleep 0.1
  done
  echo "server $* did not start in 10 s"; cat "$T/$N.err"; return 1
}

wait_for() {
  local i
  for i in $(seq 100); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no '$2' in $1 after 10 s:"; cat "$1"; return 1
}

clean_exit() {
  if grep -E "AddressSanitizer|LeakSanitizer|runtime error|^tide: " "$T/$1.err"; then
    echo "server $1 reported errors"; return 1
  fi
}
