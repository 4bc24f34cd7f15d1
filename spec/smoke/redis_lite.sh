#!/usr/bin/env bash
# examples/redis_lite.lua checked with redis-cli (strings, expiry, counters,
# errors, inline and pipelined requests, pub/sub), redis-benchmark (plain
# and -P 16, every reply checked by it) and tide.redis itself.
set -euo pipefail
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "redis-tools missing: skipped"; exit 0; }
source spec/smoke/lib/servers.sh
start examples/redis_lite.lua 0
cli() { timeout 10 redis-cli -p "$PORT" "$@"; }

[ "$(cli ping)" = PONG ]
[ "$(cli set greeting hello EX 100)" = OK ]
[ "$(cli get greeting)" = hello ]
ttl=$(cli ttl greeting); [ "$ttl" -ge 99 ] && [ "$ttl" -le 100 ]
[ "$(cli set short x PX 50)" = OK ]
sleep 0.2
[ -z "$(cli get short)" ]
[ "$(cli ttl short)" = -2 ]
[ "$(cli set n 41)" = OK ]
[ "$(cli incr n)" = 42 ]
cli incr greeting | grep -q "not an integer"
[ "$(cli expire n 5)" = 1 ]
[ "$(cli ttl n)" = 5 ]
[ "$(cli set n 1 NX)" = "" ]
[ "$(cli del n greeting nothing)" = 2 ]
cli nosuchcommand | grep -q "unknown command"

# Pipelined and inline requests: every answer, in order.
printf 'PING\r\nSET a 1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nQUIT\r\n' |
  timeout 10 nc 127.0.0.1 "$PORT" >"$T/pipelined"
[ "$(tr -d '\r' <"$T/pipelined" | tr '\n' ' ')" = "+PONG +OK :2 \$1 2 +OK " ]

# Pub/sub: two subscribers get the message.
for i in 1 2; do
  timeout 10 redis-cli -p "$PORT" subscribe news >"$T/sub$i" &
done
for i in $(seq 50); do [ "$(cli publish news warmup)" = 2 ] && break; sleep 0.1; done
[ "$(cli publish news flash)" = 2 ]
wait_for "$T/sub1" flash
wait_for "$T/sub2" flash

# tide.redis against it: automatic pipelining from 50 tasks.
cat >"$T/client.lua" <<LUA
local redis = require "tide.redis"
local r <close> = redis.connect("redis://127.0.0.1:$PORT"):await()
local g = tide.group()
for i = 1, 50 do
  g:spawn(function()
    for j = 1, 100 do r:incr("c" .. (i % 5)) end
    return r:get("c" .. (i % 5)):await()
  end)
end
g:wait():await()
print(r:get("c0"):await())
LUA
[ "$("$TIDE_BIN" "$T/client.lua")" = 1000 ]

# redis-benchmark checks the shape of every reply it gets.
timeout 60 redis-benchmark -p "$PORT" -t ping,set,get,incr -n 20000 -q >"$T/bench1" 2>&1
timeout 60 redis-benchmark -p "$PORT" -t set,get -n 50000 -P 16 -q >"$T/bench2" 2>&1
tr '\r' '\n' <"$T/bench1" | grep "requests per second"
tr '\r' '\n' <"$T/bench2" | grep "requests per second"
[ "$(tr '\r' '\n' <"$T/bench1" | grep -c "requests per second")" -eq 5 ]
[ "$(tr '\r' '\n' <"$T/bench2" | grep -c "requests per second")" -eq 2 ]
clean_exit 1
echo "redis_lite ok"
