/* tide.h — the public C API of tide: an async runtime for Lua 5.4 on libuv.
 *
 * This header is the embedding API. It is organised like uv.h: one section
 * per type, holding its struct, callback typedefs and functions. Fields are
 * marked public (read and write), read-only, or private (do not touch).
 *
 * Conventions:
 *  - Functions return 0 on success or a negative libuv error code
 *    (UV_EINVAL, UV_ENOMEM, ...). A function that takes a callback and fails
 *    never calls that callback.
 *  - Every object belongs to one runtime and is used from the runtime's loop
 *    thread only: the thread that called tide_rt_new(). The single
 *    exception is tide_post(), callable from any thread. Debug builds (no
 *    NDEBUG) check it: a call from another thread prints a message and
 *    returns UV_EPERM (functions without a result do nothing).
 *  - NULL where an object is required returns UV_EINVAL (functions without
 *    a result do nothing). Using an object after it was freed or disposed
 *    is undefined behaviour.
 *  - There is no global mutable state: many runtimes may live in one process.
 */
#ifndef TIDE_H
#define TIDE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TIDE_VERSION_MAJOR 0
#define TIDE_VERSION_MINOR 1
#define TIDE_VERSION_PATCH 0
#define TIDE_VERSION_STRING "0.1.0"

/* TIDE_EXTERN marks the public API. libtide.so and tide.so are built with
 * -fvisibility=hidden (as libuv with UV_EXTERN): they export the functions
 * this header declares and nothing else. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define TIDE_EXTERN __attribute__((visibility("default")))
#else
#define TIDE_EXTERN /* nothing */
#endif

typedef struct tide_rt tide_rt;
typedef struct tide_job tide_job;
typedef struct tide_promise tide_promise;
typedef struct tide_listener tide_listener;
typedef struct tide_value tide_value;

/* ---------------------------------------------------------------- values */

/* C values a promise can be settled with from C. Strings are bytes with a
 * length (embedded NULs allowed); the runtime copies them. */
typedef enum {
  TIDE_NIL = 0,
  TIDE_BOOLEAN,
  TIDE_INTEGER,
  TIDE_NUMBER,
  TIDE_BYTES
} tide_type;

struct tide_value {
  tide_type type;
  union {
    int boolean;
    int64_t integer;
    double number;
    struct { const char *data; size_t len; } bytes;
  } u;
};

static inline tide_value tide_nil(void) { tide_value v; v.type = TIDE_NIL; v.u.integer = 0; return v; }
static inline tide_value tide_boolean(int b) { tide_value v; v.type = TIDE_BOOLEAN; v.u.boolean = !!b; return v; }
static inline tide_value tide_integer(int64_t i) { tide_value v; v.type = TIDE_INTEGER; v.u.integer = i; return v; }
static inline tide_value tide_number(double n) { tide_value v; v.type = TIDE_NUMBER; v.u.number = n; return v; }
static inline tide_value tide_bytes(const char *data, size_t len) {
  tide_value v; v.type = TIDE_BYTES; v.u.bytes.data = data; v.u.bytes.len = len; return v;
}
static inline tide_value tide_string(const char *s) {
  size_t n = 0; while (s[n]) n++; return tide_bytes(s, n);
}

/* --------------------------------------------------------------- runtime */

typedef enum {
  TIDE_RUN_DEFAULT = 0,  /* until no handle, job or task keeps the loop alive */
  TIDE_RUN_ONCE,         /* one reactor turn, waiting for an event if needed */
  TIDE_RUN_NOWAIT        /* one reactor turn, never waiting */
} tide_run_mode;

typedef struct tide_options {
  uv_loop_t *loop;       /* a host's loop to run on; NULL: the runtime owns one */
  int threads;           /* worker threads of the pool; 0: TIDE_THREADS or cores */
  const char *lua_path;  /* prepended to package.path of the runtime's Lua
                            state (";"-separated templates); NULL: none */
  const char *lua_cpath; /* prepended to package.cpath likewise */
} tide_options;

/* Called when a rejected promise had no listener by the time the callback
 * queue drained. The default prints the rejection on stderr. */
typedef void (*tide_unhandled_cb)(tide_rt *rt, tide_promise *p);
/* A function run on the loop thread by tide_post(). */
typedef void (*tide_post_cb)(tide_rt *rt, void *data);

/* Creates a runtime. `opts` may be NULL for the defaults; the runtime keeps
 * copies of its strings. The calling thread becomes the runtime's loop
 * thread: every function but tide_post() must be called from it. With
 * opts->loop the runtime adds its handles (unreferenced: they never keep
 * the host's loop alive) to the host's loop, which must then be run on the
 * same thread. Returns 0 and sets *out, UV_EINVAL when `out` is NULL,
 * UV_ENOMEM, or the error of initialising the loop. */
