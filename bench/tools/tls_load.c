/* tls_load.c — the load client of the tls section of `make bench` (C,
 * OpenSSL, epoll; one process, one thread).
 *
 *   new connections:  tls_load -m conn -p PORT [-c 50] [-d 5] [-w 1]
 *       C slots; each opens a TCP connection, makes a FULL TLS handshake
 *       (a fresh SSL object every time: no session is ever offered, so
 *       nothing is resumed), sends one "GET / HTTP/1.1" with
 *       "Connection: close", reads the whole answer (Content-Length body),
 *       waits for the server to close, then starts over. Counts the
 *       connections finished in the measured window and their time from
 *       connect() to the server's close. Prints one line:
 *       "conns=N conns_per_s=R p50_us=A p99_us=B errors=E resumed=K cpu_ms=C
 *        proto=TLSv1.3 cipher=..."  (resumed: handshakes OpenSSL reports as
 *       resumed: 0 when every one was full)
 *   echo:  tls_load -m echo -p PORT [-c 50] [-s 16384] [-d 5] [-w 1] [-P]
 *       C connections, each one handshake, then a closed loop: send one
 *       message of S bytes, wait until all S bytes came back, send the next.
 *       -P: plain TCP, no TLS (the same loop, for the plain twin).
 *       Prints "msgs=N msgs_per_s=R mib_per_s=M p50_us=A p99_us=B errors=E
 *       cpu_ms=C proto=... cipher=..." (the format of echo_client.c).
 *   verify: add -v -n 20 to echo: every connection sends N messages of a
 *       varying pattern and checks the echo byte for byte (exit status 0
 *       when all matched); to conn: N connections, each answer checked
 *       (status 200, body "Hello, World!").
 *   keep-alive: tls_load -m ka -p PORT [-c 50] [-P] ...: C connections, each
 *       one handshake, then "GET /" after "GET /" (closed loop, no
 *       pipelining), every answer read whole (Content-Length).
 *   fixed load: -N COUNT (conn, ka, echo): exactly COUNT connections,
 *       requests or messages in all, then exit (no time window; prints
 *       "done=COUNT errors=E ..."): the load of the instruction counts.
 *
 * Bounded in time: no progress for 10 s, or a run longer than W + D + 10 s,
 * ends the process with errors. Connects to 127.0.0.1 only (-h ADDR: an
 * IPv4 literal). Certificates are not verified (the bench makes them
 * itself); the server's signature in the handshake is, as TLS requires.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 2000000  /* latency histogram: 1 us buckets up to 2 s */
#define STALL_NS 10000000000ull

enum { MODE_CONN, MODE_ECHO, MODE_KA };
enum { ST_CONNECTING, ST_HANDSHAKE, ST_SENDING, ST_READING, ST_DRAIN };

typedef struct conn {
  int fd, idx;
  uint32_t gen;         /* bumped by every new connection: stale events are skipped */
  SSL *ssl;
  int st;
  int want_out;         /* EPOLLOUT registered */
  char *buf, *rbuf;     /* what we send; where answers land */
  size_t wlen, woff;    /* message to send and how much of it went */
  size_t got;           /* bytes of the current answer */
  int sent;             /* messages sent (verify) */
  uint64_t t0;          /* start of the current measured thing */
} conn;

static int mode = MODE_ECHO, plain, verify, nconns = 50, nmsgs = 20;
static size_t msg_size = 16384;
static double duration = 5, warmup = 1;
static struct sockaddr_in addr;
static SSL_CTX *ctx;
static int ep;
static conn *conns;
static uint64_t start_ns, measure_start, measure_end, last_progress;
static uint64_t cpu_start, cpu_end;
static uint64_t counted, errors, resumed, mismatches, verified;
static int measuring, done_conns;
static uint64_t limit, started, finished;  /* -N: fixed number of requests (ka) or connections (conn) */
static uint32_t *hist;
static uint64_t hist_over;
static char proto[32] = "-", cipher[64] = "-";
static volatile sig_atomic_t stop_sig;

