# bench/lib/pool.sh — section "pool" of bench/run.sh (issue 4, the thread
# pool): trivial-job round trips one at a time and all at once, and a
# CPU-bound job split over every CPU; tide.work beside libuv's
# uv_queue_work in C, luv's new_work and Node's worker_threads.
# Sourced by run.sh; see bench/README.md for what each figure measures.

section_pool() {
  local run M=$BENCH/micro
  log "== pool: thread pool round trips and speed-up"
  have node || note pool "node: not installed (apt package nodejs), its column is empty"
  have_luv || note pool "luv: lua-luv not installed, its column is empty"
  [ -x "$BIN/tide_pool" ] || note pool "tide (C submit): no tide_work_submit in core/tide.h (or it did not build), column empty"
  if [ "$CPUS" -lt 2 ]; then
    note pool "one CPU only: the speed-up figures mean nothing here"
  fi
  # The pool benchmarks use every CPU (workers, and the speed-up). Their
  # round trips cost the kernel CPU time (wake-ups) that no process is
  # charged with, about 15% of a CPU here: disturbance starts above 40%.
  local MICRO_CPUS=$CPUS DISTURBED_PCT=40
  for ((run = 1; run <= RUNS; run++)); do
    log "-- pool run $run/$RUNS"
    run_micro pool tide "$run" "$TIDE" "$M/tide_pool.lua" 20000 200000 134217728
    [ -x "$BIN/tide_pool" ] && run_micro pool tide_c "$run" "$BIN/tide_pool" 20000 200000 536870912
    run_micro pool c "$run" "$BIN/pool" 20000 200000 536870912
    have_luv && run_micro pool luv "$run" lua5.4 "$M/pool_luv.lua" 20000 200000 134217728
    have node && run_micro pool node "$run" node "$M/pool.js" 20000 200000 536870912
    # the round trip with every thread on one CPU: no cross-CPU wake-up
    # (slow in virtual machines), so the per-job work of each stack shows
    MICRO_ONLY='^pool_seq$' MICRO_SUFFIX=_1cpu run_micro pool tide "$run" \
      taskset -c "$SERVER_CPU" "$TIDE" "$M/tide_pool.lua" 20000 1000 1000000
    [ -x "$BIN/tide_pool" ] && MICRO_ONLY='^pool_seq$' MICRO_SUFFIX=_1cpu run_micro pool tide_c "$run" \
      taskset -c "$SERVER_CPU" "$BIN/tide_pool" 20000 1000 1000000
    MICRO_ONLY='^pool_seq$' MICRO_SUFFIX=_1cpu run_micro pool c "$run" \
      taskset -c "$SERVER_CPU" "$BIN/pool" 20000 1000 1000000
    have_luv && MICRO_ONLY='^pool_seq$' MICRO_SUFFIX=_1cpu run_micro pool luv "$run" \
      taskset -c "$SERVER_CPU" lua5.4 "$M/pool_luv.lua" 20000 1000 1000000
    have node && MICRO_ONLY='^pool_seq$' MICRO_SUFFIX=_1cpu run_micro pool node "$run" \
      taskset -c "$SERVER_CPU" node "$M/pool.js" 20000 1000 1000000
  done
  disturbance_note pool
}
