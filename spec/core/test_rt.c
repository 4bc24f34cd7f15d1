/* Tests of core/rt.c: the runtime's life cycle, options, run modes, stop,
 * hold and release, the callback queue, tide_post from other threads, the
 * backend fd and timeout a host loop polls, loop-thread checks, and what
 * tide_rt_free leaves behind. Each test ends by checking that the loop
 * closes cleanly after tide_rt_free.
 * tests: rt_new_free rt_null_args rt_options_copied rt_host_loop_left_clean
 *        rt_run_modes rt_stop rt_hold_release rt_job_queue rt_data_slots
 *        rt_post_threads rt_post_dropped_at_free rt_post_refused_while_freeing
 *        rt_backend_timeout rt_backend_timeout_from_now rt_backend_poll_loop
 *        rt_backend_post_wakeup
 *        rt_backend_pending_close rt_binding_close rt_wrong_thread */
#include <poll.h>

#include "rt_helpers.h"

TEST_IMPL(rt_new_free) {
  tide_rt *rt = (tide_rt *)1;
  const tide_options *o;
  ASSERT_OK(tide_rt_new(NULL, &rt));
  ASSERT(rt != NULL);
  ASSERT(tide_rt_loop(rt) != NULL);
  o = tide_rt_options(rt);
  ASSERT(o->loop == tide_rt_loop(rt));
  ASSERT(o->threads == 0 && o->lua_path == NULL && o->lua_cpath == NULL);
  ASSERT(tide_rt_on_loop_thread(rt));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);  /* idle: returns at once */
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  tide_rt_free(rt);
  tide_rt_free(NULL);
  return 0;
}

static void nop_post(tide_rt *rt, void *data) { (void)rt; (void)data; }

TEST_IMPL(rt_null_args) {
  ASSERT_EQ(tide_rt_new(NULL, NULL), UV_EINVAL);
  ASSERT_EQ(tide_rt_run(NULL, TIDE_RUN_NOWAIT), UV_EINVAL);
  ASSERT_EQ(tide_rt_backend_fd(NULL), UV_EINVAL);
  ASSERT_EQ(tide_rt_backend_timeout(NULL), UV_EINVAL);
  ASSERT_EQ(tide_post(NULL, nop_post, NULL), UV_EINVAL);
  ASSERT(tide_rt_loop(NULL) == NULL);
  ASSERT(tide_rt_options(NULL) == NULL);
  ASSERT(tide_rt_get_data(NULL) == NULL);
  ASSERT(tide_rt_binding(NULL) == NULL);
  ASSERT_EQ(tide_rt_unhandled_count(NULL), 0);
  ASSERT_EQ(tide_rt_on_loop_thread(NULL), 0);
  ASSERT_EQ(tide_rt_now(NULL), 0);
  tide_rt_stop(NULL);
  tide_rt_hold(NULL);
  tide_rt_release(NULL);
  tide_rt_on_unhandled(NULL, NULL);
  tide_rt_set_data(NULL, NULL);
  tide_rt_set_binding(NULL, NULL);
  tide_rt_set_binding_close(NULL, NULL);
  {
    uv_loop_t loop;
    tide_rt *rt;
    RT_OPEN(&loop, rt);
    ASSERT_EQ(tide_post(rt, NULL, NULL), UV_EINVAL);
    RT_CLOSE(&loop, rt);
  }
  return 0;
}

TEST_IMPL(rt_options_copied) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_options o;
  char path[] = "/opt/x/?.lua", cpath[] = "/opt/x/?.so";
  const tide_options *got;
  ASSERT_OK(uv_loop_init(&loop));
  memset(&o, 0, sizeof o);
  o.loop = &loop;
  o.threads = 3;
  o.lua_path = path;
  o.lua_cpath = cpath;
  ASSERT_OK(tide_rt_new(&o, &rt));
  path[0] = cpath[0] = 'X';  /* the runtime kept copies */
  got = tide_rt_options(rt);
  ASSERT(got->loop == &loop);
  ASSERT(tide_rt_loop(rt) == &loop);
  ASSERT_EQ(got->threads, 3);
  ASSERT_STR_EQ(got->lua_path, "/opt/x/?.lua");
  ASSERT_STR_EQ(got->lua_cpath, "/opt/x/?.so");
  RT_CLOSE(&loop, rt);
  return 0;
}

