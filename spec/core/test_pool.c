/* Tests of core/pool.c: tide's thread pool seen from C. Each test runs the
 * runtime on a loop the test owns and ends by asserting that the loop
 * closes cleanly after tide_rt_free (no handle of the pool left behind).
 * tests: pool_submit_complete pool_promise pool_ordering pool_messages
 *        pool_cancel_queued pool_cancel_promise pool_shutdown_queued
 *        pool_worker_slots pool_multiple_runtimes pool_fs_not_starved
 *        pool_size pool_bad_args (and, in debug builds, calls off the
 *        loop thread) */
#include <stdlib.h>

#include "test.h"
#include "tide.h"

/* A gate a job can wait on, with a timeout so a broken test cannot hang. */
typedef struct gate {
  uv_mutex_t lock;
  uv_cond_t cond;
  int open;
  int waiting;
} gate;

static void gate_init(gate *g) {
  uv_mutex_init(&g->lock);
  uv_cond_init(&g->cond);
  g->open = 0;
  g->waiting = 0;
}

static void gate_destroy(gate *g) {
  uv_cond_destroy(&g->cond);
  uv_mutex_destroy(&g->lock);
}

static void gate_open(gate *g) {
  uv_mutex_lock(&g->lock);
  g->open = 1;
  uv_cond_broadcast(&g->cond);
  uv_mutex_unlock(&g->lock);
}

/* Waits until the gate opens; returns 0, or -1 after `ms` milliseconds. */
static int gate_wait(gate *g, uint64_t ms) {
  uint64_t deadline = uv_hrtime() + ms * 1000000u;
  int rc = 0;
  uv_mutex_lock(&g->lock);
  g->waiting++;
  uv_cond_broadcast(&g->cond);
  while (!g->open) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) { rc = -1; break; }
    uv_cond_timedwait(&g->cond, &g->lock, deadline - now);
  }
  uv_mutex_unlock(&g->lock);
  return rc;
}

/* Waits until `n` threads wait on the gate; returns 0, or -1 on timeout. */
static int gate_wait_waiters(gate *g, int n, uint64_t ms) {
  uint64_t deadline = uv_hrtime() + ms * 1000000u;
  int rc = 0;
  uv_mutex_lock(&g->lock);
  while (g->waiting < n) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) { rc = -1; break; }
    uv_cond_timedwait(&g->cond, &g->lock, deadline - now);
  }
  uv_mutex_unlock(&g->lock);
  return rc;
}

/* A runtime on the test's loop with `threads` workers. */
static tide_rt *pool_rt(uv_loop_t *loop, int threads) {
  tide_options opts;
  tide_rt *rt = NULL;
  memset(&opts, 0, sizeof(opts));
  if (uv_loop_init(loop) != 0) return NULL;
  opts.loop = loop;
  opts.threads = threads;
  if (tide_rt_new(&opts, &rt) != 0) return NULL;
  return rt;
}

/* ------------------------------------------------------------------ jobs */

typedef struct job {
  tide_work req;
  int index;
  int input, output;   /* written by the worker, read after */
  int ran;             /* the work function ran */
  int status;          /* of the after function; 1 before it ran */
  int *order;          /* shared log of run order (one worker only) */
  int *norder;
  gate *gate;          /* wait on it first, when set */
  int timed_out;
} job;

static void square_work(tide_work *req, tide_worker *w) {
  job *j = (job *)req;
  (void)w;
  if (j->gate && gate_wait(j->gate, 10000) != 0) j->timed_out = 1;
  j->output = j->input * j->input;
  j->ran = 1;
  if (j->order) j->order[(*j->norder)++] = j->index;
}

static int afters;

static void count_after(tide_work *req, int status) {
  ((job *)req)->status = status;
  afters++;
}

static void jobs_init(job *jobs, int n) {
  int i;
  memset(jobs, 0, sizeof(*jobs) * (size_t)n);
  for (i = 0; i < n; i++) {
    jobs[i].index = i;
    jobs[i].input = i;
    jobs[i].status = 1;
  }
}

