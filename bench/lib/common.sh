# bench/lib/common.sh — shell helpers shared by the sections of
# bench/run.sh: logging, the results and notes files, micro benchmark runs,
# and servers (start pinned to a CPU, wait for the port, CPU time and memory
# from /proc, stop by PID). Sourced, never run; expects from run.sh:
# BENCH ROOT BIN OUT RUNS DURATION WARMUP MICRO_TIMEOUT SERVER_CPU CLIENT_CPU.

CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
have_luv() { lua5.4 -e 'require "luv"' >/dev/null 2>&1; }

# note SECTION MESSAGE: a line printed under the section's table (a skipped
# peer, a failed run).
note() {
  printf '%s\t%s\n' "$1" "$2" >>"$OUT/notes.tsv"
  log "  note: $2"
}

# record SECTION FIGURE PEER METRIC RUN VALUE
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT/results.tsv"
}

# run_micro SECTION PEER RUN COMMAND...: runs a micro benchmark bounded by
# MICRO_TIMEOUT seconds and records its "RESULT <figure> <value> <unit>"
# lines; "SKIP <why>" lines become notes (once, on the first run).
# MICRO_ONLY=regex keeps only the figures matching it, and MICRO_SUFFIX is
# appended to their names (e.g. "_1cpu" for a pinned variant). A run that
# other processes disturbed is repeated (retry_disturbed): MICRO_CPUS
# (default 1) is how many CPUs the benchmark needs to itself; others may
# use the rest.
run_micro() {
  retry_disturbed micro_once "$@"
}