TIDE_EXTERN int tide_rt_new(const tide_options *opts, tide_rt **out);

/* Frees the runtime, in this order: closes its Lua state (if it has one,
 * see tide_lua_state), drops posts and queued callbacks that have not run
 * (their functions are not called), shuts the pool down, stops sleeps,
 * closes the runtime's handles and runs their close callbacks. The
 * runtime's own loop is closed; a loop handed in by the host is left open,
 * empty of tide's handles, after turns in UV_RUN_NOWAIT mode until no
 * handle is closing (host callbacks that are due may run in them). NULL is ignored. Must not be
 * called from inside a callback of the runtime. Using the runtime, its
 * promises or its Lua state afterwards is undefined behaviour, and so is a
 * tide_post() that starts after tide_rt_free() returned: stop (join) the
 * threads that post first. */
TIDE_EXTERN void tide_rt_free(tide_rt *rt);

/* Runs the reactor, draining the callback queue after every reactor
 * callback, and before and after each turn (jobs a host queued between
 * runs). TIDE_RUN_DEFAULT returns when nothing keeps the runtime alive (no
 * active referenced handle or request, no queued callback, no waiting post,
 * no hold) or after tide_rt_stop(); TIDE_RUN_ONCE runs one turn, waiting
 * for an event when something is alive; TIDE_RUN_NOWAIT runs one turn
 * without waiting, and also reads a wake-up left by tide_post() when
 * nothing else is alive (so a host that saw the backend fd readable always
 * clears it). Returns non-zero when the runtime is still alive, 0 when it
 * is idle (the contract of uv_run()), UV_EINVAL for NULL, UV_EPERM off the
 * loop thread (debug builds). Must not be called from inside a callback of
 * the same runtime. */
TIDE_EXTERN int tide_rt_run(tide_rt *rt, tide_run_mode mode);

/* Makes a running tide_rt_run() return after the current reactor turn
 * (loop thread only: another thread posts a function that calls it). */
TIDE_EXTERN void tide_rt_stop(tide_rt *rt);

/* The runtime's libuv loop: hosts may add their own handles to it. NULL for
 * NULL. */
TIDE_EXTERN uv_loop_t *tide_rt_loop(tide_rt *rt);

/* The options the runtime was created with: `loop` is the loop it runs on
 * (its own or the host's), strings are the runtime's copies (valid until
 * tide_rt_free). NULL for NULL. */
TIDE_EXTERN const tide_options *tide_rt_options(tide_rt *rt);

/* Returns 1 when called on the runtime's loop thread (the thread that
 * created it), 0 otherwise or for NULL. */
TIDE_EXTERN int tide_rt_on_loop_thread(tide_rt *rt);

/* For hosts that drive tide from their own event loop (poll, select, GLib,
 * Qt). tide_rt_backend_fd() returns the fd to poll for readability (libuv's
 * epoll fd: it becomes readable for every event of the loop, tide_post()
 * included), or UV_EINVAL for NULL.
 *
 * tide_rt_backend_timeout() returns how long the host may wait on the fd
 * before calling tide_rt_run(rt, TIDE_RUN_NOWAIT) anyway, counted from
 * the moment of the call (so a host may ask again after its poll, to see
 * whether a timer has become due): 0 when tide has
 * work now (queued callbacks, waiting posts, pending or closing handles,
 * idle handles, a stop request, watchers libuv has yet to register with the
 * fd), the ms until the next timer, or -1 when only an event on the fd can
 * give tide work (an idle runtime waits there for posts). UV_EINVAL for
 * NULL, UV_EPERM off the loop thread (debug builds). Ask again after every
 * tide_rt_run(): the answer changes with what ran. */
TIDE_EXTERN int tide_rt_backend_fd(tide_rt *rt);
TIDE_EXTERN int tide_rt_backend_timeout(tide_rt *rt);

/* Keeps tide_rt_run(rt, TIDE_RUN_DEFAULT) running (hold) or lets it end
 * when idle (release), e.g. while a host thread will settle a promise
 * later. Holds count: each hold needs one release; a release without a
 * hold is ignored. Loop thread only. */
TIDE_EXTERN void tide_rt_hold(tide_rt *rt);
TIDE_EXTERN void tide_rt_release(tide_rt *rt);

/* Sets the unhandled-rejection reporter; NULL restores the default. */
TIDE_EXTERN void tide_rt_on_unhandled(tide_rt *rt, tide_unhandled_cb cb);

/* Number of unhandled rejections reported so far (0 for NULL). */
TIDE_EXTERN unsigned tide_rt_unhandled_count(tide_rt *rt);

/* Host data slot: free for the embedder. NULL rt: get returns NULL, set
 * does nothing. */
TIDE_EXTERN void *tide_rt_get_data(tide_rt *rt);
TIDE_EXTERN void tide_rt_set_data(tide_rt *rt, void *data);

