"""check_http.py — checks that an HTTP server of the benchmark answers
`GET /` with 200 and the body "Hello, World!", twice on one keep-alive
connection, within 5 seconds. Exit status 0 when it does.

Usage: python3 check_http.py PORT
"""
import http.client
import sys


def main():
    port = int(sys.argv[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(2):
        conn.request("GET", "/", headers={"Host": "bench"})
        res = conn.getresponse()
        body = res.read()
        if res.status != 200 or body != b"Hello, World!":
            raise SystemExit(f"check_http: got {res.status} {body[:60]!r}")
        if res.will_close:
            raise SystemExit("check_http: the server closed a keep-alive connection")
    conn.close()
    print("ok")


if __name__ == "__main__":
    main()
