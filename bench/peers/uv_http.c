/* uv_http.c — the raw libuv C "hello world" HTTP/1.1 server tide's HTTP
 * benchmark compares with: the least work a server on libuv can do per
 * request.
 *
 *   uv_http PORT        listens on 127.0.0.1:PORT (backlog 1024)
 *
 * It is a load-test peer, not an HTTP server: it counts requests by their
 * blank line ("\r\n\r\n"), ignores methods, headers and bodies, and answers
 * every request with the same keep-alive 200 response ("Hello, World!",
 * Content-Length 13). Pipelined requests read together are answered in one
 * write (uv_try_write first, the unsent rest copied into a write request).
 * A request head longer than 8 KiB closes the connection.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE (64 * 1024)
#define MAX_HEAD 8192

static const char response[] =
  "HTTP/1.1 200 OK\r\n"
  "Content-Type: text/plain\r\n"
  "Content-Length: 13\r\n"
  "\r\n"
  "Hello, World!";
#define RESPONSE_LEN (sizeof(response) - 1)

typedef struct {
  uv_tcp_t tcp;
  char *buf;           /* BUF_SIZE bytes, allocated on the first read */
  size_t used;         /* bytes of an unfinished request head kept in buf */
  int writing;         /* a write request is pending: reading is paused */
} client;

typedef struct {
  uv_write_t req;
  client *c;
  char data[];
} pending_write;

static uv_loop_t *loop;
static uv_tcp_t server;
static char *batch;              /* responses for one read, reused */
static size_t batch_cap;

static void close_cb(uv_handle_t *h) {
  client *c = h->data;
  free(c->buf);
  free(c);
}

static void close_client(client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client *c = h->data;
  (void)suggested;
  if (c->buf == NULL) c->buf = malloc(BUF_SIZE);
  if (c->buf == NULL) { *buf = uv_buf_init(NULL, 0); return; }
  *buf = uv_buf_init(c->buf + c->used, (unsigned)(BUF_SIZE - c->used));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  pending_write *w = (pending_write *)req;
  client *c = w->c;
  free(w);
  c->writing = 0;
  if (status < 0) { close_client(c); return; }
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* Sends `n` responses: what the kernel does not take at once is queued. */
static void respond(client *c, size_t n) {
  size_t len = n * RESPONSE_LEN, i;
  uv_buf_t b;
  int sent;
  if (len > batch_cap) {
    char *nb = realloc(batch, len);
    if (nb == NULL) { close_client(c); return; }
    batch = nb;
    batch_cap = len;
  }
  for (i = 0; i < n; i++) memcpy(batch + i * RESPONSE_LEN, response, RESPONSE_LEN);
  b = uv_buf_init(batch, (unsigned)len);
  sent = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (sent == UV_EAGAIN) sent = 0;
  if (sent < 0) { close_client(c); return; }
  if ((size_t)sent < len) {
    size_t rest = len - (size_t)sent;
    pending_write *w = malloc(sizeof(*w) + rest);
    if (w == NULL) { close_client(c); return; }
    memcpy(w->data, batch + sent, rest);
    w->c = c;
    b = uv_buf_init(w->data, (unsigned)rest);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->writing = 1;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
      free(w);
      close_client(c);
    }
  }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client *c = s->data;
  size_t end, start = 0, n = 0;
  char *p;
  (void)buf;
  if (nread == 0) return;
  if (nread < 0) { close_client(c); return; }
  end = c->used + (size_t)nread;
  /* Count complete heads; search from 3 bytes before the new data so a
   * blank line split between two reads is found. */
  p = c->buf + (c->used > 3 ? c->used - 3 : 0);
  while ((p = memmem(p, (size_t)(c->buf + end - p), "\r\n\r\n", 4)) != NULL) {
    p += 4;
    start = (size_t)(p - c->buf);
    n++;
  }
  if (start < end) {
    if (end - start > MAX_HEAD) { close_client(c); return; }
    memmove(c->buf, c->buf + start, end - start);
  }
  c->used = end - start;
  if (n > 0) respond(c, n);
}

static void connection_cb(uv_stream_t *srv, int status) {
  client *c;
  if (status < 0) return;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) { close_client(c); return; }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void signal_cb(uv_signal_t *s, int signum) {
  (void)s; (void)signum;
  uv_stop(loop);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  uv_signal_t sigterm, sigint;
  int port = argc > 1 ? atoi(argv[1]) : 0, err;
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: uv_http PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  if ((err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) != 0 ||
      (err = uv_listen((uv_stream_t *)&server, 1024, connection_cb)) != 0) {
    fprintf(stderr, "uv_http: %s\n", uv_strerror(err));
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, signal_cb, SIGTERM);
  uv_signal_start(&sigint, signal_cb, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  free(batch);
  return 0;
}
