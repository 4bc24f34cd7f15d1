#!/usr/bin/env bash
# tide --workers 2: both workers serve one port (SO_REUSEPORT); a killed
# worker comes back; SIGHUP replaces both without a failed request; SIGTERM
# lets a request in flight finish and ends the supervisor with status 0.
# (Linux drops the connections queued at a listener that closes unless
# net.ipv4.tcp_migrate_req is 1, as docs/io.md says: the test sets it while
# it runs when it may, and puts the old value back.)
set -euo pipefail
T=$(mktemp -d)
MIGRATE=/proc/sys/net/ipv4/tcp_migrate_req
old_migrate=$(cat $MIGRATE 2>/dev/null || true)
[ -w $MIGRATE ] && echo 1 >$MIGRATE
trap 'rc=$?; kill -9 $(pgrep -P "${SUP:-0}") "${SUP:-0}" 2>/dev/null || true; rm -rf "$T"
      [ -n "$old_migrate" ] && [ -w $MIGRATE ] && echo "$old_migrate" >$MIGRATE; exit $rc' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$T/app.lua" <<'LUA'
local tide = require "tide"
local http = require "tide.http"
http.serve({ port = tonumber(arg[1]) }, function(req, res)
  if req.path == "/slow" then tide.sleep(1):await() end
  res:finish("worker " .. tostring(tide.worker) .. "\n")
end)
LUA
TIDE_GRACE=5 "$TIDE_BIN" --workers 2 "$T/app.lua" "$PORT" 2>"$T/sup.log" &
SUP=$!
get() { curl -sf -m 5 -H 'Connection: close' "http://127.0.0.1:$PORT${1:-/}"; }
for _ in $(seq 50); do get >/dev/null 2>&1 && break; sleep 0.1; done
seen() { for _ in $(seq 40); do get; done | sort -u | tr '\n' ' '; }
[ "$(seen)" = "worker 1 worker 2 " ] || { echo "not both workers: $(seen)"; exit 1; }

# A killed worker comes back.
pids=$(pgrep -P $SUP | sort)
kill -9 "$(echo "$pids" | head -1)"
for _ in $(seq 50); do [ "$(pgrep -P $SUP | wc -l)" -eq 2 ] && [ "$(pgrep -P $SUP | sort)" != "$pids" ] && break; sleep 0.1; done
[ "$(pgrep -P $SUP | sort)" != "$pids" ] || { echo "the killed worker did not come back"; exit 1; }
sleep 0.3
[ "$(seen)" = "worker 1 worker 2 " ] || { echo "not both workers after a restart"; exit 1; }
grep -q "worker [12] (pid [0-9]*) ended (SIGKILL)" "$T/sup.log"

# SIGHUP: new workers, one at a time, and no request fails meanwhile.
pids=$(pgrep -P $SUP | sort)
kill -HUP $SUP
fails=0
end=$((SECONDS + 4))
while [ $SECONDS -lt $end ]; do get >/dev/null || fails=$((fails + 1)); done
[ $fails -eq 0 ] || { echo "$fails requests failed during SIGHUP"; exit 1; }
now=$(pgrep -P $SUP | sort)
[ "$(comm -12 <(echo "$pids") <(echo "$now") | wc -l)" -eq 0 ] || { echo "SIGHUP left old workers: $pids / $now"; exit 1; }

# SIGTERM: the request in flight finishes, the supervisor ends with 0.
get /slow >"$T/slow" &
slow=$!
sleep 0.3
kill -TERM $SUP
wait $slow
[ "$(cat "$T/slow")" = "worker 1" ] || [ "$(cat "$T/slow")" = "worker 2" ] || { echo "slow request: $(cat "$T/slow")"; exit 1; }
wait $SUP
echo "workers ok"
