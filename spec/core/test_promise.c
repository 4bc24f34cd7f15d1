/* Tests of core/promise.c and core/timer.c seen from C: settling with C
 * values, settle-once, misuse, listener order, callbacks never
 * synchronous, removal, cancellation, owner hooks, unhandled rejections,
 * tide_sleep. Each test runs on a loop it owns and ends by checking that
 * the loop closes cleanly after tide_rt_free.
 * tests: promise_resolve_values promise_settle_once promise_bad_args
 *        promise_listener_order promise_never_synchronous
 *        promise_listener_remove promise_cancel promise_retain_balance
 *        promise_store_hook promise_dispose promise_unhandled
 *        promise_sleep promise_sleep_order promise_sleep_cancel
 *        promise_sleep_bad_args promise_detach */
#include "rt_helpers.h"

TEST_IMPL(promise_resolve_values) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  probe pr;
  char buf[4] = {'a', '\0', 'b', 'c'};
  tide_value v[5];
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  ASSERT_EQ(p.state, TIDE_PENDING);
  probe_init(&pr, NULL);
  ASSERT_OK(tide_promise_listen(&p, &pr.l, probe_cb));
  v[0] = tide_nil();
  v[1] = tide_boolean(7);
  v[2] = tide_integer(INT64_MIN);
  v[3] = tide_number(0.5);
  v[4] = tide_bytes(buf, sizeof buf);
  ASSERT_OK(tide_promise_resolve(&p, v, 5));
  memset(buf, 'x', sizeof buf);  /* the promise has its own copy */
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  ASSERT_EQ(p.nvalues, 5);
  ASSERT_EQ(p.values[0].type, TIDE_NIL);
  ASSERT_EQ(p.values[1].type, TIDE_BOOLEAN);
  ASSERT_EQ(p.values[1].u.boolean, 1);
  ASSERT_EQ(p.values[2].u.integer, INT64_MIN);
  ASSERT(p.values[3].u.number == 0.5);
  ASSERT_EQ(p.values[4].u.bytes.len, 4);
  ASSERT(memcmp(p.values[4].u.bytes.data, "a\0bc", 4) == 0);
  ASSERT_EQ(pr.called, 0);
  tide_rt_drain(rt);
  ASSERT_EQ(pr.called, 1);
  ASSERT_EQ(pr.state, TIDE_FULFILLED);
  tide_promise_dispose(&p);
  ASSERT(p.values == NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_settle_once) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  tide_value one = tide_integer(1), two = tide_integer(2);
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  ASSERT_OK(tide_promise_resolve(&p, &one, 1));
  ASSERT_EQ(tide_promise_resolve(&p, &two, 1), UV_EALREADY);
  ASSERT_EQ(tide_promise_reject(&p, &two), UV_EALREADY);
  ASSERT_EQ(tide_promise_settle(&p, TIDE_REJECTED), UV_EALREADY);
  ASSERT_EQ(tide_promise_reject_cancelled(&p), UV_EALREADY);
  ASSERT_EQ(tide_promise_cancel(&p), UV_EALREADY);
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  ASSERT_EQ(p.values[0].u.integer, 1);
  tide_promise_dispose(&p);
  /* a rejection with no error value carries nil */
  tide_promise_init(rt, &p, NULL);
  tide_promise_mark_handled(&p);
  ASSERT_OK(tide_promise_reject(&p, NULL));
  ASSERT_EQ(p.nvalues, 1);
  ASSERT_EQ(p.values[0].type, TIDE_NIL);
  ASSERT_EQ(tide_promise_resolve(&p, NULL, 0), UV_EALREADY);
  tide_promise_dispose(&p);
  tide_rt_drain(rt);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

static void never_cb(tide_listener *l, tide_promise *src) { (void)l; (void)src; abort(); }

