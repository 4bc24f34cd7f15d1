/* stream.c — the one buffered stream every byte stream of tide shares (tcp,
 * pipe, tty, process stdio, stdio on files) and the server every listener
 * shares (tcp, pipe): reads served from a buffer (read, read_line,
 * read_exactly, read_until, read_all), writes with a high-water mark,
 * half-close, graceful close, accept and serve.
 *
 * Reading. Every stream reads into the runtime's one scratch buffer
 * (tide_io.scratch: libuv calls alloc_cb and read_cb back to back, so one
 * buffer serves them all). A pending read is served straight from there;
 * only bytes left over are copied into the stream's own buffer, which is
 * freed once empty, so an idle connection holds no buffer. Once a read was
 * asked for, a stream reads ahead while no read is pending until its
 * buffer holds opts.read_limit bytes, then stops (uv_read_stop), which
 * applies TCP backpressure to a peer that writes faster than its reader
 * reads. One read may be pending at a time; cancelling it (task cancel,
 * tide.timeout) leaves the stream usable.
 *
 * Writing. write() tries uv_try_write first; what the kernel did not take
 * is queued with uv_write, the Lua strings pinned (no copy). Its promise is
 * settled at once while the queued bytes are under opts.high_water, else it
 * waits (in the stream's list of waiters, oldest first) until the queue fell
 * to opts.low_water (or under), or is rejected by a write error.
 *
 * Errors. Misuse raises: an operation on a stream the program closed, a
 * second pending read. Failures reject. A failed write (or shutdown) that
 * nobody awaited is not an unhandled rejection: the first such error is
 * kept, and the next read rejects with it, once (tide_stream_defer_error).
 * Writes after a failure keep rejecting with it, quietly unless awaited.
 *
 * Servers. A serving server counts its live handlers; close(grace) stops
 * accepting at once, waits up to `grace` seconds for the handlers, cancels
 * the rest, and settles its promise when the last one returned.
 *
 * Liveness. A stream's handle is referenced (keeps the loop alive) exactly
 * while something waits on it: a read, queued writes, a shutdown, a close.
 *
 * Custom streams (tide.stream(impl)) have no handle: Lua functions take
 * what is written (impl.write returns nil or a promise; the bytes count as
 * queued until it settles, so high and low water work as for sockets), and
 * a source object feeds what is read (source:push waits while the buffer
 * holds read_buffer bytes). TLS streams and the in-memory pair are made
 * this way, so every stream has the same reader, cork and limits.
 *
 * Ownership (see also binding.h, "stream.c"):
 *  - The userdata holds a pointer to the malloc'd tide_stream (NULL once
 *    it was freed); the stream points back to the userdata's slot (NULL
 *    once collected). Memory is freed in the last close callback.
 *  - A pending read, a waiting write, a shutdown and a close are held
 *    promises (tide_lp_hold) with the stream's userdata in user value UV_OWNER,
 *    so the stream stays alive while they wait. Queued writes hold one
 *    registry reference to the userdata (s->pin) and one per write to the
 *    strings it sends. A serving server is pinned until it closes.
 *  - Callbacks that run once the Lua side is gone (the state closing) only
 *    release memory.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; libuv
 * callbacks run on the main thread and leave its stack as they found it,
 * and end with tide_rt_drain().
 */
#include "binding.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The largest limit a read accepts (keeps size arithmetic far from
 * overflow). */
#define MAX_LIMIT ((size_t)1 << 40)
/* Seconds close() waits for queued writes when not told otherwise. */
#define DEFAULT_LINGER 10.0
/* read_all's limit when not told otherwise. */
#define DEFAULT_ALL_LIMIT ((size_t)16 << 20)

/* User values of a server's userdata (a stream's has none). */
enum {
  SRV_HANDLER = 1,          /* serve: the handler each connection's task runs */
  SRV_CONNS = 2,            /* serve: its live handlers, conn -> task */
  SRV_NUV = 2
};

/* read_err / write_err of a custom stream that ended with a Lua value
 * (kept in rerr_ref / werr_ref): no libuv error has this code. */
#define S_ERR_VALUE (-0x7fffff)

#define SOURCE_MT "tide.stream.source"

static const char io_key = 'S';

enum {
  S_HANDLE = 1u << 0,       /* h was initialised: it must be closed */
  S_TIMER = 1u << 1,        /* timer was initialised */
  S_STARTED = 1u << 2,      /* a read was asked for: read ahead from now on */
  S_READING = 1u << 3,      /* reading (uv_read_start, or a file read in flight) */
  S_SHUT = 1u << 4,         /* shut down: no more writes */
  S_CLOSING = 1u << 5,      /* close asked: no more reads or writes */
  S_CLOSED = 1u << 6,       /* handles closing */
  S_SERVER = 1u << 7,       /* a listening server */
  S_SERVE = 1u << 8,        /* a server handing connections to a handler */
  S_UNLINK = 1u << 9,       /* pipe server: remove its socket file at close */
  S_READY = 1u << 10,       /* server: a connection waits for accept */
  S_CORKED = 1u << 11,      /* the cork job is queued */
  S_ERR_TOLD = 1u << 12,    /* a deferred write error was raised once */
  S_IMPL_CLOSED = 1u << 13  /* custom stream: impl.close was called */
};

enum { OP_CHUNK, OP_LINE, OP_EXACTLY, OP_UNTIL, OP_ALL, OP_ACCEPT };
enum { TM_NONE, TM_READ, TM_LINGER, TM_GRACE };

/* A pending read or accept: its promise and what it waits for. */
struct tide_sread {
  lpromise base;            /* must be first */
  int op;
  size_t n;                 /* OP_EXACTLY: the count; OP_LINE, _UNTIL, _ALL: the limit */
  size_t scanned;           /* bytes already searched for the delimiter */
  const char *delim;        /* OP_UNTIL: kept alive by user value UV_KEEP */
  size_t dlen;
};

/* A write waiting for the queue to drain: a promise in the stream's list. */
struct tide_swait {
  lpromise base;            /* must be first */
  tide_stream *s;
  tide_swait *prev, *next;
};

/* A queued write. */
typedef struct swrite {
  uv_write_t req;
  tide_stream *s;
  size_t len;               /* bytes it sends */
  int ref;                  /* registry ref pinning the strings it sends */
  char *owned;              /* or the malloc'd bytes it sends (a cork) */
} swrite;

/* A write of a custom stream whose impl promise is pending. */
typedef struct cwrite {
  tide_listener l;          /* must be first */
  tide_stream *s;           /* NULL once the stream was freed */
  size_t len;
  struct cwrite *prev, *next;
} cwrite;

static void update(lua_State *L, tide_stream *s);
static void close_now(tide_stream *s);
static void custom_close(tide_stream *s);
static void settle_waiters(lua_State *L, tide_stream *s);
static void room_release(lua_State *L, tide_stream *s);
static void cork_flush(tide_stream *s);

/* The main lua_State, or NULL once the Lua side is gone: a callback
 * then only releases memory. */
lua_State *tide_io_state(tide_io *io) {
  tide_lua *tl;
  if (io->lua_gone || (tl = tide_lua_of(io->rt)) == NULL) return NULL;
  return tl->L;
}

#define live_state tide_io_state

/* The runtime's io state (NULL before tide_open_stream). */
tide_io *tide_io_get(lua_State *L) {
  tide_io **box;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &io_key);
  box = lua_touserdata(L, -1);
  lua_pop(L, 1);  /* remove the box */
  return box ? *box : NULL;
}

tide_io *tide_io_ref(tide_io *io) {
  io->refs++;
  return io;
}

static void io_free(tide_io *io) {
  free(io->spare_cork);
  free(io);
}

void tide_io_unref(tide_io *io) {
  if (--io->refs == 0 && io->lua_gone) io_free(io);
}

/* __gc of the box holding the io state: the Lua side is gone. */
static int io_gc(lua_State *L) {
  tide_io **box = lua_touserdata(L, 1);
  tide_io *io = *box;
  if (io == NULL) return 0;  /* its calloc failed */
  *box = NULL;
  io->lua_gone = 1;
  if (io->refs == 0) io_free(io);
  return 0;
}

/* --------------------------------------------------------------- options */

void tide_stream_opts_init(tide_stream_opts *o) {
  o->high_water = TIDE_STREAM_LIMIT;
  o->low_water = TIDE_STREAM_LIMIT / 4;
  o->read_limit = TIDE_STREAM_LIMIT;
  o->nodelay = 1;
  o->keepalive = -1;
}

/* [-0, +0, v] A byte count field of the table at `idx` from `min` to
 * MAX_LIMIT, or `def`. */
static size_t opt_size(lua_State *L, int idx, const char *key, size_t def, size_t min) {
  return (size_t)tide_opt_int(L, idx, key, (lua_Integer)def, (lua_Integer)min, (lua_Integer)MAX_LIMIT);
}

/* [-0, +0, v] Reads the stream options of the table at `idx` (none when
 * absent) into *o: high_water, low_water, read_buffer, nodelay,
 * keepalive (boolean or seconds). */
void tide_stream_opts_get(lua_State *L, int idx, tide_stream_opts *o) {
  int t;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  o->high_water = opt_size(L, idx, "high_water", o->high_water, 1);
  o->low_water = opt_size(L, idx, "low_water", o->high_water < o->low_water * 4 ? o->high_water / 4 : o->low_water, 0);
  if (o->low_water > o->high_water) luaL_error(L, "option 'low_water' must not exceed 'high_water'");
  o->read_limit = opt_size(L, idx, "read_buffer", o->read_limit, 1);
  t = lua_getfield(L, idx, "nodelay");
  if (t != LUA_TNIL) o->nodelay = lua_toboolean(L, -1);
  t = lua_getfield(L, idx, "keepalive");
  if (t == LUA_TBOOLEAN) {
    o->keepalive = lua_toboolean(L, -1) ? 60 : 0;
  } else if (t != LUA_TNIL) {
    lua_Integer secs = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || secs < 1 || secs > 86400)
      luaL_error(L, "option 'keepalive': boolean or seconds from 1 to 86400 expected");
    o->keepalive = (int)secs;
  }
  lua_pop(L, 2);  /* remove nodelay and keepalive */
}

/* Applies limits and (tcp) socket options to `s`. Returns 0 or an error. */
int tide_stream_apply(tide_stream *s, const tide_stream_opts *o) {
  int err = 0;
  s->opts = *o;
  if (s->kind == TIDE_STREAM_TCP && (s->flags & S_HANDLE) && !(s->flags & S_SERVER)) {
    if (o->nodelay >= 0) err = uv_tcp_nodelay(&s->h.tcp, o->nodelay);
    if (err == 0 && o->keepalive >= 0)
      err = uv_tcp_keepalive(&s->h.tcp, o->keepalive > 0, (unsigned)o->keepalive);
  }
  return err;
}

/* --------------------------------------------------------------- streams */

/* Allocates a stream of `kind` whose handle the caller initialises (then
 * calls tide_stream_opened). Returns NULL when memory is short. */
tide_stream *tide_stream_alloc(tide_io *io, int kind) {
  tide_stream *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->io = tide_io_ref(io);
  s->kind = (unsigned char)kind;
  s->fd = -1;
  s->pin = s->impl_ref = s->rerr_ref = s->werr_ref = s->deferred_ref = LUA_NOREF;
  tide_stream_opts_init(&s->opts);
  return s;
}