TEST_IMPL(pool_submit_complete) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 4);
  job jobs[200];
  int i;
  ASSERT(rt != NULL);
  jobs_init(jobs, 200);
  afters = 0;
  for (i = 0; i < 200; i++)
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, NULL, square_work, count_after));
  ASSERT_EQ(afters, 0);                      /* never inside submit */
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 200);
  for (i = 0; i < 200; i++) {
    ASSERT_EQ(jobs[i].status, 0);
    ASSERT_EQ(jobs[i].output, i * i);
  }
  /* A request may be submitted again once its after function ran. */
  ASSERT_OK(tide_work_submit(rt, &jobs[7].req, NULL, square_work, count_after));
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 201);
  ASSERT_EQ(tide_pool_size(rt), 4);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* A job tied to a promise settles it with C values from its after. */
static void settle_after(tide_work *req, int status) {
  job *j = (job *)req;
  tide_value v[2];
  j->status = status;
  afters++;
  if (status != 0) return;
  v[0] = tide_integer(j->output);
  v[1] = tide_string("done");
  tide_promise_resolve(req->promise, v, 2);
}

static int listened;
static void record_listener(tide_listener *l, tide_promise *src) {
  (void)l;
  (void)src;
  listened++;
}

TEST_IMPL(pool_promise) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 2);
  tide_promise p;
  tide_listener l;
  job j;
  ASSERT(rt != NULL);
  jobs_init(&j, 1);
  j.input = 12;
  memset(&l, 0, sizeof(l));
  tide_promise_init(rt, &p, NULL);
  afters = listened = 0;
  ASSERT_OK(tide_work_submit(rt, &j.req, &p, square_work, settle_after));
  ASSERT(j.req.promise == &p);
  /* A promise serves one job: it has a cancel hook now. */
  ASSERT_EQ(tide_work_submit(rt, &j.req, &p, square_work, settle_after), UV_EINVAL);
  ASSERT_OK(tide_promise_listen(&p, &l, record_listener));
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 1);
  ASSERT_EQ(listened, 1);
  ASSERT_EQ(p.state, TIDE_FULFILLED);
  ASSERT_EQ(p.nvalues, 2);
  ASSERT_EQ(p.values[0].u.integer, 144);
  ASSERT_EQ(p.values[1].u.bytes.len, 4);
  ASSERT(p.cancel_cb == NULL);
  ASSERT_EQ(tide_promise_cancel(&p), UV_EALREADY);
  tide_promise_dispose(&p);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

TEST_IMPL(pool_ordering) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 1);
  job jobs[50];
  int order[50], norder = 0, i;
  ASSERT(rt != NULL);
  jobs_init(jobs, 50);
  afters = 0;
  for (i = 0; i < 50; i++) {
    jobs[i].order = order;
    jobs[i].norder = &norder;
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, NULL, square_work, count_after));
  }
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 50);
  ASSERT_EQ(norder, 50);
  for (i = 0; i < 50; i++) ASSERT_EQ(order[i], i);  /* one worker: FIFO */
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* ------------------------------------------------------------ messages */

typedef struct note {
  tide_work_msg msg;
  int value;
} note;

typedef struct talker {
  tide_work req;
  int sent, send_err;
  int got[100], ngot;
  int ngot_at_after;
} talker;

static void note_cb(tide_work *req, tide_work_msg *msg, int status) {
  talker *t = (talker *)req;
  note *n = (note *)msg;
  if (status == 0 && t->ngot < 100) t->got[t->ngot++] = n->value;
  free(n);
}

static void talk_work_cb(tide_work *req, tide_worker *w) {
  talker *t = (talker *)req;
  int i;
  (void)w;
  for (i = 0; i < 100; i++) {
    note *n = malloc(sizeof(*n));
    if (n == NULL) return;
    n->value = i;
    if (tide_work_send(req, &n->msg, NULL) != UV_EINVAL) t->send_err = 1;  /* cb required */
    if (tide_work_send(req, &n->msg, note_cb) != 0) { free(n); t->send_err = 1; return; }
    t->sent++;
    if (i % 10 == 0) uv_sleep(1);
  }
}

