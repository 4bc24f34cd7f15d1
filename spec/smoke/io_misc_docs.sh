#!/usr/bin/env bash
# Every ```lua block that requires "tide" in the UDP, DNS, Signals and Files
# sections of docs/io.md runs under the binary and exits with status 0.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" docs/io.md <<'PY'
import re, sys
out, path = sys.argv[1], sys.argv[2]
sections = re.split(r"^## ", open(path).read(), flags=re.M)
n = 0
for sec in sections:
    if sec.split("\n", 1)[0].strip() not in ("UDP", "DNS", "Signals", "Files"):
        continue
    for block in re.findall(r"```lua\n(.*?)```", sec, re.S):
        if 'require "tide"' in block:
            n += 1
            open(f"{out}/example_{n}.lua", "w").write(block)
PY
n=0
for f in "$tmp"/*.lua; do
  out=$(timeout 20 "$TIDE_BIN" "$f" 2>&1) || { echo "example failed:"; cat "$f"; echo "$out"; exit 1; }
  n=$((n + 1))
done
echo "$n examples ran"
[ "$n" -ge 4 ]
