#!/usr/bin/env bash
# examples/echo.lua: nc and socat clients get back exactly what they send,
# one at a time and many at once; 8 MiB survive the trip (sha256).
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/echo.lua 0
echo "server on port $PORT"

# one line, the client ending its half: the echo comes back, then the end
[ "$(printf 'hello tide\n' | timeout 10 nc -N 127.0.0.1 "$PORT")" = "hello tide" ]

# 8 MiB of random bytes through socat
head -c 8388608 /dev/urandom >"$T/blob"
timeout 20 socat -t 10 -b 65536 "TCP:127.0.0.1:$PORT" STDIO <"$T/blob" >"$T/back"
[ "$(sha256sum <"$T/blob")" = "$(sha256sum <"$T/back")" ]

# 50 clients at once
clients=()
for i in $(seq 50); do
  (printf 'client %d\n' "$i" | timeout 10 nc -N 127.0.0.1 "$PORT" >"$T/c$i") &
  clients+=($!)
done
wait "${clients[@]}" || true
for i in $(seq 50); do
  [ "$(cat "$T/c$i")" = "client $i" ] || { echo "client $i got: $(cat "$T/c$i")"; exit 1; }
done
clean_exit 1
echo "echo ok"
