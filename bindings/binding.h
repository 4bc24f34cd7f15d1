/* binding.h — the private header of tide's Lua bindings: the runtime's Lua
 * side (tide_lua), the promise userdata every binding returns, and helpers
 * shared by the files of bindings/.
 *
 * Reference ownership, for every file of bindings/:
 *  - A promise userdata (lpromise) is kept alive from C by ONE registry
 *    reference (lp->ref) shared by a count of holds (lp->holds). The core
 *    takes holds through the promise ops (a listener registered on it, a
 *    queued callback, a running timer, the unhandled list); bindings take
 *    holds with tide_lp_hold() while the promise is on the stack, and drop
 *    them with tide_lp_drop(). The reference is dropped when the count
 *    reaches 0, so a promise nobody holds is collected like any Lua value.
 *  - Listeners of a promise are kept alive in one of two ways:
 *    - retained (tasks, combinators, adoption, host awaiters): the
 *      registration holds the source, and the listener's object holds
 *      itself (a hold or a registry reference) while registered: a pending
 *      promise with such listeners is kept alive until it settles;
 *    - unretained (next, catch, finally: TIDE_LISTENER_UNRETAINED), by
 *      reachability alone, with no registry reference: the source keeps
 *      the derived promise in its listener user value (lp->luv: the one
 *      derived promise, or a table derived -> true when there are more)
 *      and the derived promise keeps its source in UV_VALUES until its
 *      callback runs. An unreachable pending source goes with its derived
 *      promises (nothing could settle it). Settling holds the source for
 *      its queued callbacks, which keeps the derived promises reachable;
 *      each callback takes its derived promise out of the source's user
 *      value. Such a listener is never removed before its source settles.
 *  - Closing order: the `tide` binary and hosts close the Lua state first
 *    (finalizers close handles), then free the runtime, which runs the
 *    close callbacks. From then on tide_lua_of(rt) is NULL: a callback
 *    that runs after the state is gone must touch no Lua memory and not
 *    drain the queue; per-handle state lives in malloc'd memory for that.
 *  - Lua values of a promise live in its user values (see UV_* below),
 *    never in the registry; values settled from C are converted at once
 *    (the core's store hook), so promises own no C memory and have no
 *    finalizer (finalizers make the collector several times slower).
 */
#ifndef TIDE_BINDING_H
#define TIDE_BINDING_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

#include <assert.h>  /* every binding may assert; NDEBUG builds too */

#ifdef NDEBUG
#define tide_stack_check(L, top, delta) ((void)(L), (void)(top), (void)(delta))
#else
#define tide_stack_check(L, top, delta) assert(lua_gettop(L) == (top) + (delta))
#endif

#define TIDE_PROMISE_MT "tide.promise"
#define TIDE_ERROR_MT "tide.Error"

/* The Lua side of one runtime: one per lua_State (main thread). */
typedef struct tide_lua {
  tide_rt *rt;
  lua_State *L;             /* the main thread: callbacks run on it */
  int owns_rt;              /* the module created rt and frees it */
  int running;              /* inside tide.run / the binary's loop */
  int tracebacks_ref;       /* registry: weak table promise -> traceback */
  int promise_mt_ref;       /* registry: the promise metatable */
  const void *promise_mt;   /* ... and its address, for quick checks */
  unsigned reported;        /* unhandled rejections reported */
  int debug;                /* TIDE_DEBUG set: report misuse such as a second resolve */
  struct ltask *current;    /* the task running now, if any */
  struct ltask *main_task;  /* the task tide.run waits for: its end stops the turn */
  int tracking;             /* new tasks go into registry["tide.tracked"] */
} tide_lua;

/* User values of a promise userdata: slots 1 and 2 mean the same in every
 * promise, slots 3 and 4 have a name per kind of promise, used by the files
 * that make that kind and by nobody else. tide_lp_new takes the last slot
 * a promise uses (UV_EVENTS, UV_OWNER...), and adds lp->luv after it. */