static void talk_after(tide_work *req, int status) {
  talker *t = (talker *)req;
  t->ngot_at_after = t->ngot;
  afters++;
  (void)status;
}

TEST_IMPL(pool_messages) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 3);
  talker t[3];
  note outside;
  int i, k;
  ASSERT(rt != NULL);
  memset(t, 0, sizeof(t));
  afters = 0;
  for (i = 0; i < 3; i++)
    ASSERT_OK(tide_work_submit(rt, &t[i].req, NULL, talk_work_cb, talk_after));
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  /* Only a running job can send. */
  ASSERT_EQ(tide_work_send(&t[0].req, &outside.msg, note_cb), UV_EINVAL);
  ASSERT_EQ(afters, 3);
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(t[i].send_err, 0);
    ASSERT_EQ(t[i].sent, 100);
    ASSERT_EQ(t[i].ngot_at_after, 100);   /* every message before the end */
    for (k = 0; k < 100; k++) ASSERT_EQ(t[i].got[k], k);  /* in order */
  }
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* --------------------------------------------------------- cancellation */

TEST_IMPL(pool_cancel_queued) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 1);
  job jobs[6];
  gate g;
  int i;
  ASSERT(rt != NULL);
  gate_init(&g);
  jobs_init(jobs, 6);
  afters = 0;
  jobs[0].gate = &g;  /* holds the only worker */
  for (i = 0; i < 6; i++)
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, NULL, square_work, count_after));
  ASSERT_OK(gate_wait_waiters(&g, 1, 10000));   /* job 0 is running */
  ASSERT_EQ(tide_work_cancel(&jobs[0].req), UV_EBUSY);
  ASSERT_OK(tide_work_cancel(&jobs[2].req));
  ASSERT_OK(tide_work_cancel(&jobs[5].req));    /* the tail of the queue */
  ASSERT_OK(tide_work_cancel(&jobs[1].req));    /* the head */
  ASSERT_EQ(tide_work_cancel(&jobs[1].req), UV_EBUSY);  /* its end is on the way */
  ASSERT_EQ(afters, 0);                          /* never inside cancel */
  gate_open(&g);
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 6);
  for (i = 0; i < 6; i++) {
    int cancelled = i == 1 || i == 2 || i == 5;
    ASSERT_EQ(jobs[i].status, cancelled ? UV_ECANCELED : 0);
    ASSERT_EQ(jobs[i].ran, !cancelled);
  }
  ASSERT_EQ(jobs[0].timed_out, 0);
  ASSERT_EQ(tide_work_cancel(&jobs[3].req), UV_EINVAL);  /* ended */
  tide_rt_free(rt);
  gate_destroy(&g);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* An after function that does not settle (the pool rejects a cancelled
 * job's promise itself) and counts nothing: runtimes on several threads
 * use it. */
static void lazy_after(tide_work *req, int status) {
  ((job *)req)->status = status;
}

TEST_IMPL(pool_cancel_promise) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 1);
  tide_promise p[3];
  job jobs[3];
  gate g;
  int i;
  ASSERT(rt != NULL);
  gate_init(&g);
  jobs_init(jobs, 3);
  jobs[0].gate = &g;
  afters = 0;
  for (i = 0; i < 3; i++) {
    tide_promise_init(rt, &p[i], NULL);
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, &p[i], square_work, i == 2 ? lazy_after : settle_after));
  }
  ASSERT_OK(gate_wait_waiters(&g, 1, 10000));
  ASSERT_EQ(afters, 0);
  /* Cancelling the promise of a queued job cancels the job. */
  ASSERT_OK(tide_promise_cancel(&p[1]));
  ASSERT_EQ(p[1].state, TIDE_REJECTED);
  ASSERT(tide_promise_is_cancelled(&p[1]));
  /* Cancelling the job directly: its after leaves the promise pending. */
  ASSERT_OK(tide_work_cancel(&jobs[2].req));
  /* The running job's promise is rejected at once; the job runs on. */
  ASSERT_OK(tide_promise_cancel(&p[0]));
  ASSERT(tide_promise_is_cancelled(&p[0]));
  gate_open(&g);
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 2);  /* lazy_after does not count */
  ASSERT_EQ(jobs[0].status, 0);
  ASSERT_EQ(jobs[0].ran, 1);
  ASSERT(tide_promise_is_cancelled(&p[0]));  /* not overwritten by after */
  ASSERT_EQ(jobs[1].status, UV_ECANCELED);
  ASSERT_EQ(jobs[1].ran, 0);
  ASSERT_EQ(jobs[2].status, UV_ECANCELED);
  ASSERT(tide_promise_is_cancelled(&p[2]));
  for (i = 0; i < 3; i++) tide_promise_dispose(&p[i]);
  tide_rt_free(rt);
  gate_destroy(&g);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* ------------------------------------------------------------- shutdown */

