#!/usr/bin/env bash
# examples/http_files.lua serving a temporary tree to curl: files with their
# type and length, index.html for a directory, HEAD, 405, and 404 for
# missing paths, "..", encoded "..", and a symbolic link leading out of the
# tree; then examples/download.lua fetches a 3 MiB file from it intact;
# then the same example with "/" as its root serves files by absolute path.
set -euo pipefail
source spec/smoke/lib/servers.sh
D=$T/site
mkdir -p "$D/docs" "$T/outside"
echo "hello files" >"$D/hello.txt"
echo "<h1>docs</h1>" >"$D/docs/index.html"
echo '{"a":1}' >"$D/data.json"
echo "secret" >"$T/outside/secret.txt"
ln -s "$T/outside/secret.txt" "$D/escape"
ln -s "$D/hello.txt" "$D/alias.txt"
head -c 3145728 /dev/urandom >"$D/big.bin"
start examples/http_files.lua 0 "$D"
URL="http://127.0.0.1:$PORT"

# get PATH -> "status type size"
get() { curl -sS --max-time 10 --path-as-is -o "$T/body" -w '%{http_code} %{content_type} %{size_download}' "$URL$1"; }

[ "$(get /hello.txt)" = "200 text/plain; charset=utf-8 12" ]
[ "$(cat "$T/body")" = "hello files" ]
[ "$(get /data.json)" = "200 application/json 8" ]
[ "$(get /docs/)" = "200 text/html; charset=utf-8 14" ]
[ "$(get /docs)" = "200 text/html; charset=utf-8 14" ]
[ "$(get /alias.txt)" = "200 text/plain; charset=utf-8 12" ]
[ "$(get /big.bin | cut -d' ' -f1,3)" = "200 3145728" ]
cmp "$T/body" "$D/big.bin"
for bad in /missing /escape /../outside/secret.txt /docs/../../outside/secret.txt \
           /%2e%2e/outside/secret.txt /docs/%2E%2E/%2e%2e/outside/secret.txt /hello.txt%00 ; do
  [ "$(get "$bad" | cut -d' ' -f1)" = "404" ] || { echo "$bad was not refused"; cat "$T/body"; exit 1; }
  if grep -q secret "$T/body"; then echo "$bad leaked the secret"; exit 1; fi
done
curl -sS --max-time 5 -I "$URL/hello.txt" >"$T/head"
grep -qi "^content-length: 12" "$T/head"
grep -qi "^last-modified: " "$T/head"
[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X DELETE "$URL/hello.txt")" = "405" ]

# download.lua: the same bytes, and a progress bar that reached 100%
"$TIDE_BIN" examples/download.lua "$URL/big.bin" "$T/copy.bin" 2>"$T/progress"
cmp "$T/copy.bin" "$D/big.bin"
grep -q "100%" "$T/progress"
grep -q "saved 3.0 MiB" "$T/progress"
if "$TIDE_BIN" examples/download.lua "$URL/missing" "$T/none" 2>"$T/err404"; then
  echo "a 404 download succeeded"; exit 1
fi
grep -q "404 Not Found" "$T/err404"
clean_exit 1

# "/" as the root: every file is under it, by its absolute path.
start examples/http_files.lua 0 /
URL="http://127.0.0.1:$PORT"
[ "$(get "$(realpath "$D/hello.txt")")" = "200 text/plain; charset=utf-8 12" ]
[ "$(cat "$T/body")" = "hello files" ]
[ "$(get "$(realpath "$D/docs")/")" = "200 text/html; charset=utf-8 14" ]
[ "$(get "$(realpath "$D")/missing" | cut -d' ' -f1)" = "404" ]
clean_exit 2
echo "http_files ok"
