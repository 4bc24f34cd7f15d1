#!/usr/bin/env bash
# Every ```lua block of README.md and docs/lua-api.md that requires "tide"
# runs under the binary and exits with status 0.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" README.md docs/lua-api.md <<'PY'
import re, sys
out = sys.argv[1]
for f in sys.argv[2:]:
    for i, b in enumerate(re.findall(r"```lua\n(.*?)```", open(f).read(), re.S)):
        if 'require "tide"' in b:
            open(f"{out}/{f.replace('/', '_')}_{i}.lua", "w").write(b)
PY
n=0
for f in "$tmp"/*.lua; do
  timeout 20 "$TIDE_BIN" "$f" >/dev/null || { echo "example $f failed:"; cat "$f"; exit 1; }
  n=$((n + 1))
done
echo "$n examples ran"
[ "$n" -ge 6 ]
