/* connect.c — the connect request of tcp and pipe streams: resolves a
 * host name (uv_getaddrinfo; numeric addresses skip the resolver), tries
 * each address in turn until one connects, gives up after an optional
 * time limit (ETIMEDOUT), and stops cleanly when its promise is cancelled.
 *
 * Ownership: a request is malloc'd and lives until its last callback
 * (resolver, connect, timer close; counted in `busy`). It holds its promise
 * (tide_lp_hold) while pending; once the promise is settled or cancelled
 * (lp == NULL) the callbacks still to come only release what they hold.
 * Each attempt is a stream of its own (tide_stream_alloc) owned by the
 * request until it connects; then it gets its userdata and the promise is
 * fulfilled with it. A failed attempt is closed (tide_stream_abort).
 * While pending, a request is on its state's list of connects (clist, a
 * userdata the registry keeps): when the state closes with connects in
 * flight, the list's __gc ends them as a cancel would, closing their
 * attempt and timer themselves (the runtime's last walk would close those
 * handles without the callbacks that free them, and the attempt's connect
 * callback would then close its handle a second time).
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread, leave its stack as they found it and end with
 * tide_rt_drain().
 */
#include "binding.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDRS 8

typedef struct creq {
  uv_getaddrinfo_t gai;
  uv_connect_t req;
  tide_timer timer;
  tide_io *io;
  lpromise *lp;               /* held while pending; NULL once settled or cancelled */
  tide_stream *s;             /* the attempt in flight */
  tide_stream_opts opts;
  int kind;
  int busy;                   /* callbacks to come */
  int resolving, has_timer;
  int err;                    /* the last attempt's error */
  int naddrs, next;
  struct sockaddr_storage addrs[MAX_ADDRS];
  struct creq **pprev, *lnext;  /* on the state's clist while pending */
  char subject[1];            /* "host:port" or the path, for errors (grows) */
} creq;

/* The requests of a state that are pending. */
typedef struct clist { creq *head; } clist;

static const char clist_key = 'C';

static lua_State *live_state(creq *c) { return tide_io_state(c->io); }

/* Frees the request once nothing is to come. */
static void maybe_free(creq *c) {
  if (c->lp == NULL && c->busy == 0) {
    tide_io_unref(c->io);
    free(c);
  }
}

static void timer_close_cb(uv_handle_t *h) {
  creq *c = h->data;
  c->busy--;
  maybe_free(c);
}

/* The request is over (promise settled or cancelled): stops whatever is
 * still running; the callbacks to come free it. */
static void finish(creq *c) {
  tide_stream *s = c->s;
  if (c->pprev != NULL) {  /* off the state's list */
    *c->pprev = c->lnext;
    if (c->lnext) c->lnext->pprev = c->pprev;
    c->pprev = NULL;
  }
  c->lp = NULL;
  c->s = NULL;
  if (c->resolving) uv_cancel((uv_req_t *)&c->gai);
  if (s) tide_stream_abort(s);  /* connect_cb comes with ECANCELED */
  if (c->has_timer) {
    c->has_timer = 0;
    c->busy++;
    tide_timer_close(&c->timer, timer_close_cb);
  }
  maybe_free(c);
}

/* [-0, +0, m] Rejects the request with libuv error `err` naming its
 * subject, and ends it. */
static void fail(lua_State *L, creq *c, int err) {
  tide_op_fail(L, c->lp, err, c->subject);
  finish(c);
}

static void connect_cb(uv_connect_t *req, int status);

/* [-0, +0, m] Starts the next attempt, or fails with the last error when
 * no address is left. */
static void attempt(lua_State *L, creq *c) {
  tide_stream *s;
  int err;
  while (c->next < c->naddrs) {
    if ((s = tide_stream_alloc(c->io, c->kind)) == NULL) {
      c->err = UV_ENOMEM;
      break;
    }
    if (c->kind == TIDE_STREAM_TCP) err = uv_tcp_init(c->io->loop, &s->h.tcp);
    else err = uv_pipe_init(c->io->loop, &s->h.pipe, 0);
    if (err != 0) {
      free(s);
      c->err = err;
      break;
    }
    tide_stream_opened(s);
    err = 0;
    if (c->kind == TIDE_STREAM_TCP)
      err = uv_tcp_connect(&c->req, &s->h.tcp, (struct sockaddr *)&c->addrs[c->next], connect_cb);
    else
      uv_pipe_connect(&c->req, &s->h.pipe, c->subject, connect_cb);
    c->next++;
    if (err == 0) {
      c->s = s;
      c->busy++;
      return;
    }
    tide_stream_abort(s);
    c->err = err;
  }
  fail(L, c, c->err);
}