static const char REQ_CLOSE[] = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tls_load\r\nConnection: close\r\n\r\n";
static const char REQ_KA[] = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tls_load\r\n\r\n";
static const char *req = REQ_CLOSE;
static size_t req_len = sizeof REQ_CLOSE - 1;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t own_cpu_us(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void on_sig(int s) { (void)s; stop_sig = 1; }

static void set_events(conn *c, int out) {
  struct epoll_event ev;
  if (c->want_out == out) return;
  c->want_out = out;
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
  ev.data.u64 = (uint64_t)c->gen << 32 | (uint32_t)c->idx;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void fill_pattern(conn *c) {
  size_t i;
  unsigned seed = (unsigned)(c->idx * 7919 + c->sent * 104729 + 1);
  for (i = 0; i < msg_size; i++) {
    seed = seed * 1103515245u + 12345u;
    c->buf[i] = (char)(seed >> 16);
  }
}

static void close_fd(conn *c) {
  if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
  if (c->fd >= 0) { close(c->fd); c->fd = -1; }
}

static void note_error(conn *c, const char *what) {
  unsigned long e = ERR_get_error();
  errors++;
  if (errors <= 5) {
    char b[256] = "";
    if (e) ERR_error_string_n(e, b, sizeof b);
    fprintf(stderr, "tls_load: conn %d: %s%s%s%s%s\n", c->idx, what, b[0] ? ": " : "", b,
            errno ? " / " : "", errno ? strerror(errno) : "");
  }
  ERR_clear_error();
}

static void record_latency(uint64_t t0) {
  uint64_t us = (now_ns() - t0) / 1000;
  if (us < HIST_US) hist[us]++; else hist_over++;
}

static int open_conn(conn *c);

/* The connection is over (answer read or error): in conn mode a new one
 * starts, in echo mode the slot stays closed. */
static void finish_conn(conn *c, int ok) {
  close_fd(c);
  if (!ok) done_conns += (mode == MODE_ECHO);
  if (mode == MODE_KA) { done_conns++; return; }
  if (mode == MODE_CONN && !stop_sig) {
    if (verify && (int)verified >= nmsgs) { done_conns++; return; }
    if (limit && started >= limit) { done_conns++; return; }
    if (open_conn(c) != 0) { errors++; done_conns++; }
  }
}

/* -> bytes, 0 would block (events set), -1 EOF, -2 error */
static int io_read(conn *c, char *p, size_t n) {
  if (plain) {
    ssize_t r = read(c->fd, p, n);
    if (r > 0) return (int)r;
    if (r == 0) return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -2;
  } else {
    int r, e;
    errno = 0;
    r = SSL_read(c->ssl, p, (int)(n > 1 << 20 ? 1 << 20 : n));
    if (r > 0) return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return 0;
    if (e == SSL_ERROR_WANT_WRITE) { set_events(c, 1); return 0; }
    if (e == SSL_ERROR_ZERO_RETURN) return -1;
    if (e == SSL_ERROR_SYSCALL && errno == 0) return -1;  /* EOF without close_notify */
    return -2;
  }
}

/* -> bytes, 0 would block, -2 error */
static int io_write(conn *c, const char *p, size_t n) {
  if (plain) {
    ssize_t r = write(c->fd, p, n);
    if (r >= 0) return (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -2;
  } else {
    int r = SSL_write(c->ssl, p, (int)n), e;
    if (r > 0) return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return 0;
    return -2;
  }
}

static void start_message(conn *c) {
  if (mode == MODE_ECHO) {
    if (limit && started >= limit) { finish_conn(c, 1); done_conns++; return; }
    started++;
    if (verify) fill_pattern(c);
    c->wlen = msg_size;
    c->t0 = now_ns();
  } else {
    c->wlen = req_len;
    if (mode == MODE_KA) c->t0 = now_ns();
  }
  c->woff = 0;
  c->got = 0;
  c->st = ST_SENDING;
}

static int open_conn(conn *c) {
  struct epoll_event ev;
  int one = 1;
  started += (mode == MODE_CONN);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->t0 = now_ns();
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->st = ST_CONNECTING;
  c->want_out = 1;
  c->gen++;
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = (uint64_t)c->gen << 32 | (uint32_t)c->idx;
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

/* Answer of conn mode: status 200 and "Hello, World!" once complete.
 * -> 1 complete, 0 more to come, -1 malformed */
static int answer_complete(conn *c) {
  char *end, *cl;
  size_t head, len;
  c->rbuf[c->got] = 0;
  end = strstr(c->rbuf, "\r\n\r\n");
  if (end == NULL) return 0;
  head = (size_t)(end - c->rbuf) + 4;
  if (strncmp(c->rbuf, "HTTP/1.1 200", 12) != 0) return -1;
  cl = strcasestr(c->rbuf, "\ncontent-length:");
  if (cl == NULL || cl > end) return -1;
  len = strtoul(cl + 16, NULL, 10);
  if (c->got < head + len) return 0;
  if (c->got > head + len) return -1;  /* nothing is pipelined: extra bytes are wrong */
  if (verify && (len != 13 || memcmp(c->rbuf + head, "Hello, World!", 13) != 0)) return -1;
  return 1;
}

static void progress(void) { last_progress = now_ns(); }

static void handle(conn *c) {
  int r;
  for (;;) {
    switch (c->st) {
    case ST_CONNECTING: {
      int err = 0;
      socklen_t l = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
      if (err == EINPROGRESS) return;
      if (err != 0) { errno = err; note_error(c, "connect"); finish_conn(c, 0); return; }
      if (plain) {
        set_events(c, 0);
        if (mode == MODE_ECHO) {
          start_message(c);
          if (c->fd < 0) return;
          break;
        }
        if (mode == MODE_KA) {
          if (limit && started >= limit) { finish_conn(c, 1); return; }
          started++;
        }
        start_message(c);
        break;
      }
      c->ssl = SSL_new(ctx);  /* fresh: no session to resume */
      SSL_set_fd(c->ssl, c->fd);
      SSL_set_tlsext_host_name(c->ssl, "localhost");
      SSL_set_connect_state(c->ssl);
      c->st = ST_HANDSHAKE;
      break;
    }
    case ST_HANDSHAKE:
      errno = 0;
      r = SSL_do_handshake(c->ssl);
      if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) { set_events(c, 0); return; }
        if (e == SSL_ERROR_WANT_WRITE) { set_events(c, 1); return; }
        note_error(c, "handshake");
        finish_conn(c, 0);
        return;
      }
      set_events(c, 0);
      if (SSL_session_reused(c->ssl)) resumed++;
      if (proto[0] == '-') {
        snprintf(proto, sizeof proto, "%s", SSL_get_version(c->ssl));
        snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(c->ssl));
      }
      if (mode == MODE_KA) {
        if (limit && started >= limit) { finish_conn(c, 1); return; }
        started++;
      }
      start_message(c);
      if (c->fd < 0) return;
      break;
    case ST_SENDING:
      r = io_write(c, mode == MODE_ECHO ? c->buf + c->woff : req + c->woff, c->wlen - c->woff);
      if (r == -2) { note_error(c, "write"); finish_conn(c, 0); return; }
      if (r == 0) { set_events(c, 1); return; }
      c->woff += (size_t)r;
      if (c->woff < c->wlen) break;
      set_events(c, 0);
      c->st = ST_READING;
      break;
    case ST_READING:
      r = io_read(c, c->rbuf + c->got, mode == MODE_ECHO ? msg_size + 64 - c->got : 65535 - c->got);
      if (r == 0) return;
      if (r < 0) { note_error(c, r == -1 ? "closed early" : "read"); finish_conn(c, 0); return; }
      c->got += (size_t)r;
      if (mode == MODE_ECHO) {
        if (c->got < msg_size) break;
        if (c->got > msg_size) { note_error(c, "more bytes than sent"); finish_conn(c, 0); return; }
        if (verify) {
          if (memcmp(c->buf, c->rbuf, msg_size) != 0) mismatches++;
          verified++;
          if (++c->sent >= nmsgs) { finish_conn(c, 1); done_conns++; return; }
        } else if (measuring) {
          counted++;
          record_latency(c->t0);
        }
        progress();
        finished++;
        if (stop_sig) return;
        start_message(c);
        if (c->fd < 0) return;
        break;
      }
      r = answer_complete(c);
      if (r < 0) { mismatches++; note_error(c, "bad answer"); finish_conn(c, 0); return; }
      if (r == 0) {
        if (c->got >= 65535) { note_error(c, "answer too long"); finish_conn(c, 0); return; }
        break;
      }
      if (mode == MODE_KA) {
        finished++;
        if (verify) verified++;
        else if (measuring) { counted++; record_latency(c->t0); }
        progress();
        if (stop_sig) return;
        if ((limit && started >= limit) || (verify && (int)verified >= nmsgs)) { finish_conn(c, 1); return; }
        started++;
        start_message(c);
        break;
      }
      c->st = ST_DRAIN;
      break;
    case ST_DRAIN:  /* until the server closes (Connection: close) */
      r = io_read(c, c->rbuf, 65535);
      if (r == 0) return;
      if (r > 0) break;
      if (r == -2) { note_error(c, "read at close"); finish_conn(c, 0); return; }
      finished++;
      if (verify) verified++;
      else if (measuring) { counted++; record_latency(c->t0); }
      progress();
      finish_conn(c, 1);
      return;
    }
  }
}

static uint64_t percentile(double q) {
  uint64_t total = hist_over, want, acc = 0;
  size_t i;
  for (i = 0; i < HIST_US; i++) total += hist[i];
  if (total == 0) return 0;
  want = (uint64_t)(q * (double)total + 0.5);
  if (want < 1) want = 1;
  for (i = 0; i < HIST_US; i++) {
    acc += hist[i];
    if (acc >= want) return i;
  }
  return HIST_US;
}

static void usage(void) {
  fprintf(stderr, "usage: tls_load -m conn|echo -p PORT [-h ADDR] [-c CONNS] [-s SIZE] [-d SECS] [-w SECS] [-P] [-v [-n N]]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int opt, port = 0, i;
  const char *host = "127.0.0.1";
  uint64_t deadline;
  double deadline_s_extra = 0;
  struct epoll_event evs[256];
  while ((opt = getopt(argc, argv, "m:p:h:c:s:d:w:n:N:Pv")) != -1) {
    switch (opt) {
    case 'm': mode = strcmp(optarg, "conn") == 0 ? MODE_CONN : strcmp(optarg, "echo") == 0 ? MODE_ECHO :
                       strcmp(optarg, "ka") == 0 ? MODE_KA : -1; break;
    case 'p': port = atoi(optarg); break;
    case 'h': host = optarg; break;
    case 'c': nconns = atoi(optarg); break;
    case 's': msg_size = (size_t)atol(optarg); break;
    case 'd': duration = atof(optarg); break;
    case 'w': warmup = atof(optarg); break;
    case 'n': nmsgs = atoi(optarg); break;
    case 'N': limit = (uint64_t)atoll(optarg); break;
    case 'P': plain = 1; break;
    case 'v': verify = 1; break;
    default: usage();
    }
  }
  if (mode < 0 || port <= 0 || nconns <= 0 || msg_size == 0 || (plain && mode == MODE_CONN)) usage();
  if (mode == MODE_KA) req = REQ_KA, req_len = sizeof REQ_KA - 1;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_sig);
  signal(SIGINT, on_sig);
  if (!plain) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  hist = calloc(HIST_US, sizeof *hist);
  conns = calloc((size_t)nconns, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!hist || !conns || ep < 0) { perror("tls_load"); return 2; }
  start_ns = now_ns();
  last_progress = start_ns;
  for (i = 0; i < nconns; i++) {
    conn *c = &conns[i];
    c->idx = i;
    c->fd = -1;
    c->buf = malloc(msg_size + 1);
    c->rbuf = malloc((mode == MODE_ECHO ? msg_size + 64 : 65536) + 1);
    if (!c->buf || !c->rbuf) { perror("tls_load"); return 2; }
    memset(c->buf, 'x', msg_size);
    if (open_conn(c) != 0) { perror("tls_load: connect"); return 2; }
  }
  if (limit) deadline_s_extra = 600;
  if (verify) measuring = 0, measure_start = start_ns;
  else if (warmup <= 0) measuring = 1, measure_start = start_ns, cpu_start = own_cpu_us();
  deadline = start_ns + (uint64_t)((warmup + duration + 10 + deadline_s_extra) * 1e9);
  while (!stop_sig) {
    uint64_t t;
    int n = epoll_wait(ep, evs, 256, 10);
    for (i = 0; i < n; i++) {
      conn *c = &conns[(uint32_t)evs[i].data.u64];
      if (c->fd >= 0 && c->gen == (uint32_t)(evs[i].data.u64 >> 32)) handle(c);
    }
    t = now_ns();
    if (verify || limit) {
      if (done_conns >= nconns) break;
    } else {
      if (!measuring && t >= start_ns + (uint64_t)(warmup * 1e9)) {
        measuring = 1;
        measure_start = t;
        cpu_start = own_cpu_us();
      }
      if (measuring && t >= measure_start + (uint64_t)(duration * 1e9)) {
        measure_end = t;
        cpu_end = own_cpu_us();
        break;
      }
      if (mode == MODE_ECHO && done_conns >= nconns) { fprintf(stderr, "tls_load: every connection failed\n"); break; }
    }
    if (t - last_progress > STALL_NS) { fprintf(stderr, "tls_load: no progress for 10 s\n"); errors++; break; }
    if (t > deadline) { fprintf(stderr, "tls_load: out of time\n"); errors++; break; }
  }
  if (limit && !verify) {
    printf("done=%llu errors=%llu resumed=%llu proto=%s cipher=%s\n", (unsigned long long)finished,
           (unsigned long long)errors, (unsigned long long)resumed, proto, cipher);
    return errors > 0 || finished != limit;
  }
  if (verify) {
    int bad = mismatches > 0 || errors > 0 ||
              (mode == MODE_ECHO ? verified != (uint64_t)nconns * (uint64_t)nmsgs : verified < (uint64_t)nmsgs);
    printf("verified=%llu mismatches=%llu errors=%llu resumed=%llu proto=%s cipher=%s\n",
           (unsigned long long)verified, (unsigned long long)mismatches, (unsigned long long)errors,
           (unsigned long long)resumed, proto, cipher);
    return bad ? 1 : 0;
  }
  if (measure_end == 0) { measure_end = now_ns(); cpu_end = own_cpu_us(); }
  {
    double secs = (double)(measure_end - measure_start) / 1e9;
    double rate = secs > 0 ? (double)counted / secs : 0;
    if (mode == MODE_KA)
      printf("reqs=%llu reqs_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu cpu_ms=%llu proto=%s cipher=%s\n",
             (unsigned long long)counted, rate, (unsigned long long)percentile(0.5),
             (unsigned long long)percentile(0.99), (unsigned long long)errors,
             (unsigned long long)((cpu_end - cpu_start) / 1000), proto, cipher);
    else if (mode == MODE_CONN)
      printf("conns=%llu conns_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu resumed=%llu cpu_ms=%llu proto=%s cipher=%s\n",
             (unsigned long long)counted, rate, (unsigned long long)percentile(0.5),
             (unsigned long long)percentile(0.99), (unsigned long long)errors,
             (unsigned long long)resumed, (unsigned long long)((cpu_end - cpu_start) / 1000), proto, cipher);
    else
      printf("msgs=%llu msgs_per_s=%.1f mib_per_s=%.1f p50_us=%llu p99_us=%llu errors=%llu cpu_ms=%llu proto=%s cipher=%s\n",
             (unsigned long long)counted, rate, rate * (double)msg_size / 1048576.0,
             (unsigned long long)percentile(0.5), (unsigned long long)percentile(0.99),
             (unsigned long long)errors, (unsigned long long)((cpu_end - cpu_start) / 1000), proto, cipher);
  }
  return 0;
}
