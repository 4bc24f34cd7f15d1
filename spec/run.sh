#!/usr/bin/env bash
# Runs every suite — C tests of the core, busted specs, example smoke tests —
# each under a timeout, and ends with one line: "N passed, N failed".
# Environment: BUILD (build folder, default build), SUITE_TIMEOUT (seconds per
# suite file, default 300), ONLY (patterns separated by spaces: run only the
# suites whose path matches one; "core" names the C tests).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-300}
ONLY=${ONLY:-}

# selected PATH: whether ONLY is empty or one of its patterns matches PATH.
selected() {
  [ -z "$ONLY" ] && return 0
  local p
  for p in $ONLY; do [[ "$1" == *$p* ]] && return 0; done
  return 1
}
export TIDE_BUILD=$PWD/$BUILD
export TIDE_BIN=$PWD/$BUILD/tide
export LUA_CPATH="$PWD/$BUILD/?.so;;"
export LUA_PATH="$PWD/lua/?.lua;$PWD/spec/?.lua;;"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The Lua module under a stock interpreter needs the sanitizer runtime first.
PRELOAD=""
if [[ "$BUILD" == *check* ]]; then
  for lib in asan ubsan; do
    p=$(gcc -print-file-name=lib$lib.so); [ -f "$p" ] && PRELOAD="$PRELOAD $p"
  done
  # Exact suppressions only: see spec/lsan.supp.
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/spec/lsan.supp:print_suppressions=0}
fi

# spec/io/tcp_spec.lua holds a thousand connections (2,000 fds) at once.
[ "$(ulimit -n)" -lt 4096 ] 2>/dev/null && { ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; }

passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# tap NAME COMMAND...: run a TAP-printing command, count its results. A
# command that dies before its plan line, or exits non-zero with no failure
# counted, adds one failure.
tap() {
  local name=$1; shift
  local out="$log/out" rc
  timeout -k 5 "$SUITE_TIMEOUT" "$@" >"$out" 2>&1; rc=$?
  local ok nok skip
  skip=$(grep -c '^ok .*# SKIP' "$out")
  ok=$(( $(grep -c '^ok ' "$out") - skip )); nok=$(grep -c '^not ok ' "$out")
  passed=$((passed + ok)); failed=$((failed + nok)); skipped=$((skipped + skip))
  [ "$skip" -gt 0 ] && grep '^ok .*# SKIP' "$out" >&2
  if [ "$nok" -gt 0 ] || [ $rc -ne 0 ] || ! grep -q '^1\.\.' "$out"; then
    cat "$out"
    if [ "$nok" -eq 0 ]; then
      failed=$((failed + 1))
      [ $rc -eq 124 ] && echo "not ok - $name: timed out after ${SUITE_TIMEOUT}s" \
                      || echo "not ok - $name: exited with status $rc"
    fi
  fi
  printf '%-40s %3d passed, %d failed\n' "$name" "$ok" "$nok" >&2
}

if [ -x "$BUILD/core_tests" ] && selected core; then
  tap "core (C)" "$BUILD/core_tests"
fi

for f in spec/*_spec.lua spec/*/*_spec.lua; do
  [ -f "$f" ] || continue
  selected "$f" || continue
  if [ -n "$PRELOAD" ]; then
    tap "$f" env LD_PRELOAD="${PRELOAD# }" lua5.4 /usr/bin/busted -o TAP "$f"
  else
    tap "$f" lua5.4 /usr/bin/busted -o TAP "$f"
  fi
done

# Smoke tests: each spec/smoke/*.sh is one test; exit status 0 passes.
for f in spec/smoke/*.sh; do
  [ -f "$f" ] || continue
  selected "$f" || continue
  if timeout -k 5 "${SMOKE_TIMEOUT:-120}" bash "$f" >"$log/smoke" 2>&1; then
    passed=$((passed + 1)); printf '%-40s ok\n' "$f" >&2
  else
    failed=$((failed + 1)); cat "$log/smoke"; echo "not ok - $f"
    printf '%-40s FAILED\n' "$f" >&2
  fi
done

[ "$skipped" -gt 0 ] && echo "($skipped skipped: not counted as passed)" >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