static void connect_cb(uv_connect_t *req, int status) {
  creq *c = (creq *)((char *)req - offsetof(creq, req));
  tide_rt *rt = c->io->rt;
  lua_State *L = live_state(c);
  tide_stream *s = c->s;
  lpromise *lp = c->lp;
  c->s = NULL;
  c->busy--;
  if (lp == NULL || L == NULL) {  /* given up (timed out, cancelled), or the state closes */
    if (s) tide_stream_abort(s);
    if (lp) finish(c);
    else maybe_free(c);
    return;
  }
  if (status == 0 && (status = tide_stream_apply(s, &c->opts)) == 0) {
    tide_stream_push(L, s, 0);
    tide_op_settle(L, lp, TIDE_FULFILLED, 1);
    finish(c);
  } else {
    tide_stream_abort(s);
    c->err = status;
    attempt(L, c);
  }
  tide_rt_drain(rt);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  creq *c = req->data;
  tide_rt *rt = c->io->rt;
  lua_State *L = live_state(c);
  struct addrinfo *ai;
  c->resolving = 0;
  c->busy--;
  for (ai = res; ai && c->naddrs < MAX_ADDRS; ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && ai->ai_addrlen <= sizeof(c->addrs[0]))
      memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  if (c->lp == NULL || L == NULL) {
    if (c->lp) finish(c);
    else maybe_free(c);
    return;
  }
  if (status < 0) {
    fail(L, c, status);
  } else {
    c->err = UV_EAI_NONAME;  /* when no address was usable */
    attempt(L, c);
  }
  tide_rt_drain(rt);
}

static void timeout_cb(tide_timer *t) {
  creq *c = t->data;
  tide_rt *rt = c->io->rt;
  lua_State *L = live_state(c);
  if (L == NULL || c->lp == NULL) return;
  fail(L, c, UV_ETIMEDOUT);
  tide_rt_drain(rt);
}

/* The cancel hook: gives up without settling. */
static void creq_cancel(tide_promise *p, void *data) {
  creq *c = data;
  (void)p;
  tide_lp_drop(c->lp);
  finish(c);
}

/* __gc of the list of pending requests: runs only when the state closes
 * (the registry keeps the list). Ends each request as a cancel does,
 * without touching its promise, which goes with the state. */
static int clist_gc(lua_State *L) {
  clist *l = lua_touserdata(L, 1);
  while (l->head != NULL) finish(l->head);
  return 0;
}

/* [-0, +0, m] The state's list of pending requests, made on first use. */
static clist *clist_get(lua_State *L) {
  clist *l = tide_lua_singleton(L, &clist_key, sizeof(clist), clist_gc);
  lua_pop(L, 1);  /* remove the list */
  return l;
}

/* [-0, +1, m] Pushes the promise of a new request for `subject`. The
 * Lua allocations come first: one that fails leaves nothing to free. */
static creq *creq_new(lua_State *L, int kind, const char *subject, double timeout,
                      const tide_stream_opts *o) {
  size_t len = strlen(subject);
  clist *l = clist_get(L);
  lpromise *lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  creq *c;
  tide_lp_hold(L, -1);
  if ((c = calloc(1, sizeof(creq) + len)) == NULL) {
    tide_lp_drop(lp);
    luaL_error(L, "not enough memory");
  }
  c->io = tide_io_ref(tide_io_get(L));
  c->kind = kind;
  c->opts = *o;
  memcpy(c->subject, subject, len + 1);
  c->gai.data = c;
  c->lp = lp;
  c->lnext = l->head;  /* on the list while pending */
  if (l->head) l->head->pprev = &c->lnext;
  l->head = c;
  c->pprev = &l->head;
  tide_promise_on_cancel(&c->lp->p, creq_cancel, c);
  if (timeout >= 0 && tide_timer_init(c->io->rt, &c->timer) == 0) {
    c->has_timer = 1;
    c->timer.data = c;
    tide_timer_start(&c->timer, timeout_cb, tide_lua_ms(timeout));
  }
  return c;
}

/* [-0, +0, v] Reads the options table of a connect at `idx` (none when
 * nil): the stream options into *o, and the time limit, returned (-1 for
 * none). */
static double connect_opts(lua_State *L, int idx, tide_stream_opts *o) {
  tide_stream_opts_init(o);
  if (lua_isnoneornil(L, idx)) return -1;
  tide_stream_opts_get(L, idx, o);
  return tide_opt_seconds(L, idx, "timeout");
}

/* [-0, +1, m] Pushes the promise of a tcp stream connected to `host`
 * (a name or a numeric IPv4/IPv6 address) and `port`, with the options
 * at `opts_idx` ({timeout=, nodelay=, ...} or nil). */
void tide_connect_tcp(lua_State *L, const char *host, int port, int opts_idx) {
  struct addrinfo hints;
  tide_stream_opts o;
  double timeout = connect_opts(L, opts_idx, &o);
  char portstr[16];
  creq *c;
  int err;
  lua_pushfstring(L, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  c = creq_new(L, TIDE_STREAM_TCP, lua_tostring(L, -1), timeout, &o);
  lua_remove(L, -2);  /* remove the subject */
  if (tide_addr_parse(host, port, &c->addrs[0]) == 0) {
    c->naddrs = 1;
    attempt(L, c);
    return;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(portstr, sizeof(portstr), "%d", port);
  err = uv_getaddrinfo(c->io->loop, &c->gai, resolved_cb, host, portstr, &hints);
  if (err != 0) {
    fail(L, c, err);
    return;
  }
  c->resolving = 1;
  c->busy++;
}

/* [-0, +1, m] Pushes the promise of a pipe stream connected to the Unix
 * domain socket at `path`, with the options at `opts_idx` as above. */
void tide_connect_pipe(lua_State *L, const char *path, int opts_idx) {
  tide_stream_opts o;
  double timeout = connect_opts(L, opts_idx, &o);
  creq *c = creq_new(L, TIDE_STREAM_PIPE, path, timeout, &o);
  c->naddrs = 1;
  attempt(L, c);
}