static void host_timer_cb(uv_timer_t *t) { (*(int *)t->data)++; }

TEST_IMPL(rt_host_loop_left_clean) {
  uv_loop_t loop;
  uv_timer_t host_timer;
  tide_rt *rt;
  tide_promise p;
  int fired = 0;
  RT_OPEN(&loop, rt);
  /* tide's handles never keep the host's loop alive */
  ASSERT_EQ(uv_loop_alive(&loop), 0);
  ASSERT_OK(uv_timer_init(&loop, &host_timer));
  host_timer.data = &fired;
  ASSERT_OK(uv_timer_start(&host_timer, host_timer_cb, 1, 0));
  tide_promise_init(rt, &p, NULL);
  ASSERT_OK(tide_sleep(rt, &p, 1));
  /* the host runs its own loop: the queue still drains (prepare/check) */
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(fired, 1);
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  tide_promise_dispose(&p);
  tide_rt_free(rt);
  /* the host's handle survived the free and still works */
  ASSERT_OK(uv_timer_start(&host_timer, host_timer_cb, 1, 0));
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(fired, 2);
  uv_close((uv_handle_t *)&host_timer, NULL);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

TEST_IMPL(rt_run_modes) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise a, b;
  probe pa, pb;
  uint64_t start;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &a, NULL);
  tide_promise_init(rt, &b, NULL);
  probe_init(&pa, NULL);
  probe_init(&pb, NULL);
  ASSERT_OK(tide_promise_listen(&a, &pa.l, probe_cb));
  ASSERT_OK(tide_promise_listen(&b, &pb.l, probe_cb));
  ASSERT_OK(tide_sleep(rt, &a, 30));
  ASSERT_OK(tide_sleep(rt, &b, 60));
  start = ms_now();
  /* NOWAIT: one turn, no waiting, still alive */
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);
  ASSERT(ms_now() - start < 25);
  ASSERT_EQ(pa.called, 0);
  /* ONCE: waits for the first timer, then returns; b keeps it alive */
  ASSERT(tide_rt_run(rt, TIDE_RUN_ONCE) != 0);
  ASSERT_EQ(pa.called, 1);
  ASSERT_EQ(pb.called, 0);
  ASSERT(ms_now() - start >= 29);
  /* DEFAULT: until nothing is left */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(pb.called, 1);
  ASSERT(ms_now() - start >= 59);
  /* idle: every mode returns 0 at once */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_ONCE), 0);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  tide_promise_dispose(&a);
  tide_promise_dispose(&b);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_listener l;
  tide_rt *rt;
} stopper;

static void stop_cb(tide_listener *l, tide_promise *src) {
  (void)src;
  tide_rt_stop(((stopper *)l)->rt);
}

TEST_IMPL(rt_stop) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise shortp, longp;
  stopper st;
  uint64_t start;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &shortp, NULL);
  tide_promise_init(rt, &longp, NULL);
  memset(&st, 0, sizeof st);
  st.rt = rt;
  ASSERT_OK(tide_promise_listen(&shortp, &st.l, stop_cb));
  ASSERT_OK(tide_sleep(rt, &shortp, 10));
  ASSERT_OK(tide_sleep(rt, &longp, 10000));
  start = ms_now();
  ASSERT(tide_rt_run(rt, TIDE_RUN_DEFAULT) != 0);  /* stopped, still alive */
  ASSERT(ms_now() - start < 5000);
  ASSERT_EQ(longp.state, TIDE_PENDING);
  ASSERT_OK(tide_promise_cancel(&longp));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);  /* a new run is not stopped */
  tide_promise_dispose(&shortp);
  tide_promise_dispose(&longp);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_rt *rt;
  int delay_ms;
  int ran;
} late_post;

static void release_post(tide_rt *rt, void *data) {
  late_post *lp = data;
  lp->ran++;
  tide_rt_release(rt);
}

static void late_post_thread(void *arg) {
  late_post *lp = arg;
  uv_sleep(lp->delay_ms);
  tide_post(lp->rt, release_post, lp);
}

