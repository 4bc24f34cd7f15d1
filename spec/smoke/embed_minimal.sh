#!/usr/bin/env bash
# examples/embed/minimal.c: runs a script with top-level await, reports a
# failing one with its traceback and exit status 1.
. spec/smoke/lib/embed.sh
build minimal
cat > "$T/ok.lua" <<'LUA'
local t = tide.now()
tide.sleep(0.05):await()
assert(tide.now() - t >= 0.04)
tide.spawn(function() tide.sleep(0.02):await() print("child done") end)
print("main done")
LUA
cat > "$T/bad.lua" <<'LUA'
local function inner() error("broken on purpose") end
tide.sleep(0.01):await()
inner()
LUA
out=$(timeout -k 2 20 "$T/minimal" "$T/ok.lua")
[ "$out" = "main done
child done" ] || fail "ok.lua printed: $out"
leakcheck 200 "$T/minimal" "$T/ok.lua"
leakcheck 200 "$T/minimal" "$T/bad.lua"
set +e
timeout 20 "$T/minimal" "$T/bad.lua" >"$T/bad.out" 2>"$T/bad.log"; rc=$?
set -e
[ $rc -eq 1 ] || fail "bad.lua: exit status $rc, expected 1"
grep -q "broken on purpose" "$T/bad.log" || fail "bad.lua: no error message"
grep -q "in local 'inner'\|in function 'inner'\|inner" "$T/bad.log" || fail "bad.lua: no traceback"
set +e
timeout 20 "$T/minimal" "$T/missing.lua" 2>"$T/missing.log"; rc=$?
timeout 20 "$T/minimal" 2>/dev/null; rc2=$?
set -e
[ $rc -eq 1 ] && grep -q "cannot open" "$T/missing.log" || fail "missing script: status $rc"
[ $rc2 -eq 2 ] || fail "no argument: status $rc2, expected 2 (usage)"
echo ok
