#!/usr/bin/env bash
# examples/embed/threads.c: four runtimes on four threads, each serving
# its own port, and a foreign thread settling their promises through
# tide_post. (make tsan runs it under ThreadSanitizer.)
. spec/smoke/lib/embed.sh
build threads
out=$(timeout -k 2 30 "$T/threads") || fail "threads exited with status $?: $out"
for i in 1 2 3 4; do
  printf '%s\n' "$out" | grep -q "^runtime $i: port [1-9][0-9]*, sum of squares [0-9]*, reply \"runtime $i heard hello $i\"$" ||
    fail "runtime $i did not report: $out"
done
ports=$(printf '%s\n' "$out" | sed -n 's/^runtime [0-9]: port \([0-9]*\),.*/\1/p' | sort -u | wc -l)
[ "$ports" -eq 4 ] || fail "the runtimes did not serve four ports: $out"
printf '%s\n' "$out" | grep -q "^the service answered 200 requests$" || fail "service: $out"
leakcheck 300 "$T/threads"
echo ok
