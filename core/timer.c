/* timer.c — tide_sleep: promises settled when their time is up, whose
 * cancellation takes them off the schedule.
 *
 * Sleeps do not get a libuv timer each. The runtime keeps the running
 * sleeps in one list per duration: a sleep of `ms` started later is due
 * later (or at the same time, and started after), so each list is in due
 * order by construction and appending to it costs nothing more. A min-heap
 * orders the lists by their first sleep (due time, then start order: the
 * order libuv gives timers due at the same time), and one timer of the
 * runtime's own (rt->sleep_timer, a tide_timer: it follows the runtime's
 * clock, real or virtual, see clock.c) is armed for the earliest. Programs
 * use few distinct durations, so the heap stays small whatever the number
 * of sleeps; a hash table finds the list of a duration. The timer is
 * active, and so keeps the loop alive, exactly while a sleep runs. Each
 * due sleep is settled on its own, with a drain of the callback queue
 * after it, as if it had had its own timer; sleeps started while due ones
 * are fired wait for the next turn of the timer. tide_rt_free() drops
 * running sleeps without touching their promises (their owners may be
 * gone). */
#include "internal.h"

#include <stdlib.h>

struct tide__sleep {
  tide_rt *rt;
  tide__sleeps *list;  /* the list of its duration */
  tide_promise *p;
  uint64_t due;        /* loop time (ms) it is due at */
  uint64_t seq;        /* start order */
  tide__sleep *prev, *next;
};

/* The running sleeps of one duration, oldest (so earliest due) first. */
struct tide__sleeps {
  uint64_t ms;
  tide__sleep *head, *tail;
  size_t pos;          /* index in rt->sleep_heap */
  tide__sleeps *chain; /* the next list in its hash bucket */
};

/* Whether list `a` is due before list `b`. */
static int list_before(const tide__sleeps *a, const tide__sleeps *b) {
  const tide__sleep *x = a->head, *y = b->head;
  return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static void heap_set(tide__sleeps **heap, size_t pos, tide__sleeps *l) {
  heap[pos] = l;
  l->pos = pos;
}

/* Moves the list at `pos` up, then down, to its place. */
static void heap_fix(tide_rt *rt, size_t pos) {
  tide__sleeps **heap = rt->sleep_heap, *l = heap[pos];
  size_t n = rt->nsleep_lists;
  while (pos > 0 && list_before(l, heap[(pos - 1) / 2])) {
    heap_set(heap, pos, heap[(pos - 1) / 2]);
    pos = (pos - 1) / 2;
  }
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && list_before(heap[child + 1], heap[child])) child++;
    if (!list_before(heap[child], l)) break;
    heap_set(heap, pos, heap[child]);
    pos = child;
  }
  heap_set(heap, pos, l);
}

static tide__sleeps **bucket_of(tide_rt *rt, uint64_t ms) {
  uint64_t h = ms * UINT64_C(0x9E3779B97F4A7C15);
  return &rt->sleep_buckets[(h >> 32) & (rt->nsleep_buckets - 1)];
}

/* Room for one more list in the heap and the hash table (which keeps at
 * most one list per bucket on average). */
static int lists_reserve(tide_rt *rt) {
  size_t n = rt->nsleep_lists + 1;
  if (n > rt->nsleep_buckets) {
    size_t nb = rt->nsleep_buckets ? 2 * rt->nsleep_buckets : 16, i;
    tide__sleeps **old = rt->sleep_buckets, **heap;
    size_t oldn = rt->nsleep_buckets;
    if ((heap = realloc(rt->sleep_heap, nb * sizeof(*heap))) == NULL) return UV_ENOMEM;
    rt->sleep_heap = heap;
    if ((rt->sleep_buckets = calloc(nb, sizeof(*old))) == NULL) {
      rt->sleep_buckets = old;
      return UV_ENOMEM;
    }
    rt->nsleep_buckets = nb;
    for (i = 0; i < oldn; i++) {
      tide__sleeps *l, *next;
      for (l = old[i]; l; l = next) {
        tide__sleeps **b = bucket_of(rt, l->ms);
        next = l->chain;
        l->chain = *b;
        *b = l;
      }
    }
    free(old);
  }
  return 0;
}

/* The list of duration `ms`, made (empty, outside the heap) when none
 * runs; NULL when memory runs out. */
static tide__sleeps *list_get(tide_rt *rt, uint64_t ms) {
  tide__sleeps *l, **b;
  if (rt->nsleep_buckets) {
    for (l = *bucket_of(rt, ms); l; l = l->chain)
      if (l->ms == ms) return l;
  }
  if (lists_reserve(rt) != 0 || (l = calloc(1, sizeof(*l))) == NULL) return NULL;
  l->ms = ms;
  b = bucket_of(rt, ms);
  l->chain = *b;
  *b = l;
  return l;
}

