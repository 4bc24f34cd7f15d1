#!/usr/bin/env bash
# examples/http_json_api.lua answered by curl: create, list, get, delete,
# and JSON errors (404, 405 with Allow, 400 for malformed JSON).
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/http_json_api.lua 0
URL="http://127.0.0.1:$PORT/todos"

[ "$(curl -sS --max-time 5 "$URL")" = "[]" ]
out=$(curl -sS --max-time 5 -w ' %{http_code}' -d '{"title": "milk"}' "$URL")
[ "$out" = '{"id":"1","title":"milk"} 201' ] || [ "$out" = '{"title":"milk","id":"1"} 201' ]
curl -sS --max-time 5 "$URL/1" | grep -q '"title":"milk"'
[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X DELETE "$URL/1")" = 204 ]
curl -sS --max-time 5 -w ' %{http_code}' "$URL/1" | grep -q '"error":"no todo 1".* 404$'
curl -sS --max-time 5 -D "$T/head" -o /dev/null -X PUT "$URL/1"
grep -q "^HTTP/1.1 405" "$T/head"
grep -qi "^allow: DELETE, GET, HEAD" "$T/head"
grep -qi "^content-type: application/json" "$T/head"
curl -sS --max-time 5 -w ' %{http_code}' -d '{"title": ' "$URL" | grep -q 'malformed JSON.* 400$'
clean_exit 1
echo "http_json_api ok"
