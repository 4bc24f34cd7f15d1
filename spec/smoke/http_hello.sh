#!/usr/bin/env bash
# examples/http_hello.lua answered by curl: GET and HEAD, two requests on
# one keep-alive connection, HTTP/1.0, and a pipelined burst over nc.
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/http_hello.lua 0
URL="http://127.0.0.1:$PORT/"

[ "$(curl -sS --max-time 5 "$URL")" = "Hello, World!" ]
curl -sS --max-time 5 -D "$T/head" -o /dev/null "$URL"
grep -q "^HTTP/1.1 200 OK" "$T/head"
grep -qi "^content-type: text/plain" "$T/head"
grep -qi "^content-length: 13" "$T/head"
curl -sS --max-time 5 -I "$URL" >"$T/head2"
grep -qi "^content-length: 13" "$T/head2"
curl -sSv --max-time 5 "$URL" "$URL" >"$T/two" 2>"$T/two.err"
[ "$(cat "$T/two")" = "Hello, World!Hello, World!" ]
grep -qE "Re-?using existing connection" "$T/two.err"
[ "$(curl -sS --max-time 5 --http1.0 "$URL")" = "Hello, World!" ]

# three requests in one write: three answers, in order, then the close
printf 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
  timeout 10 nc 127.0.0.1 "$PORT" >"$T/pipelined"
[ "$(grep -o "HTTP/1.1 200 OK" "$T/pipelined" | wc -l)" -eq 3 ]
[ "$(grep -o "Hello, World!" "$T/pipelined" | wc -l)" -eq 3 ]
clean_exit 1
echo "http_hello ok"
