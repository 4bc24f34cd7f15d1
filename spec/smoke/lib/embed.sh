# spec/smoke/lib/embed.sh — sourced by spec/smoke/embed_*.sh (not a test
# itself: run.sh runs spec/smoke/*.sh only). Builds the examples of
# examples/embed against the library of $TIDE_BUILD with the sanitizer
# flags of that build, and runs them bounded in time; `checked` runs one
# under valgrind's leak check as well when valgrind is installed and the
# build is not a sanitizer build.
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
    "$@" "$B/libtide.a" $(pkg-config --libs lua5.4 libuv) -lm -lpthread -ldl
}

# checked SECONDS COMMAND...: runs the command with a time limit, then once
# more under valgrind (definite and indirect leaks and memory errors fail).
checked() {
  local secs=$1; shift
  timeout -k 2 "$secs" "$@"
  if [ -z "$SAN" ] && command -v valgrind >/dev/null; then
    timeout -k 2 $((secs * 10)) valgrind -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
      --suppressions=spec/smoke/lib/valgrind.supp "$@"
  fi
}

# fail MESSAGE: prints it and the logs of $T, fails the test.
fail() {
  echo "FAIL: $*"
  for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
  exit 1
}
