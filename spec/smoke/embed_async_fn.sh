#!/usr/bin/env bash
# examples/embed/async_fn.c: a host async function computed on host
# threads, awaited from Lua in parallel, cancelled by tide.timeout (the
# thread stops early), misuse raised at once naming the function.
. spec/smoke/lib/embed.sh
build async_fn
out=$(timeout -k 2 30 "$T/async_fn") || fail "async_fn exited with status $?: $out"
expected="alpha 65308b34480da025, beta 0306e6b53c51e825
too slow:	false	ETIMEDOUT
misuse:	false	bad argument #2 to 'host.hash' (rounds must be positive)
host: job 'slow' stopped early"
[ "$out" = "$expected" ] || fail "async_fn printed:
$out"
leakcheck 300 "$T/async_fn"
echo ok
