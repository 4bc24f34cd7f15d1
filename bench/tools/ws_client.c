/* ws_client.c — the load client of tide's WebSocket echo benchmark (C +
 * libuv), made from tools/echo_client.c: the same modes, timing and
 * output, with each connection first upgraded (an RFC 6455 handshake) and
 * each message sent as one masked binary frame of S payload bytes; the
 * reply is one unmasked frame of the same payload.
 *
 *   load:   ws_client -p PORT [-c 50] [-s 1024] [-d 5] [-w 1]
 *           prints "msgs=N msgs_per_s=R mib_per_s=M p50_us=A p99_us=B errors=E cpu_ms=C"
 *   verify: ws_client -p PORT -v [-c 4] [-s 1024] [-n 50]
 *           checks every echoed payload byte for byte
 *
 * Only 127.0.0.1 (or -h ADDR) is contacted; every run is bounded in time.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#define MAX_INFLIGHT_CONNECTS 256
#define HIST_US 200000               /* latency histogram: 1 us buckets up to 200 ms */
#define STALL_MS 10000               /* no progress for this long: give up */
#define SLACK 64                     /* read room beyond one message */

enum { MODE_LOAD, MODE_VERIFY, MODE_IDLE };

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  struct conn *next_pending;         /* waiting to connect */
  char *buf;                         /* what we send (verify: a fresh pattern each time) */
  char *rbuf;                        /* where replies land */
  size_t got;                        /* bytes of the current reply received */
  uint64_t sent_at;                  /* uv_hrtime() of the current message */
  int sent;                          /* messages sent */
  int writing;                       /* write_req is in flight */
  int replied;                       /* the reply came back before write_cb */
  int connected, closed;
  int upgraded;                      /* the 101 answer came */
  unsigned char *wbuf;               /* the frame we send: head, key, masked payload */
  uv_write_t hs_req;                 /* the handshake's write */
} conn;

static const char HANDSHAKE[] =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
#define HEAD_ROOM 4096               /* room for the 101 answer */
static size_t out_size, reply_hdr, reply_size;
static int nupgraded;

static uv_loop_t *loop;
static struct sockaddr_in addr;
static int mode = MODE_LOAD;
static int nconns = 50, nmsgs = 50;
static size_t msg_size = 1024;
static double duration = 5, warmup = 1;
static conn *conns;
static conn *pending_head;
static int inflight, nconnected, nclosed, stopping;
static int measuring;
static uint64_t measure_start, measure_end;
static uint64_t cpu_start, cpu_end;   /* our own CPU time (us) at both ends */
static uint64_t counted, errors, mismatches;
static uint32_t *hist;
static uint64_t hist_over;
static uv_timer_t phase_timer, stall_timer, deadline_timer;
static uv_signal_t sigterm, sigint;
static uv_pipe_t stdin_pipe;
static int stdin_open;
static uint64_t progress;            /* bumped on every reply; watched by the stall timer */
static uint64_t progress_seen;