/* Marks the handle of `s` initialised (it will be closed) and idle. */
void tide_stream_opened(tide_stream *s) {
  s->flags |= S_HANDLE;
  s->h.handle.data = s;
  update(NULL, s);
}

/* [-1, +1, m] Replaces the boolean on top with a new userdata for a
 * stream (a server's when it is true), owning none yet. */
static int new_ud(lua_State *L) {
  int server = lua_toboolean(L, 1);
  *(tide_stream **)lua_newuserdatauv(L, sizeof(tide_stream *), server ? SRV_NUV : 0) = NULL;
  luaL_setmetatable(L, server ? TIDE_SERVER_MT : TIDE_STREAM_MT);
  return 1;
}

/* [-0, +1, m] Pushes a new userdata owning stream `s` (a server when
 * `server`); returns its slot. The userdata is made in a protected call:
 * when that fails (not enough memory), `s` is closed, which frees it and
 * its handle, and the error is raised on; until it is owned, nothing else
 * would close it. */
tide_stream **tide_stream_push(lua_State *L, tide_stream *s, int server) {
  tide_stream **ud;
  if (!lua_checkstack(L, 2)) {
    close_now(s);
    luaL_error(L, "not enough memory");
  }
  lua_pushcfunction(L, new_ud);
  lua_pushboolean(L, server);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    close_now(s);
    lua_error(L);
  }
  ud = lua_touserdata(L, -1);
  *ud = s;
  s->ud = ud;
  return ud;
}

/* [-0, +0, v] The userdata slot of the stream or server at `idx`. */
static tide_stream **check_ud(lua_State *L, int idx) {
  tide_stream **ud = luaL_testudata(L, idx, TIDE_STREAM_MT);
  if (ud == NULL) ud = luaL_testudata(L, idx, TIDE_SERVER_MT);
  if (ud == NULL) luaL_typeerror(L, idx, "tide.stream or tide.server");
  return ud;
}

/* [-0, +0, v] The open stream at `idx`, of `kind` when not 0; raises when
 * it is closed or of another kind. */
tide_stream *tide_stream_check(lua_State *L, int idx, int kind) {
  tide_stream *s = *check_ud(L, idx);
  static const char *const names[] = {"?", "tcp", "pipe", "tty", "file", "custom"};
  if (s == NULL || (s->flags & S_CLOSING)) luaL_argerror(L, idx, "stream is closed");
  if (kind != 0 && s->kind != kind)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s stream expected, got a %s stream", names[kind], names[s->kind]));
  return s;
}

/* The last close callback ran (or there was nothing to close): settles
 * close(), lets go of the userdata and frees the stream. */
static void finalize(tide_stream *s) {
  lua_State *L = live_state(s->io);
  if (L != NULL) {
    if (s->waiters) {  /* their writes were cancelled by the close */
      if (s->write_err == 0) s->write_err = UV_ECANCELED;
      settle_waiters(L, s);
    }
    if (s->closed) tide_op_settle(L, s->closed, TIDE_FULFILLED, 0);
    if (s->room) room_release(L, s);
    luaL_unref(L, LUA_REGISTRYINDEX, s->pin);
    luaL_unref(L, LUA_REGISTRYINDEX, s->impl_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->rerr_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->werr_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->deferred_ref);
  }
  while (s->cwrites) {  /* a queued call frees its own, seeing no stream */
    cwrite *w = s->cwrites;
    s->cwrites = w->next;
    w->s = NULL;
    if (tide_listener_remove(&w->l) == 0) free(w);
  }
  if (s->source) *s->source = NULL;
  if (s->over) s->over->under = NULL;
  if (s->under) {
    s->under->over = NULL;
    s->under->filter = NULL;  /* its data belonged to this stream's impl */
    update(L, s->under);  /* its reads count again */
  }
  if (s->ud) *s->ud = NULL;
  if (s->fd >= 0 && s->fd <= 2 && s->kind != TIDE_STREAM_FILE) {
    /* stdio: give the fd back in blocking mode, as we found it */
    int fl = fcntl(s->fd, F_GETFL);
    if (fl != -1 && (fl & O_NONBLOCK)) fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  free(s->buf);
  free(s->cork);
  free(s->fsbuf);
  free(s->fsreq);
  tide_io_unref(s->io);
  free(s);
}

static void close_cb(uv_handle_t *h) {
  tide_stream *s = h->data;
  tide_rt *rt = s->io->rt;
  int live = live_state(s->io) != NULL;
  if (--s->closes == 0) finalize(s);
  if (live) tide_rt_drain(rt);
}

/* ---------------------------------------------------------------- timers */

/* The stream's timer is stopped lazily: a keep-alive connection sets a
 * read timeout for every request, and restarting a libuv timer costs two
 * operations on the loop's timer heap. timer_stop() only forgets the use
 * and unreferences the timer (so it keeps the loop alive no longer); a
 * timer_start() with a deadline no earlier than the armed one just moves
 * s->deadline; the timer, when it fires early, re-arms for the rest. */
static void timer_cb(tide_timer *t);

static int timer_start(tide_stream *s, double seconds, int use) {
  uint64_t now, ms = tide_lua_ms(seconds);
  int err;
  if (!(s->flags & S_TIMER)) {
    if ((err = tide_timer_init(s->io->rt, &s->timer)) != 0) return err;
    s->timer.data = s;
    s->flags |= S_TIMER;
  }
  now = tide_rt_now(s->io->rt);
  s->timer_use = (unsigned char)use;
  s->deadline = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
  tide_timer_ref(&s->timer);
  if (tide_timer_is_active(&s->timer) && s->armed <= s->deadline) return 0;
  s->armed = s->deadline;
  return tide_timer_start(&s->timer, timer_cb, ms);
}

static void timer_stop(tide_stream *s) {
  s->timer_use = TM_NONE;
  if (s->flags & S_TIMER) tide_timer_unref(&s->timer);
}

/* ---------------------------------------------------------------- buffer */

/* Makes room for `n` more bytes after the buffered ones. Returns 0 or
 * UV_ENOMEM. */
static int reserve(tide_stream *s, size_t n) {
  size_t need = s->len + n, cap;
  char *p;
  if (s->off + need <= s->cap) return 0;
  if (s->off > 0) {  /* slide the buffered bytes to the front */
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
    if (need <= s->cap) return 0;
  }
  for (cap = s->cap ? s->cap : 1024; cap < need; cap *= 2) {}
  p = realloc(s->buf, cap);
  if (p == NULL) return UV_ENOMEM;
  s->buf = p;
  s->cap = cap;
  return 0;
}

/* Drops the first `n` buffered bytes; frees the buffer once empty. */
static void consume(tide_stream *s, size_t n) {
  s->off += n;
  s->len -= n;
  if (s->len == 0) {
    free(s->buf);
    s->buf = NULL;
    s->off = s->cap = 0;
  }
}

static const char *buffered(tide_stream *s) { return s->buf ? s->buf + s->off : ""; }

/* ----------------------------------------------------------------- reads */

/* [-0, +1, m] Pushes the error `err` of stream `s`: a libuv code, or the
 * Lua value a custom stream ended with (`ref`). */
static void push_err(lua_State *L, int err, int ref) {
  if (err == S_ERR_VALUE) lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  else tide_lua_push_uverror(L, err);
}

/* [-1, +0, m] Makes the value on top the error of `s` in *err (kept in
 * *ref) unless it has one. */
static void set_err(lua_State *L, int *err, int *ref) {
  if (*err != 0) {
    lua_pop(L, 1);  /* remove the value: the first error stays */
    return;
  }
  *err = S_ERR_VALUE;
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* [-0, +1, m] Pushes the error of a read that passed its limit. */
static int push_too_long(lua_State *L, tide_sread *r, tide_state *st, size_t *used) {
  const char *code = r->op == OP_ALL ? "EMSGSIZE" : "ELINETOOLONG";
  lua_pushfstring(L, "%s longer than %I bytes", r->op == OP_ALL ? "stream" :
                  r->op == OP_LINE ? "line" : "data before the delimiter", (lua_Integer)r->n);
  tide_lua_push_error(L, code, lua_tostring(L, -1));
  lua_remove(L, -2);  /* remove the message */
  *st = TIDE_REJECTED;
  *used = 0;
  return 1;
}

/* [-0, +1, m] Pushes the error of a stream that ended inside a read; the
 * bytes it got are consumed and carried as `partial`. */
static int push_early_eof(lua_State *L, tide_sread *r, const char *p, size_t len,
                          tide_state *st, size_t *used) {
  if (r->op == OP_EXACTLY)
    lua_pushfstring(L, "stream ended after %I of %I bytes", (lua_Integer)len, (lua_Integer)r->n);
  else
    lua_pushfstring(L, "stream ended after %I bytes, before the delimiter", (lua_Integer)len);
  tide_lua_push_error(L, "EOF", lua_tostring(L, -1));
  lua_remove(L, -2);  /* remove the message */
  lua_pushlstring(L, p, len);
  lua_setfield(L, -2, "partial");
  *st = TIDE_REJECTED;
  *used = len;
  return 1;
}

/* [-0, +(0|1), m] Decides read `r` against the `len` buffered bytes at
 * `p`; `err` is 0 while more bytes may come, else UV_EOF or the error that
 * ended reading. Returns 0 when the read needs more bytes. Otherwise it
 * pushes the read's one value (the result, nil at the end, or an error),
 * sets *st and the number of bytes consumed *used, and returns 1. */
static int outcome(lua_State *L, tide_stream *s, tide_sread *r, const char *p, size_t len,
                   int err, tide_state *st, size_t *used) {
  size_t win, n;
  const char *hit = NULL;
  *st = TIDE_FULFILLED;
  *used = 0;
  switch (r->op) {
    case OP_CHUNK:
      if (len == 0) break;
      *used = len < r->n ? len : r->n;
      lua_pushlstring(L, p, *used);
      return 1;
    case OP_LINE:  /* a line of n bytes and its "\r\n" fit in n + 2 */
      win = len < r->n + 2 ? len : r->n + 2;
      if (win > r->scanned) hit = memchr(p + r->scanned, '\n', win - r->scanned);
      if (hit) {
        n = (size_t)(hit - p);
        *used = n + 1;
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n > r->n) return push_too_long(L, r, st, used);
        lua_pushlstring(L, p, n);
        return 1;
      }
      r->scanned = win;
      if (len >= r->n + 2) return push_too_long(L, r, st, used);
      if (err == UV_EOF && len > 0) {  /* the last line has no end */
        if (len > r->n) return push_too_long(L, r, st, used);
        lua_pushlstring(L, p, len);
        *used = len;
        return 1;
      }
      break;
    case OP_EXACTLY:
      if (len >= r->n) {
        lua_pushlstring(L, p, r->n);
        *used = r->n;
        return 1;
      }
      if (err == UV_EOF && len > 0) return push_early_eof(L, r, p, len, st, used);
      break;
    case OP_UNTIL:
      win = len < r->n + r->dlen ? len : r->n + r->dlen;
      if (win > r->scanned) hit = memmem(p + r->scanned, win - r->scanned, r->delim, r->dlen);
      if (hit) {
        n = (size_t)(hit - p);
        lua_pushlstring(L, p, n);
        *used = n + r->dlen;
        return 1;
      }
      /* a delimiter may straddle the end of what came so far */
      r->scanned = win >= r->dlen ? win - r->dlen + 1 : 0;
      if (len >= r->n + r->dlen) return push_too_long(L, r, st, used);
      if (err == UV_EOF && len > 0) return push_early_eof(L, r, p, len, st, used);
      break;
    case OP_ALL:
      if (len > r->n) return push_too_long(L, r, st, used);
      if (err == UV_EOF) {
        lua_pushlstring(L, p, len);
        *used = len;
        return 1;
      }
      break;
  }
  if (err == 0) return 0;
  if (err == UV_EOF) {
    lua_pushnil(L);
  } else {
    push_err(L, err, s->rerr_ref);
    *st = TIDE_REJECTED;
  }
  return 1;
}

/* [-1, +0, m] Settles the pending read or accept of `s` with the value on
 * top of the stack. */
static void settle_waiter(lua_State *L, tide_stream *s, tide_state st) {
  tide_sread *r = s->pending;
  s->pending = NULL;
  if (s->timer_use == TM_READ) timer_stop(s);
  tide_op_settle(L, &r->base, st, 1);
  if (s->under) update(L, s->under);
}

/* [-0, +0, m] Settles the pending read of `s` when the buffered bytes (or
 * the end of the stream) answer it. */
static void serve(lua_State *L, tide_stream *s) {
  tide_state st;
  size_t used;
  if (s->pending == NULL || s->pending->op == OP_ACCEPT) return;
  if (!outcome(L, s, s->pending, buffered(s), s->len, s->read_err, &st, &used)) return;
  settle_waiter(L, s, st);
  consume(s, used);
}

/* [-0, +0, m] Reading ended (s->read_err is set): the pending read learns
 * it, or the filter does. */
static void ended(lua_State *L, tide_stream *s) {
  if (s->filter == NULL) {
    serve(L, s);
  } else if (s->read_err == UV_EOF) {
    s->filter->end(L, s, 0, s->filter->data);
  } else {
    push_err(L, s->read_err, s->rerr_ref);
    s->filter->end(L, s, lua_gettop(L), s->filter->data);
    lua_pop(L, 1);  /* remove the error */
  }
}

/* [-0, +0, m] Takes `n` new bytes at `p` (the scratch buffer, or a file
 * read's buffer): serves the pending read from them, keeps the rest. */
static void feed(lua_State *L, tide_stream *s, const char *p, size_t n) {
  tide_state st;
  size_t used;
  s->bytes_read += n;
  if (s->filter) {  /* a TLS stream's transport: the bytes go to its session */
    s->filter->read(L, s, p, n, s->filter->data);
    return;
  }
  if (s->len == 0 && s->pending != NULL && s->pending->op != OP_ACCEPT &&
      outcome(L, s, s->pending, p, n, 0, &st, &used)) {
    settle_waiter(L, s, st);
    p += used;
    n -= used;
  }
  if (n == 0) return;
  if (reserve(s, n) != 0) {
    s->read_err = UV_ENOMEM;
  } else {
    memcpy(s->buf + s->off + s->len, p, n);
    s->len += n;
  }
  serve(L, s);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tide_stream *s = h->data;
  (void)hint;
  *buf = uv_buf_init(s->io->scratch, sizeof(s->io->scratch));
}

static void read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  tide_stream *s = h->data;
  lua_State *L = live_state(s->io);
  int top;
  if (L == NULL || nread == 0) return;
  top = lua_gettop(L);
  if (nread > 0) {
    feed(L, s, buf->base, (size_t)nread);
  } else {
    s->read_err = (int)nread;
    uv_read_stop(h);
    s->flags &= ~S_READING;
    ended(L, s);
  }
  update(L, s);
  tide_stack_check(L, top, 0);
  tide_rt_drain(s->io->rt);
}