/* Drops list `l`, empty now, from the heap and the hash table. */
static void list_drop(tide_rt *rt, tide__sleeps *l) {
  tide__sleeps **b = bucket_of(rt, l->ms), *last;
  while (*b != l) b = &(*b)->chain;
  *b = l->chain;
  last = rt->sleep_heap[--rt->nsleep_lists];
  if (last != l) {
    heap_set(rt->sleep_heap, l->pos, last);
    heap_fix(rt, l->pos);
  }
  free(l);
}

/* Takes sleep `s` off its list (and the list off the schedule when it was
 * the last one), and frees it. */
static void sleep_remove(tide_rt *rt, tide__sleep *s) {
  tide__sleeps *l = s->list;
  if (s->prev) s->prev->next = s->next; else l->head = s->next;
  if (s->next) s->next->prev = s->prev; else l->tail = s->prev;
  if (l->head == NULL) list_drop(rt, l);
  else if (s->prev == NULL) heap_fix(rt, l->pos);  /* its first is due later now */
  free(s);
}

static void sleeps_due_cb(tide_timer *t);

/* Arms the runtime's timer for the earliest sleep, or stops it (so it
 * keeps the loop alive no longer) when none runs. */
static void sleeps_arm(tide_rt *rt) {
  uint64_t now = tide_rt_now(rt), due;
  if (rt->nsleep_lists == 0) {
    tide_timer_stop(&rt->sleep_timer);
    return;
  }
  due = rt->sleep_heap[0]->head->due;
  tide_timer_start(&rt->sleep_timer, sleeps_due_cb, due > now ? due - now : 0);
}

/* Settles the sleeps that are due, oldest first, draining the queue after
 * each. Those started meanwhile (seq from `limit` on) wait for the next
 * turn of the timer. */
static void sleeps_due_cb(tide_timer *t) {
  tide_rt *rt = t->rt;
  uint64_t now = tide_rt_now(rt), limit = rt->sleep_seq;
  tide__sleep *s;
  while (rt->nsleep_lists > 0 && (s = rt->sleep_heap[0]->head)->due <= now && s->seq < limit) {
    tide_promise *p = s->p;
    sleep_remove(rt, s);
    tide_promise_settle(p, TIDE_FULFILLED);
    tide__promise_release(p);
    tide_rt_drain(rt);
  }
  sleeps_arm(rt);
}

static void sleep_cancel_cb(tide_promise *p, void *data) {
  tide__sleep *s = data;
  tide_rt *rt = s->rt;
  sleep_remove(rt, s);
  sleeps_arm(rt);
  tide__promise_release(p);
}

int tide_sleep(tide_rt *rt, tide_promise *p, uint64_t ms) {
  tide__sleeps *l;
  tide__sleep *s;
  if (rt == NULL || p == NULL || p->state != TIDE_PENDING || p->cancel_cb) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  if ((s = malloc(sizeof(*s))) == NULL) return UV_ENOMEM;
  if ((l = list_get(rt, ms)) == NULL) {
    free(s);
    return UV_ENOMEM;
  }
  s->rt = rt;
  s->list = l;
  s->p = p;
  /* Count from now, not from the loop's cached time: a sleep lasts at
   * least `ms` even when the current callback ran long. The clock never
   * goes back, so the list stays in due order. */
  tide__clock_update(rt);
  s->due = tide_rt_now(rt) + ms;
  if (s->due < ms) s->due = UINT64_MAX;  /* as tide_timer clamps */
  s->seq = rt->sleep_seq++;
  s->next = NULL;
  s->prev = l->tail;
  if (l->tail) {
    l->tail->next = s;
    l->tail = s;
  } else {                               /* a new list: onto the schedule */
    l->head = l->tail = s;
    heap_set(rt->sleep_heap, rt->nsleep_lists++, l);
    heap_fix(rt, l->pos);
    if (l->pos == 0) sleeps_arm(rt);     /* the earliest now */
  }
  tide__promise_retain(p);
  tide_promise_on_cancel(p, sleep_cancel_cb, s);
  return 0;
}

int tide__sleeps_init(tide_rt *rt) {
  return tide_timer_init(rt, &rt->sleep_timer);
}

void tide__sleep_close_all(tide_rt *rt) {
  while (rt->nsleep_lists > 0) {
    tide__sleeps *l = rt->sleep_heap[--rt->nsleep_lists];
    tide__sleep *s, *next;
    for (s = l->head; s; s = next) {
      next = s->next;
      free(s);
    }
    free(l);
  }
  free(rt->sleep_heap);
  free(rt->sleep_buckets);
  rt->sleep_heap = rt->sleep_buckets = NULL;
  rt->nsleep_buckets = 0;
  tide_timer_close(&rt->sleep_timer, NULL);
}