/* This process's CPU time (user + system) in microseconds. */
static uint64_t own_cpu_us(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Marks the end of the measured window (once). */
static void end_measure(void) {
  if (measure_end != 0) return;
  measure_end = uv_hrtime();
  cpu_end = own_cpu_us();
}

static void die(const char *what, int err) {
  fprintf(stderr, "ws_client: %s: %s\n", what, err ? uv_strerror(err) : "error");
  exit(2);
}

static void close_aux(void);

/* When the last connection has closed (verify mode, or every connection
 * failed), the helper handles go too and uv_run returns. */
static void close_cb(uv_handle_t *h) {
  (void)h;
  if (++nclosed == nconns && !stopping) {
    stopping = 1;
    end_measure();
    close_aux();
  }
}

static void close_conn(conn *c) {
  if (c->closed) return;
  c->closed = 1;
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void close_aux(void) {
  uv_handle_t *hs[] = {(uv_handle_t *)&phase_timer, (uv_handle_t *)&stall_timer,
                       (uv_handle_t *)&deadline_timer, (uv_handle_t *)&sigterm,
                       (uv_handle_t *)&sigint};
  size_t i;
  for (i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
    if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
  if (stdin_open && !uv_is_closing((uv_handle_t *)&stdin_pipe))
    uv_close((uv_handle_t *)&stdin_pipe, NULL);
}

/* Ends the run: closes every connection and helper handle so uv_run returns. */
static void stop_all(void) {
  int i;
  if (stopping) return;
  stopping = 1;
  for (i = 0; i < nconns; i++) close_conn(&conns[i]);
  close_aux();
}

static void fill_pattern(conn *c) {
  size_t i;
  unsigned seed = (unsigned)((c - conns) * 7919 + c->sent * 104729 + 1);
  for (i = 0; i < msg_size; i++) {
    seed = seed * 1103515245u + 12345u;
    c->buf[i] = (char)(seed >> 16);
  }
}

/* Writes a binary frame head for `n` payload bytes; returns its length. */
static size_t frame_hdr(unsigned char *p, size_t n, int masked) {
  int i;
  p[0] = 0x82;
  if (n < 126) { p[1] = (unsigned char)((masked ? 0x80 : 0) | n); return 2; }
  if (n < 65536) {
    p[1] = (unsigned char)((masked ? 0x80 : 0) | 126);
    p[2] = (unsigned char)(n >> 8); p[3] = (unsigned char)n;
    return 4;
  }
  p[1] = (unsigned char)((masked ? 0x80 : 0) | 127);
  for (i = 0; i < 8; i++) p[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  return 10;
}

/* Builds c->wbuf from c->buf: head, masking key, masked payload. */
static void build_frame(conn *c) {
  unsigned char key[4] = { 0x5a, (unsigned char)(c - conns), 0xc3, (unsigned char)c->sent };
  size_t h = frame_hdr(c->wbuf, msg_size, 1), i;
  memcpy(c->wbuf + h, key, 4);
  for (i = 0; i < msg_size; i++) c->wbuf[h + 4 + i] = (unsigned char)c->buf[i] ^ key[i & 3];
}

static void send_msg(conn *c);
static void reply_done(conn *c);

/* The write request is reused for the next message, so the next message
 * waits for both its write callback and the whole reply. */
static void write_cb(uv_write_t *req, int status) {
  conn *c = req->data;
  c->writing = 0;
  if (status < 0) {
    if (!stopping) errors++;
    close_conn(c);
    return;
  }
  if (c->replied) {
    c->replied = 0;
    reply_done(c);
  }
}

static void send_msg(conn *c) {
  uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)out_size);
  if (c->closed || stopping) return;
  if (mode == MODE_VERIFY) { fill_pattern(c); build_frame(c); }
  c->got = 0;
  c->sent_at = uv_hrtime();
  c->sent++;
  c->write_req.data = c;
  c->writing = 1;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
    c->writing = 0;
    errors++;
    close_conn(c);
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  /* The reply is one message; the SLACK bytes beyond it let libuv read
   * again after a read that filled the message (it does) without ENOBUFS,
   * and catch a server that sends more than it was sent. */
  *buf = uv_buf_init(c->rbuf + c->got, (unsigned)(reply_size + SLACK + HEAD_ROOM - c->got));
}

static void record_latency(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us < HIST_US) hist[us]++;
  else hist_over++;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (nread == 0) return;
  if (nread < 0) {
    if (!stopping) {
      errors++;
      if (mode == MODE_IDLE) fprintf(stderr, "ws_client: idle connection lost: %s\n", uv_strerror((int)nread));
    }
    close_conn(c);
    return;
  }
  if (mode == MODE_IDLE) {          /* idle connections expect nothing */
    errors++;
    close_conn(c);
    return;
  }
  c->got += (size_t)nread;
  if (!c->upgraded) {               /* the handshake's answer */
    char *end = memmem(c->rbuf, c->got, "\r\n\r\n", 4);
    if (end == NULL) {
      if (c->got < HEAD_ROOM) return;
    } else if (strncmp(c->rbuf, "HTTP/1.1 101", 12) == 0 && end + 4 == c->rbuf + c->got) {
      c->upgraded = 1;
      c->got = 0;
      nupgraded++;
      if (nupgraded + (int)errors >= nconns && !stopping) {
        int i;
        /* everyone is upgraded: the load starts now */
        for (i = 0; i < nconns; i++)
          if (conns[i].upgraded && !conns[i].closed && conns[i].sent == 0) send_msg(&conns[i]);
      }
      return;
    }
    fprintf(stderr, "ws_client: bad handshake answer: %.*s\n", (int)(c->got < 200 ? c->got : 200), c->rbuf);
    errors++;
    close_conn(c);
    return;
  }
  if (c->got < reply_size) return;
  if (c->got > reply_size) {          /* more than was sent */
    errors++;
    mismatches++;
    close_conn(c);
    return;
  }
  progress++;
  if (c->writing) c->replied = 1;   /* reply_done runs from write_cb */
  else reply_done(c);
}

/* A whole reply came back and the write request is free again. */
static void reply_done(conn *c) {
  if (mode == MODE_VERIFY) {
    if (memcmp(c->buf, c->rbuf + reply_hdr, msg_size) != 0 ||
        (unsigned char)c->rbuf[0] != 0x82) mismatches++;
    if (c->sent >= nmsgs) {
      close_conn(c);    /* the last close ends the run (close_cb) */
      return;
    }
  } else if (measuring == 1) {
    counted++;
    record_latency(uv_hrtime() - c->sent_at);
  }
  send_msg(c);
}

static void start_next_connect(void);

static void connect_cb(uv_connect_t *req, int status) {
  conn *c = req->data;
  inflight--;
  if (status < 0) {
    if (!stopping) {
      errors++;
      fprintf(stderr, "ws_client: connect: %s\n", uv_strerror(status));
    }
    close_conn(c);
  } else {
    c->connected = 1;
    nconnected++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (mode != MODE_IDLE) {
      uv_buf_t hb = uv_buf_init((char *)HANDSHAKE, sizeof HANDSHAKE - 1);
      if (uv_write(&c->hs_req, (uv_stream_t *)&c->tcp, &hb, 1, NULL) != 0) {
        errors++;
        close_conn(c);
      }
    }
  }
  start_next_connect();
  if (nconnected + (int)errors >= nconns && pending_head == NULL && inflight == 0) {
    if (nconnected == 0) die("no connection could be made", 0);
    if (mode == MODE_IDLE) {
      printf("connected %d\n", nconnected);
      fflush(stdout);
    }
  }
}

static void start_next_connect(void) {
  while (pending_head && inflight < MAX_INFLIGHT_CONNECTS && !stopping) {
    conn *c = pending_head;
    int err;
    pending_head = c->next_pending;
    c->connect_req.data = c;
    err = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, connect_cb);
    if (err != 0) die("uv_tcp_connect", err);
    inflight++;
  }
}