static void fs_read_cb(uv_fs_t *req) {
  tide_stream *s = req->data;
  tide_rt *rt = s->io->rt;
  lua_State *L = live_state(s->io);
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->flags &= ~S_READING;
  if (s->flags & S_CLOSED) {  /* close waited for this read */
    if (--s->closes == 0) finalize(s);
    if (L) tide_rt_drain(rt);
    return;
  }
  if (L == NULL) return;
  if (n > 0) {
    feed(L, s, s->fsbuf, (size_t)n);
  } else {
    s->read_err = n == 0 ? UV_EOF : (int)n;
    ended(L, s);
  }
  update(L, s);
  tide_rt_drain(rt);
}

/* Starts a read of a file stream into its own chunk buffer. */
static int fs_read_start(tide_stream *s) {
  uv_buf_t b;
  int err;
  if (s->fsreq == NULL && (s->fsreq = malloc(sizeof(*s->fsreq))) == NULL) return UV_ENOMEM;
  if (s->fsbuf == NULL && (s->fsbuf = malloc(TIDE_STREAM_LIMIT)) == NULL) return UV_ENOMEM;
  b = uv_buf_init(s->fsbuf, TIDE_STREAM_LIMIT);
  s->fsreq->data = s;
  err = uv_fs_read(s->io->loop, s->fsreq, s->fd, &b, 1, -1, fs_read_cb);
  if (err == 0) s->flags |= S_READING;
  return err;
}

/* [-0, +0, m] Reads while a read waits or the buffer is under its limit,
 * and keeps the loop alive exactly while something waits on the stream.
 * `L` may be NULL (then a failure to start reading waits for the next
 * read to be reported). */
static void update(lua_State *L, tide_stream *s) {
  int want, err = 0;
  if (s->flags & S_CLOSED) return;
  want = (s->flags & S_STARTED) && s->read_err == 0 && !(s->flags & (S_CLOSING | S_SERVER)) &&
         (s->filter ? s->over && (s->over->pending || s->over->len < s->over->opts.read_limit)
                    : s->pending != NULL || s->len < s->opts.read_limit);
  if (s->kind == TIDE_STREAM_CUSTOM) {  /* the source may push again */
    if (s->room && L && (s->pending || s->len < s->opts.read_limit || s->read_err ||
                         (s->flags & S_CLOSING)))
      room_release(L, s);
    if (s->under) update(L, s->under);  /* lends it liveness while a read waits */
    return;
  }
  if (s->kind == TIDE_STREAM_FILE) {
    if (want && !(s->flags & S_READING)) err = fs_read_start(s);
  } else if (want && !(s->flags & S_READING)) {
    if ((err = uv_read_start(&s->h.stream, alloc_cb, read_cb)) == 0) s->flags |= S_READING;
  } else if (!want && (s->flags & S_READING)) {
    uv_read_stop(&s->h.stream);
    s->flags &= ~S_READING;
  }
  if (err != 0) {
    s->read_err = err;
    if (L) ended(L, s);
  }
  if (s->kind == TIDE_STREAM_FILE) return;
  if ((s->pending && !(s->over && !s->over->pending)) || (s->filter && s->over && s->over->pending) ||
      s->queued || s->shutdown || (s->flags & (S_CLOSING | S_SERVER)))
    uv_ref(&s->h.handle);
  else
    uv_unref(&s->h.handle);
}

/* The cancel hook of a pending read or accept: forgets it. */
static void read_cancel(tide_promise *p, void *data) {
  tide_stream *s = data;
  tide_sread *r = s->pending;
  (void)p;
  s->pending = NULL;
  if (s->timer_use == TM_READ) timer_stop(s);
  update(live_state(s->io), s);
  tide_lp_drop(&r->base);
}

/* [-0, +1, m] Pushes a promise rejected with a tide error. */
static int push_rejected(lua_State *L, const char *code, const char *msg, int status) {
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  if (code) tide_lua_push_error(L, code, msg);
  else tide_lua_push_uverror(L, status);
  tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
  lua_pop(L, 1);  /* remove the error */
  return 1;
}

/* [-0, +1, m] Pushes a promise rejected with the write error of `s` (the
 * userdata at index 1): unhandled, the error goes to the stream. */
static int push_write_err(lua_State *L, tide_stream *s) {
  lpromise *lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_KEEP);
  lp->flags |= LP_STREAM_OP;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, UV_OWNER);
  push_err(L, s->write_err, s->werr_ref);
  tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
  lua_pop(L, 1);  /* remove the error */
  return 1;
}

/* [-0, +1, m] Pushes a promise rejected with the deferred write error of
 * `s`, which is raised this once. */
static int push_deferred(lua_State *L, tide_stream *s) {
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->deferred_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->deferred_ref);
  s->deferred_ref = LUA_NOREF;
  s->flags |= S_ERR_TOLD;
  tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
  lua_pop(L, 1);  /* remove the error */
  return 1;
}

/* [-0, +0, m] A write or shutdown of the stream (or a send of the UDP
 * socket: tide_udp_defer_error) in UV_OWNER of the promise at
 * `p_idx` failed with the error at `err_idx` and nobody handled it: the
 * stream keeps the error for its next operation (once; later failures of
 * the same stream are the same story). Returns 0 when the stream is gone
 * (then the rejection is reported as usual). */
int tide_stream_defer_error(lua_State *L, int p_idx, int err_idx) {
  tide_stream **ud, *s;
  int r;
  lua_getiuservalue(L, p_idx, UV_OWNER);
  if (luaL_testudata(L, -1, "tide.udp")) {  /* a send of a UDP socket */
    r = tide_udp_defer_error(L, lua_gettop(L), err_idx);
    lua_pop(L, 1);  /* remove the socket */
    return r;
  }
  ud = luaL_testudata(L, -1, TIDE_STREAM_MT);
  lua_pop(L, 1);  /* remove the userdata: the promise keeps it */
  if (ud == NULL || (s = *ud) == NULL) return 0;
  if (s->deferred_ref == LUA_NOREF && !(s->flags & (S_ERR_TOLD | S_CLOSING))) {
    lua_pushvalue(L, err_idx);
    s->deferred_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

/* [-0, +0, -] Pushes the runtime's fulfilled promise with no values. */
static int push_done(lua_State *L, tide_stream *s) {
  tide_io *io = s ? s->io : tide_io_get(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, io->done_ref);
  return 1;
}

/* [-0, +1, m] Pushes a new pending promise held for stream `s` (the
 * userdata at `ud_idx`, kept in UV_OWNER while it waits). */
static lpromise *push_held(lua_State *L, int ud_idx, size_t size) {
  lpromise *lp;
  ud_idx = lua_absindex(L, ud_idx);
  lp = tide_lp_new(L, size, LP_PLAIN, UV_KEEP);
  lua_pushvalue(L, ud_idx);
  lua_setiuservalue(L, -2, UV_OWNER);
  tide_lp_hold(L, -1);
  return lp;
}

/* [-0, +1, m] Starts read `op` on the stream at index 1 and pushes its
 * promise: settled at once when the buffer answers it, else pending with
 * an optional time limit. `delim_idx` (OP_UNTIL) is the delimiter. */
static int begin_read(lua_State *L, int op, size_t n, int delim_idx, double timeout) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, 1, TIDE_STREAM_MT);
  tide_sread *r;
  tide_state st;
  size_t used;
  int idx, err;
  if (s != NULL && s->pending != NULL)
    return luaL_error(L, "another read is pending on this stream (one reader at a time)");
  if (s == NULL || (s->flags & S_CLOSING)) return luaL_error(L, "attempt to use a closed stream");
  if (s->deferred_ref != LUA_NOREF) return push_deferred(L, s);
  r = (tide_sread *)tide_lp_new(L, sizeof(tide_sread), LP_PLAIN, UV_KEEP);
  idx = lua_gettop(L);
  r->op = op;
  r->n = n;
  if (delim_idx) {
    r->delim = lua_tolstring(L, delim_idx, &r->dlen);
    lua_pushvalue(L, delim_idx);
    lua_setiuservalue(L, idx, UV_KEEP);
  }
  s->flags |= S_STARTED;
  if (outcome(L, s, r, buffered(s), s->len, s->read_err, &st, &used)) {
    tide_lp_settle(L, idx, st, idx + 1, 1);
    lua_pop(L, 1);  /* remove the value */
    consume(s, used);
    update(L, s);
    return 1;
  }
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, idx, UV_OWNER);  /* the stream lives while the read waits */
  tide_lp_hold(L, idx);
  s->pending = r;
  tide_promise_on_cancel(&r->base.p, read_cancel, s);
  if (timeout >= 0 && (err = timer_start(s, timeout, TM_READ)) != 0) {
    tide_lua_push_uverror(L, err);
    settle_waiter(L, s, TIDE_REJECTED);
  }
  update(L, s);
  return 1;
}