static int finis;               /* atomic: workers exit at once */
static uv_thread_t fini_threads[8];

static void slot_fini(void *value) {
  int *slot = value;
  /* runs on the worker's own thread */
  int k = __atomic_fetch_add(&finis, 1, __ATOMIC_SEQ_CST);
  if (k < 8) fini_threads[k] = uv_thread_self();
  free(slot);
}

static const tide_worker_key slot_key = {slot_fini};

typedef struct slot_job {
  tide_work req;
  int count;            /* the worker's counter after this job */
  int index;            /* the worker's index */
  uv_thread_t thread;
  gate *gate;
} slot_job;

/* Counts the jobs of each worker in a lazily created slot. */
static void slot_work(tide_work *req, tide_worker *w) {
  slot_job *j = (slot_job *)req;
  int *slot = tide_worker_get(w, &slot_key);
  if (slot == NULL) {
    slot = calloc(1, sizeof(*slot));
    if (slot == NULL || tide_worker_set(w, &slot_key, slot) != 0) { free(slot); return; }
  }
  j->count = ++*slot;
  j->index = tide_worker_index(w);
  j->thread = uv_thread_self();
  if (j->gate) {
    gate_wait(j->gate, 10000);
    uv_sleep(50);  /* still running when the runtime is freed */
  }
}

static int slot_afters, slot_cancelled;
static void slot_after(tide_work *req, int status) {
  (void)req;
  slot_afters++;
  if (status == UV_ECANCELED) slot_cancelled++;
}

TEST_IMPL(pool_shutdown_queued) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 1);
  slot_job *jobs = calloc(20, sizeof(*jobs));  /* freed by the test only */
  gate g;
  int i;
  ASSERT(rt != NULL && jobs != NULL);
  gate_init(&g);
  jobs[0].gate = &g;
  finis = slot_afters = slot_cancelled = 0;
  for (i = 0; i < 20; i++)
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, NULL, slot_work, slot_after));
  ASSERT_OK(gate_wait_waiters(&g, 1, 10000));  /* job 0 runs */
  gate_open(&g);
  /* Free with job 0 running and 19 queued: job 0 is waited for, the others
   * never run, every after runs once with UV_ECANCELED, the worker's slot
   * is finalised on its thread. */
  tide_rt_free(rt);
  ASSERT_EQ(slot_afters, 20);
  ASSERT_EQ(slot_cancelled, 20);
  ASSERT_EQ(jobs[0].count, 1);
  for (i = 1; i < 20; i++) ASSERT_EQ(jobs[i].count, 0);
  ASSERT_EQ(__atomic_load_n(&finis, __ATOMIC_SEQ_CST), 1);
  ASSERT(uv_thread_equal(&fini_threads[0], &jobs[0].thread));
  ASSERT_OK(uv_loop_close(&loop));
  gate_destroy(&g);
  free(jobs);

  /* A runtime whose pool never started frees as well. */
  rt = pool_rt(&loop, 2);
  ASSERT(rt != NULL);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