enum {
  UV_VALUES = 1,            /* one value, or a table of nv values; a task:
                               its function until it starts, then its coroutine */
  UV_EVENTS = 2,            /* table: event name -> function or list */
  /* LP_NEXT (promise.c) */
  UV_ON_OK = 3,             /* the fulfilment handler, or nil */
  UV_ON_ERR = 4,            /* the rejection handler, or nil */
  /* LP_COMBINE (combine.c) */
  UV_OUTCOMES = 3,          /* table of the inputs' outcomes */
  UV_COMBINE = 4,           /* the `combine` userdata: one listener per input */
  /* an I/O operation's promise (stream.c, udp.c, fs.c, signal.c, ioutil.c) */
  UV_OWNER = 3,             /* the stream, socket, file or watcher it works
                               on: alive while the operation waits */
  UV_KEEP = 4               /* a value its C side points into (a read's
                               delimiter, a datagram being sent) */
};

/* What kind of object an lpromise is (what its listener does). */
enum {
  LP_PLAIN = 0,             /* made by tide.promise() or a binding */
  LP_NEXT,                  /* p:next / catch / finally: runs a handler */
  LP_TASK,                  /* a task: a coroutine */
  LP_COMBINE                /* all / race / any / settled / timeout */
};

enum {
  LP_PACKED = 1u << 0,      /* UV_VALUES holds a table {n = count, ...} */
  LP_ONE = 1u << 2,         /* UV_VALUES holds the one value */
  LP_FINALLY = 1u << 1,     /* LP_NEXT: the handler is a finally handler */
  LP_STREAM_OP = 1u << 3    /* a failed operation of the stream in UV_OWNER: left
                               unhandled, its error goes to the stream (stream.c) */
};

typedef struct lpromise {
  tide_promise p;           /* the core state machine: must be first */
  tide_listener l;          /* when this promise waits on another */
  int ref;                  /* registry reference while held */
  unsigned holds;
  unsigned char kind, flags;
  unsigned char luv;        /* user value of the unretained listeners (the last) */
  unsigned events_queued;   /* emitted events not delivered yet */
} lpromise;

#define tide__lp_of_listener(lst) \
  ((lpromise *)((char *)(lst) - offsetof(lpromise, l)))

/* alloc.c */
lua_State *tide_lua_newstate(void);
void tide_lua_closestate(lua_State *L);

/* util.c */
tide_lua *tide_lua_get(lua_State *L);
tide_lua *tide_lua_of(tide_rt *rt);
int tide_lua_open_rt(lua_State *L, tide_rt *rt);
int tide_lua_traceback_handler(lua_State *L);
int tide_lua_pcall(lua_State *L, int nargs, int nresults);
int tide_lua_pcallh(lua_State *L, int nargs, int nresults, int msgh);
void tide_lua_push_error(lua_State *L, const char *code, const char *message);
void tide_lua_push_uverror(lua_State *L, int status);
void tide_lua_report(lua_State *L, const char *what, int tb_idx);
void tide_lua_newclass(lua_State *L, const char *name, const luaL_Reg *meta,
                       const luaL_Reg *methods, lua_CFunction index);
const char *tide_lua_index_key(lua_State *L);
/* [-0, +1, m] Pushes the state's one userdata under registry key `key`,
 * made zeroed on the first call, with `gc` as its __gc; returns its block.
 * For what a file keeps per state and must end when the state closes. */
void *tide_lua_singleton(lua_State *L, const void *key, size_t size, lua_CFunction gc);
int tide_open_util(lua_State *L);
double tide_lua_checkseconds(lua_State *L, int idx);
uint64_t tide_lua_ms(double seconds);

/* promise.c */
lpromise *tide_lp_new(lua_State *L, size_t size, int kind, int nuv);
lpromise *tide_lp_check(lua_State *L, int idx);
lpromise *tide_lp_test(lua_State *L, int idx);
void tide_lp_hold(lua_State *L, int idx);
void tide_lp_drop(lpromise *lp);
int tide_lp_push(lua_State *L, lpromise *lp);
int tide_lp_push_values(lua_State *L, int idx);
int tide_lp_settle(lua_State *L, int idx, tide_state state, int first, int n);
void tide_lp_set_traceback(lua_State *L, int idx, int tb_idx);
int tide_lp_get_traceback(lua_State *L, int idx);
void tide_lp_listen(lua_State *L, int src_idx, tide_listener *l, tide_listener_cb cb);
int tide_lp_emit(lua_State *L, int idx, int first, int n);
void tide_lp_push_cancelled(lua_State *L);
void tide_lua_push_cvalue(lua_State *L, const tide_value *v);
int tide_lp_is_cancelled_value(lua_State *L, int idx);
void tide_lua_report_unhandled(tide_rt *rt, tide_promise *p);
int tide_open_promise(lua_State *L);