/* The slot of tide's Lua bindings (the runtime's Lua side); not for hosts.
 * A binding that owns a Lua state for the runtime sets `close`, which
 * tide_rt_free() calls first, while the runtime is still whole. */
typedef void (*tide_binding_close_cb)(tide_rt *rt, void *binding);
TIDE_EXTERN void *tide_rt_binding(tide_rt *rt);
TIDE_EXTERN void tide_rt_set_binding(tide_rt *rt, void *binding);
TIDE_EXTERN void tide_rt_set_binding_close(tide_rt *rt, tide_binding_close_cb close);

/* The ONE thread-safe entry point: queues `fn(rt, data)` to run on the
 * runtime's loop thread, at its next reactor turn, after the posts made
 * before it (from any thread). Callable from any thread, the loop thread
 * included. Returns 0, UV_EINVAL when `rt` or `fn` is NULL, UV_ENOMEM, or
 * UV_ECANCELED once tide_rt_free() has begun (fn is then never called and
 * `data` stays the caller's). A post waiting when the runtime is freed is
 * dropped without being called. tide_rt_run() in the default mode does not
 * return while posts are waiting, but a post made later does not keep it
 * running: tide_rt_hold() before handing work to a thread, and release in
 * the posted function. */
TIDE_EXTERN int tide_post(tide_rt *rt, tide_post_cb fn, void *data);

/* ------------------------------------------------------ callback queue */

/* A unit of deferred work. The queue is drained completely after each
 * reactor callback, first queued first run. Jobs are intrusive: embed one in
 * your own struct and recover it with container_of-style arithmetic. */
typedef void (*tide_job_cb)(tide_rt *rt, tide_job *job);

struct tide_job {
  tide_job_cb cb;        /* private */
  tide_job *next;        /* private */
};

/* Queues `job` to run `cb` from the callback queue: it runs at the next
 * drain, never inside this call. A job must not be queued twice at once.
 * NULL arguments are ignored. */
TIDE_EXTERN void tide_job_queue(tide_rt *rt, tide_job *job, tide_job_cb cb);

/* Runs queued jobs until the queue is empty (jobs queued meanwhile
 * included), then reports unhandled rejections. Reactor callbacks of tide
 * do this themselves, and tide_rt_run does before and after each turn; a
 * host calls it after settling promises outside a tide callback when it
 * wants the listeners to run before its next tide_rt_run. A call from
 * inside a job returns at once (the outer drain goes on). NULL is
 * ignored; off the loop thread it does nothing (debug builds). */
TIDE_EXTERN void tide_rt_drain(tide_rt *rt);

/* --------------------------------------------------------------- promise */

typedef enum {
  TIDE_PENDING = 0,
  TIDE_FULFILLED,
  TIDE_REJECTED
} tide_state;

/* Owner hooks: how the runtime keeps a promise alive while it needs it.
 * The runtime retains a promise for each registered listener (unless the
 * listener is flagged TIDE_LISTENER_UNRETAINED), each queued callback, a
 * running timer and a place in the unhandled list, and releases it when
 * that ends. Both hooks may be NULL (the owner keeps the memory
 * alive some other way). */
typedef struct tide_promise_ops {
  void (*retain)(tide_promise *p);
  void (*release)(tide_promise *p);
  /* When set, the owner keeps the values itself: tide_promise_resolve and
   * tide_promise_reject hand them to `store` (before the state changes)
   * instead of copying them into p->values. Returns 0 or an error. */
  int (*store)(tide_promise *p, const tide_value *values, int n);
} tide_promise_ops;

/* A producer's way to stop the operation behind a promise (see
 * tide_promise_cancel and tide_promise_detach). It stops the work and
 * releases what it holds; it does not settle `p` (the runtime rejects it
 * as cancelled right after, or its owner settles it). */
typedef void (*tide_cancel_cb)(tide_promise *p, void *data);

/* Called when the promise it listens to settles. `source` is the settled
 * promise; `l->source` is NULL by then. */
typedef void (*tide_listener_cb)(tide_listener *l, tide_promise *source);

/* Listener flags (tide_listener.flags). */
enum {
  /* The registration does not retain the promise listened to: the owner
   * keeps both alive some other way (the Lua bindings: the promise keeps
   * its listener's object, which keeps the promise). The queued call
   * still retains it. */
  TIDE_LISTENER_UNRETAINED = 1u << 0
};

struct tide_listener {
  tide_listener_cb cb;        /* read-only: set by tide_promise_listen */
  void *data;                 /* public */
  unsigned flags;             /* public: TIDE_LISTENER_*, set before listening
                                 and left alone while registered */
  tide_promise *source;       /* read-only: the promise listened to, while pending */
  /* private */
  tide_listener *prev, *next;
  tide_promise *queued;       /* the settled source, while the call is queued */
  tide_job job;
};

