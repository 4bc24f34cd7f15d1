#!/usr/bin/env bash
# examples/embed/host_loop.c: the host's poll() loop reads its stdin while
# tide serves TCP in the same thread; lines typed are Lua chunks run as
# tasks; EOF on stdin ends the host cleanly.
. spec/smoke/lib/embed.sh
build host_loop

# run_host RUNNER...: drives one run of the host (plain or under valgrind)
run_host() {
  local port line
  rm -f "$T/in" "$T/out.log"
  mkfifo "$T/in"
  "$@" "$T/host_loop" <"$T/in" >"$T/out.log" 2>&1 &
  local pid=$!
  exec 3>"$T/in"
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$T/out.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "no port announced"
  exec 4<>"/dev/tcp/127.0.0.1/$port"
  echo "hello tide" >&4
  read -r -t 10 line <&4 || fail "no echo from the server"
  [ "$line" = "echo: hello tide" ] || fail "echo was '$line'"
  echo "return served, 6 * 7" >&3
  echo "error('typed wrong')" >&3
  echo "tide.sleep(0.05):await() return 'slept'" >&3
  for _ in $(seq 100); do grep -q "^= slept$" "$T/out.log" && break; sleep 0.1; done
  exec 4>&-
  exec 3>&-              # EOF: the host closes the server and exits
  wait "$pid" || fail "host exited with status $?"
  grep -q "^= 1 42$" "$T/out.log" || fail "chunk results missing"
  grep -q "^error: .*typed wrong" "$T/out.log" || fail "chunk error missing"
  grep -q "^= slept$" "$T/out.log" || fail "awaiting chunk missing"
}

run_host timeout -k 2 20
if [ -z "$SAN" ] && command -v valgrind >/dev/null; then
  run_host timeout -k 2 120 valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --suppressions=spec/smoke/lib/valgrind.supp
fi
echo ok