/* task.c */
typedef struct ltask ltask;
int tide_task_spawn(lua_State *L, int fn_idx, int nargs);
int tide_open_task(lua_State *L);
int tide_lp_cancel(lua_State *L, lpromise *lp);   /* any promise: p:cancel() */
lua_State *tide_task_thread(ltask *t);
int tide_lua_run_task(lua_State *L, int nargs);
int tide_task_cancel_due(lua_State *L);

/* timer.c */
int tide_open_timer(lua_State *L);

/* combine.c */
int tide_open_combine(lua_State *L);

/* group.c */
int tide_open_group(lua_State *L);

/* sync.c — waiter promises for queue.c, semaphore.c and event.c (Lua
 * parts of the module, loaded as group.c's is) */
void tide_lua_open_part(lua_State *L, const char *src, size_t len, const char *name,
                        const char *field);

/* queue.c, semaphore.c, event.c — tide.queue, tide.semaphore, tide.event */
int tide_open_queue(lua_State *L);
int tide_open_semaphore(lua_State *L);
int tide_open_event(lua_State *L);

/* charset.c */
int tide_open_charset(lua_State *L);

/* bytes.c — tide.mask; zlib.c — tide.zlib */
int tide_open_bytes(lua_State *L);
int tide_open_zlib(lua_State *L);

/* fields.c */
int tide_open_fields(lua_State *L);

/* resp.c */
int tide_open_resp(lua_State *L);

/* ioutil.c — shared by the files of bindings/: operations that hold their
 * promise while libuv works (tide_op_settle settles such a promise, then
 * drops the operation's hold), errors naming their subject, time limits,
 * and feeds (values a handle produces, handed out one per promise, queued
 * up to a bound). */
struct feed_wait;
typedef struct tide_feed {
  uv_handle_t *handle;        /* private: referenced while a promise waits */
  struct feed_wait *head, *tail;  /* private: waiting promises, oldest first */
  int arity;                  /* read-only: values per item */
  int queue_ref;              /* private: registry table of queued values */
  lua_Integer first, count;   /* private: the queued items */
  lua_Integer limit;          /* read-only: items queued at most */
  lua_Integer dropped;        /* read-only: items dropped on a full queue */
  lua_Integer errors;         /* read-only: errors nobody waited for */
  int closed;                 /* read-only */
} tide_feed;
lua_State *tide_op_state(tide_rt *rt, lpromise *lp);
void tide_op_settle(lua_State *L, lpromise *lp, tide_state state, int n);
void tide_op_fail(lua_State *L, lpromise *lp, int status, const char *subject);
void tide_lua_push_uverror_at(lua_State *L, int status, const char *subject);
lua_Integer tide_opt_int(lua_State *L, int idx, const char *key, lua_Integer def,
                         lua_Integer min, lua_Integer max);
int tide_opt_bool(lua_State *L, int idx, const char *key);
double tide_opt_seconds(lua_State *L, int idx, const char *key);
double tide_lua_optseconds(lua_State *L, int idx);
void tide_lua_timeout(lua_State *L, double seconds);
void tide_feed_init(lua_State *L, tide_feed *f, uv_handle_t *handle, int arity, lua_Integer limit);
void tide_feed_next(lua_State *L, tide_feed *f, int owner, double seconds);
int tide_feed_lnext(lua_State *L, tide_feed *f);
void tide_feed_push(lua_State *L, tide_feed *f);
void tide_feed_fail(lua_State *L, tide_feed *f);
void tide_feed_close(lua_State *L, tide_feed *f, int settle);
int tide_feed_field(lua_State *L, tide_feed *f, const char *key);

/* dns.c — tide.dns; numeric socket addresses for every binding */
int tide_addr_parse(const char *host, int port, struct sockaddr_storage *ss);
int tide_addr_push(lua_State *L, const struct sockaddr *sa);
int tide_open_dns(lua_State *L);

/* udp.c — tide.udp */
int tide_open_udp(lua_State *L);
int tide_udp_defer_error(lua_State *L, int ud_idx, int err_idx);

/* signal.c — tide.signal, tide.signals; signal names <-> numbers */
int tide_signal_number(const char *name);
const char *tide_signal_name(int signum);
int tide_open_signal(lua_State *L);

