#!/bin/sh
# Installs the Debian packages tide needs to build and test, when missing.
# As root it runs apt-get; otherwise it prints the command to run.
pkgs="gcc make pkg-config liblua5.4-dev libuv1-dev lua5.4 lua-busted curl socat netcat-openbsd iproute2 bsdutils libglib2.0-dev valgrind wrk nodejs python3 libssl-dev openssl ca-certificates luarocks libreadline-dev memcached redis-server redis-tools zlib1g-dev python3-websockets lua-cjson lua-check clang"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
    echo "deps: apt-get install$missing failed" >&2; exit 1; }
else
  echo "deps: missing packages:$missing" >&2
  echo "deps: run: sudo apt-get install -y$missing" >&2
  exit 1
fi
