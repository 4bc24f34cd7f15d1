/* clock.c — the runtime's clock, real or virtual, and the timers on it
 * (tide_timer): every timer of tide goes through here, so virtual time
 * moves them all.
 *
 * Real time is the loop's time (uv_now) plus rt->clock_offset, which is
 * what virtual time moved past it before the runtime came back to the real
 * clock: the runtime's time never goes back. A timer on the real clock is
 * its libuv timer. On virtual time the libuv timers of tide_timers stand
 * still; the running timers sit in a min-heap ordered by due time and
 * start order, and an idle handle of the runtime (or a real timer, to wait
 * for the autojump threshold) makes the loop turn while the clock has
 * work. After each poll (rt's check
 * handle), tide__clock_check fires the timers due: those due already, those
 * an advance passed, or, when the runtime found nothing to run during a
 * whole turn (and for autojump_ms of real time), the next ones: the jump.
 * Each fired timer is followed by a drain of the callback queue, as if the
 * loop had turned. Every running timer, on either clock, is also in the
 * runtime's list of timers, so a switch of clock moves them to the other. */
#include "internal.h"

#include <stdlib.h>

enum {
  T_ACTIVE  = 1u << 0,
  T_UNREF   = 1u << 1,
  T_CLOSING = 1u << 2,
  T_REAL    = 1u << 3   /* on libuv's clock always, never in the list */
};

uint64_t tide_rt_now(tide_rt *rt) {
  if (rt == NULL) return 0;
  return rt->vclock ? rt->vnow : uv_now(rt->loop) + rt->clock_offset;
}

void tide__clock_update(tide_rt *rt) {
  if (!rt->vclock) uv_update_time(rt->loop);
}

/* ------------------------------------------------------------ the heap */

/* Whether timer `a` is due before timer `b`. */
static int before(const tide_timer *a, const tide_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(tide_rt *rt, size_t pos, tide_timer *t) {
  rt->vheap[pos] = t;
  t->pos = pos;
}

/* Moves the timer at `pos` up, then down, to its place. */
static void heap_fix(tide_rt *rt, size_t pos) {
  tide_timer **heap = rt->vheap, *t = heap[pos];
  size_t n = rt->nvheap;
  while (pos > 0 && before(t, heap[(pos - 1) / 2])) {
    heap_set(rt, pos, heap[(pos - 1) / 2]);
    pos = (pos - 1) / 2;
  }
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap[child + 1], heap[child])) child++;
    if (!before(heap[child], t)) break;
    heap_set(rt, pos, heap[child]);
    pos = child;
  }
  heap_set(rt, pos, t);
}

/* Room for `n` timers in the heap. Returns 0 or UV_ENOMEM. */
static int heap_reserve(tide_rt *rt, size_t n) {
  size_t cap = rt->vheap_cap ? rt->vheap_cap : 16;
  tide_timer **heap;
  if (n <= rt->vheap_cap) return 0;
  while (cap < n) cap *= 2;
  if ((heap = realloc(rt->vheap, cap * sizeof(*heap))) == NULL) return UV_ENOMEM;
  rt->vheap = heap;
  rt->vheap_cap = cap;
  return 0;
}

/* Puts `t` on the heap (room was reserved). */
static void heap_push(tide_rt *rt, tide_timer *t) {
  heap_set(rt, rt->nvheap++, t);
  heap_fix(rt, t->pos);
  if (!(t->flags & T_UNREF)) rt->nvref++;
}

static void heap_remove(tide_rt *rt, tide_timer *t) {
  tide_timer *last = rt->vheap[--rt->nvheap];
  if (last != t) {
    heap_set(rt, t->pos, last);
    heap_fix(rt, last->pos);
  }
  if (!(t->flags & T_UNREF)) rt->nvref--;
}

/* ------------------------------------------------------------ the list */

static void list_add(tide_rt *rt, tide_timer *t) {
  t->prev = NULL;
  t->next = rt->timers;
  if (rt->timers) rt->timers->prev = t;
  rt->timers = t;
}

