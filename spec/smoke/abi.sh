#!/usr/bin/env bash
# The ABI says what it is: build/libtide.so and build/tide.so export exactly
# the functions core/tide.h declares (listed by gcc -aux-info, static inline
# helpers left out), luaopen_tide among them; everything else is hidden
# (-fvisibility=hidden, TIDE_EXTERN on the public API).
set -euo pipefail
B=${TIDE_BUILD:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo '#include "tide.h"' >"$T/abi.c"
# shellcheck disable=SC2046
gcc -fsyntax-only -aux-info "$T/aux" -Icore $(pkg-config --cflags libuv 2>/dev/null) "$T/abi.c"
# "/* core/tide.h:115:NC */ int tide_rt_new (const tide_options *opts, ...);"
grep -F '/tide.h:' "$T/aux" | grep -v '\*/ static ' |
  sed -e 's|^/\*[^*]*\*/ ||' -e 's| (.*||' -e 's|.*[ *]||' | sort -u >"$T/declared"
[ "$(wc -l <"$T/declared")" -ge 50 ] || { echo "too few declarations found:"; cat "$T/declared"; exit 1; }
grep -qx luaopen_tide "$T/declared" || { echo "tide.h does not declare luaopen_tide"; exit 1; }
status=0
for lib in "$B/libtide.so" "$B/tide.so"; do
  nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ { print $3 }' | sort -u >"$T/exported"
  if ! diff -u "$T/declared" "$T/exported" >"$T/diff"; then
    echo "$lib: exported symbols (+) differ from what tide.h declares (-):"
    grep '^[+-][^+-]' "$T/diff"
    status=1
  fi
done
exit $status