/* [-0, +0, v] A limit argument at `idx`: an integer from `min` to 2^40. */
static size_t check_limit(lua_State *L, int idx, size_t min) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= (lua_Integer)min && (size_t)v <= MAX_LIMIT, idx, "out of range");
  return (size_t)v;
}

/* [-0, +0, v] The options argument of read_line, read_until and read_all
 * at `idx`: a limit, or a table {max =, timeout =}. */
static void read_opts(lua_State *L, int idx, size_t *max, double *timeout) {
  *timeout = -1;
  if (lua_istable(L, idx)) {
    if (lua_getfield(L, idx, "max") != LUA_TNIL) *max = check_limit(L, -1, 1);
    if (lua_getfield(L, idx, "timeout") != LUA_TNIL) *timeout = tide_lua_checkseconds(L, -1);
    lua_pop(L, 2);  /* remove max and timeout */
  } else if (!lua_isnoneornil(L, idx)) {
    *max = check_limit(L, idx, 1);
  }
}

/* [-0, +1, m] Starts read `op` with the options at `idx` (read_opts;
 * `max` when they set no limit) and pushes its promise; `delim_idx` as for
 * begin_read. */
static int read_with_opts(lua_State *L, int op, size_t max, int idx, int delim_idx) {
  double timeout;
  read_opts(L, idx, &max, &timeout);
  return begin_read(L, op, max, delim_idx, timeout);
}

/* s:read([timeout | {max=, timeout=}]) -> promise of the bytes that came
 * (at least one, at most max), nil at the end. */
static int s_read(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) return begin_read(L, OP_CHUNK, MAX_LIMIT, 0, tide_lua_checkseconds(L, 2));
  return read_with_opts(L, OP_CHUNK, MAX_LIMIT, 2, 0);
}

/* s:read_line([max | {max=, timeout=}]) -> promise of the next line
 * without its "\n" or "\r\n"; nil at the end. */
static int s_read_line(lua_State *L) { return read_with_opts(L, OP_LINE, TIDE_STREAM_LIMIT, 2, 0); }

/* s:read_exactly(n [, timeout]) -> promise of n bytes; nil at the end,
 * an "EOF" error when the stream ends inside them. */
static int s_read_exactly(lua_State *L) {
  size_t n = check_limit(L, 2, 0);
  return begin_read(L, OP_EXACTLY, n, 0, tide_lua_optseconds(L, 3));
}

/* s:read_until(delim [, max | {max=, timeout=}]) -> promise of the bytes
 * before the next `delim` (which is consumed); nil at the end. */
static int s_read_until(lua_State *L) {
  size_t dlen;
  luaL_checklstring(L, 2, &dlen);
  luaL_argcheck(L, dlen > 0, 2, "empty delimiter");
  return read_with_opts(L, OP_UNTIL, TIDE_STREAM_LIMIT, 3, 2);
}

/* s:read_all([max | {max=, timeout=}]) -> promise of every byte up to the
 * end of the stream ("" when none); an EMSGSIZE error past max. */
static int s_read_all(lua_State *L) { return read_with_opts(L, OP_ALL, DEFAULT_ALL_LIMIT, 2, 0); }

/* ---------------------------------------------------------------- writes */

/* Pins the userdata at `idx` while writes are queued or it serves. */
static void pin(lua_State *L, tide_stream *s, int idx) {
  if (s->pin != LUA_NOREF) return;
  lua_pushvalue(L, idx);
  s->pin = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Takes waiter `w` out of its stream's list. */
static void unlink_waiter(tide_swait *w) {
  tide_stream *s = w->s;
  if (w->prev) w->prev->next = w->next; else s->waiters = w->next;
  if (w->next) w->next->prev = w->prev; else s->last_waiter = w->prev;
  w->prev = w->next = NULL;
}

/* [-0, +0, m] Settles every write waiting on `s`, oldest first: rejected
 * with the write error, if any. */
static void settle_waiters(lua_State *L, tide_stream *s) {
  tide_swait *w;
  while ((w = s->waiters) != NULL) {
    unlink_waiter(w);
    if (s->write_err) {
      w->base.flags |= LP_STREAM_OP;  /* its UV_OWNER is the stream */
      push_err(L, s->write_err, s->werr_ref);
      tide_op_settle(L, &w->base, TIDE_REJECTED, 1);
    } else {
      tide_op_settle(L, &w->base, TIDE_FULFILLED, 0);
    }
  }
}

/* The cancel hook of a waiting write: it leaves the list (its bytes stay
 * queued). */
static void waiter_cancel(tide_promise *p, void *data) {
  tide_swait *w = data;
  (void)p;
  unlink_waiter(w);
  tide_lp_drop(&w->base);
}

/* Closes a closing stream once its queue and its shutdown are done.
 * Returns 1 when it did (the stream may be gone). */
static int close_if_flushed(tide_stream *s) {
  if ((s->flags & (S_CLOSING | S_CLOSED)) != S_CLOSING || s->shutdown) return 0;
  if (s->queued && !s->write_err) return 0;
  close_now(s);
  return 1;
}

/* [-0, +0, m] The queue of `s` went down (or a write failed): wakes the
 * writers waiting for it, lets go of the pin once it is empty, and closes
 * a closing stream that is flushed (`s` may be gone then). */
static void written(lua_State *L, tide_stream *s) {
  if (s->waiters && (s->queued <= s->opts.low_water || s->write_err)) settle_waiters(L, s);
  if (s->queued == 0 && !(s->flags & S_SERVE) && s->pin != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->pin);
    s->pin = LUA_NOREF;
  }
  if (!close_if_flushed(s)) update(L, s);
}

static void write_cb(uv_write_t *req, int status) {
  swrite *w = (swrite *)req;
  tide_stream *s = w->s;
  tide_rt *rt = s->io->rt;
  lua_State *L = live_state(s->io);
  int top;
  s->queued -= w->len;
  if (status == 0) s->bytes_written += w->len;
  else if (s->write_err == 0) s->write_err = status;
  if (L) luaL_unref(L, LUA_REGISTRYINDEX, w->ref);
  free(w->owned);
  free(w);
  if (L == NULL) return;
  top = lua_gettop(L);
  written(L, s);
  tide_stack_check(L, top, 0);
  tide_rt_drain(rt);
}

/* [-0, +1, m] Writes to a stdio file synchronously (as files are). */
static int file_write(lua_State *L, tide_stream *s, uv_buf_t *bufs, int nbufs) {
  uv_fs_t req;
  ssize_t n;
  int k = 0;
  while (k < nbufs) {
    n = uv_fs_write(s->io->loop, &req, s->fd, bufs + k, (unsigned)(nbufs - k), -1, NULL);
    uv_fs_req_cleanup(&req);
    if (n < 0) {
      s->write_err = (int)n;
      return push_rejected(L, NULL, NULL, (int)n);
    }
    s->bytes_written += (size_t)n;
    for (; k < nbufs && (size_t)n >= bufs[k].len; k++) n -= (ssize_t)bufs[k].len;
    if (k < nbufs) {
      bufs[k].base += n;
      bufs[k].len -= (size_t)n;
    }
  }
  return push_done(L, s);
}

/* ------------------------------------------------------ custom streams */

/* [-0, +1, m] Pushes field `name` of the impl table of custom stream `s`. */
static int impl_get(lua_State *L, tide_stream *s, const char *name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->impl_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);  /* remove the impl table */
  return lua_type(L, -1);
}

/* The impl promise of a custom write settled: its bytes leave the queue. */
static void cwrite_cb(tide_listener *l, tide_promise *src) {
  cwrite *w = (cwrite *)l;
  tide_stream *s = w->s;
  lua_State *L;
  if (s == NULL || (L = live_state(s->io)) == NULL) {
    free(w);
    return;
  }
  if (w->prev) w->prev->next = w->next; else s->cwrites = w->next;
  if (w->next) w->next->prev = w->prev;
  s->queued -= w->len;
  if (src->state == TIDE_FULFILLED) {
    s->bytes_written += w->len;
  } else {
    tide_lp_push(L, (lpromise *)src);
    if (tide_lp_push_values(L, -1) == 0) lua_pushnil(L);
    lua_remove(L, -2);  /* remove the promise */
    set_err(L, &s->write_err, &s->werr_ref);
  }
  free(w);
  written(L, s);
}

/* [-0, +0, m] Hands the `len` bytes of the string at `idx` to impl.write
 * of custom stream `s` (pinned by the caller while they are queued). An
 * error it raises, a rejected promise or a wrong result becomes the
 * stream's write error; a pending promise keeps the bytes queued until it
 * settles. */
static void custom_send(lua_State *L, tide_stream *s, int idx, size_t len) {
  int top = lua_gettop(L), raised = 0;
  lpromise *lp;
  cwrite *w;
  idx = lua_absindex(L, idx);
  impl_get(L, s, "write");
  lua_pushvalue(L, idx);
  if (tide_lua_pcall(L, 1, 1) != LUA_OK) {
    lua_pop(L, 1);  /* remove the traceback: the error object carries one */
    lua_pushvalue(L, -1);  /* the error, as the value to keep */
    raised = 1;
  } else if (lua_isnil(L, -1)) {
    s->bytes_written += len;
  } else if ((lp = tide_lp_test(L, -1)) == NULL) {
    lua_pushfstring(L, "stream impl.write returned a %s (nil or a promise expected)", luaL_typename(L, -1));
    tide_lua_push_error(L, "EINVAL", lua_tostring(L, -1));
  } else if (lp->p.state == TIDE_FULFILLED) {
    s->bytes_written += len;
  } else if (lp->p.state == TIDE_REJECTED) {
    tide_promise_mark_handled(&lp->p);  /* it is the stream's error now */
    if (tide_lp_push_values(L, -1) == 0) lua_pushnil(L);
  } else if ((w = malloc(sizeof(*w))) == NULL) {
    tide_lua_push_uverror(L, UV_ENOMEM);
  } else {
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->len = len;
    if ((w->next = s->cwrites) != NULL) w->next->prev = w;
    s->cwrites = w;
    s->queued += len;
    tide_lp_listen(L, -1, &w->l, cwrite_cb);
  }
  if (lua_gettop(L) > top + 1) set_err(L, &s->write_err, &s->werr_ref);
  lua_settop(L, top);
  /* A write that raised may have lost its bytes part-way (not enough
   * memory): the stream cannot go on, and its other end must learn it, as
   * a socket's peer would. impl.close tells it; it runs once all the same. */
  if (raised) custom_close(s);
}

