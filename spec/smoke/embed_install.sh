#!/usr/bin/env bash
# make install PREFIX=... into a temporary prefix: the files and links,
# libtide.so's soname, tide.pc, a host built with
# `cc host.c $(pkg-config --cflags --libs tide)` against the installed
# shared library, `require "tide"` from a stock lua5.4 (installed and from
# the build tree), the installed `tide` finding its Lua modules; then
# make uninstall leaves no file behind.
. spec/smoke/lib/embed.sh
P=$T/prefix
rel=${B#"$PWD"/}
# -o all: install what this build folder holds, never rebuild it here
make -s -o all BUILD="$rel" PREFIX="$P" install >"$T/install.log" 2>&1 || fail "make install"
for f in bin/tide lib/libtide.a "lib/libtide.so.0.1.0" include/tide.h lib/pkgconfig/tide.pc \
         lib/lua/5.4/tide.so share/lua/5.4/tide/http.lua; do
  [ -f "$P/$f" ] || fail "not installed: $f"
done
[ "$(readlink "$P/lib/libtide.so")" = libtide.so.0.1.0 ] || fail "libtide.so link"
[ "$(readlink "$P/lib/libtide.so.0")" = libtide.so.0.1.0 ] || fail "libtide.so.0 link"
readelf -d "$P/lib/libtide.so.0.1.0" | grep -q 'SONAME.*\[libtide\.so\.0\]' || fail "soname is not libtide.so.0"
export PKG_CONFIG_PATH=$P/lib/pkgconfig
[ "$(pkg-config --modversion tide)" = 0.1.0 ] || fail "pkg-config version"
pkg-config --cflags tide | grep -q -- "-I$P/include" || fail "tide.pc Cflags: $(pkg-config --cflags tide)"
pkg-config --libs tide | grep -q -- "-L$P/lib -ltide" || fail "tide.pc Libs: $(pkg-config --libs tide)"

cat > "$T/host.c" <<'C'
#include <stdio.h>
#include <tide.h>
static void done(tide_rt *rt, tide_state s, const tide_value *v, int n, void *data) {
  (void)rt; (void)n;
  *(int *)data = s == TIDE_FULFILLED && v[0].type == TIDE_INTEGER && v[0].u.integer == 42;
}
int main(void) {
  tide_rt *rt;
  int ok = 0;
  if (tide_rt_new(NULL, &rt) != 0) return 1;
  tide_dostring(rt, "tide.sleep(0.01):await() return 6 * 7", done, &ok);
  tide_rt_run(rt, TIDE_RUN_DEFAULT);
  tide_rt_free(rt);
  puts(ok ? "host ok" : "host failed");
  return !ok;
}
C
# shellcheck disable=SC2046
cc $SAN "$T/host.c" -o "$T/host" $(pkg-config --cflags --libs tide) || fail "cc host.c with pkg-config"
# (the output is read whole: grep -q would end the pipe early, and
# pipefail would count ldd's SIGPIPE as a failure)
libs=$(LD_LIBRARY_PATH=$P/lib ldd "$T/host")
[[ $libs == *"libtide.so.0 => $P/lib/libtide.so.0"* ]] || fail "host does not link the installed libtide.so.0: $libs"
[ "$(LD_LIBRARY_PATH=$P/lib timeout 20 "$T/host")" = "host ok" ] || fail "installed host"

# lua5.4 loads tide.so; a sanitizer build needs its runtime preloaded
preload=""
if [ -n "$SAN" ]; then
  for lib in asan ubsan; do p=$(gcc -print-file-name=lib$lib.so); [ -f "$p" ] && preload="$preload $p"; done
fi
lua_ok() {  # CPATH: where tide.so is
  env LD_PRELOAD="${preload# }" LUA_CPATH="$1" ASAN_OPTIONS=detect_leaks=0 timeout 20 lua5.4 -e \
    'local tide = require "tide"; tide.run(function() tide.sleep(0.1):await() print("ok") end)'
}
[ "$(lua_ok "$P/lib/lua/5.4/?.so")" = ok ] || fail "require tide from the prefix"
[ "$(lua_ok "$B/?.so")" = ok ] || fail "require tide from the build tree"
[ "$(cd "$T" && timeout 20 "$P/bin/tide" -e 'print(require("tide.http") ~= nil)')" = true ] ||
  fail "the installed tide does not find share/lua/5.4/tide"

make -s BUILD="$rel" PREFIX="$P" uninstall >>"$T/install.log" 2>&1 || fail "make uninstall"
left=$(find "$P" -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"
echo ok
