#!/usr/bin/env bash
# Allocation failures, everywhere in tide's core paths: spec/smoke/alloc_fault.lua
# runs once with TIDE_ALLOC_FAIL=count to learn how many allocations its
# state makes (N), then once for each n sampled from 1..N with
# TIDE_ALLOC_FAIL=n (the n-th allocation fails: one "not enough memory"
# error where it happens, the rest runs with memory), and for a sparser
# sample with TIDE_ALLOC_FAIL=n+ (every allocation from the n-th on fails).
# Each run must end as a script may: done (status 0), or a clean error
# (status 1 and a "tide: ..." message) — never a signal, a sanitizer
# report (a leak included, under make check), an assertion, a Lua panic
# or a hang (10 s per run). The error need not say "not enough memory":
# a failure the script sees later (a peer that closed, a write error
# shown on the next operation) is a clean end too.
#
# Sampled: every n up to ALLOC_FAULT_FIRST (default 100: the state's
# creation), and ALLOC_FAULT_RUNS more spread evenly over 1..N (default
# 1000, which the bugs this test found did not slip through; n+ runs: a
# quarter as many), starting ALLOC_FAULT_OFFSET (default
# 0) into the stride, coarse to fine, until ALLOC_FAULT_SECONDS (default
# 45) have passed: a slow machine (make check) runs fewer. ALLOC_FAULT_ALL=1
# runs every n in both modes (minutes: give it ALLOC_FAULT_SECONDS too).
# ALLOC_FAULT_JOBS runs in parallel (default 2). The TLS part
# runs when openssl can make the certificates (spec/tls/certs.sh). The
# last line tells N, the runs and the time taken.
set -euo pipefail
TIDE_BIN=${TIDE_BIN:-build/tide}
SCRIPT=spec/smoke/alloc_fault.lua
FIRST=${ALLOC_FAULT_FIRST:-100}
RUNS=${ALLOC_FAULT_RUNS:-1000}
OFFSET=${ALLOC_FAULT_OFFSET:-0}
JOBS=${ALLOC_FAULT_JOBS:-2}
BUDGET=${ALLOC_FAULT_SECONDS:-45}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

args=()
if sh spec/tls/certs.sh "$T/certs" >/dev/null 2>&1; then args=("$T/certs"); fi

# The count run: it must succeed, and tells N (the main state's count, the
# largest of those printed; pool workers print their own).
TIDE_ALLOC_FAIL=count timeout -k 2 20 "$TIDE_BIN" "$SCRIPT" "${args[@]}" >"$T/out" 2>"$T/err" || {
  echo "the count run failed:"; cat "$T/out" "$T/err"; exit 1; }
grep -q '^alloc_fault: done$' "$T/out" || { echo "the count run did not finish:"; cat "$T/out" "$T/err"; exit 1; }
N=$(sed -n 's/^tide: TIDE_ALLOC_FAIL: \([0-9]*\) allocations.*/\1/p' "$T/err" | sort -n | tail -1)
[ -n "$N" ] && [ "$N" -gt 0 ] || { echo "no allocation count:"; cat "$T/err"; exit 1; }

# The values of TIDE_ALLOC_FAIL to run, one a line.
sample() {  # sample SUFFIX FIRST RUNS: 1..FIRST, then RUNS spread over the rest
  local suffix=$1 first=$2 runs=$3 n stride
  if [ "${ALLOC_FAULT_ALL:-0}" = 1 ]; then first=$N; fi
  for ((n = 1; n <= first && n <= N; n++)); do echo "$n$suffix"; done
  if [ "$N" -gt "$first" ] && [ "$runs" -gt 0 ]; then
    stride=$(( (N - first + runs - 1) / runs ))
    for ((n = first + 1 + OFFSET % stride; n <= N; n += stride)); do echo "$n$suffix"; done
  fi
}
# Coarse to fine: the i-th value goes in the order of i's bits reversed
# (first, middle, quarters, ...), so that runs cut short by the time
# budget still spread over the whole script.
spread() {
  awk '{ v[NR - 1] = $0 } END {
    for (b = 1; 2 ^ b < NR; b++) {}
    for (i = 0; i < NR; i++) { r = 0; x = i; for (k = 0; k < b; k++) { r = r * 2 + x % 2; x = int(x / 2) } print r, v[i] }
  }' | sort -n -k1,1 | cut -d' ' -f2
}
{ sample "" "$FIRST" "$RUNS"; sample "+" 0 $((RUNS / 4)); } | spread >"$T/values"

# One run: prints nothing when it ended as it may, else what went wrong;
# "skipped" once the time budget is spent.
START=$(date +%s)
export TIDE_BIN SCRIPT T START BUDGET
one() {
  local v=$1 rc out err
  if [ $(($(date +%s) - START)) -ge "$BUDGET" ]; then echo skipped; return; fi
  out="$T/$v.out" err="$T/$v.err"
  TIDE_ALLOC_FAIL=$v timeout -k 2 10 "$TIDE_BIN" "$SCRIPT" "${@:2}" >"$out" 2>"$err" && rc=0 || rc=$?
  local why=""
  if grep -qE 'Sanitizer|runtime error|PANIC|Assertion|assertion .* failed' "$err"; then
    why="a sanitizer report, a panic or an assertion"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out"
  elif [ $rc -gt 128 ]; then why="killed by signal $((rc - 128))"
  elif [ $rc -eq 0 ]; then grep -q '^alloc_fault: done$' "$out" || why="status 0 but not done"
  elif [ $rc -eq 1 ]; then grep -qE '^([^ ]*/)?tide: ' "$err" || why="status 1 without an error message"
  else why="status $rc"
  fi
  if [ -n "$why" ]; then
    echo "TIDE_ALLOC_FAIL=$v: $why"
    head -c 3000 "$err"
  fi
  rm -f "$out" "$err"
}
export -f one

start=$SECONDS
xargs -P "$JOBS" -I{} bash -c 'one "$@"' _ {} "${args[@]}" <"$T/values" >"$T/report" || true
skipped=$(grep -c '^skipped$' "$T/report" || true)
runs=$(($(wc -l <"$T/values") - skipped))
bad=$(grep -c '^TIDE_ALLOC_FAIL=' "$T/report" || true)
echo "$N allocations; $runs runs in $((SECONDS - start)) s ($skipped left for want of time); $bad failed"
if [ "$bad" -gt 0 ]; then cat "$T/report"; exit 1; fi
