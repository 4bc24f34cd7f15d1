/* timer.c — tide_sleep: a promise settled by a one-shot libuv timer, whose
 * cancellation stops the timer. The timer memory is freed in its close
 * callback, as libuv requires. Running sleeps sit in a list of their
 * runtime, so tide_rt_free() can stop them even when their promises are
 * gone (a closed Lua state). */
#include "internal.h"

#include <stdlib.h>

typedef struct tide__sleep {
  uv_timer_t timer;
  tide_rt *rt;
  tide_promise *p;
  struct tide__sleep *prev, *next;   /* rt->sleeps, while running */
} tide__sleep;

static void sleep_close_cb(uv_handle_t *h) {
  free(tide__container_of(h, tide__sleep, timer));
}

/* Takes the sleep out of its runtime's list and closes its timer. */
static void sleep_unlink_close(tide__sleep *s) {
  if (s->prev) s->prev->next = s->next; else s->rt->sleeps = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  uv_close((uv_handle_t *)&s->timer, sleep_close_cb);
}

/* Detaches the timer from its promise and closes it. */
static void sleep_end(tide__sleep *s) {
  tide_promise *p = s->p;
  s->p = NULL;
  sleep_unlink_close(s);
  tide__promise_release(p);
}

static void sleep_fire_cb(uv_timer_t *t) {
  tide__sleep *s = tide__container_of(t, tide__sleep, timer);
  tide_rt *rt = s->rt;
  tide_promise_settle(s->p, TIDE_FULFILLED);
  sleep_end(s);
  tide_rt_drain(rt);
}

static void sleep_cancel_cb(tide_promise *p, void *data) {
  (void)p;
  uv_timer_stop(&((tide__sleep *)data)->timer);
  sleep_end(data);
}

int tide_sleep(tide_rt *rt, tide_promise *p, uint64_t ms) {
  tide__sleep *s;
  int err;
  if (rt == NULL || p == NULL || p->state != TIDE_PENDING || p->cancel_cb) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  s = calloc(1, sizeof(*s));
  if (s == NULL) return UV_ENOMEM;
  if ((err = uv_timer_init(rt->loop, &s->timer)) != 0) { free(s); return err; }
  s->rt = rt;
  s->p = p;
  /* Count from now, not from the loop's cached time: a sleep lasts at
   * least `ms` even when the current callback ran long. */
  uv_update_time(rt->loop);
  if ((err = uv_timer_start(&s->timer, sleep_fire_cb, ms, 0)) != 0) {
    s->p = NULL;
    uv_close((uv_handle_t *)&s->timer, sleep_close_cb);
    return err;
  }
  s->next = rt->sleeps;
  if (s->next) s->next->prev = s;
  rt->sleeps = s;
  tide__promise_retain(p);
  tide_promise_on_cancel(p, sleep_cancel_cb, s);
  return 0;
}

void tide__sleep_close_all(tide_rt *rt) {
  while (rt->sleeps) sleep_unlink_close(rt->sleeps);
}