TEST_IMPL(promise_bad_args) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  tide_listener l;
  tide_value bad;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  memset(&l, 0, sizeof l);
  ASSERT_EQ(tide_promise_resolve(NULL, NULL, 0), UV_EINVAL);
  ASSERT_EQ(tide_promise_resolve(&p, NULL, -1), UV_EINVAL);
  ASSERT_EQ(tide_promise_resolve(&p, NULL, 2), UV_EINVAL);
  bad.type = (tide_type)42;
  bad.u.integer = 0;
  ASSERT_EQ(tide_promise_resolve(&p, &bad, 1), UV_EINVAL);
  bad = tide_bytes(NULL, 3);
  ASSERT_EQ(tide_promise_reject(&p, &bad), UV_EINVAL);
  bad = tide_bytes(NULL, 0);  /* empty bytes need no pointer */
  ASSERT_EQ(tide_promise_reject(NULL, &bad), UV_EINVAL);
  ASSERT_EQ(tide_promise_settle(NULL, TIDE_FULFILLED), UV_EINVAL);
  ASSERT_EQ(tide_promise_settle(&p, TIDE_PENDING), UV_EINVAL);
  ASSERT_EQ(tide_promise_settle(&p, (tide_state)9), UV_EINVAL);
  ASSERT_EQ(tide_promise_listen(NULL, &l, never_cb), UV_EINVAL);
  ASSERT_EQ(tide_promise_listen(&p, NULL, never_cb), UV_EINVAL);
  ASSERT_EQ(tide_promise_listen(&p, &l, NULL), UV_EINVAL);
  ASSERT_EQ(tide_listener_remove(NULL), UV_EINVAL);
  ASSERT_EQ(tide_listener_remove(&l), UV_ENOENT);
  ASSERT_EQ(tide_promise_cancel(NULL), UV_EINVAL);
  ASSERT_EQ(tide_promise_reject_cancelled(NULL), UV_EINVAL);
  ASSERT_EQ(tide_promise_is_cancelled(NULL), 0);
  ASSERT_EQ(tide_promise_listeners(NULL), 0);
  ASSERT_EQ(tide_sleep(NULL, &p, 1), UV_EINVAL);
  tide_promise_init(NULL, &p, NULL);  /* ignored */
  tide_promise_init(rt, NULL, NULL);
  tide_promise_dispose(NULL);
  tide_promise_on_cancel(NULL, NULL, NULL);
  tide_promise_mark_handled(NULL);
  /* nothing above changed the promise */
  ASSERT_EQ(p.state, TIDE_PENDING);
  ASSERT_EQ(p.nvalues, 0);
  tide_promise_dispose(&p);
  tide_job_queue(NULL, NULL, NULL);
  tide_rt_drain(NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_listener_order) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  probe a, b, c, late;
  int clock = 0;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  probe_init(&a, &clock);
  probe_init(&b, &clock);
  probe_init(&c, &clock);
  probe_init(&late, &clock);
  ASSERT_OK(tide_promise_listen(&p, &a.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&p, &b.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&p, &c.l, probe_cb));
  ASSERT_EQ(tide_promise_listeners(&p), 3);
  ASSERT_EQ(tide_promise_listen(&p, &b.l, probe_cb), UV_EBUSY);  /* one promise at a time */
  ASSERT_OK(tide_promise_settle(&p, TIDE_FULFILLED));
  ASSERT_EQ(tide_promise_listeners(&p), 0);
  ASSERT_EQ(tide_promise_listen(&p, &a.l, probe_cb), UV_EBUSY);  /* its call is queued */
  ASSERT_OK(tide_promise_listen(&p, &late.l, probe_cb));  /* settled: queued last */
  tide_rt_drain(rt);
  ASSERT_EQ(a.at, 1);
  ASSERT_EQ(b.at, 2);
  ASSERT_EQ(c.at, 3);
  ASSERT_EQ(late.at, 4);
  ASSERT(a.called == 1 && b.called == 1 && c.called == 1 && late.called == 1);
  tide_promise_dispose(&p);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_job job;
  tide_promise *p;
  probe *pr;
  int seen_inside;
} settle_job;

/* Settles from a queued job and checks the listener did not run inside. */
static void settle_job_cb(tide_rt *rt, tide_job *job) {
  settle_job *s = (settle_job *)job;
  (void)rt;
  tide_promise_settle(s->p, TIDE_FULFILLED);
  s->seen_inside = s->pr->called;
}