static void list_del(tide_rt *rt, tide_timer *t) {
  if (t->prev) t->prev->next = t->next; else rt->timers = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

/* ------------------------------------------------------- virtual time */

static void wake_cb(uv_timer_t *h);
static void idle_cb(uv_idle_t *h) { (void)h; }

/* Makes the loop turn for the clock's next piece of work: at once (the
 * idle handle: polls do not block) when timers are due or an advance is
 * under way, once the autojump threshold is up (the wake timer) when
 * timers wait, never otherwise. It keeps the loop alive while an advance
 * runs and, with autojump, while a referenced timer waits. */
static void clock_arm(tide_rt *rt) {
  uv_handle_t *on;
  uint64_t timeout;
  if (!rt->vclock) goto idle;
  if (rt->vtarget > rt->vnow || (rt->nvheap > 0 && rt->vheap[0]->due <= rt->vnow)) {
    timeout = 0;
  } else if (rt->nvheap > 0 && rt->autojump_ms >= 0) {
    uint64_t idle = uv_now(rt->loop) - rt->busy_at;
    timeout = idle >= (uint64_t)rt->autojump_ms ? 0 : (uint64_t)rt->autojump_ms - idle;
  } else {
    goto idle;
  }
  if (timeout == 0) {
    uv_timer_stop(&rt->clock_wake);
    uv_idle_start(&rt->clock_idle, idle_cb);
    on = (uv_handle_t *)&rt->clock_idle;
  } else {
    uv_idle_stop(&rt->clock_idle);
    uv_timer_start(&rt->clock_wake, wake_cb, timeout, 0);
    on = (uv_handle_t *)&rt->clock_wake;
  }
  if (rt->vtarget > rt->vnow || rt->nvref > 0) uv_ref(on);
  else uv_unref(on);
  return;
idle:
  uv_timer_stop(&rt->clock_wake);
  uv_idle_stop(&rt->clock_idle);
}

/* The threshold is up: the loop turns at once from now on. */
static void wake_cb(uv_timer_t *h) {
  clock_arm(tide__container_of(h, tide_rt, clock_wake));
}

/* Fires the timers due up to `upto` in due order, moving virtual time to
 * each one's due time, with a drain after each. A timer started at the
 * current time and due at once waits for the next turn (a zero sleep in a
 * loop must not hold the clock); those due later fire when time gets
 * there. Returns whether it stopped at such a timer. */
static int fire_upto(tide_rt *rt, uint64_t upto) {
  uint64_t limit = rt->timer_seq;
  while (rt->nvheap > 0) {
    tide_timer *t = rt->vheap[0];
    if (t->due > upto) break;
    if (t->due > rt->vnow) {
      rt->vnow = t->due;
      limit = rt->timer_seq;  /* timers started before now may fire now */
    } else if (t->seq >= limit) {
      return 1;
    }
    heap_remove(rt, t);
    list_del(rt, t);
    t->flags &= ~T_ACTIVE;
    t->cb(t);
    tide_rt_drain(rt);
  }
  return 0;
}

void tide__clock_check(tide_rt *rt) {
  uint64_t real;
  int busy;
  if (!rt->vclock) return;
  real = uv_now(rt->loop);
  busy = rt->jobs_run != rt->jobs_mark;
  if (busy) rt->busy_at = real;
  if (rt->vtarget > rt->vnow) {
    if (!fire_upto(rt, rt->vtarget)) rt->vnow = rt->vtarget;
  } else if (rt->nvheap > 0 && rt->vheap[0]->due <= rt->vnow) {
    fire_upto(rt, rt->vnow);
  } else if (!busy && rt->autojump_ms >= 0 && rt->nvheap > 0 &&
             real - rt->busy_at >= (uint64_t)rt->autojump_ms) {
    fire_upto(rt, rt->vheap[0]->due);  /* the jump */
  }
  rt->jobs_mark = rt->jobs_run;
  clock_arm(rt);
}

/* ------------------------------------------------------------ timers */

static void real_cb(uv_timer_t *h) {
  tide_timer *t = tide__container_of(h, tide_timer, uv);
  if (!(t->flags & T_REAL)) list_del(t->rt, t);
  t->flags &= ~T_ACTIVE;
  t->cb(t);
}

/* Starts the libuv timer of `t` for its due time on the real clock. */
static void arm_real(tide_timer *t) {
  uint64_t now = tide_rt_now(t->rt);
  uv_timer_start(&t->uv, real_cb, t->due > now ? t->due - now : 0, 0);
}

int tide_timer_init(tide_rt *rt, tide_timer *t) {
  int err;
  if (rt == NULL || t == NULL) return UV_EINVAL;
  if ((err = uv_timer_init(rt->loop, &t->uv)) != 0) return err;
  t->rt = rt;
  t->cb = NULL;
  t->due = t->seq = 0;
  t->pos = 0;
  t->flags = 0;
  t->prev = t->next = NULL;
  return 0;
}

int tide_timer_init_real(tide_rt *rt, tide_timer *t) {
  int err = tide_timer_init(rt, t);
  if (err == 0) t->flags = T_REAL;
  return err;
}

int tide_timer_start(tide_timer *t, tide_timer_cb cb, uint64_t ms) {
  tide_rt *rt;
  uint64_t now;
  if (t == NULL || cb == NULL || (t->flags & T_CLOSING)) return UV_EINVAL;
  rt = t->rt;
  if (t->flags & T_REAL) {
    t->cb = cb;
    t->due = uv_now(rt->loop) + ms;
    t->flags |= T_ACTIVE;
    return uv_timer_start(&t->uv, real_cb, ms, 0);
  }
  if (rt->vclock && !(t->flags & T_ACTIVE) && heap_reserve(rt, rt->nvheap + 1) != 0)
    return UV_ENOMEM;
  tide_timer_stop(t);
  now = tide_rt_now(rt);
  t->cb = cb;
  t->due = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;  /* as libuv clamps */
  t->seq = rt->timer_seq++;
  t->flags |= T_ACTIVE;
  list_add(rt, t);
  if (rt->vclock) {
    heap_push(rt, t);
    clock_arm(rt);
  } else {
    uv_timer_start(&t->uv, real_cb, ms, 0);
  }
  return 0;
}

void tide_timer_stop(tide_timer *t) {
  tide_rt *rt;
  if (t == NULL || !(t->flags & T_ACTIVE)) return;
  rt = t->rt;
  t->flags &= ~T_ACTIVE;
  if (t->flags & T_REAL) {
    uv_timer_stop(&t->uv);
    return;
  }
  list_del(rt, t);
  if (rt->vclock) {
    heap_remove(rt, t);
    clock_arm(rt);
  } else {
    uv_timer_stop(&t->uv);
  }
}

void tide_timer_ref(tide_timer *t) {
  if (t == NULL || !(t->flags & T_UNREF)) return;
  t->flags &= ~T_UNREF;
  uv_ref((uv_handle_t *)&t->uv);
  if (t->rt->vclock && (t->flags & T_ACTIVE) && !(t->flags & T_REAL)) {
    t->rt->nvref++;
    clock_arm(t->rt);
  }
}

void tide_timer_unref(tide_timer *t) {
  if (t == NULL || (t->flags & T_UNREF)) return;
  t->flags |= T_UNREF;
  uv_unref((uv_handle_t *)&t->uv);
  if (t->rt->vclock && (t->flags & T_ACTIVE) && !(t->flags & T_REAL)) {
    t->rt->nvref--;
    clock_arm(t->rt);
  }
}

int tide_timer_is_active(const tide_timer *t) {
  return t != NULL && (t->flags & T_ACTIVE) != 0;
}

void tide_timer_close(tide_timer *t, uv_close_cb close_cb) {
  if (t == NULL || (t->flags & T_CLOSING)) return;
  tide_timer_stop(t);
  t->flags |= T_CLOSING;
  t->uv.data = t->data;
  uv_close((uv_handle_t *)&t->uv, close_cb);
}

/* ------------------------------------------------------------ switches */

int tide_rt_clock_virtual(tide_rt *rt, int on, int64_t autojump_ms) {
  tide_timer *t;
  if (rt == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  if (on && !rt->vclock) {
    size_t n = 0;
    for (t = rt->timers; t; t = t->next) n++;
    if (heap_reserve(rt, n) != 0) return UV_ENOMEM;
    uv_update_time(rt->loop);
    rt->vnow = rt->vtarget = uv_now(rt->loop) + rt->clock_offset;
    rt->busy_at = uv_now(rt->loop);
    rt->jobs_mark = rt->jobs_run;
    rt->vclock = 1;
    for (t = rt->timers; t; t = t->next) {
      uv_timer_stop(&t->uv);
      heap_push(rt, t);
    }
  } else if (!on && rt->vclock) {
    uv_update_time(rt->loop);
    /* Real time goes on from virtual time (modulo 2^64 arithmetic). */
    rt->clock_offset = rt->vnow - uv_now(rt->loop);
    rt->vclock = 0;
    rt->nvheap = 0;
    rt->nvref = 0;
    for (t = rt->timers; t; t = t->next) arm_real(t);
  }
  rt->autojump_ms = autojump_ms;
  clock_arm(rt);
  return 0;
}

int tide_rt_clock_is_virtual(tide_rt *rt) {
  return rt != NULL && rt->vclock;
}

int tide_rt_clock_advance(tide_rt *rt, uint64_t ms) {
  if (rt == NULL || !rt->vclock) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  if (rt->vtarget < rt->vnow) rt->vtarget = rt->vnow;
  rt->vtarget = ms > UINT64_MAX - rt->vtarget ? UINT64_MAX : rt->vtarget + ms;
  clock_arm(rt);
  return 0;
}

/* ------------------------------------------------------------ lifetime */

void tide__clock_init(tide_rt *rt) {
  uv_timer_init(rt->loop, &rt->clock_wake);
  uv_idle_init(rt->loop, &rt->clock_idle);
  rt->autojump_ms = -1;
}

void tide__clock_close(tide_rt *rt) {
  tide_timer *t, *next;
  for (t = rt->timers; t; t = next) {
    next = t->next;
    t->flags &= ~T_ACTIVE;
    t->prev = t->next = NULL;
  }
  rt->timers = NULL;
  rt->vclock = 0;
  rt->nvheap = rt->vheap_cap = 0;
  rt->nvref = 0;
  free(rt->vheap);
  rt->vheap = NULL;
  uv_close((uv_handle_t *)&rt->clock_wake, NULL);
  uv_close((uv_handle_t *)&rt->clock_idle, NULL);
}
