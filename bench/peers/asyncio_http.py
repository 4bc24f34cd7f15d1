"""asyncio_http.py — Python asyncio hello-world HTTP server (asyncio.Protocol
on the default event loop), a peer of tide's HTTP benchmark. Like uv_http.c
it counts requests by their blank line and answers each with the same
keep-alive 200 "Hello, World!"; pipelined requests read together are answered
in one write.

Usage: python3 asyncio_http.py PORT   (listens on 127.0.0.1:PORT, backlog 1024)
"""
import asyncio
import signal
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\n\r\nHello, World!")
MAX_HEAD = 8192


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        if self.pending:
            data = self.pending + data
        n = data.count(b"\r\n\r\n")
        end = data.rfind(b"\r\n\r\n")
        self.pending = data[end + 4:] if end >= 0 else data
        if len(self.pending) > MAX_HEAD:
            self.transport.close()
            return
        if n:
            self.transport.write(RESPONSE * n)


async def main(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(Hello, "127.0.0.1", port, backlog=1024)
    async with server:
        await stop


if __name__ == "__main__":
    try:
        port = int(sys.argv[1])
        assert 0 < port < 65536
    except (IndexError, ValueError, AssertionError):
        sys.stderr.write("usage: python3 asyncio_http.py PORT\n")
        sys.exit(2)
    asyncio.run(main(port))
