# bench/lib/echo.sh — section "echo" of bench/run.sh (issue 3, TCP): the
# tide echo server (examples/echo.lua) beside a raw libuv C echo server,
# Node `net` and luv, under tools/echo_client.c; then memory per idle
# connection. Sourced by run.sh; see bench/README.md.

ECHO_SIZES=${ECHO_SIZES:-"64 1024 16384"}
ECHO_CONNS=${ECHO_CONNS:-50}
IDLE_CONNS=${IDLE_CONNS:-10000}

# Fills ECHO_TARGETS with "name|command" lines for the peers present.
echo_targets() {
  ECHO_TARGETS=()
  if [ -f "$ROOT/examples/echo.lua" ]; then
    ECHO_TARGETS+=("tide|$TIDE $ROOT/examples/echo.lua")
  else
    note echo "tide: examples/echo.lua does not exist yet, its column is empty"
  fi
  ECHO_TARGETS+=("c|$BIN/uv_echo")
  if have node; then ECHO_TARGETS+=("node|node $BENCH/peers/node_echo.js")
  else note echo "node: not installed (apt package nodejs), its column is empty"; fi
  if have_luv; then ECHO_TARGETS+=("luv|lua5.4 $BENCH/peers/luv_echo.lua")
  else note echo "luv: lua-luv not installed, its column is empty"; fi
}

# echo_load RUN NAME COMMAND SIZE: one server, checked, then loaded.
# Returns 2 (nothing recorded) when other processes disturbed the load,
# unless LAST_TRY=1 (see retry_disturbed).
echo_load() {
  local run=$1 name=$2 cmd=$3 size=$4 tag="echo-$2-s$4-r$1" client t0 t1 ns0 ns1 b0 b1 out
  log "  $name size=$size"
  # shellcheck disable=SC2086
  start_server "$OUT/raw/$tag.server.log" $cmd || { note echo "$name size $size run $run: server did not start"; return; }
  if ! timeout -k 2 40 taskset -c "$CLIENT_CPU" "$BIN/echo_client" -p "$SERVER_PORT" -v -s "$size" -n 20 \
       >"$OUT/raw/$tag.verify" 2>&1; then
    note echo "$name size $size run $run: the echo was wrong: $(tail -c 200 "$OUT/raw/$tag.verify" | tr '\n' ' ')"
    stop_server
    return
  fi
  out="$OUT/raw/$tag.out"
  timeout -k 2 $((WARMUP + DURATION + 30)) taskset -c "$CLIENT_CPU" "$BIN/echo_client" -p "$SERVER_PORT" \
    -c "$ECHO_CONNS" -s "$size" -d "$DURATION" -w "$WARMUP" >"$out" 2>&1 &
  client=$!
  CLIENT_PID=$client
  sleep "$WARMUP"
  # the window: from the end of the warm-up to the end of the run, in which
  # the client counts its messages and its own CPU time
  t0=$(server_ticks); b0=$(cpu_busy); ns0=$(date +%s%N)
  wait "$client"
  t1=$(server_ticks); b1=$(cpu_busy); ns1=$(date +%s%N)
  CLIENT_PID=
  local hwm; hwm=$(status_kb VmHWM)
  kill -0 "$SERVER_PID" 2>/dev/null || note echo "$name size $size run $run: the server died"
  stop_server
  local msgs rate p99 errs cms others
  msgs=$(sed -n 's/.*\bmsgs=\([0-9]*\).*/\1/p' "$out")
  rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' "$out")
  p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' "$out")
  errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$out")
  cms=$(sed -n 's/.*cpu_ms=\([0-9]*\).*/\1/p' "$out")
  if [ -z "$rate" ]; then
    note echo "$name size $size run $run: no result: $(tail -c 200 "$out" | tr '\n' ' ')"
    return
  fi
  others=$(foreign_pct "$b0" "$b1" $((t1 - t0)) $((${cms:-0} * CLK_TCK / 1000)) $((ns1 - ns0)))
  local flag=0
  if [ "$others" -gt "$DISTURBED_PCT" ]; then
    [ "${LAST_TRY:-1}" = 1 ] || return 2
    DISTURBED=$((DISTURBED + 1))
    flag=1
  fi
  record echo "echo_$size" "$name" disturbed "$run" "$flag"
  record echo "echo_$size" "$name" msgs/s "$run" "$rate"
  record echo "echo_$size" "$name" p99_us "$run" "$p99"
  record echo "echo_$size" "$name" cpu_us "$run" "$(us_per_op $((t1 - t0)) "${msgs:-0}")"
  record echo "echo_$size" "$name" cpu_pct "$run" "$(cpu_pct $((t1 - t0)) $((ns1 - ns0)))"
  record echo "echo_$size" "$name" others_pct "$run" "$others"
  record echo "echo_$size" "$name" rss_kb "$run" "$hwm"
  record echo "echo_$size" "$name" errors "$run" "${errs:-0}"
  log "    $rate msgs/s, p99 $p99 us, $(us_per_op $((t1 - t0)) "${msgs:-0}") us/msg CPU, peak RSS $hwm KiB, errors ${errs:-0}, others ${others}%"
}

