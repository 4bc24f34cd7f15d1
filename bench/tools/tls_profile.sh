#!/usr/bin/env bash
# tls_profile.sh — where a server's instructions go per unit of TLS load,
# with valgrind callgrind: the server runs twice under callgrind, loaded
# with tls_load -N N1 then -N N2 (the same connection count), and every
# function's cost is (cost with N2 - cost with N1) / (N2 - N1): start-up
# and, for keep-alive and echo, the handshakes cancel out.
#
#   bench/tools/tls_profile.sh OUTDIR "N1 N2" "TLS_LOAD ARGS" COMMAND...
#     e.g. tls_profile.sh /tmp/p "2000 12000" "-m ka -c 50" \
#            build/tide bench/peers/tide_https_hello.lua cert.pem key.pem
#   COMMAND gets a free port last (127.0.0.1). TLS_LOAD: the tls_load
#   binary (default build/bench/tls_load). Prints the self and inclusive
#   instructions per unit of the costliest functions; the callgrind files
#   stay in OUTDIR.
set -u
out=$1 ns=$2 args=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
TLS_LOAD=${TLS_LOAD:-$here/../../build/bench/tls_load}
n1=${ns% *} n2=${ns#* }
mkdir -p "$out"
port_free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
for n in "$n1" "$n2"; do
  port=$(port_free)
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n" "$@" "$port" >"$out/server.$n.log" 2>&1 </dev/null &
  pid=$!
  for ((i = 0; i < 1200; i++)); do
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # shellcheck disable=SC2086
  timeout -k 2 900 "$TLS_LOAD" -p "$port" $args -N "$n" >"$out/load.$n.out" 2>&1 || echo "load $n failed: $(cat "$out/load.$n.out")" >&2
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  callgrind_annotate --threshold=100 "$out/cg.$n" >"$out/self.$n.txt" 2>/dev/null
  callgrind_annotate --threshold=100 --inclusive=yes "$out/cg.$n" >"$out/incl.$n.txt" 2>/dev/null
done
python3 - "$out" "$n1" "$n2" <<'EOF'
import collections, re, sys
out, n1, n2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
row = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*?)(?:\s+\[([^\]]*)\])?\s*$")
def load(path):
    """{(function, object): Ir} of the function table (not the source annotations)."""
    d, total, table = {}, 0, False
    for l in open(path):
        if "PROGRAM TOTALS" in l:
            total = int(l.split()[0].replace(",", ""))
        elif "file:function" in l:
            table = True
        elif table:
            if l.startswith("----") or not l.strip():
                if d: break
                continue
            m = row.match(l)
            if m and "=>" not in l:
                key = (m.group(2), (m.group(3) or "").rsplit("/", 1)[-1])
                d[key] = d.get(key, 0) + int(m.group(1).replace(",", ""))
    return d, total
def group(obj, fn):
    if obj.startswith("libcrypto"): return "OpenSSL libcrypto (crypto, EVP, providers)"
    if obj.startswith("libssl"): return "OpenSSL libssl (TLS state machine, records)"
    if obj.startswith("liblua"): return "Lua VM and API (liblua5.4)"
    if obj.startswith("libuv"): return "libuv"
    if obj.startswith("libc"):
        if "memmove" in fn or "memcpy" in fn or "memset" in fn: return "libc memcpy/memset"
        if "malloc" in fn or "free" in fn or "realloc" in fn: return "libc malloc/free"
        if "pthread" in fn: return "libc pthread (OpenSSL locks)"
        return "libc other"
    if "stream.c" in fn: return "tide bindings/stream.c"
    if "tls.c" in fn: return "tide bindings/tls.c"
    if "alloc.c" in fn: return "tide bindings/alloc.c (Lua allocator)"
    if "core/" in fn: return "tide core/"
    if "bindings/" in fn: return "tide bindings/ (other)"
    return obj or "other"
for kind in ("self", "incl"):
    a, ta = load(f"{out}/{kind}.{n1}.txt")
    b, tb = load(f"{out}/{kind}.{n2}.txt")
    per = {f: (b.get(f, 0) - a.get(f, 0)) / (n2 - n1) for f in set(a) | set(b)}
    tot = (tb - ta) / (n2 - n1)
    if kind == "self":
        g = collections.Counter()
        for (fn, obj), v in per.items():
            g[group(obj, fn)] += v
        print(f"== self instructions per unit, by library (total {tot:,.0f})")
        for name, v in g.most_common():
            if abs(v) >= tot * 0.002:
                print(f"{v:12,.0f}  {v / tot * 100:5.1f}%  {name}")
        print()
    print(f"== {kind}: instructions per unit, by function (total {tot:,.0f})")
    for (fn, obj), v in sorted(per.items(), key=lambda x: -x[1])[:50]:
        if v < tot * 0.003: break
        print(f"{v:12,.0f}  {v / tot * 100:5.1f}%  {fn}  [{obj}]")
    print()
EOF