/* fs.c — tide.fs */
int tide_open_fs(lua_State *L);

/* work.c — tide.work, tide.work_module, tide.pool_size */
int tide_open_work(lua_State *L);

/* stream.c — the buffered stream every byte stream shares (tcp, pipe, tty,
 * process stdio, stdio files) and the server every listener shares.
 *
 * A stream is malloc'd (the GC may collect its userdata before libuv's
 * close callback) and freed in its last close callback. Its userdata holds
 * a pointer to it (NULL once it was freed); it points back to the
 * userdata's slot (NULL once the userdata was collected). Whatever waits
 * on a stream (a read, the drain of its writes, shutdown, close) is a held
 * promise whose user value UV_OWNER is the stream's userdata, so a stream with
 * an operation in flight is never collected; queued writes pin it with a
 * registry reference of their own. */
enum {
  TIDE_STREAM_TCP = 1,
  TIDE_STREAM_PIPE,
  TIDE_STREAM_TTY,
  TIDE_STREAM_FILE,         /* stdio on a file: reads and writes through uv_fs */
  TIDE_STREAM_CUSTOM        /* tide.stream: Lua functions write, a source feeds reads */
};

#define TIDE_STREAM_MT "tide.stream"
#define TIDE_SERVER_MT "tide.server"
#define TIDE_STREAM_LIMIT (64 * 1024)   /* read-ahead, high-water and line limits */

typedef struct tide_sread tide_sread;   /* a pending read or accept */
typedef struct tide_swait tide_swait;   /* a write waiting for the queue to drain */

/* Per runtime: what every stream shares. malloc'd, as close callbacks may
 * run after the Lua state closed (a host frees the runtime last): every
 * C object that points to it (stream, connect request, process) holds a
 * reference (tide_io_ref); the last one out, the Lua side gone, frees it. */
typedef struct tide_io {
  tide_rt *rt;
  uv_loop_t *loop;
  int done_ref;                   /* a fulfilled promise: writes that need not wait */
  unsigned refs;                  /* C objects pointing here */
  int lua_gone;                   /* the Lua state closed: callbacks touch no Lua */
  char *spare_cork;               /* a sent cork's buffer, for the next one */
  size_t spare_cap;
  char scratch[TIDE_STREAM_LIMIT];  /* libuv reads land here (alloc_cb, read_cb) */
} tide_io;

/* Settings a stream takes from connect/listen options and set_limits. */
typedef struct tide_stream_opts {
  size_t high_water, low_water;   /* write promise waits from high to low */
  size_t read_limit;              /* read ahead while no read waits, up to this */
  int nodelay;                    /* tcp: -1 unset, 0 off, 1 on */
  int keepalive;                  /* tcp: -1 unset, 0 off, else seconds */
} tide_stream_opts;

/* A C filter of a stream's reads (tls.c): the bytes the stream reads go to
 * `read` instead of its buffer, and its end (UV_EOF) or read error to
 * `end`; the stream reads while the custom stream over it (s->over) has
 * room, as its own reader would. */
struct tide_stream;
typedef struct tide_filter {
  void (*read)(lua_State *L, struct tide_stream *s, const char *p, size_t n, void *data);
  void (*end)(lua_State *L, struct tide_stream *s, int err_idx, void *data);  /* 0: EOF */
  void *data;
} tide_filter;