struct tide_promise {
  void *data;                     /* public */
  tide_rt *rt;                    /* read-only */
  const tide_promise_ops *ops;    /* read-only */
  unsigned char state;            /* read-only: a tide_state */
  unsigned char flags;            /* private */
  int nvalues;                    /* read-only: C values it was settled with */
  tide_value *values;             /* read-only: owned copies (bytes included) */
  /* private */
  tide_listener *head, *tail;
  tide_cancel_cb cancel_cb;
  void *cancel_data;
  tide_promise *unhandled_next;
};

/* Initialises a pending promise of `rt` in memory the caller owns. `ops`
 * may be NULL. Memory must stay valid until tide_promise_dispose() and
 * while the runtime retains the promise (see tide_promise_ops). NULL
 * arguments are ignored. */
TIDE_EXTERN void tide_promise_init(tide_rt *rt, tide_promise *p, const tide_promise_ops *ops);

/* Releases what the promise owns (copied values) and detaches listeners
 * still waiting on it; after this the caller may free its memory. It does
 * not stop a producer that still refers to a pending promise (a sleep, a
 * pool job): tide_promise_cancel() it first. NULL is ignored. */
TIDE_EXTERN void tide_promise_dispose(tide_promise *p);

/* Settles with C values: `n` values for resolve (`values` may be NULL when
 * n is 0), one error value for reject (NULL: nil). The values are copied
 * (bytes included) or converted by the owner's store hook, so the caller's
 * memory may go once the call returns. Listeners run later from the
 * callback queue, never inside the call. Returns 0, UV_EALREADY when the
 * promise has settled already (a promise settles once: the values are
 * ignored), UV_EINVAL for NULL, n < 0, or a value of unknown type or with
 * NULL bytes, UV_ENOMEM, UV_EPERM off the loop thread (debug builds). */
TIDE_EXTERN int tide_promise_resolve(tide_promise *p, const tide_value *values, int n);
TIDE_EXTERN int tide_promise_reject(tide_promise *p, const tide_value *error);

/* Settles without C values: the owner keeps the values itself (the Lua
 * bindings keep Lua values beside the promise). Same rules as above;
 * UV_EINVAL also for a state other than fulfilled or rejected. */
TIDE_EXTERN int tide_promise_settle(tide_promise *p, tide_state state);

/* Registers `l` to run `cb` when `p` settles, after every listener registered
 * before it. On a settled promise the callback is queued at once (it still
 * runs from the queue, never inside this call). A listener counts as a
 * consumer: a rejection it receives is never reported as unhandled. The
 * registration retains `p` (see tide_promise_ops) unless `l->flags` has
 * TIDE_LISTENER_UNRETAINED.
 * Returns 0, UV_EINVAL for NULL, UV_EBUSY when `l` listens to a promise or
 * its call is queued (a listener listens to one promise at a time). */
TIDE_EXTERN int tide_promise_listen(tide_promise *p, tide_listener *l, tide_listener_cb cb);

/* Removes a listener that has not been called. Returns 0, UV_ENOENT when
 * it is not registered (already called or queued, or never registered),
 * UV_EINVAL for NULL. */
TIDE_EXTERN int tide_listener_remove(tide_listener *l);

/* Installs (or with NULL removes) the producer's cancel hook. Settling
 * the promise removes it. NULL `p` is ignored. */
TIDE_EXTERN void tide_promise_on_cancel(tide_promise *p, tide_cancel_cb cb, void *data);

/* Asks the producer of a pending promise to stop (its cancel hook), then
 * rejects the promise with the string "cancelled" and marks it cancelled
 * (and handled: a cancellation is never reported as unhandled). Returns 0,
 * UV_ENOTSUP when the promise has no cancel hook (nothing changes),
 * UV_EALREADY when settled, UV_EINVAL for NULL. */
TIDE_EXTERN int tide_promise_cancel(tide_promise *p);

/* Stops the producer of a pending promise (runs and removes its cancel
 * hook) without settling the promise, for an owner that settles it with
 * values of its own right after: a Lua promise settled by hand while an
 * operation still works on it. The caller must keep `p` alive across the
 * call (the hook may drop the producer's hold). Returns 0, UV_ENOTSUP when
 * the promise has no cancel hook (nothing changes), UV_EALREADY when
 * settled, UV_EINVAL for NULL. */
TIDE_EXTERN int tide_promise_detach(tide_promise *p);

/* Rejects a pending promise as cancelled, as above, without a hook.
 * Returns 0, UV_EALREADY when settled, UV_EINVAL for NULL. */
TIDE_EXTERN int tide_promise_reject_cancelled(tide_promise *p);

/* Non-zero when `p` was rejected as cancelled (0 for NULL). */
TIDE_EXTERN int tide_promise_is_cancelled(const tide_promise *p);

