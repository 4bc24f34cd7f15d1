# spec/smoke/lib/embed.sh — sourced by spec/smoke/embed_*.sh (not a test
# itself: run.sh runs spec/smoke/*.sh only). Builds the examples of
# examples/embed against the library of $TIDE_BUILD with the sanitizer
# flags of that build; the tests run them bounded in time, and once more
# under valgrind's leak check (leakcheck).
set -euo pipefail
B=${TIDE_BUILD:-$PWD/build}
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
SAN=""
case "$B" in
  *-check*) SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" ;;
  *-tsan*) SAN="-fsanitize=thread" ;;
esac

# build NAME [cc arguments...]: examples/embed/NAME.c -> $T/NAME
build() {
  local name=$1; shift
  # shellcheck disable=SC2046
  cc -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror $SAN -Icore \
    $(pkg-config --cflags lua5.4 libuv) "examples/embed/$name.c" -o "$T/$name" \
    "$@" "$B/libtide.a" $(pkg-config --libs lua5.4 libuv openssl zlib) -lm -lpthread -ldl
}

# leakcheck SECONDS COMMAND...: runs the command under valgrind (memory
# errors, definite and indirect leaks fail) when valgrind is installed and
# the build is not a sanitizer build; its output goes to $T/valgrind.log.
# Only valgrind's verdict counts (status 99) and the time limit.
leakcheck() {
  local secs=$1; shift
  [ -z "$SAN" ] && command -v valgrind >/dev/null || return 0
  timeout -k 2 "$secs" valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --suppressions=spec/smoke/lib/valgrind.supp "$@" >"$T/valgrind.log" 2>&1 || {
    local rc=$?  # the plain run checks the command's own status
    [ $rc -ne 99 ] && [ $rc -lt 124 ] || fail "valgrind: $* (status $rc)"
  }
}

# fail MESSAGE: prints it and the logs of $T, fails the test.
fail() {
  echo "FAIL: $*"
  for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
  exit 1
}