/* [-0, +1, m] Calls impl.shutdown of custom stream `s` and pushes its
 * promise (nil becomes the fulfilled one). */
static int custom_shutdown(lua_State *L, tide_stream *s) {
  if (impl_get(L, s, "shutdown") == LUA_TNIL) return lua_pop(L, 1), push_done(L, s);
  if (tide_lua_pcall(L, 0, 1) != LUA_OK) {
    lua_pop(L, 1);  /* remove the traceback */
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    lua_insert(L, -2);
    tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
    lua_pop(L, 1);  /* remove the error */
    return 1;
  }
  if (lua_isnil(L, -1)) return lua_pop(L, 1), push_done(L, s);
  return 1;
}

/* Calls impl.close of custom stream `s` once, reporting an error. */
static void custom_close(tide_stream *s) {
  lua_State *L = live_state(s->io);
  int top;
  if (L == NULL || s->impl_ref == LUA_NOREF || (s->flags & S_IMPL_CLOSED)) return;
  s->flags |= S_IMPL_CLOSED;
  top = lua_gettop(L);
  if (impl_get(L, s, "close") != LUA_TNIL && tide_lua_pcall(L, 0, 0) != LUA_OK)
    tide_lua_report(L, "error in stream impl.close: ", lua_gettop(L));
  lua_settop(L, top);
}

/* [-0, +0, m] Settles the promise a source waits on for room. */
static void room_release(lua_State *L, tide_stream *s) {
  lpromise *lp = s->room;
  s->room = NULL;
  tide_op_settle(L, lp, TIDE_FULFILLED, 0);
}

/* [-0, +0, v] The stream of the source at `idx`, or NULL once closed. */
static tide_stream *source_stream(lua_State *L, int idx) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, idx, SOURCE_MT);
  return s == NULL || (s->flags & S_CLOSING) ? NULL : s;
}

/* source:push(data) -> promise fulfilled once the stream's reader holds
 * less than read_buffer bytes (at once, usually): the bytes are what the
 * stream reads next. Bytes pushed after the stream closed are dropped. */
static int src_push(lua_State *L) {
  tide_stream *s = source_stream(L, 1);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  if (s == NULL || s->read_err != 0 || len == 0) return push_done(L, s);
  feed(L, s, p, len);
  if (s->pending || s->len < s->opts.read_limit || s->read_err) return push_done(L, s);
  if (s->room == NULL) {
    s->room = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    tide_lp_hold(L, -1);
    return 1;
  }
  return tide_lp_push(L, s->room), 1;
}

/* source:finish([err]) -> nothing: the stream ends after what was pushed:
 * reads see the end (nil), or reject with `err` when given. */
static int src_finish(lua_State *L) {
  tide_stream *s = source_stream(L, 1);
  if (s != NULL) tide_stream_end(L, s, lua_isnoneornil(L, 2) ? 0 : 2);
  return 0;
}

/* [-0, +0, m] Ends the reads of custom stream `s` after what was fed:
 * the end of the stream, or the error at `err_idx` when not 0. */
void tide_stream_end(lua_State *L, tide_stream *s, int err_idx) {
  if (s->read_err != 0 || (s->flags & S_CLOSING)) return;
  if (err_idx == 0) {
    s->read_err = UV_EOF;
  } else {
    lua_pushvalue(L, err_idx);
    set_err(L, &s->read_err, &s->rerr_ref);
  }
  ended(L, s);
  update(L, s);
}

/* [-0, +0, m] Feeds `n` bytes to custom stream `s` as source:push does,
 * without a promise: its transport stops reading while it is full. */
void tide_stream_feed(lua_State *L, tide_stream *s, const char *p, size_t n) {
  if (s->read_err != 0 || (s->flags & S_CLOSING) || n == 0) return;
  feed(L, s, p, n);
}

/* [-0, +0, m] Gives what stream `s` reads to filter `f` (NULL: to its
 * buffer again); bytes it already holds go to `f` at once. Reading goes on
 * while the custom stream over `s` has room. */
void tide_stream_filter(lua_State *L, tide_stream *s, tide_filter *f) {
  s->filter = f;
  s->flags |= S_STARTED;
  if (f && s->len > 0) {
    size_t n = s->len;
    s->bytes_read -= n;  /* counted again by feed */
    feed(L, s, buffered(s), n);
    consume(s, n);
  }
  if (f && s->read_err != 0) ended(L, s);
  update(L, s);
}

/* source:flush() -> nothing: the small writes the stream gathers in a
 * turn (sent once the writing task yields) go to impl.write now. For an
 * impl that must see every write made so far before it acts (a test
 * transport breaking the connection). */
static int src_flush(lua_State *L) {
  tide_stream *s = source_stream(L, 1);
  if (s != NULL) cork_flush(s);
  return 0;
}

/* source.closed: whether the stream was closed (nothing more is read). */
static int src_index(lua_State *L) {
  const char *k = tide_lua_index_key(L);
  if (k && strcmp(k, "closed") == 0) lua_pushboolean(L, source_stream(L, 1) == NULL);
  return 1;  /* a method, closed, or nil */
}

static const luaL_Reg source_methods[] = {
  {"push", src_push},
  {"finish", src_finish},
  {"flush", src_flush},
  {NULL, NULL}
};

/* __gc of a source: the stream must not point to it any more. */
static int src_gc(lua_State *L) {
  tide_stream **ud = lua_touserdata(L, 1);
  if (*ud != NULL) (*ud)->source = NULL;
  *ud = NULL;
  return 0;
}

/* tide.stream(impl [, opts]) -> stream, source: a stream whose writes go
 * to impl.write(data) (returns nil, or a promise the bytes stay queued
 * on), impl.shutdown() (nil or a promise) and impl.close() (once, when the
 * stream closes), and whose reads are fed by source:push(data) and
 * source:finish([err]). Other keys of `impl` read as fields of the stream
 * (impl.kind names it; default "custom"). opts: the stream limits. */
static int l_stream(lua_State *L) {
  tide_io *io = tide_io_get(L);
  tide_stream *s;
  tide_stream_opts o;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "write");
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "impl.write must be a function");
  lua_pop(L, 1);  /* remove write */
  tide_stream_opts_init(&o);
  tide_stream_opts_get(L, 2, &o);
  if ((s = tide_stream_alloc(io, TIDE_STREAM_CUSTOM)) == NULL) return luaL_error(L, "not enough memory");
  s->opts = o;
  lua_pushvalue(L, 1);
  s->impl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lua_getfield(L, 1, "transport") != LUA_TNIL) {  /* the stream it runs over */
    tide_stream **t = luaL_testudata(L, -1, TIDE_STREAM_MT);
    if (t && *t && (*t)->over == NULL) {
      s->under = *t;
      (*t)->over = s;
      update(L, s->under);
    }
  }
  lua_pop(L, 1);  /* remove the transport */
  tide_stream_push(L, s, 0);
  s->source = lua_newuserdatauv(L, sizeof(tide_stream *), 0);
  *s->source = s;
  luaL_setmetatable(L, SOURCE_MT);
  return 2;
}

/* ----------------------------------------------------------------- cork
 *
 * A task that answers several requests without waiting (pipelined HTTP,
 * a batch of small messages) would make one system call per write. Small
 * writes made by a running task while nothing is queued are held in
 * s->cork instead, and a job queued on the first of them sends them all
 * at once after the task yields, in the same drain: before the loop polls
 * again, so nothing waits longer. Their promises are settled at once, as
 * writes under the high-water mark always were; an error of the send is
 * the stream's write error, as for queued writes. Anything else that
 * writes, shuts down or closes sends the cork first, so order is kept.
 * stdio streams are never corked: print and io.write reach the same file
 * descriptor directly. A cork's buffer goes back to the runtime once sent
 * (one kept as the spare the next cork takes), so an idle stream holds
 * none: a buffer kept per stream was 4 KiB of every keep-alive
 * connection. */
#define CORK_MAX (16 * 1024)

/* The cork of `s` was sent: its buffer becomes the runtime's spare, or
 * goes when there is one. */
static void cork_done(tide_stream *s) {
  tide_io *io = s->io;
  if (io->spare_cork == NULL) {
    io->spare_cork = s->cork;
    io->spare_cap = s->cork_cap;
  } else {
    free(s->cork);
  }
  s->cork = NULL;
  s->cork_cap = 0;
}

/* Sends the corked bytes: to the kernel, and what it does not take to
 * libuv's queue (the buffer goes with the write request). */
static void cork_flush(tide_stream *s) {
  size_t len = s->cork_len;
  ssize_t n = 0;
  uv_buf_t b;
  swrite *w;
  int err;
  if (len == 0) return;
  s->cork_len = 0;
  if (s->write_err) return;
  if (s->kind == TIDE_STREAM_CUSTOM) {
    lua_State *L = live_state(s->io);
    if (L == NULL) return;
    lua_pushlstring(L, s->cork, len);
    cork_done(s);
    custom_send(L, s, -1, len);
    lua_pop(L, 1);  /* remove the bytes */
    return;
  }
  if (s->queued == 0) {
    b = uv_buf_init(s->cork, (unsigned)len);
    n = uv_try_write(&s->h.stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) {
      n = 0;
    } else if (n < 0) {
      s->write_err = (int)n;
      return;
    }
    s->bytes_written += (size_t)n;
    if ((size_t)n == len) {
      cork_done(s);
      return;
    }
  }
  if ((w = malloc(sizeof(*w))) == NULL) {
    s->write_err = UV_ENOMEM;
    return;
  }
  w->s = s;
  w->len = len - (size_t)n;
  w->ref = LUA_NOREF;
  w->owned = s->cork;
  s->cork = NULL;
  s->cork_cap = 0;
  b = uv_buf_init(w->owned + n, (unsigned)w->len);
  if ((err = uv_write(&w->req, &s->h.stream, &b, 1, write_cb)) != 0) {
    free(w->owned);
    free(w);
    s->write_err = err;
    return;
  }
  s->queued += w->len;
}

/* The task that corked writes yielded: send them. */
static void cork_job_cb(tide_rt *rt, tide_job *job) {
  tide_stream *s = (tide_stream *)((char *)job - offsetof(tide_stream, cork_job));
  lua_State *L = live_state(s->io);
  (void)rt;
  s->flags &= ~S_CORKED;
  if (s->flags & S_CLOSED) {  /* close_now counted this job */
    if (--s->closes == 0) finalize(s);
    return;
  }
  if (s->flags & S_CLOSING) return;
  cork_flush(s);  /* nothing left when a larger write sent it first */
  if (L == NULL) return;
  if (s->queued == 0 && !(s->flags & S_SERVE) && s->pin != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->pin);
    s->pin = LUA_NOREF;
  }
  update(L, s);
}

/* Holds the `nbufs` buffers of `total` bytes in the cork of the stream at
 * index 1. Returns 0, or non-zero when memory ran out (then the caller
 * writes them itself). */