/* Marks a rejection as handled so it is not reported (for consumers that do
 * not register a listener, such as a synchronous await). */
TIDE_EXTERN void tide_promise_mark_handled(tide_promise *p);

/* Number of registered listeners not yet called (0 for NULL). */
TIDE_EXTERN int tide_promise_listeners(const tide_promise *p);

/* ------------------------------------------------------------------ timer */

/* Settles `p` (fulfilled, no values) after `ms` milliseconds, unless
 * cancelled first: tide_promise_cancel(p) then stops the timer. `p` must be
 * pending and have no cancel hook (the timer installs its own). The timer
 * keeps `p` retained while it runs, and keeps tide_rt_run() in the default
 * mode running (a referenced libuv timer). tide_rt_free() stops sleeps
 * still running without settling them. Returns 0, UV_EINVAL (NULL, `p` not
 * pending or with a cancel hook), UV_ENOMEM, UV_EPERM off the loop thread
 * (debug builds). */
TIDE_EXTERN int tide_sleep(tide_rt *rt, tide_promise *p, uint64_t ms);

/* A one-shot timer on the runtime's clock (below): what tide's own timers
 * (sleeps, stream and connect timeouts) are made of, and the timer a host
 * uses to follow virtual time too. It is a handle: tide_timer_init() gives
 * it a libuv timer handle, which tide_timer_close() closes (free the
 * struct in or after `close_cb`, whose handle's `data` is t->data). */
typedef struct tide_timer tide_timer;
typedef void (*tide_timer_cb)(tide_timer *t);

struct tide_timer {
  void *data;                       /* public */
  uv_timer_t uv;                    /* private: the libuv timer (real clock) */
  tide_rt *rt;                      /* read-only */
  tide_timer_cb cb;                 /* private */
  uint64_t due;                     /* read-only: tide_rt_now() when due */
  uint64_t seq;                     /* private: start order */
  size_t pos;                       /* private: place in the virtual heap */
  unsigned flags;                   /* private */
  tide_timer *prev, *next;          /* private: rt's running timers */
};

/* Initialises `t` on `rt`, stopped and referenced. Returns 0, UV_EINVAL. */
TIDE_EXTERN int tide_timer_init(tide_rt *rt, tide_timer *t);
/* The same, for a timer that stays on the real clock (libuv's) even while
 * the runtime runs on virtual time: a watchdog, such as a test's deadline.
 * Its `due` is in libuv's loop time. */
TIDE_EXTERN int tide_timer_init_real(tide_rt *rt, tide_timer *t);
/* Calls `cb` once `ms` milliseconds of the runtime's clock have passed
 * (restarts a running timer). Timers due at the same time run in start
 * order. Returns 0, UV_EINVAL (NULL, closing). */
TIDE_EXTERN int tide_timer_start(tide_timer *t, tide_timer_cb cb, uint64_t ms);
/* Stops `t`; stopping a stopped timer does nothing. */
TIDE_EXTERN void tide_timer_stop(tide_timer *t);
/* A referenced running timer keeps tide_rt_run() running (as uv_ref). */
TIDE_EXTERN void tide_timer_ref(tide_timer *t);
TIDE_EXTERN void tide_timer_unref(tide_timer *t);
/* Whether `t` runs (started and not yet due, nor stopped). */
TIDE_EXTERN int tide_timer_is_active(const tide_timer *t);
/* Stops `t` and closes its handle: `close_cb` (may be NULL) runs from the
 * loop as uv_close's, with the handle's `data` set to t->data. */
TIDE_EXTERN void tide_timer_close(tide_timer *t, uv_close_cb close_cb);

/* ------------------------------------------------------------------ clock */

/* A runtime runs on the real clock (libuv's loop time) or on a virtual
 * one. On virtual time tide_rt_now() and every tide_timer (so every sleep,
 * timeout, interval, stream read timeout, linger, grace and connect
 * timeout) follow a clock that moves only:
 * - by tide_rt_clock_advance(), which fires the timers due up to the new
 *   time, in due order, on the next turn of the loop;
 * - by itself (autojump, after trio's autojump clock) when `autojump_ms`
 *   is >= 0: once nothing has run in the runtime for `autojump_ms` ms of
 *   real time (0: at once, as soon as one turn of the loop found nothing to
 *   do), the clock jumps to the next timer and fires it. Real work in
 *   flight (a file operation, a worker, a peer on a socket) races with the
 *   jumps: give it a threshold, or move the clock by hand.
 * With autojump on, a referenced virtual timer keeps the loop alive as a
 * real one does; without it, virtual timers do not (nothing would move the
 * clock: the loop ends and the host sees what waits).
 * tide_rt_clock_virtual(rt, 0, ...) returns to the real clock. Running
 * timers keep their due time across a switch, and the clock never goes
 * back: real time resumes from where virtual time stood. Returns 0,
 * UV_EINVAL for NULL, UV_EPERM off the loop thread (debug builds). */