# echo_idle RUN NAME COMMAND: resident memory per idle connection: RSS
# after IDLE_CONNS connections were accepted minus RSS before, over N.
echo_idle() {
  local run=$1 name=$2 cmd=$3 tag="idle-$2-r$1" rss0 rss1 fds0 i out client n=$IDLE_CONNS
  log "  $name: $n idle connections"
  # shellcheck disable=SC2086
  start_server "$OUT/raw/$tag.server.log" $cmd || { note echo "$name idle run $run: server did not start"; return; }
  sleep 0.3
  rss0=$(status_kb VmRSS); fds0=$(open_fds)
  out="$OUT/raw/$tag.out"
  timeout -k 2 120 taskset -c "$CLIENT_CPU" "$BIN/echo_client" -p "$SERVER_PORT" -i -c "$n" -d 90 \
    >"$out" 2>&1 </dev/null &
  client=$!
  CLIENT_PID=$client
  # every connection made by the client, then accepted by the server
  for ((i = 0; i < 600; i++)); do
    grep -q '^connected' "$out" && [ "$(open_fds)" -ge $((fds0 + n)) ] && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "^connected $n\$" "$out" || [ "$(open_fds)" -lt $((fds0 + n)) ]; then
    note echo "$name idle run $run: only $(($(open_fds) - fds0)) of $n connections were accepted ($(tail -c 200 "$out" | tr '\n' ' '))"
    kill -TERM "$client" 2>/dev/null; wait "$client" 2>/dev/null; CLIENT_PID=
    stop_server
    return
  fi
  sleep 1   # let the server settle (tasks started, buffers allocated)
  rss1=$(status_kb VmRSS)
  kill -TERM "$client" 2>/dev/null; wait "$client" 2>/dev/null; CLIENT_PID=
  stop_server
  local per; per=$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
  record echo idle_conn "$name" B "$run" "$per"
  log "    $per B per idle connection (RSS $rss0 -> $rss1 KiB)"
}

section_echo() {
  local run t name cmd size
  log "== echo: TCP echo, $ECHO_CONNS connections, sizes $ECHO_SIZES; $IDLE_CONNS idle connections"
  echo_targets
  local limit; limit=$(ulimit -n)
  if [ "$limit" != unlimited ] && [ "$limit" -lt $((IDLE_CONNS + 100)) ]; then
    IDLE_CONNS=$((limit - 100))
    note echo "open file limit $limit: idle connections measured with $IDLE_CONNS"
  fi
  for ((run = 1; run <= RUNS; run++)); do
    log "-- echo run $run/$RUNS"
    for t in "${ECHO_TARGETS[@]}"; do
      name=${t%%|*} cmd=${t#*|}
      for size in $ECHO_SIZES; do retry_disturbed echo_load "$run" "$name" "$cmd" "$size"; done
      echo_idle "$run" "$name" "$cmd"
    done
  done
  disturbance_note echo
}
