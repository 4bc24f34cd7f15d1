#!/usr/bin/env bash
# examples/embed/glib.c: tide inside a GLib main loop through its backend
# fd: host functions (plain and async, answered from a GLib timeout), a
# sleep, and a GLib timer ticking beside it.
. spec/smoke/lib/embed.sh
# shellcheck disable=SC2046
build glib $(pkg-config --cflags --libs glib-2.0)
out=$(timeout -k 2 20 "$T/glib")
expected="status: starting
status: yes to 'save?'
status: yes to 'quit?'
script returned: done after true
glib ticked on while tide ran"
[ "$out" = "$expected" ] || fail "glib printed:
$out"
leakcheck 200 "$T/glib"
echo ok