TIDE_EXTERN int tide_rt_clock_virtual(tide_rt *rt, int on, int64_t autojump_ms);
/* Whether rt runs on virtual time (0 for NULL). */
TIDE_EXTERN int tide_rt_clock_is_virtual(tide_rt *rt);
/* Moves virtual time `ms` forward (counted from the time already asked
 * for, when an advance is under way); the timers due meanwhile fire on the
 * next turn of the loop. Returns 0, UV_EINVAL (NULL, real clock). */
TIDE_EXTERN int tide_rt_clock_advance(tide_rt *rt, uint64_t ms);

/* ----------------------------------------------------------- thread pool */

/* Each runtime has its own pool of worker threads, separate from libuv's
 * threadpool (fs, DNS), started on the first submit. Its size is
 * tide_options.threads, else the environment variable TIDE_THREADS, else the
 * number of CPUs the process may use. A job (tide_work) runs its work
 * function on a worker, then its after function on the loop thread. A job
 * may be tied to a promise, which its after function settles.
 *
 * Nothing is shared between the loop thread and the workers but the pool's
 * queue and completion list, both under one mutex: a job's memory belongs to
 * the worker while its work function runs and to the loop thread otherwise.
 *
 * tide_rt_free() shuts the pool down: jobs still queued never run, running
 * jobs are waited for (a work function cannot be interrupted), the workers
 * are joined, and every job not yet ended gets after(req, UV_ECANCELED) —
 * at that point the runtime is half torn down: the after function must only
 * release memory, never settle a promise or call into the runtime. */

typedef struct tide_work tide_work;
typedef struct tide_work_msg tide_work_msg;
typedef struct tide_worker tide_worker;
typedef struct tide_worker_key tide_worker_key;

/* Runs on worker `w`. Must not touch the runtime (its promises, its loop)
 * except through tide_work_send() and tide_post(). */
typedef void (*tide_work_cb)(tide_work *req, tide_worker *w);
/* Runs on the loop thread when the job has ended: `status` is 0 after the
 * work function ran, UV_ECANCELED when the job was cancelled before it
 * started (the work function did not run) or when the runtime is being
 * freed. The request may be freed or submitted again from here. */
typedef void (*tide_after_work_cb)(tide_work *req, int status);
/* Runs on the loop thread for a message a job sent with tide_work_send(),
 * in the order of sending and before the job's after function. `status`
 * is 0, or UV_ECANCELED when the runtime is being freed (release `msg`
 * only). */
typedef void (*tide_work_msg_cb)(tide_work *req, tide_work_msg *msg, int status);

/* A message from a running job to the loop thread (tide_work_send). */
struct tide_work_msg {
  tide_work *req;             /* read-only */
  /* private */
  tide_work_msg_cb cb;
  tide_work_msg *next;
};

struct tide_work {
  void *data;                 /* public */
  tide_rt *rt;                /* read-only */
  tide_promise *promise;      /* read-only: the job's promise, or NULL */
  /* private */
  tide_work_cb work_cb;
  tide_after_work_cb after_cb;
  tide_work *prev, *next;     /* the pool's queue */
  int state;
  int status;
  tide_work_msg done;         /* the job's end, on the completion list */
};

/* Per-worker data, one slot per key. A key is the address of a
 * tide_worker_key the caller owns (a static const one is fine: it holds
 * only the destructor). `fini` runs on the worker thread when it exits at
 * shutdown, for each slot set, the last set first. */
struct tide_worker_key {
  void (*fini)(void *value);
};

/* Queues a job: `work` will run on a worker, then `after` on the loop
 * thread. Both callbacks are required. `p` may be NULL; otherwise it must
 * be a pending promise of `rt` with no cancel hook, and the job:
 *  - retains `p` until `after` has returned;
 *  - installs a cancel hook on it: tide_promise_cancel(p) cancels the job if
 *    it has not started (after then runs with UV_ECANCELED); a running job
 *    runs to completion and its after function finds `p` already settled
 *    (settling it again is harmless: UV_EALREADY);
 *  - rejects `p` as cancelled if `after` left it pending with UV_ECANCELED.
 * `after` is expected to settle `p`. Starts the pool's workers on first use.
 * Returns 0, UV_EINVAL (bad arguments), UV_EBUSY (the runtime is being
 * freed), UV_EPERM off the loop thread (debug builds) or the error of
 * creating the first worker thread. A request must not be submitted again
 * before its after function has been called. Loop thread only. */
TIDE_EXTERN int tide_work_submit(tide_rt *rt, tide_work *req, tide_promise *p,
                                 tide_work_cb work, tide_after_work_cb after);