typedef struct tide_stream {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;                            /* private: unused by TIDE_STREAM_FILE */
  tide_timer timer;               /* private: timeouts, initialised on first use */
  tide_io *io;                    /* read-only */
  struct tide_stream **ud;        /* private: the userdata's slot, or NULL */
  unsigned flags;                 /* private */
  unsigned char kind;             /* read-only: TIDE_STREAM_* */
  unsigned char timer_use;        /* private */
  uint64_t deadline, armed;       /* private: loop time the timer is for, and armed for */
  int fd;                         /* read-only: the stdio fd it wraps, else -1 */
  int closes;                     /* private: close callbacks to come */
  /* reader */
  char *buf;                      /* private: buffered bytes buf[off, off+len) */
  size_t off, len, cap;
  int read_err;                   /* read-only: UV_EOF or the error that ended reading */
  tide_sread *pending;            /* private: the pending read or accept */
  /* writer */
  size_t queued;                  /* read-only: bytes written but not yet taken by the kernel */
  int write_err;                  /* read-only: the first write error */
  tide_swait *waiters, *last_waiter;   /* private: writes over the high-water mark */
  char *cork;                     /* private: small writes of a running task, */
  size_t cork_len, cork_cap;      /*   sent together once it yields (stream.c) */
  tide_job cork_job;              /* private: queued while cork_len > 0 */
  lpromise *shutdown, *closed;    /* private: held promises */
  int pin;                        /* private: registry ref to the userdata, or LUA_NOREF */
  uint64_t bytes_read, bytes_written;   /* read-only */
  tide_stream_opts opts;          /* read-only: limits; a server's: for its connections */
  /* files (stdio) */
  uv_fs_t *fsreq;                 /* private: the read in flight */
  char *fsbuf;
  /* custom streams (tide.stream) */
  int impl_ref;                   /* private: registry ref to the impl table */
  int rerr_ref, werr_ref;         /* private: registry refs to error values that
                                     ended reading or writing (S_ERR_VALUE) */
  struct tide_stream **source;    /* private: the source's slot, or NULL */
  lpromise *room;                 /* private: held promise a source waits on */
  int deferred_ref;               /* private: registry ref to a write error nobody
                                     handled, raised by the next operation */
  unsigned conns;                 /* read-only: a serving server's live handlers */
  double grace;                   /* private: a closing server's grace, seconds */
  struct cwrite *cwrites;         /* private: writes whose impl promise is pending */
  struct tide_stream *under;      /* private: a custom stream's impl.transport */
  tide_filter *filter;            /* private: takes what it reads (tide_stream_filter) */
  struct tide_stream *over;       /* private: the custom stream over this one: its
                                     reads keep the loop alive only while that
                                     stream has a read pending */
} tide_stream;

tide_io *tide_io_get(lua_State *L);
tide_io *tide_io_ref(tide_io *io);
void tide_io_unref(tide_io *io);
lua_State *tide_io_state(tide_io *io);
tide_stream *tide_stream_alloc(tide_io *io, int kind);
void tide_stream_opened(tide_stream *s);
tide_stream **tide_stream_push(lua_State *L, tide_stream *s, int server);
tide_stream *tide_stream_check(lua_State *L, int idx, int kind);
void tide_stream_opts_init(tide_stream_opts *o);
void tide_stream_opts_get(lua_State *L, int idx, tide_stream_opts *o);
int tide_stream_apply(tide_stream *s, const tide_stream_opts *o);
void tide_stream_close(lua_State *L, tide_stream *s, double linger);
void tide_stream_abort(tide_stream *s);
int tide_server_listen(lua_State *L, tide_stream *s, int backlog);
int tide_server_serve(lua_State *L, int server_idx, int handler_idx);
int tide_server_open(lua_State *L, void (*listen)(lua_State *L, int idx), int serve);
int tide_stream_defer_error(lua_State *L, int p_idx, int err_idx);
int tide_servers_close(lua_State *L, double grace);
void tide_stream_filter(lua_State *L, tide_stream *s, tide_filter *f);
void tide_stream_feed(lua_State *L, tide_stream *s, const char *p, size_t n);
void tide_stream_end(lua_State *L, tide_stream *s, int err_idx);
int tide_open_stream(lua_State *L);

/* connect.c — connecting a tcp or pipe stream: name resolution, one
 * attempt per address until one succeeds, a time limit, cancellation;
 * `opts_idx` is the connect's options table (stream options, timeout) or
 * nil. */
void tide_connect_tcp(lua_State *L, const char *host, int port, int opts_idx);
void tide_connect_pipe(lua_State *L, const char *path, int opts_idx);

/* tcp.c, pipe.c, stdio.c, process.c — tide.tcp, tide.pipe, tide.stdin /
 * stdout / stderr, tide.process */
int tide_open_tcp(lua_State *L);
int tide_open_pipe(lua_State *L);
int tide_open_stdio(lua_State *L);
int tide_open_process(lua_State *L);

/* watchdog.c — tide.watchdog, TIDE_WATCHDOG */
int tide_open_watchdog(lua_State *L);
int tide_watchdog_set(lua_State *L, double seconds);
double tide_watchdog_parse(const char *s);

/* tls.c — tide.ssl, the OpenSSL engine of lua/tide/tls.lua */
int tide_open_tls(lua_State *L);

/* Opens the `tide` module table onto the stack. */
int luaopen_tide(lua_State *L);

#endif
