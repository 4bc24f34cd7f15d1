# bench/lib/core.sh — section "core" of bench/run.sh (issue 2, the
# foundation): promises, spawn + await, timers, memory per suspended task,
# start-up time; each tide program beside its peers, run after run
# (interleaved, so slow drift of the machine spreads over every peer).
# Sourced by run.sh; see bench/README.md for what each figure measures.

# startup_times RUN: median start-up of `tide -e ''`, `lua5.4 -e ''` and
# `node -e ''` (hyperfine when installed, else tools/startup.py).
startup_times() {
  local run=$1 json="$OUT/raw/startup-r$1.json" name cmd
  local -a cmds=("tide=$TIDE -e ''" "lua=lua5.4 -e ''")
  have node && cmds+=("node=node -e ''")
  if have hyperfine; then
    for spec in "${cmds[@]}"; do
      name=${spec%%=*} cmd=${spec#*=}
      # node starts ~40x slower than lua: fewer runs keep the time bounded
      local n=200; [ "$name" = node ] && n=20
      if timeout -k 5 "$MICRO_TIMEOUT" hyperfine -N --style none --warmup 10 --runs $n \
           --export-json "$json" "$cmd" >/dev/null 2>&1; then
        python3 -c 'import json, sys; print("%.3f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' \
          "$json" | while read -r ms; do
            record core startup "$name" ms "$run" "$ms"
            log "    startup $name $ms ms"
          done
      else
        note core "startup $name run $run: hyperfine failed"
      fi
    done
  else
    [ "$run" = 1 ] && note core "hyperfine not installed: start-up timed by tools/startup.py"
    timeout -k 5 "$MICRO_TIMEOUT" python3 "$BENCH/tools/startup.py" 200 10 "${cmds[@]}" 2>&1 |
      awk '$1 == "RESULT" { print $5, $3 }' | while read -r name ms; do
        record core startup "$name" ms "$run" "$ms"
        log "    startup $name $ms ms"
      done
  fi
}

section_core() {
  local run M=$BENCH/micro
  log "== core: promises, spawn + await, timers, memory per task, start-up"
  have node || note core "node: not installed (apt package nodejs), its column is empty"
  have_luv || note core "luv: lua-luv not installed, its column is empty"
  for ((run = 1; run <= RUNS; run++)); do
    log "-- core run $run/$RUNS"
    run_micro core tide "$run" "$TIDE" "$M/tide_promise.lua" 1000000
    run_micro core lua "$run" lua5.4 "$M/promise_lua.lua" 1000000
    have node && run_micro core node "$run" node "$M/promise.js" 1000000
    run_micro core tide "$run" "$TIDE" "$M/tide_spawn.lua" 1000000
    run_micro core lua "$run" lua5.4 "$M/spawn_coro.lua" 1000000
    have node && run_micro core node "$run" node "$M/spawn.js" 1000000
    run_micro core tide "$run" "$TIDE" "$M/tide_timers.lua" 100000
    run_micro core c "$run" "$BIN/timers" 100000
    have_luv && run_micro core luv "$run" lua5.4 "$M/timers_luv.lua" 100000
    have node && run_micro core node "$run" node "$M/timers.js" 100000
    run_micro core tide "$run" "$TIDE" "$M/tide_mem.lua" 100000
    run_micro core lua "$run" lua5.4 "$M/mem_coro.lua" 100000
    have node && run_micro core node "$run" node --expose-gc "$M/mem.js" 100000
    startup_times "$run"
  done
  disturbance_note core
}
