# spec/tls/peers/tls_peer.py — a Python `ssl` peer for the TLS specs.
#
#   tls_peer.py server --cert C --key K [--alpn a,b] [--ca CA]
#                      [--verify-client] [--sni-cert NAME=CERT:KEY ...]
#       Listens on 127.0.0.1 (a free port), prints "port N", then serves
#       connections one after the other until killed. For each one it prints
#       "sni NAME" (or "sni -" when the client sent none) and, once the
#       handshake is done, "hello VERSION ALPN" (ALPN "-" when none). Then it
#       echoes what it reads until the client's close_notify, hashing it
#       (sha256), answers the close_notify with its own and prints
#       "got BYTES SHA256".
#
#   tls_peer.py client PORT --ca CA [--servername N] [--alpn a,b]
#                      [--cert C --key K] [--send TEXT]
#       Connects to 127.0.0.1:PORT, prints "version V", "alpn A", "cipher C",
#       "subject S" (the commonName of the server's certificate), sends
#       TEXT (default "ping\n") and prints "reply R" with everything the
#       server sent until it closed (repr). A handshake or
#       read failure prints "error REASON" and exits with status 3.
import argparse
import hashlib
import socket
import ssl
import sys


def out(*words):
    print(*words, flush=True)


def server(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.ca:
        ctx.load_verify_locations(a.ca)
    if a.verify_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
    others = {}
    for spec in a.sni_cert or []:
        name, files = spec.split("=", 1)
        cert, key = files.split(":", 1)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(cert, key)
        if a.alpn:
            c.set_alpn_protocols(a.alpn.split(","))
        others[name] = c

    def on_sni(sock, name, _ctx):
        out("sni", name or "-")
        if name in others:
            sock.context = others[name]

    ctx.sni_callback = on_sni
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    out("port", lsock.getsockname()[1])
    while True:
        raw, _ = lsock.accept()
        raw.settimeout(30)
        try:
            s = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            out("handshake-error", getattr(e, "reason", None) or str(e))
            raw.close()
            continue
        try:
            out("hello", s.version(), s.selected_alpn_protocol() or "-")
            h, n = hashlib.sha256(), 0
            while True:
                data = s.recv(262144)
                if not data:
                    break
                h.update(data)
                n += len(data)
                s.sendall(data)
            try:
                s = s.unwrap()
            except (ssl.SSLError, OSError):
                pass
            out("got", n, h.hexdigest())
        except (ssl.SSLError, OSError) as e:
            out("error", getattr(e, "reason", None) or str(e))
        finally:
            s.close()


def client_main(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    try:
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=a.servername or "localhost")
        out("version", s.version())
        out("alpn", s.selected_alpn_protocol() or "-")
        out("cipher", s.cipher()[0])
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        out("subject", subject.get("commonName", "-"))
        s.sendall((a.send if a.send is not None else "ping\n").encode())
        # Python's ssl cannot send close_notify and go on reading; the
        # server side ends the exchange: read to its close.
        parts = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            parts.append(data)
        out("reply", repr(b"".join(parts).decode()))
        s.close()
    except (ssl.SSLError, OSError) as e:
        out("error", getattr(e, "reason", None) or str(e))
        sys.exit(3)


p = argparse.ArgumentParser()
p.add_argument("mode", choices=["server", "client"])
p.add_argument("port", nargs="?", type=int)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--ca")
p.add_argument("--alpn")
p.add_argument("--servername")
p.add_argument("--send")
p.add_argument("--verify-client", action="store_true")
p.add_argument("--sni-cert", action="append")
a = p.parse_args()
if a.mode == "server":
    server(a)
else:
    client_main(a)
