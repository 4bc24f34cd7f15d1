#!/usr/bin/env python3
"""Sends exactly N keep-alive GET / requests over C connections (closed loop)
and checks every response: the load under which bench/tools/ir_per_req.sh
counts a server's instructions per request.
usage: http_fixed_load.py PORT N [C]   (C: 50 by default)"""
import selectors
import socket
import sys

port, total = int(sys.argv[1]), int(sys.argv[2])
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 50
REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fixed-load\r\nAccept: */*\r\n\r\n"
sel = selectors.DefaultSelector()
sent = done = 0
bufs = {}


def send(s):
    global sent
    if sent < total:
        s.sendall(REQ)
        sent += 1


for _ in range(min(conns, total)):
    s = socket.create_connection(("127.0.0.1", port))
    bufs[s] = b""
    sel.register(s, selectors.EVENT_READ)
    send(s)
while done < total:
    events = sel.select(timeout=60)
    if not events:
        sys.exit("no answer within 60 s")
    for key, _ in events:
        s = key.fileobj
        d = s.recv(65536)
        if not d:
            sys.exit("server closed a connection")
        b = bufs[s] + d
        while True:
            h = b.find(b"\r\n\r\n")
            if h < 0:
                break
            head = b[:h].decode("latin1").lower()
            if not head.startswith("http/1.1 200"):
                sys.exit("bad response: " + head[:40])
            cl = int(head.split("content-length:")[1].split("\r\n")[0])
            if len(b) < h + 4 + cl:
                break
            b = b[h + 4 + cl:]
            done += 1
            send(s)
        bufs[s] = b
print("ok", done)