TEST_IMPL(rt_hold_release) {
  uv_loop_t loop;
  tide_rt *rt;
  uv_thread_t th;
  late_post lp;
  uint64_t start;
  RT_OPEN(&loop, rt);
  /* releases without holds are ignored: the count never goes below 0 */
  tide_rt_release(rt);
  tide_rt_release(rt);
  tide_rt_hold(rt);
  tide_rt_hold(rt);
  tide_rt_release(rt);
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);  /* one hold left */
  lp.rt = rt;
  lp.delay_ms = 50;
  lp.ran = 0;
  start = ms_now();
  ASSERT_OK(uv_thread_create(&th, late_post_thread, &lp));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);  /* waits for the post */
  ASSERT_EQ(lp.ran, 1);
  ASSERT(ms_now() - start >= 49);
  ASSERT_OK(uv_thread_join(&th));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_job job;
  int *clock;
  int at;
  int nest;   /* queue `child` from inside, and drain re-entrantly */
  struct order_job *child;
} order_job;

static void order_cb(tide_rt *rt, tide_job *job) {
  order_job *o = (order_job *)job;
  o->at = ++*o->clock;
  if (o->nest) {
    tide_job_queue(rt, &((order_job *)o->child)->job, order_cb);
    tide_rt_drain(rt);  /* re-entrant: returns at once */
    if (((order_job *)o->child)->at != 0) o->at = -1;
  }
}

TEST_IMPL(rt_job_queue) {
  uv_loop_t loop;
  tide_rt *rt;
  order_job j[4];
  int clock = 0, i;
  RT_OPEN(&loop, rt);
  memset(j, 0, sizeof j);
  for (i = 0; i < 4; i++) j[i].clock = &clock;
  j[0].nest = 1;
  j[0].child = (struct order_job *)&j[3];
  tide_job_queue(rt, &j[0].job, order_cb);
  tide_job_queue(rt, &j[1].job, order_cb);
  tide_job_queue(rt, &j[2].job, order_cb);
  ASSERT_EQ(clock, 0);                 /* queued, not run */
  ASSERT(tide_rt_backend_timeout(rt) == 0);
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) == 0);  /* runs them all */
  ASSERT_EQ(j[0].at, 1);
  ASSERT_EQ(j[1].at, 2);
  ASSERT_EQ(j[2].at, 3);
  ASSERT_EQ(j[3].at, 4);               /* queued from a job: same drain, last */
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(rt_data_slots) {
  uv_loop_t loop;
  tide_rt *rt;
  int a, b;
  RT_OPEN(&loop, rt);
  ASSERT(tide_rt_get_data(rt) == NULL);
  tide_rt_set_data(rt, &a);
  ASSERT(tide_rt_get_data(rt) == &a);
  ASSERT(tide_rt_binding(rt) == NULL);
  tide_rt_set_binding(rt, &b);
  ASSERT(tide_rt_binding(rt) == &b);
  tide_rt_set_binding(rt, NULL);
  RT_CLOSE(&loop, rt);
  return 0;
}

#define POSTERS 4
#define POSTS 500

typedef struct {
  tide_rt *rt;
  int id;
  int next[POSTERS];   /* loop side: the next number expected per thread */
  int bad, done;
} post_state;

typedef struct {
  post_state *st;
  int id, n;
} post_msg;

static void count_post(tide_rt *rt, void *data) {
  post_msg *m = data;
  post_state *st = m->st;
  if (!tide_rt_on_loop_thread(rt)) st->bad++;
  if (m->n != st->next[m->id]) st->bad++;  /* in the order of posting */
  st->next[m->id] = m->n + 1;
  if (m->n == POSTS - 1 && ++st->done == POSTERS) tide_rt_release(rt);
  free(m);
}

typedef struct {
  post_state *st;
  int id;
} poster_arg;

static void poster_thread(void *arg) {
  poster_arg *a = arg;
  int i;
  for (i = 0; i < POSTS; i++) {
    post_msg *m = malloc(sizeof *m);
    m->st = a->st;
    m->id = a->id;
    m->n = i;
    if (tide_post(a->st->rt, count_post, m) != 0) abort();
    if (i % 100 == 0) uv_sleep(1);
  }
}

