/* timer.c — tide_sleep: promises settled when their time is up, whose
 * cancellation takes them off the schedule.
 *
 * Sleeps do not get a libuv timer each: the runtime keeps running sleeps
 * in a binary min-heap ordered by due time, then start order (the order
 * libuv gives timers due at the same time), and one libuv timer of its own
 * (rt->sleep_timer) armed for the earliest. That saves a handle to
 * initialise, start, close and free per sleep. The timer is active, and so
 * keeps the loop alive, exactly while a sleep runs. Each due sleep is
 * settled on its own, with a drain of the callback queue after it, as if
 * it had had its own timer; sleeps started while due ones are fired wait
 * for the next turn of the timer. tide_rt_free() drops running sleeps
 * without touching their promises (their owners may be gone). */
#include "internal.h"

#include <stdlib.h>

struct tide__sleep {
  tide_rt *rt;
  tide_promise *p;
  uint64_t due;        /* loop time (ms) it is due at */
  uint64_t seq;        /* start order */
  size_t pos;          /* index in rt->sleep_heap */
};

/* Whether sleep `a` is due before `b`. */
static int sleep_before(const tide__sleep *a, const tide__sleep *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(tide__sleep **heap, size_t pos, tide__sleep *s) {
  heap[pos] = s;
  s->pos = pos;
}

/* Moves the sleep at `pos` up, then down, to its place. */
static void heap_fix(tide_rt *rt, size_t pos) {
  tide__sleep **heap = rt->sleep_heap, *s = heap[pos];
  size_t n = rt->nsleeps;
  while (pos > 0 && sleep_before(s, heap[(pos - 1) / 2])) {
    heap_set(heap, pos, heap[(pos - 1) / 2]);
    pos = (pos - 1) / 2;
  }
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && sleep_before(heap[child + 1], heap[child])) child++;
    if (!sleep_before(heap[child], s)) break;
    heap_set(heap, pos, heap[child]);
    pos = child;
  }
  heap_set(heap, pos, s);
}

static int heap_push(tide_rt *rt, tide__sleep *s) {
  if (rt->nsleeps == rt->sleep_cap) {
    size_t cap = rt->sleep_cap ? 2 * rt->sleep_cap : 16;
    tide__sleep **heap = realloc(rt->sleep_heap, cap * sizeof(*heap));
    if (heap == NULL) return UV_ENOMEM;
    rt->sleep_heap = heap;
    rt->sleep_cap = cap;
  }
  heap_set(rt->sleep_heap, rt->nsleeps++, s);
  heap_fix(rt, s->pos);
  return 0;
}

static void heap_remove(tide_rt *rt, tide__sleep *s) {
  size_t pos = s->pos;
  tide__sleep *last = rt->sleep_heap[--rt->nsleeps];
  if (last == s) return;
  heap_set(rt->sleep_heap, pos, last);
  heap_fix(rt, pos);
}

static void sleeps_due_cb(uv_timer_t *t);

/* Arms the runtime's timer for the earliest sleep, or stops it (so it
 * keeps the loop alive no longer) when none runs. */
static void sleeps_arm(tide_rt *rt) {
  uint64_t now = uv_now(rt->loop), due;
  if (rt->nsleeps == 0) {
    uv_timer_stop(&rt->sleep_timer);
    return;
  }
  due = rt->sleep_heap[0]->due;
  uv_timer_start(&rt->sleep_timer, sleeps_due_cb, due > now ? due - now : 0, 0);
}

/* Settles the sleeps that are due, oldest first, draining the queue after
 * each. Those started meanwhile (seq from `limit` on) wait for the next
 * turn of the timer. */
static void sleeps_due_cb(uv_timer_t *t) {
  tide_rt *rt = tide__container_of(t, tide_rt, sleep_timer);
  uint64_t now = uv_now(rt->loop), limit = rt->sleep_seq;
  tide__sleep *s;
  while (rt->nsleeps > 0 && (s = rt->sleep_heap[0])->due <= now && s->seq < limit) {
    tide_promise *p = s->p;
    heap_remove(rt, s);
    free(s);
    tide_promise_settle(p, TIDE_FULFILLED);
    tide__promise_release(p);
    tide_rt_drain(rt);
  }
  sleeps_arm(rt);
}

static void sleep_cancel_cb(tide_promise *p, void *data) {
  tide__sleep *s = data;
  tide_rt *rt = s->rt;
  heap_remove(rt, s);
  free(s);
  sleeps_arm(rt);
  tide__promise_release(p);
}

int tide_sleep(tide_rt *rt, tide_promise *p, uint64_t ms) {
  tide__sleep *s;
  int err;
  if (rt == NULL || p == NULL || p->state != TIDE_PENDING || p->cancel_cb) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  s = malloc(sizeof(*s));
  if (s == NULL) return UV_ENOMEM;
  s->rt = rt;
  s->p = p;
  /* Count from now, not from the loop's cached time: a sleep lasts at
   * least `ms` even when the current callback ran long. */
  uv_update_time(rt->loop);
  s->due = uv_now(rt->loop) + ms;
  if (s->due < ms) s->due = UINT64_MAX;  /* as libuv clamps */
  s->seq = rt->sleep_seq++;
  if ((err = heap_push(rt, s)) != 0) {
    free(s);
    return err;
  }
  if (s->pos == 0) sleeps_arm(rt);  /* the earliest now */
  tide__promise_retain(p);
  tide_promise_on_cancel(p, sleep_cancel_cb, s);
  return 0;
}

int tide__sleeps_init(tide_rt *rt) {
  return uv_timer_init(rt->loop, &rt->sleep_timer);
}

void tide__sleep_close_all(tide_rt *rt) {
  while (rt->nsleeps > 0) free(rt->sleep_heap[--rt->nsleeps]);
  free(rt->sleep_heap);
  rt->sleep_heap = NULL;
  rt->sleep_cap = 0;
  uv_close((uv_handle_t *)&rt->sleep_timer, NULL);
}