static int cork_add(lua_State *L, tide_stream *s, const uv_buf_t *bufs, int nbufs, size_t total) {
  int i;
  if (s->cork == NULL && s->io->spare_cork != NULL) {  /* the spare */
    s->cork = s->io->spare_cork;
    s->cork_cap = s->io->spare_cap;
    s->io->spare_cork = NULL;
  }
  if (s->cork_len + total > s->cork_cap) {
    size_t cap = s->cork_cap ? 2 * s->cork_cap : 4096;
    char *c;
    while (cap < s->cork_len + total) cap *= 2;
    if ((c = realloc(s->cork, cap)) == NULL) return UV_ENOMEM;
    s->cork = c;
    s->cork_cap = cap;
  }
  for (i = 0; i < nbufs; i++) {
    memcpy(s->cork + s->cork_len, bufs[i].base, bufs[i].len);
    s->cork_len += bufs[i].len;
  }
  pin(L, s, 1);
  if (!(s->flags & S_CORKED)) {  /* send them once the task yields */
    s->flags |= S_CORKED;
    tide_job_queue(s->io->rt, &s->cork_job, cork_job_cb);
  }
  return 0;
}

/* s:write(data) -> promise: `data` is a string or a list of strings. The
 * promise is settled at once while the queued bytes stay under the
 * high-water mark, else when they came down to the low-water mark.
 * Small writes of a running task go to the cork (above); the bytes the
 * kernel does not take at once are queued with libuv. */
static int s_write(lua_State *L) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, 1, TIDE_STREAM_MT);
  uv_buf_t small[8], *bufs = small;
  size_t total = 0, len, rest;
  int t = lua_type(L, 2), nbufs = 1, i, k, err;
  ssize_t n = 0;
  swrite *w;
  tide_swait *wait;
  if (t == LUA_TSTRING) {
    bufs[0].base = (char *)lua_tolstring(L, 2, &len);
    bufs[0].len = len;
    total = len;
  } else if (t == LUA_TTABLE) {
    lua_Integer count = luaL_len(L, 2);
    luaL_argcheck(L, count >= 0 && count <= 1024 * 1024, 2, "too many strings");
    nbufs = (int)count;
    if (nbufs > 8) bufs = lua_newuserdatauv(L, sizeof(uv_buf_t) * (size_t)nbufs, 0);
    for (i = 0; i < nbufs; i++) {
      if (lua_rawgeti(L, 2, i + 1) != LUA_TSTRING)
        return luaL_argerror(L, 2, lua_pushfstring(L, "item %d is a %s, not a string", i + 1, luaL_typename(L, -1)));
      bufs[i].base = (char *)lua_tolstring(L, -1, &len);  /* the table keeps it */
      bufs[i].len = len;
      total += len;
      lua_pop(L, 1);  /* remove the string */
    }
  } else {
    return luaL_typeerror(L, 2, "string or list of strings");
  }
  if (s == NULL || (s->flags & S_CLOSING)) return luaL_error(L, "attempt to use a closed stream");
  if (s->flags & S_SHUT) return push_rejected(L, "EPIPE", "write after shutdown", 0);
  if (s->write_err) return push_write_err(L, s);
  if (total == 0) return push_done(L, s);
  if (s->kind == TIDE_STREAM_FILE) return file_write(L, s, bufs, nbufs);
  if (s->queued == 0 && s->fd < 0 && s->cork_len + total <= CORK_MAX &&
      s->cork_len + total < s->opts.high_water && tide_lua_get(L)->current != NULL &&
      cork_add(L, s, bufs, nbufs, total) == 0)
    return push_done(L, s);
  if (s->cork_len) {  /* what was held goes first */
    cork_flush(s);
    if (s->write_err) return push_write_err(L, s);
  }
  if (s->kind == TIDE_STREAM_CUSTOM) {
    if (t == LUA_TTABLE) {  /* one string of the list */
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (i = 0; i < nbufs; i++) luaL_addlstring(&b, bufs[i].base, bufs[i].len);
      luaL_pushresult(&b);
      lua_replace(L, 2);
    }
    pin(L, s, 1);
    custom_send(L, s, 2, total);
    if (s->write_err) return push_write_err(L, s);
    written(L, s);  /* unpins when nothing stayed queued */
    goto wait;
  }
  if (s->queued == 0) {
    n = uv_try_write(&s->h.stream, bufs, (unsigned)nbufs);
    if (n == UV_EAGAIN || n == UV_ENOSYS) {
      n = 0;
    } else if (n < 0) {
      s->write_err = (int)n;
      return push_write_err(L, s);
    }
    s->bytes_written += (size_t)n;
    if ((size_t)n == total) return push_done(L, s);
  }
  /* queue what the kernel did not take */
  rest = total - (size_t)n;
  for (k = 0; (size_t)n >= bufs[k].len; k++) n -= (ssize_t)bufs[k].len;
  bufs[k].base += n;
  bufs[k].len -= (size_t)n;
  if ((w = malloc(sizeof(*w))) == NULL) return luaL_error(L, "not enough memory");
  if (t == LUA_TSTRING) {
    lua_pushvalue(L, 2);
  } else {  /* pin the strings themselves: the caller may change the list */
    lua_createtable(L, nbufs - k, 0);
    for (i = k; i < nbufs; i++) {
      lua_rawgeti(L, 2, i + 1);
      lua_rawseti(L, -2, i - k + 1);
    }
  }
  w->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->owned = NULL;
  w->s = s;
  w->len = rest;
  err = uv_write(&w->req, &s->h.stream, bufs + k, (unsigned)(nbufs - k), write_cb);
  if (err != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->ref);
    free(w);
    s->write_err = err;
    return push_write_err(L, s);
  }
  pin(L, s, 1);
  s->queued += rest;
  update(L, s);
wait:
  if (s->queued < s->opts.high_water) return push_done(L, s);
  wait = (tide_swait *)push_held(L, 1, sizeof(tide_swait));
  wait->s = s;
  if ((wait->prev = s->last_waiter) != NULL) wait->prev->next = wait;
  else s->waiters = wait;
  s->last_waiter = wait;
  tide_promise_on_cancel(&wait->base.p, waiter_cancel, wait);
  return 1;
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  tide_stream *s = req->data;
  tide_rt *rt = s->io->rt;
  lua_State *L = live_state(s->io);
  lpromise *lp = s->shutdown;
  free(req);
  s->shutdown = NULL;
  if (L == NULL) return;
  if (status == 0) {
    tide_op_settle(L, lp, TIDE_FULFILLED, 0);
  } else {
    lp->flags |= LP_STREAM_OP;  /* its UV_OWNER is the stream */
    tide_lua_push_uverror(L, status);
    tide_op_settle(L, lp, TIDE_REJECTED, 1);
  }
  if (!close_if_flushed(s)) update(L, s);
  tide_rt_drain(rt);
}

/* s:shutdown() -> promise: ends the writing half once the queued writes
 * are out (the peer reads the end of the stream); reading goes on. */
static int s_shutdown(lua_State *L) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, 1, TIDE_STREAM_MT);
  uv_shutdown_t *req;
  lpromise *lp = NULL;
  int err;
  if (s == NULL || (s->flags & S_CLOSING)) return luaL_error(L, "attempt to use a closed stream");
  if (s->shutdown) return tide_lp_push(L, s->shutdown), 1;
  if (s->flags & S_SHUT) return push_done(L, s);
  /* The promise first: an allocation that fails then leaves the stream
   * as it was, with no request in flight whose callback finds no promise. */
  if (s->kind != TIDE_STREAM_FILE && s->kind != TIDE_STREAM_TTY && s->kind != TIDE_STREAM_CUSTOM)
    lp = push_held(L, 1, sizeof(lpromise));
  s->flags |= S_SHUT;
  if (s->kind == TIDE_STREAM_FILE || s->kind == TIDE_STREAM_TTY) return push_done(L, s);
  cork_flush(s);
  if (s->kind == TIDE_STREAM_CUSTOM) return custom_shutdown(L, s);
  if ((req = malloc(sizeof(*req))) == NULL) {
    tide_lp_drop(lp);
    return luaL_error(L, "not enough memory");
  }
  req->data = s;
  if ((err = uv_shutdown(req, &s->h.stream, shutdown_cb)) != 0) {
    free(req);
    tide_lp_drop(lp);
    return push_rejected(L, NULL, NULL, err);
  }
  s->shutdown = lp;
  update(L, s);
  return 1;
}

/* ----------------------------------------------------------------- close */

/* Removes the socket file of a pipe server. */
static void unlink_socket(tide_stream *s) {
  char path[1024];
  size_t len = sizeof(path) - 1;
  if (uv_pipe_getsockname(&s->h.pipe, path, &len) != 0 || len == 0 || path[0] == '\0') return;
  path[len] = '\0';
  unlink(path);
}

/* Closes the handles of `s` now: queued writes fail with ECANCELED. The
 * stream is freed once the last close callback ran (maybe inside this
 * call, for a file stream): callers must not touch it afterwards. */
static void close_now(tide_stream *s) {
  if (s->flags & S_CLOSED) return;
  s->flags |= S_CLOSED | S_CLOSING;
  s->closes = 1;  /* this call's own, so finalize runs once */
  if (s->flags & S_CORKED) s->closes++;  /* the queued cork job points here */
  if (s->kind == TIDE_STREAM_CUSTOM) custom_close(s);
  if (s->flags & S_HANDLE) {
    if (s->flags & S_UNLINK) unlink_socket(s);
    s->closes++;
    uv_close(&s->h.handle, close_cb);
  }
  if (s->conns > 0) {
    s->closes++;  /* the last handler to return counts it down (handler_done) */
  } else if (s->flags & S_TIMER) {
    s->closes++;
    tide_timer_close(&s->timer, close_cb);
  }
  if (s->kind == TIDE_STREAM_FILE && (s->flags & S_READING)) {
    s->closes++;  /* fs_read_cb counts it down */
    uv_cancel((uv_req_t *)s->fsreq);
  }
  if (--s->closes == 0) finalize(s);
}

void tide_stream_abort(tide_stream *s) { close_now(s); }

/* [-0, +0, m] Cancels the live handlers of serving server `s`. */
static void cancel_handlers(lua_State *L, tide_stream *s) {
  int top = lua_gettop(L), n = 0, i;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->pin);
  lua_getiuservalue(L, -1, SRV_CONNS);
  lua_newtable(L);  /* the tasks, gathered first: cancelling changes nothing now, */
  lua_pushnil(L);   /* but the table is not ours to iterate while it does */
  while (lua_next(L, top + 2) != 0) {
    lua_rawseti(L, top + 3, ++n);  /* keeps the key */
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, top + 3, i);
    tide_lp_cancel(L, tide_lp_check(L, -1));
    lua_pop(L, 1);  /* remove the task */
  }
  lua_settop(L, top);
}

/* [-0, +0, m] Closes `s` gracefully: a pending read ends as at the end of
 * the stream (an accept with nil), then the handles close once the queued
 * writes are out, or after `linger` seconds. `L` may be NULL only when
 * nothing waits on the stream. */