TEST_IMPL(rt_post_threads) {
  uv_loop_t loop;
  tide_rt *rt;
  post_state st;
  poster_arg args[POSTERS];
  uv_thread_t th[POSTERS];
  int i;
  RT_OPEN(&loop, rt);
  memset(&st, 0, sizeof st);
  st.rt = rt;
  tide_rt_hold(rt);  /* released by the last post */
  for (i = 0; i < POSTERS; i++) {
    args[i].st = &st;
    args[i].id = i;
    ASSERT_OK(uv_thread_create(&th[i], poster_thread, &args[i]));
  }
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  for (i = 0; i < POSTERS; i++) ASSERT_OK(uv_thread_join(&th[i]));
  ASSERT_EQ(st.bad, 0);
  ASSERT_EQ(st.done, POSTERS);
  for (i = 0; i < POSTERS; i++) ASSERT_EQ(st.next[i], POSTS);
  RT_CLOSE(&loop, rt);
  return 0;
}

static void must_not_run(tide_rt *rt, void *data) { (void)rt; (*(int *)data)++; }

TEST_IMPL(rt_post_dropped_at_free) {
  uv_loop_t loop;
  tide_rt *rt;
  static int ran;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_post(rt, must_not_run, &ran));  /* from the loop thread too */
  ASSERT(tide_rt_backend_timeout(rt) == 0);        /* a post waits */
  RT_CLOSE(&loop, rt);
  ASSERT_EQ(ran, 0);  /* dropped, never called */
  /* and a post runs at the next turn when the runtime lives on */
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_post(rt, must_not_run, &ran));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(ran, 1);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* A binding close hook runs first in tide_rt_free: a post made from it
 * still gets in (freeing has not begun); the pool's after callbacks of
 * cancelled jobs run once it has, and a post made there is refused. */
typedef struct {
  tide_work req;
  int status, post_err;
  uv_sem_t started;
} free_job;

static void free_job_work(tide_work *req, tide_worker *w) {
  free_job *j = (free_job *)req;
  (void)w;
  uv_sem_post(&j->started);
  uv_sleep(50);
}

static void free_job_after(tide_work *req, int status) {
  free_job *j = (free_job *)req;
  j->status = status;
  j->post_err = tide_post(req->rt, nop_post, NULL);
}

TEST_IMPL(rt_post_refused_while_freeing) {
  uv_loop_t loop;
  tide_rt *rt;
  free_job running, queued;
  tide_options o;
  memset(&o, 0, sizeof o);
  memset(&running, 0, sizeof running);
  memset(&queued, 0, sizeof queued);
  ASSERT_OK(uv_loop_init(&loop));
  o.loop = &loop;
  o.threads = 1;
  ASSERT_OK(tide_rt_new(&o, &rt));
  ASSERT_OK(uv_sem_init(&running.started, 0));
  ASSERT_OK(uv_sem_init(&queued.started, 0));
  ASSERT_OK(tide_work_submit(rt, &running.req, NULL, free_job_work, free_job_after));
  ASSERT_OK(tide_work_submit(rt, &queued.req, NULL, free_job_work, free_job_after));
  uv_sem_wait(&running.started);
  RT_CLOSE(&loop, rt);
  ASSERT_EQ(queued.status, UV_ECANCELED);   /* never started */
  ASSERT_EQ(queued.post_err, UV_ECANCELED);
  ASSERT_EQ(running.post_err, UV_ECANCELED);
  uv_sem_destroy(&running.started);
  uv_sem_destroy(&queued.started);
  return 0;
}

static void idle_stop_cb(uv_idle_t *h) { uv_idle_stop(h); }