TEST_IMPL(promise_never_synchronous) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  probe pr, again;
  settle_job s;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  probe_init(&pr, NULL);
  probe_init(&again, NULL);
  ASSERT_OK(tide_promise_listen(&p, &pr.l, probe_cb));
  s.p = &p;
  s.pr = &pr;
  s.seen_inside = -1;
  tide_job_queue(rt, &s.job, settle_job_cb);
  ASSERT_EQ(pr.called, 0);
  /* the drain runs the job, and the listener it queued, in one go */
  tide_rt_drain(rt);
  ASSERT_EQ(s.seen_inside, 0);
  ASSERT_EQ(pr.called, 1);
  /* listening to a settled promise: still from the queue */
  ASSERT_OK(tide_promise_listen(&p, &again.l, probe_cb));
  ASSERT_EQ(again.called, 0);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(again.called, 1);
  tide_promise_dispose(&p);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_listener_remove) {
  uv_loop_t loop;
  tide_rt *rt;
  counted c;
  probe a, b;
  RT_OPEN(&loop, rt);
  c.refs = 0;
  tide_promise_init(rt, &c.p, &counted_ops);
  probe_init(&a, NULL);
  probe_init(&b, NULL);
  ASSERT_OK(tide_promise_listen(&c.p, &a.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&c.p, &b.l, probe_cb));
  ASSERT_EQ(c.refs, 2);
  ASSERT_OK(tide_listener_remove(&a.l));
  ASSERT_EQ(c.refs, 1);
  ASSERT_EQ(tide_listener_remove(&a.l), UV_ENOENT);
  ASSERT_EQ(tide_promise_listeners(&c.p), 1);
  ASSERT_OK(tide_promise_settle(&c.p, TIDE_FULFILLED));
  ASSERT_EQ(tide_listener_remove(&b.l), UV_ENOENT);  /* queued: too late */
  tide_rt_drain(rt);
  ASSERT_EQ(a.called, 0);
  ASSERT_EQ(b.called, 1);
  /* a removed listener may listen again */
  ASSERT_OK(tide_promise_listen(&c.p, &a.l, probe_cb));
  tide_rt_drain(rt);
  ASSERT_EQ(a.called, 1);
  ASSERT_EQ(c.refs, 0);
  tide_promise_dispose(&c.p);
  RT_CLOSE(&loop, rt);
  return 0;
}

static int hook_calls;
static void count_hook(tide_promise *p, void *data) {
  (void)p;
  hook_calls += *(int *)data;
}

TEST_IMPL(promise_cancel) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p, q;
  probe pr;
  int one = 1;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  tide_promise_init(rt, &q, NULL);
  probe_init(&pr, NULL);
  /* no hook: nothing changes */
  ASSERT_EQ(tide_promise_cancel(&p), UV_ENOTSUP);
  ASSERT_EQ(p.state, TIDE_PENDING);
  /* a hook removed with NULL is gone */
  tide_promise_on_cancel(&p, count_hook, &one);
  tide_promise_on_cancel(&p, NULL, &one);
  ASSERT_EQ(tide_promise_cancel(&p), UV_ENOTSUP);
  /* with a hook: called once, then rejected as cancelled */
  tide_promise_on_cancel(&p, count_hook, &one);
  ASSERT_OK(tide_promise_listen(&p, &pr.l, probe_cb));
  ASSERT_OK(tide_promise_cancel(&p));
  ASSERT_EQ(hook_calls, 1);
  ASSERT_EQ(p.state, TIDE_REJECTED);
  ASSERT(tide_promise_is_cancelled(&p));
  ASSERT_EQ(p.values[0].type, TIDE_BYTES);
  ASSERT_STR_EQ(p.values[0].u.bytes.data, "cancelled");
  ASSERT_EQ(tide_promise_cancel(&p), UV_EALREADY);
  ASSERT_EQ(hook_calls, 1);
  /* settling removes the hook */
  tide_promise_on_cancel(&q, count_hook, &one);
  ASSERT_OK(tide_promise_resolve(&q, NULL, 0));
  ASSERT_EQ(tide_promise_cancel(&q), UV_EALREADY);
  ASSERT_EQ(hook_calls, 1);
  ASSERT(!tide_promise_is_cancelled(&q));
  tide_promise_dispose(&q);
  /* reject_cancelled needs no hook, and cancellations are never unhandled */
  tide_promise_init(rt, &q, NULL);
  ASSERT_OK(tide_promise_reject_cancelled(&q));
  ASSERT(tide_promise_is_cancelled(&q));
  tide_rt_drain(rt);
  ASSERT_EQ(pr.called, 1);
  ASSERT_EQ(pr.state, TIDE_REJECTED);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  tide_promise_dispose(&p);
  tide_promise_dispose(&q);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_retain_balance) {
  uv_loop_t loop;
  tide_rt *rt;
  counted c;
  probe a;
  RT_OPEN(&loop, rt);
  c.refs = 0;
  tide_promise_init(rt, &c.p, &counted_ops);
  probe_init(&a, NULL);
  ASSERT_OK(tide_promise_listen(&c.p, &a.l, probe_cb));
  ASSERT_EQ(c.refs, 1);                    /* the registration */
  ASSERT_OK(tide_sleep(rt, &c.p, 1));
  ASSERT_EQ(c.refs, 2);                    /* and the timer */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(a.called, 1);
  ASSERT_EQ(c.refs, 0);                    /* all returned */
  /* an unhandled rejection is retained until it is judged */
  tide_promise_dispose(&c.p);
  tide_promise_init(rt, &c.p, &counted_ops);
  ASSERT_OK(tide_promise_reject(&c.p, NULL));
  ASSERT_EQ(c.refs, 1);
  tide_rt_on_unhandled(rt, NULL);  /* the default reporter prints it */
  tide_rt_drain(rt);
  ASSERT_EQ(c.refs, 0);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 1);
  tide_promise_dispose(&c.p);
  RT_CLOSE(&loop, rt);
  return 0;
}

