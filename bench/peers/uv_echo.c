/* uv_echo.c — the raw libuv C echo server tide's echo benchmark compares
 * with: the "physical limit" of an echo server on libuv.
 *
 *   uv_echo PORT        listens on 127.0.0.1:PORT (backlog 1024)
 *
 * Each connection gets a 64 KiB read buffer on its first read (an idle
 * connection holds none). What is read is written back with uv_try_write;
 * whatever the kernel did not take is copied into a write request, and
 * reading pauses until that write completes (backpressure, bounded memory).
 * SIGTERM / SIGINT end the process.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE (64 * 1024)

typedef struct {
  uv_tcp_t tcp;
  char *buf;
} client;

typedef struct {
  uv_write_t req;
  client *c;
  char data[];
} pending_write;

static uv_loop_t *loop;
static uv_tcp_t server;

static void client_close_cb(uv_handle_t *h) {
  client *c = h->data;
  free(c->buf);
  free(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client *c = h->data;
  (void)suggested;
  if (c->buf == NULL) c->buf = malloc(BUF_SIZE);
  *buf = uv_buf_init(c->buf, c->buf ? BUF_SIZE : 0);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  pending_write *w = (pending_write *)req;
  client *c = w->c;
  free(w);
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, client_close_cb);
    return;
  }
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client *c = s->data;
  uv_buf_t b;
  int n;
  if (nread == 0) return;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, client_close_cb);
    return;
  }
  b = uv_buf_init(buf->base, (unsigned)nread);
  n = uv_try_write(s, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    uv_close((uv_handle_t *)s, client_close_cb);
    return;
  }
  if (n < nread) {
    size_t rest = (size_t)nread - (size_t)n;
    pending_write *w = malloc(sizeof(*w) + rest);
    if (w == NULL) {
      uv_close((uv_handle_t *)s, client_close_cb);
      return;
    }
    memcpy(w->data, buf->base + n, rest);
    w->c = c;
    b = uv_buf_init(w->data, (unsigned)rest);
    uv_read_stop(s);
    if (uv_write(&w->req, s, &b, 1, write_cb) != 0) {
      free(w);
      uv_close((uv_handle_t *)s, client_close_cb);
    }
  }
}

static void connection_cb(uv_stream_t *srv, int status) {
  client *c;
  if (status < 0) return;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, client_close_cb);
    return;
  }
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
    fprintf(stderr, "usage: uv_echo PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  if ((err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) != 0 ||
      (err = uv_listen((uv_stream_t *)&server, 1024, connection_cb)) != 0) {
    fprintf(stderr, "uv_echo: %s\n", uv_strerror(err));
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, signal_cb, SIGTERM);
  uv_signal_start(&sigint, signal_cb, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
