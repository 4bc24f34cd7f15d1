#!/usr/bin/python3
"""WebSocket peer on Debian's python3-websockets, for the interop specs.

  py_peer.py server [deflate|params]  echo server on 127.0.0.1: prints its port,
                                  echoes every message (same type); the
                                  text "close-me N" makes it close with code N
  py_peer.py client URL [deflate|params]  runs the client cases against an echo
                                  server; prints "ok NAME" per case, exits 1
                                  on the first failure
"deflate" turns permessage-deflate on with its defaults; "params" with
no context takeover both ways and small windows.
"""
import asyncio, hashlib, sys
import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory)

SIZES = [0, 125, 126, 65535, 65536, 16 * 1024 * 1024]


def text_of(size):
    # UTF-8 text of exactly `size` bytes, multi-byte characters included.
    s = "\u20ac" * (size // 3) + "a" * (size % 3)
    assert len(s.encode()) == size
    return s


def digest(m):
    return hashlib.sha256(m.encode() if isinstance(m, str) else m).hexdigest()


async def echo(ws, path=None):
    async for m in ws:
        if isinstance(m, str) and m.startswith("close-me "):
            await ws.close(int(m.split()[1]), "asked")
            return
        await ws.send(m)


def compression_args(deflate, server):
    if deflate == "params":
        f = (ServerPerMessageDeflateFactory(True, True, 11, 10) if server
             else ClientPerMessageDeflateFactory(True, True, 10, 9))
        return dict(compression=None, extensions=[f])
    return dict(compression="deflate" if deflate else None)


async def server(deflate):
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, ping_interval=None,
                                **compression_args(deflate, True)) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)   # until stdin closes


async def client(url, deflate):
    async with websockets.connect(url, max_size=None, ping_interval=None,
                                  **compression_args(deflate, False)) as ws:
        if deflate:
            assert ws.extensions, "permessage-deflate was not agreed"
            print("# agreed:", ws.response_headers.get("Sec-WebSocket-Extensions"), flush=True)
        for size in SIZES:
            for binary in (False, True):
                for frag in (False, True):
                    data = bytes(range(256)) * (size // 256) + bytes(size % 256) if binary else text_of(size)
                    if frag and size > 2:
                        step = size // 3 if binary else 3 * (size // 9 + 1)
                        await ws.send([data[i:i + step] for i in range(0, size, step)])
                    else:
                        await ws.send(data)
                    back = await asyncio.wait_for(ws.recv(), 30)
                    name = "%d %s %s" % (size, "binary" if binary else "text", "fragmented" if frag else "whole")
                    if type(back) is not type(data) or digest(back) != digest(data):
                        print("not ok", name, flush=True)
                        sys.exit(1)
                    print("ok", name, flush=True)
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 5)
        print("ok ping", flush=True)
        await ws.close(4001, "py done")
        print("ok close", ws.close_code, ws.close_reason, flush=True)


def main():
    mode = sys.argv[1]
    def flag(args):
        return "params" if "params" in args else "deflate" in args
    if mode == "server":
        asyncio.run(server(flag(sys.argv[2:])))
    else:
        asyncio.run(client(sys.argv[2], flag(sys.argv[3:])))


if __name__ == "__main__":
    main()