void tide_stream_close(lua_State *L, tide_stream *s, double linger) {
  tide_state st;
  size_t used;
  if (s->flags & S_CLOSING) return;
  if (s->conns > 0 && L) {  /* a server: its handlers get `linger` seconds */
    if (linger <= 0 || timer_start(s, linger, TM_GRACE) != 0) cancel_handlers(L, s);
  }
  if (s->kind != TIDE_STREAM_FILE) cork_flush(s);  /* before the close: they go out first */
  s->flags |= S_CLOSING;
  if (s->pending && L) {
    if (s->pending->op == OP_ACCEPT) {
      lua_pushnil(L);
      settle_waiter(L, s, TIDE_FULFILLED);
    } else if (outcome(L, s, s->pending, buffered(s), s->len, UV_EOF, &st, &used)) {
      settle_waiter(L, s, st);
      consume(s, used);
    }
  }
  if ((s->queued || s->shutdown) && !s->write_err && linger > 0 &&
      timer_start(s, linger, TM_LINGER) == 0) {
    update(L, s);  /* stops reading, keeps the loop alive */
    return;
  }
  close_now(s);
}

static void timer_cb(tide_timer *t) {
  tide_stream *s = t->data;
  tide_rt *rt = s->io->rt;
  lua_State *L = live_state(s->io);
  uint64_t now = tide_rt_now(rt);
  int use = s->timer_use;
  if (use == TM_NONE) return;  /* stopped since it was armed */
  if (now < s->deadline) {     /* armed for an earlier deadline: the rest */
    s->armed = s->deadline;
    tide_timer_start(&s->timer, timer_cb, s->deadline - now);
    return;
  }
  s->timer_use = TM_NONE;
  tide_timer_unref(&s->timer);
  if (L == NULL) return;
  if (use == TM_READ && s->pending) {
    tide_lua_push_error(L, "ETIMEDOUT", s->pending->op == OP_ACCEPT ? "accept timed out" : "read timed out");
    settle_waiter(L, s, TIDE_REJECTED);
    update(L, s);
  } else if (use == TM_LINGER) {
    close_now(s);  /* the peer did not take the queued bytes in time */
  } else if (use == TM_GRACE) {
    cancel_handlers(L, s);  /* the handlers' time is up */
  }
  tide_rt_drain(rt);
}

/* s:close([linger]) -> promise settled once the stream is closed: writes
 * still queued go out first, for at most `linger` seconds (default 10). */
static int s_close(lua_State *L) {
  tide_stream **ud = check_ud(L, 1);
  tide_stream *s = *ud;
  double linger = lua_isnoneornil(L, 2) ? DEFAULT_LINGER : tide_lua_checkseconds(L, 2);
  if (s == NULL) return push_done(L, NULL);
  if (s->closed) return tide_lp_push(L, s->closed), 1;
  s->closed = push_held(L, 1, sizeof(lpromise));
  tide_stream_close(L, s, linger);  /* may free s */
  return 1;
}

/* __close: closes as close() does, without a promise. */
static int s_tbc_close(lua_State *L) {
  tide_stream *s = *check_ud(L, 1);
  if (s != NULL) tide_stream_close(L, s, DEFAULT_LINGER);
  return 0;
}

static void handlers_gone(tide_stream *s);

/* __gc: a stream nobody can reach has nothing waiting on it (that would
 * keep it alive): close it now. While the state closes, close whatever is
 * left. */
static int s_gc(lua_State *L) {
  tide_stream **ud = lua_touserdata(L, 1);
  tide_stream *s = *ud;
  if (s == NULL) return 0;
  *ud = NULL;
  s->ud = NULL;
  if (s->conns > 0) {  /* a serving server is pinned: this is the state
                         closing, and its handlers never return */
    s->conns = 0;
    if (s->flags & S_CLOSED) return handlers_gone(s), 0;
  }
  close_now(s);
  return 0;
}

/* --------------------------------------------------------------- servers */

/* [-0, +1, m] Accepts the connection waiting on server `s` and pushes its
 * stream, or pushes an error object. Returns 0 or the error. */
static int accept_one(lua_State *L, tide_stream *s) {
  tide_stream *c = tide_stream_alloc(s->io, s->kind);
  int err;
  if (c == NULL) {
    tide_lua_push_uverror(L, UV_ENOMEM);
    return UV_ENOMEM;
  }
  if (s->kind == TIDE_STREAM_TCP) err = uv_tcp_init(s->io->loop, &c->h.tcp);
  else err = uv_pipe_init(s->io->loop, &c->h.pipe, 0);
  if (err != 0) {
    free(c);
  } else {
    tide_stream_opened(c);
    if ((err = uv_accept(&s->h.stream, &c->h.stream)) == 0) tide_stream_apply(c, &s->opts);
    if (err != 0) close_now(c);
  }
  if (err != 0) {
    tide_lua_push_uverror(L, err);
    return err;
  }
  tide_stream_push(L, c, 0);
  return 0;
}

static int serve_conn_k(lua_State *L, int status, lua_KContext ctx);

/* The task of one connection of tide.tcp.serve / tide.pipe.serve:
 * handler(conn) under a traceback handler; an error is reported with its
 * traceback; conn is closed when the handler is done. */
static int serve_conn(lua_State *L) {
  /* 1: the handler, 2: the connection, 3: the server */
  lua_pushcfunction(L, tide_lua_traceback_handler);   /* 4 */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  return serve_conn_k(L, lua_pcallk(L, 1, 0, 4, 0, serve_conn_k), 0);
}

/* The last handler of closed server `s` is gone: close_now left it the
 * grace timer and one count of closes. `s` may be freed. */
static void handlers_gone(tide_stream *s) {
  if (s->flags & S_TIMER) {
    s->closes++;
    tide_timer_close(&s->timer, close_cb);
  }
  if (--s->closes == 0) finalize(s);
}

/* [-0, +0, m] A handler of server `srv` (the userdata at `idx`) returned:
 * it leaves the server's table of handlers; the last one of a closed
 * server lets the server finish closing. */
static void handler_done(lua_State *L, tide_stream *srv, int idx, int conn_idx) {
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, idx, SRV_CONNS);
  lua_pushvalue(L, conn_idx);
  lua_pushnil(L);
  lua_rawset(L, -3);  /* handlers[conn] = nil */
  lua_pop(L, 1);  /* remove the handlers */
  if (--srv->conns == 0 && (srv->flags & S_CLOSED)) handlers_gone(srv);
}

static int serve_conn_k(lua_State *L, int status, lua_KContext ctx) {
  tide_stream *s;
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    if (!tide_lp_is_cancelled_value(L, -1)) {
      lua_getfield(L, LUA_REGISTRYINDEX, "tide.traceback");
      lua_pushvalue(L, -2);  /* the error on top */
      tide_lua_report(L, "error in connection handler: ", lua_gettop(L) - 1);
      lua_pop(L, 2);  /* remove the error copy and the traceback */
    }
    lua_pop(L, 1);  /* remove the error */
  }
  s = *(tide_stream **)lua_touserdata(L, 2);
  if (s != NULL) tide_stream_close(L, s, DEFAULT_LINGER);
  if ((s = *(tide_stream **)lua_touserdata(L, 3)) != NULL) handler_done(L, s, 3, 2);
  return 0;
}

/* The catch handler of a connection's task (upvalues: the connection, the
 * server): the task failed with its handler's end not run, because its
 * body never started (not enough memory for the coroutine's first call)
 * or its end raised. Reports the error, then closes the connection and
 * lets the server go on, as serve_conn_k would have. */
static int serve_failed(lua_State *L) {
  tide_stream *s;
  lua_settop(L, 1);                                    /* 1: the error */
  lua_getiuservalue(L, lua_upvalueindex(2), SRV_CONNS); /* 2: the handlers */
  lua_pushvalue(L, lua_upvalueindex(1));
  if (lua_rawget(L, 2) == LUA_TNIL) return 0;          /* serve_conn_k ran */
  lua_settop(L, 1);
  if (!tide_lp_is_cancelled_value(L, 1)) tide_lua_report(L, "error in connection handler: ", 0);
  if ((s = *(tide_stream **)lua_touserdata(L, lua_upvalueindex(1))) != NULL)
    tide_stream_close(L, s, DEFAULT_LINGER);
  if ((s = *(tide_stream **)lua_touserdata(L, lua_upvalueindex(2))) != NULL)
    handler_done(L, s, lua_upvalueindex(2), lua_upvalueindex(1));
  return 0;
}

/* [-0, +0, m] Hands the connection waiting on serving server `s` to a new
 * task running its handler. */
static void serve_one(lua_State *L, tide_stream *s) {
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->pin);        /* top+1: the server */
  lua_getiuservalue(L, top + 1, SRV_CONNS);         /* top+2: its handlers */
  if (accept_one(L, s) != 0) {                      /* top+3: the connection */
    tide_lua_report(L, "serve: accept failed: ", 0);
    lua_settop(L, top);
    return;
  }
  lua_pushcfunction(L, serve_conn);                 /* top+4 */
  lua_getiuservalue(L, top + 1, SRV_HANDLER);       /* the handler */
  lua_pushvalue(L, top + 3);
  lua_pushvalue(L, top + 1);
  tide_task_spawn(L, top + 4, 3);                   /* top+4: the task */
  lua_pushvalue(L, top + 3);
  lua_pushvalue(L, top + 4);
  lua_rawset(L, top + 2);                           /* handlers[conn] = task */
  s->conns++;
  lua_getfield(L, top + 4, "catch");                /* task:catch(serve_failed) */
  lua_pushvalue(L, top + 4);
  lua_pushvalue(L, top + 3);
  lua_pushvalue(L, top + 1);
  lua_pushcclosure(L, serve_failed, 2);
  lua_call(L, 2, 0);
  lua_settop(L, top);
}

static void connection_cb(uv_stream_t *h, int status) {
  tide_stream *s = h->data;
  tide_rt *rt = s->io->rt;
  lua_State *L = live_state(s->io);
  int top;
  if (L == NULL) return;
  top = lua_gettop(L);
  if (status < 0) {
    tide_lua_push_uverror(L, status);
    if (s->pending) settle_waiter(L, s, TIDE_REJECTED);
    else {
      tide_lua_report(L, "accept failed: ", 0);
      lua_pop(L, 1);  /* remove the error */
    }
  } else if (s->flags & S_SERVE) {
    serve_one(L, s);
  } else if (s->pending) {
    int err = accept_one(L, s);
    settle_waiter(L, s, err ? TIDE_REJECTED : TIDE_FULFILLED);
  } else {
    s->flags |= S_READY;  /* libuv holds it until uv_accept */
  }
  tide_stack_check(L, top, 0);
  tide_rt_drain(rt);
}

static const char servers_key = 'V';

/* [-0, +0, m] Remembers the server userdata on top of the stack in the
 * runtime's weak set of servers, for tide_servers_close. */
static void track_server(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &servers_key) == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &servers_key);
  }
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);  /* servers[server] = true */
  lua_pop(L, 1);  /* remove the set */
}

/* [-0, +0, m] Closes every listening server of the runtime as close(grace)
 * does (a worker told to stop). Returns how many it closed. */
int tide_servers_close(lua_State *L, double grace) {
  int n = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &servers_key) == LUA_TNIL) return lua_pop(L, 1), 0;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    tide_stream *s = *(tide_stream **)lua_touserdata(L, -2);
    lua_pop(L, 1);  /* remove the value, keep the key */
    if (s != NULL && !(s->flags & S_CLOSING)) {
      tide_stream_close(L, s, grace);
      n++;
    }
  }
  lua_pop(L, 1);  /* remove the set */
  return n;
}

/* Starts listening on the bound server `s` (the userdata on top of the
 * stack) with `backlog`; a pipe server
 * removes its socket file when it closes. Returns 0 or a libuv error. */
