#!/usr/bin/env bash
# docs/pool.md: every ```lua block that requires "tide" runs under the binary
# and prints what its comments say; the ```c block compiles against
# libtide.a and prints the sum it promises.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" docs/pool.md <<'PY'
import re, sys
out, doc = sys.argv[1], sys.argv[2]
text = open(doc).read()
for i, b in enumerate(re.findall(r"```lua\n(.*?)```", text, re.S)):
    if 'require "tide"' in b:
        open(f"{out}/ex{i}.lua", "w").write(b)
c = re.findall(r"```c\n(.*?)```", text, re.S)
assert len(c) == 1, "one C example"
open(f"{out}/host.c", "w").write(c[0])
PY
n=0
for f in "$tmp"/ex*.lua; do
  out=$(timeout 30 "$TIDE_BIN" "$f") || { echo "example $f failed:"; cat "$f"; exit 1; }
  # every "-- <value>" comment on a print line names a line of the output
  python3 - "$f" "$out" <<'PY'
import re, sys
src, out = open(sys.argv[1]).read(), sys.argv[2].split("\n")
for line in src.split("\n"):
    m = re.match(r"\s*print\(.*\)\s*--\s*(\S+)$", line)
    if m and m.group(1) not in out:
        sys.exit(f"expected a line {m.group(1)!r} in:\n" + "\n".join(out))
PY
  n=$((n + 1))
done
echo "$n Lua examples ran"
[ "$n" -ge 4 ]
build=$(dirname "$TIDE_BIN")
cc -std=c11 -D_GNU_SOURCE -Icore $(pkg-config --cflags lua5.4 libuv) -o "$tmp/host" "$tmp/host.c" \
  "$build/libtide.a" $(pkg-config --libs lua5.4 libuv openssl zlib) -lm -lpthread -ldl $(case "$build" in *check*) echo -fsanitize=address,undefined;; esac)
[ "$(timeout 30 "$tmp/host")" = 500000500000 ]
echo "the C example ran"
