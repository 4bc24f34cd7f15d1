# spec/http/peers/python_server.py — a Python http.server the client specs
# talk to: HTTP/1.0 answers whose body ends when the connection closes,
# and HTTP/1.1 answers with a length. Prints "port N" once listening.
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/close":
            # HTTP/1.0, no Content-Length: the body runs to the close.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for i in range(5):
                self.wfile.write(b"python-%d;" % i)
                self.wfile.flush()
        elif self.path == "/length":
            body = b"P" * 3000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/304":
            self.send_response(304)
            self.end_headers()
        else:
            self.send_error(404)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()


server = HTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_port, flush=True)
server.serve_forever()
