#!/usr/bin/env bash
# examples/ws_chat.lua: three python3-websockets clients; what one says
# reaches all three, joins and leaves are announced.
set -euo pipefail
source spec/smoke/lib/servers.sh
start examples/ws_chat.lua 0
/usr/bin/python3 -c 'import websockets' 2>/dev/null || { echo "python3-websockets missing: skipped"; exit 0; }
cat >"$T/chat.py" <<PY
import asyncio, websockets
URL = "ws://127.0.0.1:$PORT/"
async def until(ws, text):
    while True:
        m = await asyncio.wait_for(ws.recv(), 5)
        if text in m: return m
async def main():
    a = await websockets.connect(URL); await until(a, "joined")
    b = await websockets.connect(URL); await until(b, "joined")
    c = await websockets.connect(URL); await until(c, "joined")
    await a.send("hello room")
    for ws in (a, b, c): await until(ws, ": hello room")
    await c.close()
    await until(a, "left"); await until(b, "left")
    await a.close(); await b.close()
    print("chat ok")
asyncio.run(main())
PY
timeout 20 /usr/bin/python3 "$T/chat.py" | grep -q "chat ok"
clean_exit 1
echo "ws_chat ok"