TEST_IMPL(pool_worker_slots) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 2);
  slot_job jobs[40];
  int i, k, last[2] = {0, 0};
  ASSERT(rt != NULL);
  memset(jobs, 0, sizeof(jobs));
  finis = slot_afters = 0;
  /* One job at a time so both workers see a sequence of jobs. */
  for (i = 0; i < 40; i++) {
    ASSERT_OK(tide_work_submit(rt, &jobs[i].req, NULL, slot_work, slot_after));
    ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  }
  ASSERT_EQ(slot_afters, 40);
  for (i = 0; i < 40; i++) {
    k = jobs[i].index;
    ASSERT(k == 0 || k == 1);
    ASSERT_EQ(jobs[i].count, last[k] + 1);  /* the slot persists per worker */
    last[k] = jobs[i].count;
  }
  ASSERT_EQ(last[0] + last[1], 40);
  tide_rt_free(rt);
  ASSERT_EQ(__atomic_load_n(&finis, __ATOMIC_SEQ_CST), (last[0] > 0) + (last[1] > 0));
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* ------------------------------------------------- several runtimes */

typedef struct rt_thread {
  uv_thread_t thread;
  int ok;
} rt_thread;

static void rt_thread_main(void *arg) {
  rt_thread *t = arg;
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 2);
  job *jobs = calloc(300, sizeof(*jobs));
  int i, ok = rt != NULL && jobs != NULL;
  if (ok) {
    for (i = 0; i < 300; i++) {
      jobs[i].input = i;
      jobs[i].status = 1;
      ok = ok && tide_work_submit(rt, &jobs[i].req, NULL, square_work, lazy_after) == 0;
    }
    tide_rt_run(rt, TIDE_RUN_DEFAULT);
    for (i = 0; i < 300; i++) ok = ok && jobs[i].status == 0 && jobs[i].output == i * i;
  }
  if (rt) tide_rt_free(rt);
  ok = ok && uv_loop_close(&loop) == 0;
  free(jobs);
  t->ok = ok;
}

TEST_IMPL(pool_multiple_runtimes) {
  rt_thread t[3];
  uv_loop_t loop[2];
  tide_rt *rt[2];
  job a, b;
  int i;
  /* Two runtimes on one thread, each with its own pool. */
  rt[0] = pool_rt(&loop[0], 1);
  rt[1] = pool_rt(&loop[1], 3);
  ASSERT(rt[0] != NULL && rt[1] != NULL);
  ASSERT_EQ(tide_pool_size(rt[0]), 1);
  ASSERT_EQ(tide_pool_size(rt[1]), 3);
  jobs_init(&a, 1);
  jobs_init(&b, 1);
  a.input = 3;
  b.input = 4;
  ASSERT_OK(tide_work_submit(rt[0], &a.req, NULL, square_work, lazy_after));
  ASSERT_OK(tide_work_submit(rt[1], &b.req, NULL, square_work, lazy_after));
  ASSERT_OK(tide_rt_run(rt[1], TIDE_RUN_DEFAULT));
  ASSERT_EQ(b.output, 16);
  ASSERT_EQ(a.status, 1);  /* its after belongs to the other loop */
  ASSERT_OK(tide_rt_run(rt[0], TIDE_RUN_DEFAULT));
  ASSERT_EQ(a.output, 9);
  ASSERT_EQ(a.status, 0);
  for (i = 0; i < 2; i++) {
    tide_rt_free(rt[i]);
    ASSERT_OK(uv_loop_close(&loop[i]));
  }
  /* Three runtimes on three threads at once. */
  for (i = 0; i < 3; i++) ASSERT_OK(uv_thread_create(&t[i].thread, rt_thread_main, &t[i]));
  for (i = 0; i < 3; i++) {
    ASSERT_OK(uv_thread_join(&t[i].thread));
    ASSERT(t[i].ok);
  }
  return 0;
}

/* ------------------------------------------------ libuv's pool, ours */

typedef struct fs_state {
  uv_fs_t open_req, read_req, close_req;
  char buf[64];
  uv_buf_t iov;
  gate *ours;           /* opened when the read is done */
  int read_done;
  ssize_t nread;
} fs_state;

static void fs_close_cb(uv_fs_t *req) { uv_fs_req_cleanup(req); }