TEST_IMPL(rt_backend_timeout) {
  uv_loop_t loop;
  uv_idle_t idle;
  tide_rt *rt;
  tide_promise p;
  order_job j;
  int clock = 0, t;
  RT_OPEN(&loop, rt);
  ASSERT(tide_rt_backend_fd(rt) >= 0);
  ASSERT_EQ(tide_rt_backend_fd(rt), uv_backend_fd(&loop));
  /* a fresh runtime: libuv has watchers to register first */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  /* idle: wait on the fd as long as it takes (posts wake it) */
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);
  /* a timer: at most its time */
  tide_promise_init(rt, &p, NULL);
  ASSERT_OK(tide_sleep(rt, &p, 500));
  t = tide_rt_backend_timeout(rt);
  ASSERT(t > 400 && t <= 500);
  /* a queued callback: now */
  memset(&j, 0, sizeof j);
  j.clock = &clock;
  tide_job_queue(rt, &j.job, order_cb);
  ASSERT_EQ(tide_rt_backend_timeout(rt), 0);
  tide_rt_drain(rt);
  ASSERT(tide_rt_backend_timeout(rt) > 0);
  /* holds do not change the answer */
  tide_rt_hold(rt);
  ASSERT(tide_rt_backend_timeout(rt) > 0);
  tide_rt_release(rt);
  /* an idle handle (the host's): now */
  ASSERT_OK(uv_idle_init(&loop, &idle));
  ASSERT_OK(uv_idle_start(&idle, idle_stop_cb));
  ASSERT_EQ(tide_rt_backend_timeout(rt), 0);
  uv_close((uv_handle_t *)&idle, NULL);
  ASSERT_OK(tide_promise_cancel(&p));
  tide_promise_dispose(&p);
  ASSERT_EQ(tide_rt_backend_timeout(rt), 0);  /* closing handles: now */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);  /* closed: idle again */
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(rt_backend_timeout_from_now) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  int t;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  ASSERT_OK(tide_sleep(rt, &p, 40));
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);
  uv_sleep(20);                          /* the host did other things */
  t = tide_rt_backend_timeout(rt);
  ASSERT(t > 0 && t <= 25);              /* what is left, not 40 */
  uv_sleep(25);
  ASSERT_EQ(tide_rt_backend_timeout(rt), 0);  /* due: run tide now */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  tide_promise_dispose(&p);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* Drives the runtime the way a host with a poll() loop does; returns the
 * number of wake-ups until `done` is set, or -1 past `max_turns`. */
static int poll_until(tide_rt *rt, const int *done, int max_turns) {
  struct pollfd pfd;
  int turns = 0;
  pfd.fd = tide_rt_backend_fd(rt);
  pfd.events = POLLIN;
  while (!*done) {
    if (++turns > max_turns) return -1;
    poll(&pfd, 1, tide_rt_backend_timeout(rt));
    tide_rt_run(rt, TIDE_RUN_NOWAIT);
  }
  return turns;
}

typedef struct {
  tide_listener l;
  int done;
} done_flag;

static void done_flag_cb(tide_listener *l, tide_promise *src) {
  (void)src;
  ((done_flag *)l)->done = 1;
}

TEST_IMPL(rt_backend_poll_loop) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p[3];
  done_flag last;
  uint64_t start;
  int turns, i;
  RT_OPEN(&loop, rt);
  memset(&last, 0, sizeof last);
  for (i = 0; i < 3; i++) {
    tide_promise_init(rt, &p[i], NULL);
    ASSERT_OK(tide_sleep(rt, &p[i], 20 * (uint64_t)(i + 1)));
  }
  ASSERT_OK(tide_promise_listen(&p[2], &last.l, done_flag_cb));
  start = ms_now();
  turns = poll_until(rt, &last.done, 50);
  ASSERT(turns > 0);                 /* no busy loop: a few wake-ups */
  ASSERT(ms_now() - start >= 59);
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(p[i].state, TIDE_FULFILLED);
    tide_promise_dispose(&p[i]);
  }
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_rt *rt;
  int done;
} wake_state;

static void wake_post(tide_rt *rt, void *data) {
  (void)rt;
  ((wake_state *)data)->done = 1;
}

static void wake_thread(void *arg) {
  wake_state *w = arg;
  uv_sleep(30);
  tide_post(w->rt, wake_post, w);
}