/* Cancels a job that has not started: it will never run, and its after
 * function runs with UV_ECANCELED from the loop (never inside this call).
 * Returns 0, UV_EBUSY when the job is running or has run (its after
 * function is still to come), UV_EINVAL when the request is not in flight
 * (ended; a request never submitted must be zeroed for this answer),
 * UV_EPERM off the loop thread (debug builds). Loop thread only. */
TIDE_EXTERN int tide_work_cancel(tide_work *req);

/* From inside the work function of `req` (on its worker): queues `msg` for
 * `cb` on the loop thread, where it runs in order, before the job's after
 * function. `msg` is caller memory (embed it in a struct that carries the
 * payload) and must stay valid until `cb` has run; `cb` owns it then.
 * Returns 0, or UV_EINVAL when `req` is not running. */
TIDE_EXTERN int tide_work_send(tide_work *req, tide_work_msg *msg, tide_work_msg_cb cb);

/* The data of worker `w` under `key`, or NULL. Worker thread only. */
TIDE_EXTERN void *tide_worker_get(tide_worker *w, const tide_worker_key *key);
/* Sets the data of worker `w` under `key` (NULL clears the slot without
 * calling fini). Returns 0 or UV_ENOMEM. Worker thread only. */
TIDE_EXTERN int tide_worker_set(tide_worker *w, const tide_worker_key *key, void *value);
/* Index of worker `w` in its pool: 0 .. size-1. */
TIDE_EXTERN int tide_worker_index(const tide_worker *w);

/* The pool's number of worker threads: the running ones once started,
 * the number it will start otherwise. UV_EINVAL for NULL. */
TIDE_EXTERN int tide_pool_size(tide_rt *rt);

/* -------------------------------------------------------------------- lua */

/* The runtime's Lua side, for hosts. These functions live in the bindings
 * (bindings/host.c) and need no Lua header here; include <lua.h> to use
 * the lua_State they give. All of them are loop-thread functions.
 *
 * C values crossing to C: results and errors of Lua reach C hosts as
 * tide_values. nil, booleans, integers, floats and strings convert as they
 * are (a string's bytes stay valid until the callback returns); any other
 * value (a table, a function, an error object) arrives as TIDE_BYTES
 * holding tostring(value): error objects give "CODE: message", a table
 * without __tostring gives "table: 0x...". Hosts that need structure
 * convert in Lua (a table to a string, say) before the value reaches C. */

struct lua_State;
/* A Lua C function: the same type as lua_CFunction. */
typedef int (*tide_lua_fn)(struct lua_State *L);

/* Called once when a Lua promise or task ends (tide_lua_await,
 * tide_dofile, tide_dostring), from the callback queue. `state` is
 * TIDE_FULFILLED with the `n` results, or TIDE_REJECTED with values[0] the
 * error and, when one was recorded, values[1] the traceback (n is then 2).
 * `values` is valid during the call only. */
typedef void (*tide_done_cb)(tide_rt *rt, tide_state state, const tide_value *values,
                             int n, void *data);

/* Sets *out to the runtime's Lua state, creating it at the first call:
 * the standard libraries, the tide module (global `tide`, and
 * package.loaded.tide for require), package.path and package.cpath
 * prefixed with tide_options.lua_path and lua_cpath. The state belongs to
 * the runtime: tide_rt_free() closes it (do not lua_close it). Its memory
 * comes from tide's small-block allocator (free lists per block size, kept
 * for reuse until the state closes), as the `tide` binary's does; a host
 * that wants its own allocator makes the state itself and attaches it
 * (tide_lua_attach). Scripts in
 * it run as tasks started by tide_dofile/tide_dostring, driven by
 * tide_rt_run or the host's loop; tide.run() inside it raises (the loop is
 * the host's). When the host attached a state of its own
 * (tide_lua_attach), *out is that state. Returns 0, UV_EINVAL for NULL,
 * UV_ENOMEM, UV_EPERM off the loop thread (debug builds). */
TIDE_EXTERN int tide_lua_state(tide_rt *rt, struct lua_State **out);

/* Loads the tide module into `L`, a state the host owns, running on `rt`
 * (global `tide` and package.loaded.tide; the paths of the options are
 * prefixed as above). Call it after luaL_openlibs. The host must
 * lua_close(L) before tide_rt_free(rt). Returns 0, UV_EINVAL for NULL,
 * UV_EBUSY when `rt` has a Lua state or `L` a runtime already, UV_ENOMEM,
 * UV_EPERM off the loop thread (debug builds). */
TIDE_EXTERN int tide_lua_attach(tide_rt *rt, struct lua_State *L);

/* The runtime `L` runs on, or NULL when tide is not loaded in it. Any
 * coroutine of the state will do: host functions use it. */
TIDE_EXTERN tide_rt *tide_lua_rt(struct lua_State *L);