static void fs_read_cb(uv_fs_t *req) {
  fs_state *s = req->data;
  s->nread = req->result;
  s->read_done = 1;
  uv_fs_req_cleanup(req);
  gate_open(s->ours);  /* lets our busy workers go */
  uv_fs_close(req->loop, &s->close_req, (uv_file)s->open_req.result, fs_close_cb);
}

static void fs_open_cb(uv_fs_t *req) {
  fs_state *s = req->data;
  if (req->result < 0) { gate_open(s->ours); return; }
  s->iov = uv_buf_init(s->buf, sizeof(s->buf));
  s->read_req.data = s;
  uv_fs_read(req->loop, &s->read_req, (uv_file)req->result, &s->iov, 1, 0, fs_read_cb);
}

/* libuv's pool, held by blockers while a tide job runs. */
typedef struct uv_blocker {
  uv_work_t req;
  gate *gate;
  int timed_out;
} uv_blocker;

static void uv_block_work(uv_work_t *req) {
  uv_blocker *b = (uv_blocker *)req;
  if (gate_wait(b->gate, 10000) != 0) b->timed_out = 1;
}

static int uv_blocks_done;
static void uv_block_after(uv_work_t *req, int status) {
  (void)req;
  (void)status;
  uv_blocks_done++;
}

static void open_theirs_after(tide_work *req, int status) {
  ((job *)req)->status = status;
  gate_open(req->data);  /* the tide job completed: release libuv's pool */
}

TEST_IMPL(pool_fs_not_starved) {
  uv_loop_t loop;
  tide_rt *rt = pool_rt(&loop, 2);
  job busy[2], probe;
  uv_blocker blockers[4];
  fs_state fs;
  gate ours, theirs;
  int i;
  ASSERT(rt != NULL);
  gate_init(&ours);
  gate_init(&theirs);
  memset(&fs, 0, sizeof(fs));
  fs.ours = &ours;

  /* 1. Every tide worker busy: a file read on libuv's pool completes. */
  jobs_init(busy, 2);
  for (i = 0; i < 2; i++) {
    busy[i].gate = &ours;
    ASSERT_OK(tide_work_submit(rt, &busy[i].req, NULL, square_work, lazy_after));
  }
  ASSERT_OK(gate_wait_waiters(&ours, 2, 10000));
  fs.open_req.data = &fs;
  ASSERT_OK(uv_fs_open(&loop, &fs.open_req, "spec/core/test_pool.c", O_RDONLY, 0, fs_open_cb));
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  uv_fs_req_cleanup(&fs.open_req);
  ASSERT_EQ(fs.read_done, 1);
  ASSERT_EQ(fs.nread, 64);
  for (i = 0; i < 2; i++) {
    ASSERT_EQ(busy[i].timed_out, 0);  /* released by the read, not the clock */
    ASSERT_EQ(busy[i].status, 0);
  }

  /* 2. Every libuv pool thread busy (default size 4): a tide job runs. */
  memset(blockers, 0, sizeof(blockers));
  uv_blocks_done = 0;
  for (i = 0; i < 4; i++) {
    blockers[i].gate = &theirs;
    ASSERT_OK(uv_queue_work(&loop, &blockers[i].req, uv_block_work, uv_block_after));
  }
  ASSERT_OK(gate_wait_waiters(&theirs, 4, 10000));
  jobs_init(&probe, 1);
  probe.input = 5;
  probe.req.data = &theirs;
  ASSERT_OK(tide_work_submit(rt, &probe.req, NULL, square_work, open_theirs_after));
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(probe.status, 0);
  ASSERT_EQ(probe.output, 25);
  ASSERT_EQ(uv_blocks_done, 4);
  for (i = 0; i < 4; i++) ASSERT_EQ(blockers[i].timed_out, 0);  /* released by our job */

  tide_rt_free(rt);
  gate_destroy(&ours);
  gate_destroy(&theirs);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

/* ------------------------------------------------------------ options */

TEST_IMPL(pool_size) {
  uv_loop_t loop;
  tide_rt *rt;
  int cpus = (int)uv_available_parallelism();
  rt = pool_rt(&loop, 3);
  ASSERT(rt != NULL);
  ASSERT_EQ(tide_pool_size(rt), 3);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));

  ASSERT_OK(uv_os_setenv("TIDE_THREADS", "5"));
  rt = pool_rt(&loop, 0);
  ASSERT(rt != NULL);
  ASSERT_EQ(tide_pool_size(rt), 5);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));

  rt = pool_rt(&loop, 2);  /* the options win over the environment */
  ASSERT(rt != NULL);
  ASSERT_EQ(tide_pool_size(rt), 2);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));

  ASSERT_OK(uv_os_setenv("TIDE_THREADS", "lots"));  /* ignored */
  rt = pool_rt(&loop, 0);
  ASSERT(rt != NULL);
  ASSERT_EQ(tide_pool_size(rt), cpus);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));

  ASSERT_OK(uv_os_unsetenv("TIDE_THREADS"));
  rt = pool_rt(&loop, 0);
  ASSERT(rt != NULL);
  ASSERT_EQ(tide_pool_size(rt), cpus);
  tide_rt_free(rt);
  ASSERT_OK(uv_loop_close(&loop));
  return 0;
}