micro_once() {
  local section=$1 peer=$2 run=$3; shift 3
  local out rc b0 b1 ns0 ns1 others need=${MICRO_CPUS:-1} flag=0
  MICRO_SEQ=$((${MICRO_SEQ:-0} + 1))
  out="$OUT/raw/$section-$peer-r$run-$MICRO_SEQ.out"
  # the benchmark's own CPU time comes from bash's `time`, in seconds
  local TIMEFORMAT='%U %S'
  b0=$(machine_busy); ns0=$(date +%s%N)
  { time timeout -k 5 "$MICRO_TIMEOUT" "$@" >"$out" 2>&1 </dev/null; } 2>"$out.time"
  rc=$?
  b1=$(machine_busy); ns1=$(date +%s%N)
  if grep -q '^SKIP ' "$out"; then
    [ "$run" = 1 ] && note "$section" "$peer: $(sed -n 's/^SKIP //p' "$out" | head -1)"
    return 0
  fi
  if ! grep -q '^RESULT ' "$out"; then
    note "$section" "$peer run $run: no result (exit $rc$([ $rc = 124 ] && echo ", killed after ${MICRO_TIMEOUT}s")): $(tail -c 300 "$out" | tr '\n' ' ')"
    return 1
  fi
  [ "$need" -gt "$CPUS" ] && need=$CPUS
  others=$(awk -v b0="$b0" -v b1="$b1" -v ns=$((ns1 - ns0)) -v hz="$CLK_TCK" '
    { own = ($1 + $2) * hz }
    END { win = ns / 1e9 * hz; f = (b1 - b0) - own; if (f < 0) f = 0
          printf "%.0f", (win > 0 ? f / win * 100 : 0) }' "$out.time")
  if [ "$others" -gt $(((CPUS - need) * 100 + DISTURBED_PCT)) ]; then
    [ "${LAST_TRY:-1}" = 1 ] || return 2
    DISTURBED=$((DISTURBED + 1))
    flag=1
  fi
  awk -v s="$section" -v p="$peer" -v r="$run" -v only="${MICRO_ONLY:-.}" -v suffix="${MICRO_SUFFIX:-}" -v d="$flag" '
    $1 == "RESULT" && $2 ~ only {
      printf "%s\t%s%s\t%s\t%s\t%s\t%s\n", s, $2, suffix, p, $4, r, $3
      printf "%s\t%s%s\t%s\tdisturbed\t%s\t%s\n", s, $2, suffix, p, r, d }' \
    "$out" >>"$OUT/results.tsv"
  sed -n 's/^RESULT /    /p' "$out" >&2
  [ $rc = 0 ] || note "$section" "$peer run $run exited with status $rc"
}

# Ticks all CPUs together spent busy so far (as cpu_busy).
machine_busy() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# start_server LOG COMMAND...: starts COMMAND PORT pinned to SERVER_CPU, with
# a fresh free port; waits (10 s at most) until it listens. Sets SERVER_PID
# and SERVER_PORT. Returns 1 (server stopped) when it does not come up.
start_server() {
  local logf=$1 i; shift
  SERVER_PORT=$(free_port)
  taskset -c "$SERVER_CPU" "$@" "$SERVER_PORT" >"$logf" 2>&1 </dev/null &
  SERVER_PID=$!
  for ((i = 0; i < 200; i++)); do
    listening "$SERVER_PORT" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  log "  server did not come up: $* $SERVER_PORT ($(tail -c 300 "$logf" | tr '\n' ' '))"
  stop_server
  return 1
}

# Stops the server: SIGTERM, then SIGKILL after 3 s, by PID only.
stop_server() {
  local i
  [ -n "${SERVER_PID:-}" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for ((i = 0; i < 60; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}

# CPU time (user + system, in clock ticks) the server used so far.
server_ticks() {
  sed 's/^.*) //' "/proc/$SERVER_PID/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# status_kb FIELD: VmRSS (resident now) or VmHWM (peak) of the server, KiB.
status_kb() {
  awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null
}

open_fds() { ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l; }

# us_per_op TICKS OPS: server CPU microseconds per operation.
us_per_op() {
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0) }'
}

# cpu_pct TICKS NANOSECONDS: the server's CPU use over a window (100 = one core).
cpu_pct() {
  awk -v t="$1" -v ns="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (ns > 0 ? t / hz / (ns / 1e9) * 100 : 0) }'
}

# --- disturbance: other processes on our CPUs -----------------------------
# The machines we share run other work. A load whose pinned CPUs were busy
# with other processes (or a micro benchmark that found fewer free CPUs than
# it needs) measures that, not the program: it is repeated (RETRIES times at
# most), counted in the section's notes, and a run still disturbed on its
# last try is recorded with disturbed=1 so the report leaves it out of the
# medians when undisturbed runs exist.
RETRIES=${RETRIES:-2}
DISTURBED_PCT=${DISTURBED_PCT:-15}
REPEAT_BUDGET=${REPEAT_BUDGET:-300}   # seconds all repeats may take together
LOADS=0 REPEATED=0 DISTURBED=0 REPEAT_SECS=0

# "S C": ticks the server's and the client's CPU spent busy so far (user,
# nice, system, irq, softirq: everything but idle, iowait and steal).
cpu_busy() {
  awk -v a="cpu$SERVER_CPU" -v b="cpu$CLIENT_CPU" '
    $1 == a { s = $2 + $3 + $4 + $7 + $8 }
    $1 == b { c = $2 + $3 + $4 + $7 + $8 }
    END { print s + 0, c + 0 }' /proc/stat
}

# foreign_pct "S0 C0" "S1 C1" SERVER_TICKS CLIENT_TICKS NANOSECONDS: the
# share of one CPU (%) that processes other than the server and the client
# used on the pinned CPUs during the window, the larger of the two.
foreign_pct() {
  awk -v b0="$1" -v b1="$2" -v st="$3" -v ct="$4" -v ns="$5" -v hz="$CLK_TCK" \
      -v same=$([ "$SERVER_CPU" = "$CLIENT_CPU" ] && echo 1 || echo 0) 'BEGIN {
    split(b0, x, " "); split(b1, y, " ")
    win = ns / 1e9 * hz
    if (win <= 0) { print 0; exit }
    if (same) { f = (y[1] - x[1]) - st - ct }
    else { fs = (y[1] - x[1]) - st; fc = (y[2] - x[2]) - ct; f = fs > fc ? fs : fc }
    if (f < 0) f = 0
    printf "%.0f", f / win * 100 }'
}

# retry_disturbed FUNCTION ARGS...: runs one load, again while it returns 2
# (disturbed), RETRIES times at most and while the repeats of the whole run
# took less than REPEAT_BUDGET seconds; the last try runs with LAST_TRY=1
# and must record whatever it measured.
retry_disturbed() {
  local try rc last t0
  LOADS=$((LOADS + 1))
  for ((try = 0; try <= RETRIES; try++)); do
    last=$((try == RETRIES || REPEAT_SECS >= REPEAT_BUDGET ? 1 : 0))
    t0=$SECONDS
    LAST_TRY=$last "$@"
    rc=$?
    [ "$try" -gt 0 ] && REPEAT_SECS=$((REPEAT_SECS + SECONDS - t0))
    [ "$rc" = 2 ] || return 0
    REPEATED=$((REPEATED + 1))
    log "    disturbed by other processes: again"
  done
}

# disturbance_note SECTION: what retry_disturbed did, for the notes.
disturbance_note() {
  [ "$REPEATED" -gt 0 ] && note "$1" "$REPEATED repeat(s) for $LOADS measurement(s): other processes took the CPUs they needed (more than ${DISTURBED_PCT}% of one)"
  [ "$DISTURBED" -gt 0 ] && note "$1" "$DISTURBED measurement(s) stayed disturbed (after $RETRIES repeats, or once the ${REPEAT_BUDGET} s for repeats were spent): left out of the medians when an undisturbed run exists, marked † when none does"
  LOADS=0 REPEATED=0 DISTURBED=0
}