/* Load mode: the end of the warm-up starts the measure; its end stops all. */
static void phase_cb(uv_timer_t *t) {
  if (measuring == 0) {
    measuring = 1;
    measure_start = uv_hrtime();
    cpu_start = own_cpu_us();
    uv_timer_start(t, phase_cb, (uint64_t)(duration * 1000), 0);
  } else {
    measuring = 2;
    end_measure();
    stop_all();
  }
}

static void stall_cb(uv_timer_t *t) {
  (void)t;
  if (mode == MODE_IDLE) return;
  if (progress == progress_seen) {
    fprintf(stderr, "ws_client: no reply for %d s, giving up\n", STALL_MS / 1000);
    errors++;
    end_measure();
    stop_all();
  }
  progress_seen = progress;
}

static void deadline_cb(uv_timer_t *t) {
  (void)t;
  if (mode != MODE_IDLE) {
    fprintf(stderr, "ws_client: run deadline passed\n");
    errors++;
  }
  end_measure();
  stop_all();
}

static void signal_cb(uv_signal_t *s, int signum) {
  (void)s; (void)signum;
  stop_all();
}

static void stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char sink[256];
  (void)h; (void)suggested;
  *buf = uv_buf_init(sink, sizeof sink);
}

static void stdin_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)s; (void)buf;
  if (nread < 0) stop_all();        /* EOF on stdin: let go of the connections */
}

static uint64_t percentile(double q) {
  uint64_t total = hist_over, want, seen = 0;
  size_t i;
  for (i = 0; i < HIST_US; i++) total += hist[i];
  if (total == 0) return 0;
  want = (uint64_t)(q * (double)total);
  if (want >= total) want = total - 1;
  for (i = 0; i < HIST_US; i++) {
    seen += hist[i];
    if (seen > want) return i;
  }
  return HIST_US;
}

