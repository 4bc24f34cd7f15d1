#!/usr/bin/env bash
# examples/ws_echo.lua: a python3-websockets client gets back every message,
# same type, with and without compression; a plain HTTP request gets the
# page; a bad handshake gets 400 and the server goes on.
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/ws_echo.lua 0
/usr/bin/python3 -c 'import websockets' 2>/dev/null || { echo "python3-websockets missing: skipped"; exit 0; }
cat >"$T/client.py" <<PY
import asyncio, websockets
async def main(compression):
    async with websockets.connect("ws://127.0.0.1:$PORT/any/path", compression=compression) as ws:
        await ws.send("héllo"); assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 5000); assert await ws.recv() == b"\x00\xff" * 5000
        await ws.send(["frag", "ment", "ed"]); assert await ws.recv() == "fragmented"
        await ws.close(4000, "bye")
        assert ws.close_code == 4000, ws.close_code
asyncio.run(main(None)); asyncio.run(main("deflate")); print("python ok")
PY
timeout 20 /usr/bin/python3 "$T/client.py" | grep -q "python ok"
timeout 5 curl -s "http://127.0.0.1:$PORT/" | grep -q "WebSocket echo"
printf 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n' |
  timeout 5 nc -N 127.0.0.1 "$PORT" | head -1 | grep -q "^HTTP/1.1 400"
timeout 20 /usr/bin/python3 "$T/client.py" | grep -q "python ok"
clean_exit 1
echo "ws_echo ok"
