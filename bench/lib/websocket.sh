# bench/lib/websocket.sh — section "websocket" of bench/run.sh (issue 13):
# the tide WebSocket echo server (examples/ws_echo.lua) beside Node with the
# npm `ws` package (peers/node_ws_echo.js), both under tools/ws_client.c,
# and tide's own TCP echo (examples/echo.lua) under tools/echo_client.c:
# 1 KiB binary messages over WS_CONNS connections in a closed loop. Sourced
# by run.sh; see bench/README.md.

WS_SIZE=${WS_SIZE:-1024}
WS_CONNS=${WS_CONNS:-50}

# Fills WS_TARGETS with "name|client|command" lines for the peers present.
ws_targets() {
  WS_TARGETS=("tide|ws_client|$TIDE $ROOT/examples/ws_echo.lua"
              "tide_tcp|echo_client|$TIDE $ROOT/examples/echo.lua")
  if have node && have npm; then
    if [ ! -d "$BIN/npm-ws/node_modules/ws" ]; then
      mkdir -p "$BIN/npm-ws"
      (cd "$BIN/npm-ws" && timeout 120 npm install --no-audit --no-fund --silent ws@8 >/dev/null 2>&1) ||
        note websocket "node: npm install ws failed, its column is empty"
    fi
    [ -d "$BIN/npm-ws/node_modules/ws" ] &&
      WS_TARGETS+=("node|ws_client|env NODE_PATH=$BIN/npm-ws/node_modules node $BENCH/peers/node_ws_echo.js")
  else
    note websocket "node: node or npm not installed, its column is empty"
  fi
}

# ws_load RUN NAME CLIENT COMMAND: one server, checked, then loaded.
# Returns 2 (nothing recorded) when other processes disturbed the load,
# unless LAST_TRY=1 (see retry_disturbed).
ws_load() {
  local run=$1 name=$2 cl=$3 cmd=$4 size=$WS_SIZE tag="ws-$2-r$1" client t0 t1 ns0 ns1 b0 b1 out
  log "  $name size=$size"
  # shellcheck disable=SC2086
  start_server "$OUT/raw/$tag.server.log" $cmd || { note websocket "$name run $run: server did not start"; return; }
  if ! timeout -k 2 40 taskset -c "$CLIENT_CPU" "$BIN/$cl" -p "$SERVER_PORT" -v -s "$size" -n 20 \
       >"$OUT/raw/$tag.verify" 2>&1; then
    note websocket "$name run $run: the echo was wrong: $(tail -c 200 "$OUT/raw/$tag.verify" | tr '\n' ' ')"
    stop_server
    return
  fi
  out="$OUT/raw/$tag.out"
  timeout -k 2 $((WARMUP + DURATION + 30)) taskset -c "$CLIENT_CPU" "$BIN/$cl" -p "$SERVER_PORT" \
    -c "$WS_CONNS" -s "$size" -d "$DURATION" -w "$WARMUP" >"$out" 2>&1 &
  client=$!
  CLIENT_PID=$client
  sleep "$WARMUP"
  t0=$(server_ticks); b0=$(cpu_busy); ns0=$(date +%s%N)
  wait "$client"
  t1=$(server_ticks); b1=$(cpu_busy); ns1=$(date +%s%N)
  CLIENT_PID=
  local hwm; hwm=$(status_kb VmHWM)
  kill -0 "$SERVER_PID" 2>/dev/null || note websocket "$name run $run: the server died"
  stop_server
  local msgs rate p99 errs cms others
  msgs=$(sed -n 's/.*\bmsgs=\([0-9]*\).*/\1/p' "$out")
  rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' "$out")
  p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' "$out")
  errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$out")
  cms=$(sed -n 's/.*cpu_ms=\([0-9]*\).*/\1/p' "$out")
  if [ -z "$rate" ]; then
    note websocket "$name run $run: no result: $(tail -c 200 "$out" | tr '\n' ' ')"
    return
  fi
  others=$(foreign_pct "$b0" "$b1" $((t1 - t0)) $((${cms:-0} * CLK_TCK / 1000)) $((ns1 - ns0)))
  local flag=0
  if [ "$others" -gt "$DISTURBED_PCT" ]; then
    [ "${LAST_TRY:-1}" = 1 ] || return 2
    DISTURBED=$((DISTURBED + 1))
    flag=1
  fi
  local fig="ws_$size"
  record websocket "$fig" "$name" disturbed "$run" "$flag"
  record websocket "$fig" "$name" msgs/s "$run" "$rate"
  record websocket "$fig" "$name" p99_us "$run" "$p99"
  record websocket "$fig" "$name" cpu_us "$run" "$(us_per_op $((t1 - t0)) "${msgs:-0}")"
  record websocket "$fig" "$name" cpu_pct "$run" "$(cpu_pct $((t1 - t0)) $((ns1 - ns0)))"
  record websocket "$fig" "$name" others_pct "$run" "$others"
  record websocket "$fig" "$name" rss_kb "$run" "$hwm"
  record websocket "$fig" "$name" errors "$run" "${errs:-0}"
  log "    $rate msgs/s, p99 $p99 us, $(us_per_op $((t1 - t0)) "${msgs:-0}") us/msg CPU, peak RSS $hwm KiB, errors ${errs:-0}, others ${others}%"
}

section_websocket() {
  local run t name rest cl cmd
  log "== websocket: echo of $WS_SIZE B messages, $WS_CONNS connections"
  if [ ! -x "$BIN/ws_client" ] || [ "$BENCH/tools/ws_client.c" -nt "$BIN/ws_client" ]; then
    # shellcheck disable=SC2086
    ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$BIN/ws_client" "$BENCH/tools/ws_client.c" $UV_FLAGS ||
      { note websocket "cannot build tools/ws_client.c"; return; }
  fi
  ws_targets
  for ((run = 1; run <= RUNS; run++)); do
    log "-- websocket run $run/$RUNS"
    for t in "${WS_TARGETS[@]}"; do
      name=${t%%|*} rest=${t#*|}
      cl=${rest%%|*} cmd=${rest#*|}
      retry_disturbed ws_load "$run" "$name" "$cl" "$cmd"
    done
  done
  disturbance_note websocket
}
