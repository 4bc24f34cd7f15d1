#!/usr/bin/env bash
# tide-scm-1.rockspec: `luarocks make` builds and installs tide.so, the
# binary and the Lua modules into a temporary tree; a stock lua5.4 with
# that tree's paths requires tide, tide.http and tide.tls and runs a task,
# and the installed binary finds its modules.
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
command -v luarocks >/dev/null || { echo "luarocks is not installed (spec/deps.sh installs it)"; exit 1; }
# From a copy of the sources, as a user's checkout: the rock's build folder
# (build-rock) must not hold objects of an earlier build, and a sanitizer
# build's make variables (set on make's command line under `make check`,
# they reach every process below it) must not reach it.
mkdir "$T/src"
cp -r core bindings lua Makefile tide.pc.in tide-scm-1.rockspec "$T/src"
(cd "$T/src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE -u OPT -u CC \
  -u EXTRA_CFLAGS -u EXTRA_LDFLAGS \
  timeout 300 luarocks --lua-version 5.4 --tree "$T" make tide-scm-1.rockspec) >"$T/make.log" 2>&1 ||
  { cat "$T/make.log"; exit 1; }
eval "$(luarocks --lua-version 5.4 --tree "$T" path)"
export LUA_CPATH LUA_PATH
out=$(cd / && env -u LD_PRELOAD lua5.4 -e '
  local tide = require "tide"
  assert(require("tide.http").serve and require("tide.tls").connect)
  tide.run(function() tide.sleep(0.01):await() print("ran", tide.version) end)')
[ "$out" = "ran	$(cd / && env -u LD_PRELOAD lua5.4 -e 'print(require("tide").version)')" ]
out=$(cd / && "$T/bin/tide" -e 'print(require("tide.http").serve ~= nil)')
[ "$out" = true ]
echo "luarocks ok"