static int stored_n;
static int64_t stored_first;
static int store_hook(tide_promise *p, const tide_value *v, int n) {
  (void)p;
  stored_n = n;
  stored_first = n > 0 ? v[0].u.integer : -1;
  return n == 3 ? UV_ENOMEM : 0;  /* refuse three values */
}

TEST_IMPL(promise_store_hook) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  tide_value v[3] = {tide_integer(5), tide_integer(6), tide_integer(7)};
  static const tide_promise_ops ops = {NULL, NULL, store_hook};
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, &ops);
  ASSERT_EQ(tide_promise_resolve(&p, v, 3), UV_ENOMEM);  /* the hook's error */
  ASSERT_EQ(p.state, TIDE_PENDING);                       /* nothing changed */
  ASSERT_OK(tide_promise_resolve(&p, v, 2));
  ASSERT_EQ(stored_n, 2);
  ASSERT_EQ(stored_first, 5);
  ASSERT(p.values == NULL);                                /* the owner keeps them */
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  tide_promise_dispose(&p);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_dispose) {
  uv_loop_t loop;
  tide_rt *rt;
  counted c;
  probe a, b;
  RT_OPEN(&loop, rt);
  c.refs = 0;
  tide_promise_init(rt, &c.p, &counted_ops);
  probe_init(&a, NULL);
  probe_init(&b, NULL);
  ASSERT_OK(tide_promise_listen(&c.p, &a.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&c.p, &b.l, probe_cb));
  tide_promise_dispose(&c.p);           /* detaches both */
  ASSERT_EQ(c.refs, 0);
  ASSERT(a.l.source == NULL && b.l.source == NULL);
  tide_rt_drain(rt);
  ASSERT_EQ(a.called + b.called, 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

static int reported;
static tide_promise *reported_p;
static void report_cb(tide_rt *rt, tide_promise *p) {
  (void)rt;
  reported++;
  reported_p = p;
}

TEST_IMPL(promise_unhandled) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise lost, caught, handled, late;
  probe pr;
  settle_job s;
  tide_value err = tide_string("boom");
  RT_OPEN(&loop, rt);
  tide_rt_on_unhandled(rt, report_cb);
  tide_promise_init(rt, &lost, NULL);
  tide_promise_init(rt, &caught, NULL);
  tide_promise_init(rt, &handled, NULL);
  tide_promise_init(rt, &late, NULL);
  probe_init(&pr, NULL);
  ASSERT_OK(tide_promise_reject(&lost, &err));
  ASSERT_OK(tide_promise_reject(&caught, &err));
  ASSERT_OK(tide_promise_listen(&caught, &pr.l, probe_cb));  /* before the drain ends */
  tide_promise_mark_handled(&handled);
  ASSERT_OK(tide_promise_reject(&handled, &err));
  ASSERT_EQ(reported, 0);                                  /* judged at the end of a drain */
  tide_rt_drain(rt);
  ASSERT_EQ(reported, 1);
  ASSERT(reported_p == &lost);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 1);
  tide_rt_drain(rt);
  ASSERT_EQ(reported, 1);                                  /* once */
  /* a rejection made inside a drain is judged at its end, after the jobs
   * queued behind it: a listener added by a later job still counts */
  s.p = &late;
  s.pr = &pr;
  tide_job_queue(rt, &s.job, settle_job_cb);
  tide_rt_drain(rt);
  ASSERT_EQ(reported, 1);                                  /* fulfilled: fine */
  tide_promise_dispose(&lost);
  tide_promise_dispose(&caught);
  tide_promise_dispose(&handled);
  tide_promise_dispose(&late);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_sleep) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p, zero;
  probe pr, pz;
  int clock = 0;
  uint64_t start;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  tide_promise_init(rt, &zero, NULL);
  probe_init(&pr, &clock);
  probe_init(&pz, &clock);
  ASSERT_OK(tide_promise_listen(&p, &pr.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&zero, &pz.l, probe_cb));
  start = ms_now();
  ASSERT_OK(tide_sleep(rt, &p, 50));
  ASSERT_OK(tide_sleep(rt, &zero, 0));
  ASSERT_EQ(tide_sleep(rt, &p, 1), UV_EINVAL);   /* has a cancel hook: the timer's */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT(ms_now() - start >= 49);
  ASSERT_EQ(pz.at, 1);
  ASSERT_EQ(pr.at, 2);
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  ASSERT_EQ(p.nvalues, 0);
  ASSERT(tide_rt_now(rt) >= 50);
  tide_promise_dispose(&p);
  tide_promise_dispose(&zero);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* Sleeps of many durations (more than the hash table's first 16 buckets),
 * started in descending order and interleaved, some cancelled (first,
 * last, middle of a list, and a whole list): the rest fire by due time,
 * then start order. */
TEST_IMPL(promise_sleep_order) {
  enum { K = 20, R = 3 };
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p[K][R];
  probe pr[K][R];
  int clock = 0, k, r, at = 0;
  RT_OPEN(&loop, rt);
  for (r = 0; r < R; r++)
    for (k = K - 1; k >= 0; k--) {
      tide_promise_init(rt, &p[k][r], NULL);
      probe_init(&pr[k][r], &clock);
      ASSERT_OK(tide_promise_listen(&p[k][r], &pr[k][r].l, probe_cb));
      ASSERT_OK(tide_sleep(rt, &p[k][r], 5 * (uint64_t)k));
    }
  ASSERT_OK(tide_promise_cancel(&p[3][0]));
  ASSERT_OK(tide_promise_cancel(&p[4][2]));
  ASSERT_OK(tide_promise_cancel(&p[6][1]));
  for (r = 0; r < R; r++) ASSERT_OK(tide_promise_cancel(&p[5][r]));
  tide_rt_drain(rt);
  clock = 0;
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  for (k = 0; k < K; k++)
    for (r = 0; r < R; r++) {
      if (p[k][r].state == TIDE_REJECTED) continue;
      ASSERT_EQ(p[k][r].state, TIDE_FULFILLED);
      ASSERT_EQ(pr[k][r].at, ++at);
    }
  ASSERT_EQ(at, K * R - 6);
  for (k = 0; k < K; k++)
    for (r = 0; r < R; r++) tide_promise_dispose(&p[k][r]);
  /* cancelling the first of a list moves the list behind another: a 20 ms
   * sleep started 12 ms after the cancelled one is due after a 15 ms one */
  for (k = 0; k < 3; k++) {
    tide_promise_init(rt, &p[0][k], NULL);
    probe_init(&pr[0][k], &clock);
    ASSERT_OK(tide_promise_listen(&p[0][k], &pr[0][k].l, probe_cb));
  }
  ASSERT_OK(tide_sleep(rt, &p[0][0], 20));
  uv_sleep(12);
  ASSERT_OK(tide_sleep(rt, &p[0][1], 20));
  ASSERT_OK(tide_sleep(rt, &p[0][2], 15));
  ASSERT_OK(tide_promise_cancel(&p[0][0]));
  tide_rt_drain(rt);
  clock = 0;
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(pr[0][2].at, 1);
  ASSERT_EQ(pr[0][1].at, 2);
  for (k = 0; k < 3; k++) tide_promise_dispose(&p[0][k]);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_sleep_cancel) {
  uv_loop_t loop;
  tide_rt *rt;
  counted c;
  tide_promise forgotten;
  probe pr;
  uint64_t start;
  RT_OPEN(&loop, rt);
  c.refs = 0;
  tide_promise_init(rt, &c.p, &counted_ops);
  probe_init(&pr, NULL);
  ASSERT_OK(tide_promise_listen(&c.p, &pr.l, probe_cb));
  ASSERT_OK(tide_sleep(rt, &c.p, 10000));
  ASSERT_OK(tide_promise_cancel(&c.p));       /* stops the timer */
  start = ms_now();
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);  /* nothing keeps it alive */
  ASSERT(ms_now() - start < 1000);
  ASSERT_EQ(pr.called, 1);
  ASSERT_EQ(pr.state, TIDE_REJECTED);
  ASSERT_EQ(c.refs, 0);
  tide_promise_dispose(&c.p);
  /* a sleep still running at free is stopped (and its memory freed)
   * without touching its promise */
  tide_promise_init(rt, &forgotten, NULL);
  ASSERT_OK(tide_sleep(rt, &forgotten, 10000));
  tide_promise_dispose(&forgotten);
  memset(&forgotten, 0xA5, sizeof forgotten);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(promise_sleep_bad_args) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  ASSERT_EQ(tide_sleep(rt, NULL, 1), UV_EINVAL);
  ASSERT_OK(tide_promise_resolve(&p, NULL, 0));
  ASSERT_EQ(tide_sleep(rt, &p, 1), UV_EINVAL);  /* settled */
  tide_promise_dispose(&p);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* Detaching stops the producer (a sleep) without settling: the owner
 * settles the promise with its own values, and the loop has nothing left
 * to wait for. */
TEST_IMPL(promise_detach) {
  uv_loop_t loop;
  tide_rt *rt;
  counted c;
  tide_promise plain;
  tide_value v = tide_integer(5);
  probe pr;
  uint64_t start;
  RT_OPEN(&loop, rt);
  c.refs = 1;                                   /* the owner's */
  tide_promise_init(rt, &c.p, &counted_ops);
  probe_init(&pr, NULL);
  ASSERT_OK(tide_promise_listen(&c.p, &pr.l, probe_cb));
  ASSERT_OK(tide_sleep(rt, &c.p, 10000));
  ASSERT_EQ(c.refs, 3);                         /* + listener + timer */
  ASSERT_OK(tide_promise_detach(&c.p));
  ASSERT_EQ(c.refs, 2);                         /* the timer let go */
  ASSERT_EQ(c.p.state, TIDE_PENDING);
  ASSERT_EQ(tide_promise_detach(&c.p), UV_ENOTSUP);  /* no hook any more */
  ASSERT_OK(tide_promise_resolve(&c.p, &v, 1));
  start = ms_now();
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT(ms_now() - start < 1000);
  ASSERT_EQ(pr.called, 1);
  ASSERT_EQ(pr.state, TIDE_FULFILLED);
  ASSERT(!tide_promise_is_cancelled(&c.p));
  ASSERT_EQ(tide_promise_detach(&c.p), UV_EALREADY);
  ASSERT_EQ(tide_promise_detach(NULL), UV_EINVAL);
  tide_promise_init(rt, &plain, NULL);
  ASSERT_EQ(tide_promise_detach(&plain), UV_ENOTSUP);
  tide_promise_dispose(&plain);
  tide_promise_dispose(&c.p);
  ASSERT_EQ(c.refs, 1);
  RT_CLOSE(&loop, rt);
  return 0;
}