int tide_server_listen(lua_State *L, tide_stream *s, int backlog) {
  int err;
  track_server(L);
  s->flags |= S_SERVER;
  if (s->kind == TIDE_STREAM_PIPE) s->flags |= S_UNLINK;  /* it bound the path */
  if ((err = uv_listen(&s->h.stream, backlog, connection_cb)) == 0) update(L, s);
  return err;
}

/* [-0, +0, m] Makes the server at `server_idx` hand each connection to a
 * new task running the function at `handler_idx`; the server stays alive
 * (pinned) until it is closed. Returns 0. */
int tide_server_serve(lua_State *L, int server_idx, int handler_idx) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, server_idx, TIDE_SERVER_MT);
  server_idx = lua_absindex(L, server_idx);
  lua_pushvalue(L, handler_idx);
  lua_setiuservalue(L, server_idx, SRV_HANDLER);
  lua_newtable(L);
  lua_setiuservalue(L, server_idx, SRV_CONNS);  /* its live handlers: conn -> task */
  s->flags |= S_SERVE;
  pin(L, s, server_idx);
  if (s->flags & S_READY) {  /* a connection came before: take it now */
    s->flags &= ~S_READY;
    serve_one(L, s);
  }
  return 0;
}

/* [-0, +1, e] tide.tcp/pipe.listen(opts) (`serve` 0) and .serve(opts,
 * handler) (`serve` 1): `listen` binds and listens as the options table at
 * 1 says and pushes the server; serve then hands each connection to a new
 * task running the handler at 2. Returns 1 (the server). */
int tide_server_open(lua_State *L, void (*listen)(lua_State *L, int idx), int serve) {
  lua_settop(L, serve ? 2 : 1);
  if (serve) luaL_checktype(L, 2, LUA_TFUNCTION);
  listen(L, 1);
  if (serve) tide_server_serve(L, 3, 2);
  return 1;
}

/* server:accept([timeout]) -> promise of the next connection's stream,
 * nil once the server is closed. */
static int srv_accept(lua_State *L) {
  tide_stream *s = *(tide_stream **)luaL_checkudata(L, 1, TIDE_SERVER_MT);
  double timeout = tide_lua_optseconds(L, 2);
  tide_sread *r;
  int err;
  if (s != NULL && s->pending != NULL) return luaL_error(L, "another accept is pending on this server");
  if (s != NULL && (s->flags & S_SERVE)) return luaL_error(L, "this server hands its connections to its handler");
  if (s == NULL || (s->flags & S_CLOSING)) {
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    lua_pushnil(L);
    tide_lp_settle(L, -2, TIDE_FULFILLED, -1, 1);
    lua_pop(L, 1);  /* remove the nil */
    return 1;
  }
  if (s->flags & S_READY) {  /* a connection is waiting */
    s->flags &= ~S_READY;
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    err = accept_one(L, s);
    tide_lp_settle(L, -2, err ? TIDE_REJECTED : TIDE_FULFILLED, -1, 1);
    lua_pop(L, 1);  /* remove the stream or the error */
    return 1;
  }
  r = (tide_sread *)push_held(L, 1, sizeof(tide_sread));
  r->op = OP_ACCEPT;
  s->pending = r;
  tide_promise_on_cancel(&r->base.p, read_cancel, s);
  if (timeout >= 0 && (err = timer_start(s, timeout, TM_READ)) != 0) {
    tide_lua_push_uverror(L, err);
    settle_waiter(L, s, TIDE_REJECTED);
  }
  return 1;
}

/* ---------------------------------------------------------------- fields */

/* s:set_limits{high_water=, low_water=, read_buffer=} -> s */
static int s_set_limits(lua_State *L) {
  tide_stream *s = tide_stream_check(L, 1, 0);
  tide_stream_opts o = s->opts;
  luaL_checktype(L, 2, LUA_TTABLE);
  o.nodelay = o.keepalive = -1;  /* limits only */
  tide_stream_opts_get(L, 2, &o);
  s->opts.high_water = o.high_water;
  s->opts.low_water = o.low_water;
  s->opts.read_limit = o.read_limit;
  update(L, s);
  lua_settop(L, 1);
  return 1;
}

/* [-0, +1, e] Pushes the peer's (peer) or the local address of the
 * stream: host and port for tcp, the path for a pipe. Returns the count. */
static int push_name(lua_State *L, tide_stream *s, int peer) {
  struct sockaddr_storage ss;
  char path[1024];
  int len = sizeof(ss), err;
  size_t plen = sizeof(path);
  if (s->kind == TIDE_STREAM_TCP) {
    err = peer ? uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len);
    if (err == 0) return tide_addr_push(L, (struct sockaddr *)&ss), 2;
  } else if (s->kind == TIDE_STREAM_PIPE) {
    err = peer ? uv_pipe_getpeername(&s->h.pipe, path, &plen)
               : uv_pipe_getsockname(&s->h.pipe, path, &plen);
    if (err == 0) return lua_pushlstring(L, path, plen), 1;
  } else if (s->kind == TIDE_STREAM_CUSTOM &&
             impl_get(L, s, peer ? "peername" : "sockname") != LUA_TNIL) {
    int top = lua_gettop(L) - 1;
    lua_call(L, 0, LUA_MULTRET);  /* the transport's names, usually */
    return lua_gettop(L) - top;
  } else {
    err = UV_ENOTSUP;
  }
  tide_lua_push_uverror(L, err);
  return lua_error(L);
}

/* s:peername() -> host, port (tcp) or path (pipe) of the peer. */
static int s_peername(lua_State *L) {
  return push_name(L, tide_stream_check(L, 1, 0), 1);
}

/* s:sockname() -> the local host, port (tcp) or path (pipe). */
static int s_sockname(lua_State *L) {
  return push_name(L, tide_stream_check(L, 1, 0), 0);
}

static const char *const kind_names[] = {"?", "tcp", "pipe", "tty", "file", "custom"};

/* [-0, +1, e] server.host and server.port (tcp), server.path (pipe). */
static int server_field(lua_State *L, tide_stream *s, const char *k) {
  int tcp = s->kind == TIDE_STREAM_TCP, path = strcmp(k, "path") == 0;
  if ((s->flags & S_CLOSING) || tcp == path) {
    lua_pushnil(L);
    return 1;
  }
  push_name(L, s, 0);
  if (tcp) lua_remove(L, k[0] == 'h' ? -1 : -2);  /* keep the host, or the port */
  return 1;
}

/* __index of streams and servers: methods, then fields. */
static int s_index(lua_State *L) {
  tide_stream *s = *(tide_stream **)lua_touserdata(L, 1);
  const char *k;
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;  /* a method */
  if ((k = lua_tostring(L, 2)) == NULL) return 1;
  if (strcmp(k, "closed") == 0) {
    lua_pushboolean(L, s == NULL || (s->flags & S_CLOSING));
  } else if (s == NULL) {
    lua_pushnil(L);
  } else if (strcmp(k, "kind") == 0) {
    if (s->kind != TIDE_STREAM_CUSTOM || impl_get(L, s, "kind") != LUA_TSTRING)
      lua_pushstring(L, kind_names[s->kind]);
  } else if (strcmp(k, "bytes_read") == 0) {
    lua_pushinteger(L, (lua_Integer)s->bytes_read);
  } else if (strcmp(k, "bytes_written") == 0) {
    lua_pushinteger(L, (lua_Integer)s->bytes_written);
  } else if (strcmp(k, "write_queued") == 0) {
    lua_pushinteger(L, (lua_Integer)(s->queued + s->cork_len));
  } else if (strcmp(k, "read_buffered") == 0) {
    lua_pushinteger(L, (lua_Integer)s->len);
  } else if (strcmp(k, "high_water") == 0) {
    lua_pushinteger(L, (lua_Integer)s->opts.high_water);
  } else if (strcmp(k, "low_water") == 0) {
    lua_pushinteger(L, (lua_Integer)s->opts.low_water);
  } else if (strcmp(k, "connections") == 0 && (s->flags & S_SERVER)) {
    lua_pushinteger(L, (lua_Integer)s->conns);
  } else if (strcmp(k, "read_buffer") == 0) {
    lua_pushinteger(L, (lua_Integer)s->opts.read_limit);
  } else if ((s->flags & S_SERVER) &&
             (strcmp(k, "host") == 0 || strcmp(k, "port") == 0 || strcmp(k, "path") == 0)) {
    return server_field(L, s, k);
  } else if (s->kind == TIDE_STREAM_CUSTOM) {  /* what its impl adds */
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->impl_ref);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int s_tostring(lua_State *L) {
  tide_stream *s = *(tide_stream **)lua_touserdata(L, 1);
  const char *what = luaL_testudata(L, 1, TIDE_SERVER_MT) ? "tide.server" : "tide.stream";
  if (s == NULL) lua_pushfstring(L, "%s (closed): %p", what, lua_touserdata(L, 1));
  else lua_pushfstring(L, "%s (%s%s): %p", what, kind_names[s->kind],
                       (s->flags & S_CLOSING) ? ", closed" : "", lua_touserdata(L, 1));
  return 1;
}

static const luaL_Reg stream_methods[] = {
  {"read", s_read},
  {"read_line", s_read_line},
  {"read_exactly", s_read_exactly},
  {"read_until", s_read_until},
  {"read_all", s_read_all},
  {"write", s_write},
  {"shutdown", s_shutdown},
  {"close", s_close},
  {"set_limits", s_set_limits},
  {"peername", s_peername},
  {"sockname", s_sockname},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"accept", srv_accept},
  {"close", s_close},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {  /* streams' and servers' */
  {"__gc", s_gc},
  {"__close", s_tbc_close},
  {"__tostring", s_tostring},
  {NULL, NULL}
};

static const luaL_Reg source_meta[] = {
  {"__gc", src_gc},
  {NULL, NULL}
};

/* [-0, +0, m] Creates the runtime's io state (the shared read buffer and
 * the fulfilled promise of writes that need not wait) and the stream and
 * server metatables. A write to a peer that left must fail with EPIPE, not
 * kill the process: SIGPIPE is ignored unless the host handles it (libuv
 * gives children the default disposition back). */
int tide_open_stream(lua_State *L) {
  struct sigaction sa;
  tide_io *io, **box;
  int mod = lua_gettop(L);
  if (tide_io_get(L) != NULL) return 0;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  box = lua_newuserdatauv(L, sizeof(*box), 0);
  *box = NULL;
  lua_createtable(L, 0, 1);  /* its __gc first: a failed allocation leaks nothing */
  lua_pushcfunction(L, io_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if ((*box = io = calloc(1, sizeof(*io))) == NULL) return luaL_error(L, "not enough memory");
  io->rt = tide_lua_get(L)->rt;
  io->loop = tide_rt_loop(io->rt);
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_settle(L, -1, TIDE_FULFILLED, -1, 0);
  io->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &io_key);  /* registry[&io_key] = box */
  /* registry[TIDE_STREAM_MT ".methods"] takes tcp.c's methods */
  tide_lua_newclass(L, TIDE_STREAM_MT, stream_meta, stream_methods, s_index);
  tide_lua_newclass(L, TIDE_SERVER_MT, stream_meta, server_methods, s_index);
  tide_lua_newclass(L, SOURCE_MT, source_meta, source_methods, src_index);  /* methods, then the field closed */
  lua_pushcfunction(L, l_stream);
  lua_setfield(L, mod, "stream");
  return 0;
}
