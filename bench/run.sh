#!/usr/bin/env bash
# bench/run.sh — `make bench`: tide's benchmarks, each beside its peers in
# the same run, printed as one markdown table per section (medians of RUNS
# runs; for each tide figure its ratio to the peer its goal names, and
# whether the goal is met).
#
#   bash bench/run.sh                           every section, defaults
#   RUNS=1 DURATION=2 bash bench/run.sh         a quick look
#   SECTIONS="core pool" bash bench/run.sh      some sections only
#
# Environment:
#   BUILD      build folder holding tide (default build; make bench sets it)
#   TIDE       the tide binary (default $BUILD/tide)
#   RUNS       runs of every benchmark, interleaved (default 3)
#   DURATION   seconds of measured load per server run (default 5)
#   WARMUP     seconds of unmeasured load before it (default 1)
#   SECTIONS   any of "core echo pool http tls redis websocket" (default all seven)
#   SERVER_CPU / CLIENT_CPU   taskset CPUs of servers / load clients (0 / 1)
#   MICRO_TIMEOUT   seconds after which one micro benchmark is killed (120)
#   RESULTS    results folder (default $BUILD/bench/results/<date-time>)
# C peers and load clients are built into $BUILD/bench/. Every server
# listens on 127.0.0.1 only; every load is bounded in time.
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TIDE=${TIDE:-$BUILD/tide}
BIN=$BUILD/bench
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SECTIONS=${SECTIONS:-"core echo pool http tls redis websocket"}
MICRO_TIMEOUT=${MICRO_TIMEOUT:-120}
CPUS=$(nproc)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-$((CPUS > 1 ? 1 : 0))}
export BENCH_CPUS=$CPUS
SERVER_PID= CLIENT_PID=

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
for v in RUNS DURATION WARMUP MICRO_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$RUNS" -ge 1 ] && [ "$DURATION" -ge 1 ] || die "RUNS and DURATION must be at least 1"
for s in $SECTIONS; do
  case $s in core|echo|pool|http|tls|redis|websocket) ;; *) die "unknown section '$s' (core echo pool http tls redis websocket)" ;; esac
done
[ -x "$TIDE" ] || die "no tide binary at $TIDE (build it first: make, or make bench)"

. "$BENCH/lib/common.sh"
sh "$BENCH/lib/deps.sh"
for tool in cc pkg-config python3 taskset ss timeout; do
  have "$tool" || die "$tool is needed (Debian: gcc pkg-config python3 util-linux iproute2 coreutils)"
done

OUT=${RESULTS:-$BIN/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/raw" || die "cannot create $OUT"
: >"$OUT/results.tsv"
: >"$OUT/notes.tsv"

cleanup() {
  [ -n "${CLIENT_PID:-}" ] && kill -TERM "$CLIENT_PID" 2>/dev/null
  stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# C programs: peers and load clients, optimised, rebuilt when their source
# is newer.
UV_FLAGS=$(pkg-config --cflags --libs libuv 2>/dev/null || echo -luv)
mkdir -p "$BIN"
for src in tools/echo_client.c peers/uv_echo.c peers/uv_http.c micro/timers.c micro/pool.c; do
  exe=$BIN/$(basename "$src" .c)
  if [ ! -x "$exe" ] || [ "$BENCH/$src" -nt "$exe" ]; then
    # shellcheck disable=SC2086
    ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$exe" "$BENCH/$src" $UV_FLAGS -lpthread ||
      die "cannot build $src"
  fi
done
# the TLS load client (tls section): OpenSSL, no libuv
if [ ! -x "$BIN/tls_load" ] || [ "$BENCH/tools/tls_load.c" -nt "$BIN/tls_load" ]; then
  # shellcheck disable=SC2046
  ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$BIN/tls_load" "$BENCH/tools/tls_load.c" \
    $(pkg-config --cflags --libs openssl 2>/dev/null || echo -lssl -lcrypto) ||
    log "bench: cannot build tools/tls_load.c: the tls section is skipped"
fi
# tide's pool from C, once core/tide.h has it: linked with libtide.a
rm -f "$BIN/tide_pool"
if grep -q 'tide_work_submit' "$ROOT/core/tide.h" && [ -f "$BUILD/libtide.a" ]; then
  # shellcheck disable=SC2086
  ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT/core" -o "$BIN/tide_pool" \
    "$BENCH/micro/tide_pool.c" "$BUILD/libtide.a" \
    $(pkg-config --cflags --libs libuv lua5.4 openssl 2>/dev/null || echo -luv -llua5.4 -lssl -lcrypto) -lm -lpthread -ldl ||
    log "bench: cannot build micro/tide_pool.c: its column stays empty"
fi

# Connections: the echo section holds 10,000 idle ones, wrk 1,000.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

{
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel:   $(uname -sr)"
  echo "cpu:      $CPUS x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "memory:   $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: RUNS=$RUNS DURATION=${DURATION}s WARMUP=${WARMUP}s SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
  echo "tide:     $("$TIDE" -v 2>&1 | head -1) ($TIDE)"
  echo "lua:      $(lua5.4 -v 2>&1 | head -1)"
  echo "libuv:    $(pkg-config --modversion libuv 2>/dev/null)"
  have node && echo "node:     $(node --version)"
  have_luv && echo "luv:      $(lua5.4 -e 'print((require "luv").version_string())')"
  echo "python:   $(python3 --version 2>&1)"
  have wrk && echo "wrk:      $(wrk -v 2>&1 | head -1)"
  have nginx && echo "nginx:    $(nginx -v 2>&1 | head -1)"
  have openssl && echo "openssl:  $(openssl version 2>&1)"
} >"$OUT/machine.txt"
[ "$CPUS" -ge 2 ] || note all "one CPU: servers and load clients share it"

start=$(date +%s)
for s in $SECTIONS; do
  . "$BENCH/lib/$s.sh"
  "section_$s"
done
log "== done in $(($(date +%s) - start)) s; raw results in $OUT"
python3 "$BENCH/lib/report.py" "$OUT" | tee "$OUT/report.md"
