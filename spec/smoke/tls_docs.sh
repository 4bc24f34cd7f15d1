#!/usr/bin/env bash
# docs/tls.md: the ```sh block makes the test certificates, then every
# ```lua block that requires "tide" runs under the binary in that folder
# and exits with status 0, with nothing on stderr.
set -euo pipefail
root=$PWD
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import re, sys
text = open("docs/tls.md").read()
open(sys.argv[1] + "/certs.sh", "w").write("\n".join(re.findall(r"```sh\n(.*?)```", text, re.S)))
PY
(cd "$tmp" && bash certs.sh >/dev/null 2>&1)
n=$(python3 spec/smoke/lib/lua_blocks.py docs/tls.md "$tmp")
[ "$n" -ge 3 ]
cd "$tmp"
for f in "$tmp"/example_*.lua; do
  if ! timeout 20 "$TIDE_BIN" "$f" >"$tmp/out" 2>"$tmp/err"; then
    echo "example failed:"; cat "$f"; cat "$tmp/out" "$tmp/err"; exit 1
  fi
  echo "== $f"; cat "$tmp/out" "$tmp/err"
  [ -s "$tmp/err" ] && exit 1
done
echo "$n examples ran"