/* Loads the Lua file `path` (or the `chunk` string) in the runtime's state
 * (created if needed) and starts it as a task: it begins at the next drain
 * of the callback queue (tide_rt_run, or tide_rt_drain), never inside this
 * call. The chunk's results, or its error, go to `done` when it ends; a
 * file that cannot be read or does not compile is a task that failed with
 * the loader's message. With `done` NULL an error is reported like any
 * unhandled rejection (on stderr with its traceback, and counted by
 * tide_rt_unhandled_count). Returns 0 once started, UV_EINVAL for NULL
 * `rt` or `path`/`chunk`, UV_ENOMEM, UV_EPERM off the loop thread (debug
 * builds); `done` is called only after 0. */
TIDE_EXTERN int tide_dofile(tide_rt *rt, const char *path, tide_done_cb done, void *data);
TIDE_EXTERN int tide_dostring(tide_rt *rt, const char *chunk, tide_done_cb done, void *data);

/* Calls `done` with the outcome of the promise (or task) at index `idx` of
 * `L`, converted to C values, once it settles: from the callback queue,
 * never inside this call, even when the promise has settled already.
 * Awaiting counts as handling a rejection. Returns 0, UV_EINVAL when `L`
 * or `done` is NULL or the value is not a promise, UV_ENOMEM, UV_EPERM
 * off the loop thread (debug builds). The stack is left as it was. */
TIDE_EXTERN int tide_lua_await(struct lua_State *L, int idx, tide_done_cb done, void *data);

/* Makes `fn` callable from Lua as `module.name` (package.loaded[module],
 * created empty when missing, so require(module) finds it), or as the
 * global `name` when `module` is NULL. `fn` is a plain Lua C function: it
 * raises errors with luaL_error, finds its runtime with tide_lua_rt(L),
 * and must not wait (have it return a promise: tide_lua_register_async).
 * Creates the runtime's state if needed. Returns 0, UV_EINVAL for NULL
 * `rt`, `name` or `fn`, UV_ENOMEM, UV_EPERM off the loop thread (debug
 * builds). */
TIDE_EXTERN int tide_lua_register(tide_rt *rt, const char *module, const char *name, tide_lua_fn fn);

/* An async host function. It is called with the Lua arguments on `L`'s
 * stack (1 .. lua_gettop(L): check them with luaL_check* and raise at
 * once on misuse, before keeping `p`) and a pending promise `p` that Lua
 * receives as the call's result. The host settles `p` later, on the loop
 * thread, with tide_promise_resolve (nil, boolean, integer, number, bytes)
 * or tide_promise_reject (Lua sees the error value: a string is best); a
 * host thread gets there with tide_post(). It may settle `p` before
 * returning when the result is at hand, and may install a cancel hook
 * (tide_promise_on_cancel) that stops the work when Lua cancels the call:
 * then `p` is rejected as cancelled for it. `p` is valid until it is
 * settled (by the host or by that cancellation); without a hook, a
 * cancelled call stays valid until the host settles it (the result is
 * dropped). Return 0, or a negative libuv error to fail the call: the
 * promise is then rejected with that error (code, message) and the host
 * must not keep `p`. A pending call keeps tide_rt_run() in the default
 * mode running, like a libuv request. */
typedef int (*tide_async_fn)(tide_rt *rt, struct lua_State *L, tide_promise *p, void *data);

/* Makes async function `fn` callable from Lua as `module.name` (as for
 * tide_lua_register); `data` is passed to every call. Returns as
 * tide_lua_register. */
TIDE_EXTERN int tide_lua_register_async(tide_rt *rt, const char *module, const char *name,
                                        tide_async_fn fn, void *data);

/* Starts the blocked-loop watchdog of runtime `rt` (as TIDE_WATCHDOG and
 * tide.watchdog do): when the loop does not turn for `ms` milliseconds, a
 * thread of its own has the Lua stack running then printed to stderr, and
 * the loop goes on. 0 stops it. Creates the runtime's state if needed.
 * Returns 0, UV_EINVAL for NULL `rt`, UV_ENOMEM, or a libuv error of
 * thread creation; loop thread only. */
TIDE_EXTERN int tide_lua_watchdog(tide_rt *rt, unsigned ms);

/* The Lua module's entry point: require "tide" in a stock lua5.4 calls it
 * (tide.so), and the module gets a runtime of its own, run by tide.run().
 * Hosts that own a runtime load the module with tide_lua_state or
 * tide_lua_attach instead. */
TIDE_EXTERN int luaopen_tide(struct lua_State *L);

/* ------------------------------------------------------------ statistics */

/* The runtime's time in milliseconds: the loop's cached monotonic time
 * (updated at each reactor turn, as uv_now()) on the real clock, virtual
 * time on a virtual one (see clock); it never goes back. 0 for NULL. */
TIDE_EXTERN uint64_t tide_rt_now(tide_rt *rt);

#ifdef __cplusplus
}
#endif
#endif /* TIDE_H */
