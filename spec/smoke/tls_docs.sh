#!/usr/bin/env bash
# docs/tls.md: the ```sh block makes the test certificates, then every
# ```lua block that requires "tide" runs under the binary in that folder
# and exits with status 0, with nothing on stderr.
set -euo pipefail
. spec/smoke/lib/doc_examples.sh
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
run_examples "$tmp"
echo "$n examples ran"
