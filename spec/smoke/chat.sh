#!/usr/bin/env bash
# examples/chat.lua driven by nc clients: lines go to every other client,
# /nick renames, a client killed mid-session never disturbs the others,
# and a client that stops reading is dropped while the rest chat on.
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/chat.lua 0
echo "server on port $PORT"

# client NAME FD: an nc client reading the fifo $T/NAME.in (written through
# FD) and writing $T/NAME.log; its pid goes to $T/NAME.pid
client() {
  mkfifo "$T/$1.in"
  nc 127.0.0.1 "$PORT" <"$T/$1.in" >"$T/$1.log" &
  echo $! >"$T/$1.pid"
  eval "exec $2>\"\$T/\$1.in\""
  wait_for "$T/$1.log" "welcome"
}

client a 3
client b 4
wait_for "$T/a.log" "joined"
client c 5
echo "/nick alice" >&3
wait_for "$T/b.log" "is now alice"
wait_for "$T/c.log" "is now alice"
echo "hello everyone" >&3
wait_for "$T/b.log" "alice: hello everyone"
wait_for "$T/c.log" "alice: hello everyone"

# c dies without a word: a and b are told, and go on
kill "$(cat "$T/c.pid")"
wait_for "$T/a.log" "left"
echo "still here" >&4
wait_for "$T/a.log" ": still here"

# d connects and never reads: once more than 1 MiB waits for it, it is
# dropped, and a and b are not held up meanwhile
timeout 60 socat -u "TCP:127.0.0.1:$PORT,rcvbuf=4096" SYSTEM:"sleep 60" &
wait_for "$T/a.log" "joined"
line=$(head -c 1000 /dev/zero | tr '\0' 'x')
for i in $(seq 12000); do echo "$i $line"; done >&3
echo "flood over" >&3
wait_for "$T/b.log" "alice: flood over"
[ "$(grep -c "^alice: [0-9]* x" "$T/b.log")" -eq 12000 ]
echo "bye" >&4
wait_for "$T/a.log" ": bye"
# the server kept a and b only
established() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
for i in $(seq 100); do [ "$(established)" -eq 2 ] && break; sleep 0.1; done
[ "$(established)" -eq 2 ] || { echo "d was not dropped:"; ss -tn "( sport = :$PORT )"; exit 1; }
if grep -q "hello everyone" "$T/a.log"; then echo "a got its own line back"; exit 1; fi
clean_exit 1
echo "chat ok"
