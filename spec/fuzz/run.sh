#!/usr/bin/env bash
# Runs each fuzz target built by `make fuzz` for FUZZ_SECONDS seconds (60 by
# default), one after another, from its seed corpus in spec/fuzz/corpus/T/.
# Inputs in spec/fuzz/regress/T/ (findings kept as regression inputs) run
# first and must pass. New inputs go to $BUILD/fuzz/corpus/T (kept between runs, so a later run
# starts where the last one ended); a finding is saved as
# $BUILD/fuzz/findings/T-crash-..., -leak-..., -timeout-... and the target
# counts as failed. Each target prints its executions and coverage; the
# last line is "N passed, N failed", as for the other suites.
#
# FUZZ_RUNS=n stops a target after n executions, if its time does not end
# it first (a long run: FUZZ_SECONDS=3600 FUZZ_RUNS=10000000).
#
# Usage: BUILD=build-fuzz FUZZ_SECONDS=10 bash spec/fuzz/run.sh [target...]
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# libFuzzer reads 0 as "no limit"
[ "$FUZZ_SECONDS" -ge 1 ] 2>/dev/null || FUZZ_SECONDS=1
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(h1 fields resp websocket tls marshal)
passed=0 failed=0
for t in "${targets[@]}"; do
  bin=$BUILD/fuzz/$t
  work=$BUILD/fuzz/corpus/$t
  log=$BUILD/fuzz/$t.log
  mkdir -p "$work" "$BUILD/fuzz/findings"
  seeds=("spec/fuzz/corpus/$t")
  [ -d "spec/fuzz/regress/$t" ] && seeds+=("spec/fuzz/regress/$t")
  # -timeout: one input taking longer than 10 s is a finding (a hang);
  # -rss_limit_mb: so is a process that grows past 2 GB. Leaks are
  # checked at exit, where each target closes its Lua state, not after
  # each input (see lua_target.c: every input leaves garbage for Lua's
  # collector, and LeakSanitizer after each one is 100 times slower),
  # unless FUZZ_GC_EVERY=1 makes each input of a Lua target end with a
  # full collection.
  flags=()
  [ -n "${FUZZ_RUNS:-}" ] && flags+=(-runs="$FUZZ_RUNS")
  asan=detect_leaks=1
  [ "${FUZZ_GC_EVERY:-0}" != 1 ] && flags+=(-detect_leaks=0)
  if [ -f "spec/fuzz/$t.lua" ]; then
    # Lua allocates and frees at a high rate: a 16 MB quarantine (freed
    # memory kept poisoned; 256 MB by default, which makes each input
    # touch fresh pages), stacks of 5 frames for allocations (replay a
    # finding with the defaults for whole stacks) and strchr left alone
    # (liblua calls it in lua_getinfo) make these targets about 15%
    # faster. Out-of-bounds checks are unchanged; a use after free is
    # caught as long as the memory was freed in the last 16 MB of frees.
    asan=$asan:quarantine_size_mb=16:malloc_context_size=5:intercept_strchr=0
  fi
  ASAN_OPTIONS=${ASAN_OPTIONS:-$asan} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 "${flags[@]}" \
      -artifact_prefix="$BUILD/fuzz/findings/$t-" \
      "$work" "${seeds[@]}" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  # the time it ran: FUZZ_SECONDS, or less when FUZZ_RUNS ended it
  secs=$(grep -o '^Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*')
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*')
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $t: ${execs:-?} executions in ${secs:-$FUZZ_SECONDS}s, ${cov:-cov: ?} ${ft:-ft: ?}"
  else
    failed=$((failed + 1))
    echo "FAIL $t (exit $rc): ${execs:-?} executions, ${cov:-cov: ?} ${ft:-ft: ?}; log $log"
    grep -E 'ERROR|fuzz:|SUMMARY|Test unit written|runtime error' "$log" | head -n 20 | sed 's/^/     /'
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