static void usage(void) {
  fprintf(stderr,
          "usage: ws_client -p PORT [-h 127.0.0.1] [-c CONNS] [-s SIZE] [-d SECONDS] [-w SECONDS]\n"
          "       ws_client -p PORT -v [-c CONNS] [-s SIZE] [-n MESSAGES]\n"
          "       ws_client -p PORT -i [-c CONNS] [-d SECONDS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0, opt, i, err, conns_given = 0, duration_given = 0;
  uint64_t limit_ms;
  while ((opt = getopt(argc, argv, "h:p:c:s:d:w:n:vi")) != -1) {
    switch (opt) {
      case 'h': host = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'c': nconns = atoi(optarg); conns_given = 1; break;
      case 's': msg_size = (size_t)atol(optarg); break;
      case 'd': duration = atof(optarg); duration_given = 1; break;
      case 'w': warmup = atof(optarg); break;
      case 'n': nmsgs = atoi(optarg); break;
      case 'v': mode = MODE_VERIFY; break;
      case 'i': mode = MODE_IDLE; break;
      default: usage();
    }
  }
  if (mode == MODE_VERIFY && !conns_given) nconns = 4;
  if (mode == MODE_IDLE && !conns_given) nconns = 10000;
  if (mode == MODE_IDLE && !duration_given) duration = 30;
  if (port <= 0 || port > 65535 || nconns <= 0 || nconns > 1000000 || msg_size == 0 ||
      msg_size > (64u << 20) || duration <= 0 || warmup < 0 || nmsgs <= 0)
    usage();
  if ((err = uv_ip4_addr(host, port, &addr)) != 0) die("address", err);
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();

  {
    unsigned char tmp[16];
    reply_hdr = frame_hdr(tmp, msg_size, 0);
    reply_size = reply_hdr + msg_size;
    out_size = frame_hdr(tmp, msg_size, 1) + 4 + msg_size;
  }
  conns = calloc((size_t)nconns, sizeof(conn));
  hist = calloc(HIST_US, sizeof(uint32_t));
  if (conns == NULL || hist == NULL) die("out of memory", UV_ENOMEM);
  for (i = nconns - 1; i >= 0; i--) {
    conn *c = &conns[i];
    if (mode != MODE_IDLE) {
      c->buf = malloc(msg_size);
      c->rbuf = malloc(msg_size + 16 + SLACK + HEAD_ROOM);
      c->wbuf = malloc(msg_size + 14);
      if (c->buf == NULL || c->rbuf == NULL || c->wbuf == NULL) die("out of memory", UV_ENOMEM);
      memset(c->buf, 'x', msg_size);
      build_frame(c);
    }
    if ((err = uv_tcp_init(loop, &c->tcp)) != 0) die("uv_tcp_init", err);
    c->tcp.data = c;
    c->next_pending = pending_head;
    pending_head = c;
  }

  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &stall_timer);
  uv_timer_init(loop, &deadline_timer);
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, signal_cb, SIGTERM);
  uv_signal_start(&sigint, signal_cb, SIGINT);
  uv_timer_start(&stall_timer, stall_cb, STALL_MS, STALL_MS);
  limit_ms = (uint64_t)((warmup + duration) * 1000) + STALL_MS;
  if (mode == MODE_IDLE) limit_ms = (uint64_t)(duration * 1000);
  if (mode == MODE_VERIFY) limit_ms = STALL_MS * 3;
  uv_timer_start(&deadline_timer, deadline_cb, limit_ms, 0);
  if (mode == MODE_LOAD) {
    if (warmup > 0) {
      uv_timer_start(&phase_timer, phase_cb, (uint64_t)(warmup * 1000), 0);
    } else {
      phase_cb(&phase_timer);
    }
  }
  if (mode == MODE_IDLE && uv_guess_handle(0) == UV_NAMED_PIPE) {
    if (uv_pipe_init(loop, &stdin_pipe, 0) == 0) {
      stdin_open = 1;
      if (uv_pipe_open(&stdin_pipe, 0) == 0) uv_read_start((uv_stream_t *)&stdin_pipe, stdin_alloc, stdin_read);
    }
  }

  start_next_connect();
  uv_run(loop, UV_RUN_DEFAULT);

  if (mode == MODE_VERIFY) {
    if (mismatches || errors || nconnected < nconns) {
      fprintf(stderr, "ws_client: verify failed: %llu mismatches, %llu errors, %d/%d connected\n",
              (unsigned long long)mismatches, (unsigned long long)errors, nconnected, nconns);
      return 1;
    }
    printf("verified %d connections x %d messages of %zu bytes\n", nconns, nmsgs, msg_size);
    return 0;
  }
  if (mode == MODE_IDLE) {
    printf("released %d errors=%llu\n", nconnected, (unsigned long long)errors);
    return errors ? 1 : 0;
  }
  {
    double secs = measure_end > measure_start && measure_start ? (double)(measure_end - measure_start) / 1e9 : 0;
    double rate = secs > 0 ? (double)counted / secs : 0;
    printf("msgs=%llu msgs_per_s=%.0f mib_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu cpu_ms=%.0f\n",
           (unsigned long long)counted, rate, rate * (double)msg_size / (1024.0 * 1024.0),
           (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
           (unsigned long long)errors, cpu_start ? (double)(cpu_end - cpu_start) / 1000.0 : 0.0);
  }
  return counted > 0 ? 0 : 1;
}
