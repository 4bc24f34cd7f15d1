#!/usr/bin/env bash
# examples/proxy.lua in front of examples/echo.lua and of a server that
# answers only once its client is done sending: bytes go both ways intact
# (8 MiB, sha256), the end of one side's sending reaches the other
# (half-close), and a target that is down closes the client's connection.
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/echo.lua 0
ECHO=$PORT
start examples/proxy.lua 0 "127.0.0.1:$ECHO"
PROXY=$PORT
echo "echo on $ECHO, proxy on $PROXY"

[ "$(printf 'through the proxy\n' | timeout 10 nc -N 127.0.0.1 "$PROXY")" = "through the proxy" ]

head -c 8388608 /dev/urandom >"$T/blob"
timeout 30 socat -t 10 -b 65536 "TCP:127.0.0.1:$PROXY" STDIO <"$T/blob" >"$T/back"
[ "$(sha256sum <"$T/blob")" = "$(sha256sum <"$T/back")" ]

# half-close: this server replies after it read the end of the request
cat >"$T/count.lua" <<'LUA'
local tide = require "tide"
local server = tide.tcp.serve({ port = 0 }, function(conn)
  local data = conn:read_all():await()
  conn:write(("got %d bytes\n"):format(#data)):await()
end)
print(("listening on 127.0.0.1:%d"):format(server.port))
io.stdout:flush()
LUA
start "$T/count.lua"
COUNT=$PORT
start examples/proxy.lua 0 "127.0.0.1:$COUNT"
[ "$(head -c 100000 /dev/zero | timeout 10 nc -N 127.0.0.1 "$PORT")" = "got 100000 bytes" ]

# a target that is down: the client is closed at once, the proxy says why
start examples/proxy.lua 0 "127.0.0.1:1"
[ -z "$(printf 'anyone?\n' | timeout 10 nc -N 127.0.0.1 "$PORT")" ]
wait_for "$T/5.err" "ECONNREFUSED"
for n in 1 2 3 4; do clean_exit "$n"; done
echo "proxy ok"
