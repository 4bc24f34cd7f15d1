/* internal.h — private structures of the core, shared by the files of core/ only. */
#ifndef TIDE_INTERNAL_H
#define TIDE_INTERNAL_H

#include "tide.h"

#define tide__container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct tide__post {
  struct tide__post *next;
  tide_post_cb fn;
  void *data;
} tide__post;

typedef struct tide__sleep tide__sleep;
typedef struct tide__sleeps tide__sleeps;

struct tide_rt {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  int threads;
  uv_thread_t thread;       /* the loop thread: the one that created rt */
  tide_options opts;        /* as given, with copies of the strings */

  /* The callback queue (intrusive, FIFO). */
  tide_job *head, *tail;
  int draining;

  /* Drain before the loop blocks and after it wakes. */
  uv_prepare_t prepare;
  uv_check_t check;
  /* `keepalive`: an async handle nobody sends to, so it never wakes the
   * loop; referenced while `holds` (tide_rt_hold) is above 0, it keeps the
   * loop running for work that comes from outside (a host's thread). */
  uv_async_t keepalive;
  unsigned holds;

  /* Cross-thread posts. */
  uv_async_t async;
  uv_mutex_t post_lock;
  tide__post *posts_head, *posts_tail;
  int closing;

  /* Rejections waiting for the end of the drain to be judged unhandled. */
  tide_promise *unhandled_head, *unhandled_tail;
  tide_unhandled_cb unhandled_cb;
  unsigned unhandled_count;

  int stop;
  void *data;
  void *binding;
  tide_binding_close_cb binding_close;  /* closes the binding first at free */

  /* Running sleeps (timer.c): one list per duration, the lists in a
   * min-heap by their first sleep's due time and start order and in a hash
   * table by duration, and one libuv timer armed for the earliest. */
  tide_timer sleep_timer;
  tide__sleeps **sleep_heap;        /* room for nsleep_buckets lists */
  tide__sleeps **sleep_buckets;
  size_t nsleep_lists, nsleep_buckets;
  uint64_t sleep_seq;

  /* The clock and the timers on it (clock.c). Real time is uv_now() plus
   * clock_offset (what virtual time moved past it); virtual time is vnow,
   * moved by advances (up to vtarget) and jumps. Running timers are in the
   * `timers` list; on virtual time also in a min-heap by due time and start
   * order, and clock_idle or clock_wake make the loop turn while the clock
   * has work: timers due, an advance under way, or a jump to judge. */
  int vclock;
  int64_t autojump_ms;              /* < 0: the clock moves only by hand */
  uint64_t vnow, vtarget;
  uint64_t clock_offset;
  tide_timer *timers;
  tide_timer **vheap;
  size_t nvheap, vheap_cap;
  unsigned nvref;                   /* referenced timers in vheap */
  uint64_t timer_seq;
  uv_timer_t clock_wake;            /* the autojump threshold is up */
  uv_idle_t clock_idle;             /* polls do not block: work is due */
  uint64_t jobs_run, jobs_mark;     /* jobs run; as at the last clock check */
  uint64_t busy_at;                 /* real loop time of the last activity */

  /* The thread pool (pool.c), created on the first submit. */
  struct tide__pool *pool;
};

/* Promise flags. */
enum {
  TIDE__P_HANDLED   = 1u << 0,  /* had a consumer: never report */
  TIDE__P_UNHANDLED = 1u << 1,  /* sits in rt's unhandled list */
  TIDE__P_OWNVALUES = 1u << 2,  /* values array owned by the promise */
  TIDE__P_CANCELLED = 1u << 3   /* rejected by cancellation */
};

void tide__promise_retain(tide_promise *p);
void tide__promise_release(tide_promise *p);
void tide__report_unhandled(tide_rt *rt);
/* Shuts the pool down (pool.c): called by tide_rt_free once `closing` is
 * set, before the handles close. */
void tide__pool_free(tide_rt *rt);
/* Initialises the clock (clock.c): tide_rt_new, before anything starts a
 * timer. Cannot fail on Unix. */
void tide__clock_init(tide_rt *rt);
/* Runs after each poll (rt's check handle): on virtual time fires the
 * timers that are due, an advance under way, or a jump. */
void tide__clock_check(tide_rt *rt);
/* Detaches the running timers and closes the clock's handle: tide_rt_free,
 * after the bindings closed. */
void tide__clock_close(tide_rt *rt);
/* Updates the loop's time on the real clock (uv_update_time); nothing on
 * virtual time. */
void tide__clock_update(tide_rt *rt);
/* Initialises the runtime's sleep timer (timer.c): tide_rt_new. */
int tide__sleeps_init(tide_rt *rt);
/* Drops the sleeps still running (timer.c), without touching their
 * promises, whose owners may be gone already, and closes the sleep timer:
 * tide_rt_free. */
void tide__sleep_close_all(tide_rt *rt);

/* Debug builds check that functions other than tide_post run on the loop
 * thread: a call from another thread prints a message and returns `ret`
 * (UV_EPERM, or nothing for functions without a result) without acting. */
#ifdef NDEBUG
#define TIDE__LOOP_THREAD(rt, ret) ((void)0)
#else
/* The thread test is inline (pthread_self and pthread_equal, which is what
 * uv_thread_t is on Unix): it runs on every promise operation. */
#include <pthread.h>
int tide__wrong_thread(const tide_rt *rt, const char *fn);
#define TIDE__LOOP_THREAD(rt, ret) \
  do { \
    if ((rt) != NULL && !pthread_equal(pthread_self(), (rt)->thread) && \
        tide__wrong_thread((rt), __func__)) return ret; \
  } while (0)
#endif

#endif
