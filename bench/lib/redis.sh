# bench/lib/redis.sh — section "redis" of bench/run.sh (issue 12): GET/SET
# round trips from 50 concurrent tasks against one redis-server, one
# command at a time per task and 16 pipelined per task: tide.redis
# (bench/tools/redis_load.lua, one client shared by the tasks) beside
# redis-benchmark (C, 50 connections) and Node with ioredis (the same load
# as tide's, bench/tools/ioredis_load.js); then examples/redis_lite.lua
# beside redis-server under redis-benchmark -P 16. ioredis is installed
# with npm into $BIN/redis (never into the source tree). Sourced by
# run.sh; see bench/README.md.

REDIS_TASKS=${REDIS_TASKS:-50}

# Installs ioredis into $BIN/redis once; returns 1 when it cannot.
redis_ioredis() {
  [ -d "$BIN/redis/node_modules/ioredis" ] && return 0
  have npm || return 1
  mkdir -p "$BIN/redis"
  (cd "$BIN/redis" && timeout 300 npm install --no-audit --no-fund --silent ioredis >"$OUT/raw/npm.log" 2>&1)
}

section_redis() {
  local run node_ok=0 T=$BENCH/tools n1=$((20000 * DURATION)) n16=$((200000 * DURATION))
  log "== redis: GET/SET round trips, $REDIS_TASKS tasks, one at a time and 16 pipelined"
  if ! have redis-server || ! have redis-benchmark; then
    note redis "redis-server or redis-benchmark missing (apt packages redis-server redis-tools): section skipped"
    return
  fi
  if have node && redis_ioredis; then node_ok=1
  else note redis "ioredis: node or npm missing, or npm install failed: its column is empty"; fi
  # The clients run on CLIENT_CPU, the server on SERVER_CPU: the server's
  # CPU time is expected, not a disturbance.
  local MICRO_CPUS=$CPUS DISTURBED_PCT=40
  local redis_cmd=(redis-server --bind 127.0.0.1 --save "" --appendonly no --port)
  for ((run = 1; run <= RUNS; run++)); do
    log "-- redis run $run/$RUNS"
    start_server "$OUT/raw/redis-server-r$run.log" "${redis_cmd[@]}" ||
      { note redis "run $run: redis-server did not start"; continue; }
    local port=$SERVER_PORT
    for depth in 1 16; do
      run_micro redis tide "$run" taskset -c "$CLIENT_CPU" "$TIDE" "$T/redis_load.lua" \
        "$port" "$REDIS_TASKS" "$depth" "$DURATION" "$WARMUP"
      [ "$node_ok" = 1 ] && NODE_PATH=$BIN/redis/node_modules run_micro redis ioredis "$run" \
        taskset -c "$CLIENT_CPU" node "$T/ioredis_load.js" "$port" "$REDIS_TASKS" "$depth" "$DURATION" "$WARMUP"
      run_micro redis redis-benchmark "$run" taskset -c "$CLIENT_CPU" bash "$T/redis_benchmark.sh" \
        "$port" "$REDIS_TASKS" "$depth" "$([ "$depth" = 1 ] && echo "$n1" || echo "$n16")"
    done
    # redis-server itself under redis-benchmark -P 16, for redis_lite's row
    run_micro redis redis-server "$run" taskset -c "$CLIENT_CPU" bash "$T/redis_benchmark.sh" \
      "$port" 50 16 "$n16" lite_
    stop_server
    if start_server "$OUT/raw/redis-lite-r$run.log" "$TIDE" "$ROOT/examples/redis_lite.lua"; then
      run_micro redis tide "$run" taskset -c "$CLIENT_CPU" bash "$T/redis_benchmark.sh" \
        "$SERVER_PORT" 50 16 "$((n16 / 2))" lite_
      stop_server
    else
      note redis "run $run: examples/redis_lite.lua did not start"
    fi
  done
  disturbance_note redis
}