TEST_IMPL(rt_backend_post_wakeup) {
  uv_loop_t loop;
  tide_rt *rt;
  wake_state w;
  uv_thread_t th;
  struct pollfd pfd;
  RT_OPEN(&loop, rt);
  w.rt = rt;
  w.done = 0;
  /* an idle runtime: the host waits without a timeout, a post wakes it */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);
  ASSERT_OK(uv_thread_create(&th, wake_thread, &w));
  ASSERT(poll_until(rt, &w.done, 5) > 0);
  ASSERT_OK(uv_thread_join(&th));
  /* the wake-up was read: the fd is quiet again, nothing left to do */
  pfd.fd = tide_rt_backend_fd(rt);
  pfd.events = POLLIN;
  ASSERT_EQ(poll(&pfd, 1, 0), 0);
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(rt_backend_pending_close) {
  uv_loop_t loop;
  uv_timer_t t;
  tide_rt *rt;
  RT_OPEN(&loop, rt);
  ASSERT_OK(uv_timer_init(&loop, &t));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);
  uv_close((uv_handle_t *)&t, NULL);
  /* a close callback is due: the host must run tide now */
  ASSERT_EQ(tide_rt_backend_timeout(rt), 0);
  tide_rt_run(rt, TIDE_RUN_NOWAIT);
  ASSERT_EQ(tide_rt_backend_timeout(rt), -1);
  RT_CLOSE(&loop, rt);
  return 0;
}

static int closed_with;
static void binding_close_cb(tide_rt *rt, void *binding) {
  (void)rt;
  closed_with += *(int *)binding;
}

TEST_IMPL(rt_binding_close) {
  uv_loop_t loop;
  tide_rt *rt;
  int one = 1;
  RT_OPEN(&loop, rt);
  tide_rt_set_binding(rt, &one);
  tide_rt_set_binding_close(rt, binding_close_cb);
  RT_CLOSE(&loop, rt);
  ASSERT_EQ(closed_with, 1);  /* once, with the binding */
  return 0;
}

#ifndef NDEBUG
typedef struct {
  tide_rt *rt;
  tide_promise *p;
  int run, timeout, resolve, sleep, settle, listen, cancel, post, on_thread;
} foreign_calls;

static void foreign_thread(void *arg) {
  foreign_calls *f = arg;
  tide_listener l;
  memset(&l, 0, sizeof l);
  f->run = tide_rt_run(f->rt, TIDE_RUN_NOWAIT);
  f->timeout = tide_rt_backend_timeout(f->rt);
  f->resolve = tide_promise_resolve(f->p, NULL, 0);
  f->settle = tide_promise_settle(f->p, TIDE_FULFILLED);
  f->sleep = tide_sleep(f->rt, f->p, 1);
  f->listen = tide_promise_listen(f->p, &l, probe_cb);
  f->cancel = tide_promise_cancel(f->p);
  tide_rt_hold(f->rt);                  /* ignored */
  tide_rt_stop(f->rt);                  /* ignored */
  f->on_thread = tide_rt_on_loop_thread(f->rt);
  f->post = tide_post(f->rt, nop_post, NULL);  /* the one allowed */
}
#endif

TEST_IMPL(rt_wrong_thread) {
#ifndef NDEBUG
  uv_loop_t loop;
  tide_rt *rt;
  tide_promise p;
  foreign_calls f;
  uv_thread_t th;
  RT_OPEN(&loop, rt);
  tide_promise_init(rt, &p, NULL);
  memset(&f, 0, sizeof f);
  f.rt = rt;
  f.p = &p;
  ASSERT_OK(uv_thread_create(&th, foreign_thread, &f));
  ASSERT_OK(uv_thread_join(&th));
  ASSERT_EQ(f.run, UV_EPERM);
  ASSERT_EQ(f.timeout, UV_EPERM);
  ASSERT_EQ(f.resolve, UV_EPERM);
  ASSERT_EQ(f.settle, UV_EPERM);
  ASSERT_EQ(f.sleep, UV_EPERM);
  ASSERT_EQ(f.listen, UV_EPERM);
  ASSERT_EQ(f.cancel, UV_EPERM);
  ASSERT_EQ(f.on_thread, 0);
  ASSERT_EQ(f.post, 0);
  ASSERT_EQ(p.state, TIDE_PENDING);             /* nothing happened */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);  /* no hold was taken */
  tide_promise_dispose(&p);
  RT_CLOSE(&loop, rt);
#endif
  return 0;
}