typedef struct off_thread {
  tide_rt *rt;
  job *j;
  int submit, cancel;
} off_thread;

static void off_thread_main(void *arg) {
  off_thread *o = arg;
  o->submit = tide_work_submit(o->rt, &o->j->req, NULL, square_work, count_after);
  o->cancel = tide_work_cancel(&o->j->req);
}

TEST_IMPL(pool_bad_args) {
  uv_loop_t loop, other_loop;
  tide_rt *rt = pool_rt(&loop, 1), *other = pool_rt(&other_loop, 1);
  tide_promise settled, foreign;
  job j;
  ASSERT(rt != NULL && other != NULL);
  jobs_init(&j, 1);
  ASSERT_EQ(tide_work_submit(NULL, &j.req, NULL, square_work, count_after), UV_EINVAL);
  ASSERT_EQ(tide_work_submit(rt, NULL, NULL, square_work, count_after), UV_EINVAL);
  ASSERT_EQ(tide_work_submit(rt, &j.req, NULL, NULL, count_after), UV_EINVAL);
  ASSERT_EQ(tide_work_submit(rt, &j.req, NULL, square_work, NULL), UV_EINVAL);
  tide_promise_init(rt, &settled, NULL);
  ASSERT_OK(tide_promise_resolve(&settled, NULL, 0));
  ASSERT_EQ(tide_work_submit(rt, &j.req, &settled, square_work, count_after), UV_EINVAL);
  tide_promise_init(other, &foreign, NULL);
  ASSERT_EQ(tide_work_submit(rt, &j.req, &foreign, square_work, count_after), UV_EINVAL);
  ASSERT_EQ(tide_work_cancel(NULL), UV_EINVAL);
  ASSERT_EQ(tide_pool_size(NULL), UV_EINVAL);
#ifndef NDEBUG
  {
    /* Debug builds refuse calls off the loop thread. */
    off_thread o;
    uv_thread_t t;
    o.rt = rt;
    o.j = &j;
    j.req.rt = rt;
    ASSERT_OK(uv_thread_create(&t, off_thread_main, &o));
    ASSERT_OK(uv_thread_join(&t));
    ASSERT_EQ(o.submit, UV_EPERM);
    ASSERT_EQ(o.cancel, UV_EPERM);
  }
#endif
  /* Failed submits started nothing and called nothing. */
  afters = 0;
  ASSERT_OK(tide_rt_run(rt, TIDE_RUN_DEFAULT));
  ASSERT_EQ(afters, 0);
  tide_promise_dispose(&settled);
  tide_promise_dispose(&foreign);
  tide_rt_free(rt);
  tide_rt_free(other);
  ASSERT_OK(uv_loop_close(&loop));
  ASSERT_OK(uv_loop_close(&other_loop));
  return 0;
}
