#!/usr/bin/env bash
# spec/soak.sh — `make soak`: tide under steady load for SOAK_SECONDS
# (default 60), watching for growth: the HTTP server (examples/http_hello.lua)
# under wrk at 1,000 connections, the echo server (examples/echo.lua) under
# connections checking every echoed byte with messages of random sizes,
# and the pool (a script that keeps tide.work busy). RSS and open fds of
# each process are sampled every SOAK_STEP seconds (default 5). It fails
# when a process dies, a check fails, RSS grows by more than 10% after
# the warm-up (the first sample past SOAK_WARMUP seconds, default 15), or
# a process holds more fds once the load stopped than before it began.
# Servers listen on 127.0.0.1 only; every load is bounded in time.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TIDE=$PWD/$BUILD/tide
SECS=${SOAK_SECONDS:-60} STEP=${SOAK_STEP:-5} WARMUP=${SOAK_WARMUP:-15}
T=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
die() { echo "soak: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is needed (make deps installs it)"
[ -x "$TIDE" ] || die "no $TIDE (make first)"

cc -O2 -o "$T/echo_client" bench/tools/echo_client.c $(pkg-config --cflags --libs libuv) ||
  die "cannot build bench/tools/echo_client.c"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; return 1; }

# The three processes under watch.
HTTP_PORT=$(free_port)
"$TIDE" examples/http_hello.lua "$HTTP_PORT" >"$T/http.log" 2>&1 & pids+=($!); http_pid=$!
ECHO_PORT=$(free_port)
"$TIDE" examples/echo.lua "$ECHO_PORT" >"$T/echo.log" 2>&1 & pids+=($!); echo_pid=$!
cat >"$T/pool.lua" <<'LUA'
-- Keeps the pool busy: batches of jobs that build and return strings.
local tide = require "tide"
local stop = tide.now() + tonumber(arg[1])
local n = 0
while tide.now() < stop do
  local batch = {}
  for i = 1, 32 do
    batch[i] = tide.work(function(k) return ("x"):rep(1000 + k % 5000), { k = k } end, n + i)
  end
  local results = tide.all(batch):await()
  n = n + #results
end
print("jobs", n)
LUA
"$TIDE" "$T/pool.lua" "$((SECS + 5))" >"$T/pool.log" 2>&1 & pids+=($!); pool_pid=$!
wait_port "$HTTP_PORT" && wait_port "$ECHO_PORT" || die "servers did not start"

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
declare -A fd0
for p in http echo pool; do eval "pid=\$${p}_pid"; fd0[$p]=$(fds "$pid"); done

# The loads.
timeout -k 2 $((SECS + 10)) wrk -t1 -c1000 -d"${SECS}s" "http://127.0.0.1:$HTTP_PORT/" >"$T/wrk.log" 2>&1 &
load_http=$!
(
  end=$((SECONDS + SECS))
  while [ $SECONDS -lt $end ]; do
    size=$((RANDOM % 65536 + 1))
    "$T/echo_client" -p "$ECHO_PORT" -v -c 8 -s "$size" -n 20 >>"$T/echo_client.log" 2>&1 ||
      { echo "echo check failed (size $size)" >>"$T/echo_failed"; exit 1; }
  done
) &
load_echo=$!

# Samples.
declare -A base last
printf '%6s %10s %10s %10s %6s %6s %6s\n' t http_kb echo_kb pool_kb http_fd echo_fd pool_fd
start=$SECONDS
while [ $((SECONDS - start)) -lt "$SECS" ]; do
  sleep "$STEP"
  t=$((SECONDS - start))
  line=$(printf '%6d' "$t")
  for p in http echo pool; do
    eval "pid=\$${p}_pid"
    kill -0 "$pid" 2>/dev/null || die "$p died: $(tail -5 "$T/$p.log")"
    r=$(rss "$pid"); last[$p]=$r
    [ "$t" -ge "$WARMUP" ] && [ -z "${base[$p]:-}" ] && base[$p]=$r
    line="$line $(printf '%10s' "$r")"
  done
  for p in http echo pool; do eval "pid=\$${p}_pid"; line="$line $(printf '%6s' "$(fds "$pid")")"; done
  echo "$line"
done
wait "$load_http" || die "wrk failed: $(tail -5 "$T/wrk.log")"
wait "$load_echo" || die "$(cat "$T/echo_failed" 2>/dev/null)"
sleep 1  # the connections of the loads close

status=0
for p in http echo pool; do
  eval "pid=\$${p}_pid"
  b=${base[$p]:-0} l=${last[$p]:-0}
  if [ "$b" -gt 0 ] && [ $((l * 100)) -gt $((b * 110)) ]; then
    echo "soak: $p RSS grew from $b to $l kB after the warm-up" >&2; status=1
  fi
  f=$(fds "$pid")
  if [ "$p" != pool ] && [ "$f" -gt "${fd0[$p]}" ]; then
    echo "soak: $p holds $f fds after the load, ${fd0[$p]} before" >&2; status=1
  fi
done
grep -E "Requests/sec|Socket errors" "$T/wrk.log"
echo "echo checks: $(grep -c . "$T/echo_client.log" 2>/dev/null || echo 0) runs"
[ $status -eq 0 ] && echo "soak ok: ${SECS} s, RSS within 10% after ${WARMUP} s, no fd left open"
exit $status
