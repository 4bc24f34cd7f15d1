/* Tests of core/clock.c: tide_timer on the real clock, the virtual clock
 * (autojump, advance by hand, zero timers, the switch back) and timers
 * that stay on the real clock. Each test runs on a loop it owns and ends
 * by checking that the loop closes cleanly after tide_rt_free.
 * tests: clock_timer_real clock_virtual_autojump clock_virtual_advance
 *        clock_virtual_zero_timer clock_switch_back clock_timer_real_only
 *        clock_virtual_unref */
#include "rt_helpers.h"

typedef struct fired {
  tide_timer t;
  int *order, *n, id;
  uint64_t at;
} fired;

static void fired_cb(tide_timer *t) {
  fired *f = t->data;
  f->order[(*f->n)++] = f->id;
  f->at = tide_rt_now(t->rt);
}

static int fired_init(tide_rt *rt, fired *f, int id, int *order, int *n) {
  ASSERT_OK(tide_timer_init(rt, &f->t));
  f->t.data = f;
  f->id = id;
  f->order = order;
  f->n = n;
  f->at = 0;
  return 0;
}

static uint64_t real_ms(void) { return uv_hrtime() / 1000000; }

TEST_IMPL(clock_timer_real) {
  uv_loop_t loop;
  tide_rt *rt;
  fired a, b;
  int order[2], n = 0;
  uint64_t t0;
  RT_OPEN(&loop, rt);
  ASSERT_OK(fired_init(rt, &a, 1, order, &n));
  ASSERT_OK(fired_init(rt, &b, 2, order, &n));
  ASSERT_EQ(tide_timer_start(NULL, fired_cb, 1), UV_EINVAL);
  ASSERT_EQ(tide_timer_start(&a.t, NULL, 1), UV_EINVAL);
  t0 = real_ms();
  ASSERT_OK(tide_timer_start(&a.t, fired_cb, 20));
  ASSERT_OK(tide_timer_start(&b.t, fired_cb, 10));
  ASSERT(tide_timer_is_active(&a.t));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT(real_ms() - t0 >= 15);  /* from the loop's cached time */
  ASSERT_EQ(n, 2);
  ASSERT_EQ(order[0], 2);
  ASSERT_EQ(order[1], 1);
  ASSERT(!tide_timer_is_active(&a.t));
  tide_timer_close(&a.t, NULL);
  tide_timer_close(&b.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(clock_virtual_autojump) {
  uv_loop_t loop;
  tide_rt *rt;
  fired f[3];
  int order[3], n = 0, i;
  uint64_t t0, v0;
  RT_OPEN(&loop, rt);
  ASSERT_EQ(tide_rt_clock_virtual(NULL, 1, 0), UV_EINVAL);
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, 0));
  ASSERT(tide_rt_clock_is_virtual(rt));
  v0 = tide_rt_now(rt);
  for (i = 0; i < 3; i++) ASSERT_OK(fired_init(rt, &f[i], i, order, &n));
  ASSERT_OK(tide_timer_start(&f[0].t, fired_cb, 3600000));  /* an hour */
  ASSERT_OK(tide_timer_start(&f[1].t, fired_cb, 30000));
  ASSERT_OK(tide_timer_start(&f[2].t, fired_cb, 30000));    /* same time: start order */
  t0 = real_ms();
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT(real_ms() - t0 < 1000);
  ASSERT_EQ(n, 3);
  ASSERT_EQ(order[0], 1);
  ASSERT_EQ(order[1], 2);
  ASSERT_EQ(order[2], 0);
  ASSERT_EQ(f[1].at - v0, 30000);
  ASSERT_EQ(f[0].at - v0, 3600000);
  ASSERT_EQ(tide_rt_now(rt) - v0, 3600000);
  for (i = 0; i < 3; i++) tide_timer_close(&f[i].t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(clock_virtual_advance) {
  uv_loop_t loop;
  tide_rt *rt;
  fired a, b;
  int order[2], n = 0;
  uint64_t v0;
  RT_OPEN(&loop, rt);
  ASSERT_EQ(tide_rt_clock_advance(rt, 1), UV_EINVAL);  /* real clock */
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, -1));
  v0 = tide_rt_now(rt);
  ASSERT_OK(fired_init(rt, &a, 1, order, &n));
  ASSERT_OK(fired_init(rt, &b, 2, order, &n));
  ASSERT_OK(tide_timer_start(&a.t, fired_cb, 5000));
  ASSERT_OK(tide_timer_start(&b.t, fired_cb, 10000));
  /* Nothing moves the clock: the run ends with both timers waiting. */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 0);
  ASSERT_OK(tide_rt_clock_advance(rt, 7000));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(a.at - v0, 5000);
  ASSERT_EQ(tide_rt_now(rt) - v0, 7000);
  ASSERT(tide_timer_is_active(&b.t));
  ASSERT_OK(tide_rt_clock_advance(rt, 3000));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 2);
  ASSERT_EQ(b.at - v0, 10000);
  tide_timer_close(&a.t, NULL);
  tide_timer_close(&b.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* A timer restarted at 0 from its own callback fires once per turn: the
 * clock does not loop on it. */
typedef struct spinner { tide_timer t; int n; } spinner;

static void spin_cb(tide_timer *t) {
  spinner *s = t->data;
  if (++s->n < 5) tide_timer_start(t, spin_cb, 0);
}

TEST_IMPL(clock_virtual_zero_timer) {
  uv_loop_t loop;
  tide_rt *rt;
  spinner s;
  int turns = 0;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, -1));
  ASSERT_OK(tide_timer_init(rt, &s.t));
  s.t.data = &s;
  s.n = 0;
  ASSERT_OK(tide_timer_start(&s.t, spin_cb, 0));
  while (tide_rt_run(rt, TIDE_RUN_ONCE) != 0 && turns < 100) turns++;
  ASSERT_EQ(s.n, 5);
  ASSERT(turns >= 4);
  tide_timer_close(&s.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(clock_switch_back) {
  uv_loop_t loop;
  tide_rt *rt;
  fired a;
  int order[1], n = 0;
  uint64_t v, t0;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, -1));
  ASSERT_OK(tide_rt_clock_advance(rt, 3600000));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  v = tide_rt_now(rt);
  ASSERT_OK(fired_init(rt, &a, 1, order, &n));
  ASSERT_OK(tide_timer_start(&a.t, fired_cb, 20));  /* goes on across the switch */
  ASSERT_OK(tide_rt_clock_virtual(rt, 0, -1));
  ASSERT(!tide_rt_clock_is_virtual(rt));
  ASSERT(tide_rt_now(rt) >= v);                     /* never back */
  t0 = real_ms();
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 1);
  ASSERT(real_ms() - t0 >= 15);  /* from the loop's cached time */
  ASSERT(a.at >= v + 20);
  tide_timer_close(&a.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(clock_timer_real_only) {
  uv_loop_t loop;
  tide_rt *rt;
  fired a;
  int order[1], n = 0;
  uint64_t t0;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, 0));
  ASSERT_OK(tide_timer_init_real(rt, &a.t));
  a.t.data = &a;
  a.order = order;
  a.n = &n;
  a.id = 1;
  t0 = real_ms();
  ASSERT_OK(tide_timer_start(&a.t, fired_cb, 30));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 1);
  ASSERT(real_ms() - t0 >= 25);  /* from the loop's cached time */
  tide_timer_close(&a.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* With autojump, an unreferenced virtual timer does not keep the run
 * going (nor make it jump); referenced again, it does. */
TEST_IMPL(clock_virtual_unref) {
  uv_loop_t loop;
  tide_rt *rt;
  fired a;
  int order[1], n = 0;
  uint64_t v0;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_rt_clock_virtual(rt, 1, 0));
  v0 = tide_rt_now(rt);
  ASSERT_OK(fired_init(rt, &a, 1, order, &n));
  ASSERT_OK(tide_timer_start(&a.t, fired_cb, 60000));
  tide_timer_unref(&a.t);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 0);
  ASSERT(tide_timer_is_active(&a.t));
  tide_timer_ref(&a.t);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(a.at - v0, 60000);
  tide_timer_close(&a.t, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}
