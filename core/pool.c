/* pool.c — tide's own thread pool: worker threads started on the first
 * submit, a FIFO queue of jobs, and one completion list that carries job
 * ends and the messages of running jobs back to the loop thread through a
 * single uv_async_t. Cancellation of queued jobs, per-worker data slots,
 * and the shutdown that tide_rt_free() runs.
 *
 * Threads and ownership. The pool's queue, its completion list, the
 * `stopping` flag and each request's `state` are guarded by `lock`; nothing
 * else is shared. A request belongs to the loop thread until it is queued,
 * to the worker from the moment it pops it until it puts the request's end
 * on the completion list, and to the loop thread again from then on; the
 * mutex hand-over orders every write of one side before the reads of the
 * other. A worker's data slots are touched by that worker only. `pending`
 * (jobs whose after function is still to run) is the loop thread's: it
 * keeps the async handle referenced, so the loop stays alive while jobs
 * are out.
 *
 * A worker sends the async only when it finds the completion list empty:
 * the loop thread takes the whole list at once, so one wake-up delivers a
 * whole batch.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Upper bound of the pool size, wherever the size comes from. */
#define TIDE__POOL_MAX 1024

enum {
  W_IDLE = 0,   /* not in flight (ended, or never submitted) */
  W_QUEUED,     /* in the queue */
  W_RUNNING,    /* its work function runs on a worker */
  W_DONE        /* its end is on the completion list */
};

typedef struct tide__wslot {
  const tide_worker_key *key;
  void *value;
  struct tide__wslot *next;
} tide__wslot;

struct tide_worker {
  struct tide__pool *pool;
  uv_thread_t thread;
  int index;
  tide__wslot *slots;       /* most recently added first */
};

typedef struct tide__pool {
  tide_rt *rt;
  uv_mutex_t lock;
  uv_cond_t cond;           /* workers wait here for jobs or shutdown */
  tide_work *head, *tail;   /* queued jobs (lock) */
  tide_work_msg *done_head, *done_tail;  /* for the loop thread (lock) */
  int stopping;             /* (lock) */
  int idle;                 /* workers waiting on cond (lock) */
  uv_async_t async;         /* wakes the loop thread for the list */
  tide_worker *workers;
  int nworkers;
  unsigned pending;         /* loop thread: jobs whose after is to run */
} tide__pool;

/* The pool size this runtime asks for: its options, else TIDE_THREADS
 * (a decimal number from 1 to TIDE__POOL_MAX; anything else is ignored),
 * else the CPUs available to the process. */
static int pool_size_wanted(tide_rt *rt) {
  const char *env;
  char *end;
  long n;
  if (rt->threads > 0) return rt->threads < TIDE__POOL_MAX ? rt->threads : TIDE__POOL_MAX;
  env = getenv("TIDE_THREADS");
  if (env != NULL && *env != '\0') {
    n = strtol(env, &end, 10);
    if (*end == '\0' && n >= 1 && n <= TIDE__POOL_MAX) return (int)n;
  }
  n = (long)uv_available_parallelism();
  return n < 1 ? 1 : n > TIDE__POOL_MAX ? TIDE__POOL_MAX : (int)n;
}

/* Appends `m` to the completion list; the lock is held. Returns non-zero
 * when the list was empty: the caller then sends the async (after
 * unlocking). */
static int post_locked(tide__pool *pool, tide_work_msg *m) {
  int was_empty = pool->done_head == NULL;
  m->next = NULL;
  if (pool->done_tail) pool->done_tail->next = m; else pool->done_head = m;
  pool->done_tail = m;
  return was_empty;
}

/* Runs every slot's fini, the last set first, then frees the slots. */
static void worker_fini(tide_worker *w) {
  while (w->slots) {
    tide__wslot *s = w->slots;
    w->slots = s->next;
    if (s->key->fini && s->value) s->key->fini(s->value);
    free(s);
  }
}

/* A worker: pops jobs until shutdown, runs them, posts their ends. */
static void worker_main(void *arg) {
  tide_worker *w = arg;
  tide__pool *pool = w->pool;
  tide_work *req;
  int wake;
  uv_mutex_lock(&pool->lock);
  for (;;) {
    while (pool->head == NULL && !pool->stopping) {
      pool->idle++;
      uv_cond_wait(&pool->cond, &pool->lock);
      pool->idle--;
    }
    if (pool->stopping) break;
    req = pool->head;
    pool->head = req->next;
    if (pool->head) pool->head->prev = NULL; else pool->tail = NULL;
    req->next = req->prev = NULL;
    req->state = W_RUNNING;
    uv_mutex_unlock(&pool->lock);

    req->work_cb(req, w);

    uv_mutex_lock(&pool->lock);
    req->state = W_DONE;
    req->status = 0;
    wake = post_locked(pool, &req->done);
    if (wake) {
      /* Outside the lock: the loop thread may take the list meanwhile,
       * which only makes this wake-up a spare one. */
      uv_mutex_unlock(&pool->lock);
      uv_async_send(&pool->async);
      uv_mutex_lock(&pool->lock);
    }
  }
  uv_mutex_unlock(&pool->lock);
  worker_fini(w);
}

static void work_cancel_hook(tide_promise *p, void *data);

/* Ends job `req` on the loop thread: calls its after function and settles
 * the promise's business. `shutdown`: the runtime is being freed, so the
 * after function gets UV_ECANCELED and the promise is left alone. */
static void job_end(tide__pool *pool, tide_work *req, int shutdown) {
  tide_promise *p = req->promise;
  int status = shutdown ? UV_ECANCELED : req->status;
  req->state = W_IDLE;
  if (--pool->pending == 0 && !shutdown) uv_unref((uv_handle_t *)&pool->async);
  if (shutdown) {
    req->after_cb(req, UV_ECANCELED);
    return;
  }
  if (p && p->cancel_cb == work_cancel_hook && p->cancel_data == req)
    tide_promise_on_cancel(p, NULL, NULL);  /* the job is over */
  req->after_cb(req, status);  /* may free or resubmit req */
  if (p) {
    if (status == UV_ECANCELED && p->state == TIDE_PENDING)
      tide_promise_reject_cancelled(p);
    tide__promise_release(p);
  }
}

/* Delivers a chain taken from the completion list, in order. */
static void deliver(tide__pool *pool, tide_work_msg *m, int shutdown) {
  while (m) {
    tide_work_msg *next = m->next;  /* m may be freed by its callback */
    tide_work *req = m->req;
    if (m == &req->done) job_end(pool, req, shutdown);
    else m->cb(req, m, shutdown ? UV_ECANCELED : 0);
    m = next;
  }
}

static void pool_async_cb(uv_async_t *h) {
  tide__pool *pool = h->data;
  tide_work_msg *m;
  uv_mutex_lock(&pool->lock);
  m = pool->done_head;
  pool->done_head = pool->done_tail = NULL;
  uv_mutex_unlock(&pool->lock);
  deliver(pool, m, 0);
  tide_rt_drain(pool->rt);
}

static void pool_close_cb(uv_handle_t *h) {
  free(h->data);
}

/* Creates the pool of `rt` and starts its workers. A worker that cannot be
 * created leaves a smaller pool; none at all is an error. Returns 0 or a
 * libuv error. */
static int pool_start(tide_rt *rt) {
  tide__pool *pool;
  int size = pool_size_wanted(rt), i, err;
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL) return UV_ENOMEM;
  pool->rt = rt;
  pool->workers = calloc((size_t)size, sizeof(*pool->workers));
  if (pool->workers == NULL) { err = UV_ENOMEM; goto err_pool; }
  if ((err = uv_mutex_init(&pool->lock)) != 0) goto err_pool;
  if ((err = uv_cond_init(&pool->cond)) != 0) goto err_mutex;
  if ((err = uv_async_init(rt->loop, &pool->async, pool_async_cb)) != 0) goto err_cond;
  pool->async.data = pool;
  uv_unref((uv_handle_t *)&pool->async);
  for (i = 0; i < size; i++) {
    tide_worker *w = &pool->workers[i];
    w->pool = pool;
    w->index = i;
    if ((err = uv_thread_create(&w->thread, worker_main, w)) != 0) break;
  }
  if (i == 0) goto err_async;
  pool->nworkers = i;
  rt->pool = pool;
  return 0;

err_async:
  uv_cond_destroy(&pool->cond);
  uv_mutex_destroy(&pool->lock);
  free(pool->workers);
  uv_close((uv_handle_t *)&pool->async, pool_close_cb);  /* frees pool */
  return err;
err_cond:
  uv_cond_destroy(&pool->cond);
err_mutex:
  uv_mutex_destroy(&pool->lock);
err_pool:
  free(pool->workers);
  free(pool);
  return err;
}

/* Called by tide_rt_free, with rt->closing set. Stops the workers (each
 * finishes the job it runs), joins them (their slots' fini run on their
 * threads), then ends every job still out with UV_ECANCELED: first the
 * completions in the order they came, then the jobs that never started. */
void tide__pool_free(tide_rt *rt) {
  tide__pool *pool = rt->pool;
  tide_work *queued, *next;
  tide_work_msg *done;
  int i;
  if (pool == NULL) return;
  uv_mutex_lock(&pool->lock);
  pool->stopping = 1;
  queued = pool->head;
  pool->head = pool->tail = NULL;
  uv_cond_broadcast(&pool->cond);
  uv_mutex_unlock(&pool->lock);
  for (i = 0; i < pool->nworkers; i++) uv_thread_join(&pool->workers[i].thread);

  /* No thread but this one is left. */
  done = pool->done_head;
  pool->done_head = pool->done_tail = NULL;
  deliver(pool, done, 1);
  for (; queued; queued = next) {
    next = queued->next;
    queued->next = queued->prev = NULL;
    job_end(pool, queued, 1);
  }
  uv_cond_destroy(&pool->cond);
  uv_mutex_destroy(&pool->lock);
  free(pool->workers);
  pool->workers = NULL;
  rt->pool = NULL;
  uv_close((uv_handle_t *)&pool->async, pool_close_cb);  /* frees pool */
}

static void work_cancel_hook(tide_promise *p, void *data) {
  (void)p;
  tide_work_cancel(data);  /* a running job runs on; its result is dropped */
}

int tide_work_submit(tide_rt *rt, tide_work *req, tide_promise *p,
                     tide_work_cb work, tide_after_work_cb after) {
  tide__pool *pool;
  int err, wake;
  if (rt == NULL || req == NULL || work == NULL || after == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  if (p && (p->rt != rt || p->state != TIDE_PENDING || p->cancel_cb)) return UV_EINVAL;
  if (rt->closing) return UV_EBUSY;
  if (rt->pool == NULL && (err = pool_start(rt)) != 0) return err;
  pool = rt->pool;
  req->rt = rt;
  req->promise = p;
  req->work_cb = work;
  req->after_cb = after;
  req->status = 0;
  req->done.req = req;
  req->done.cb = NULL;
  req->done.next = NULL;
  req->prev = req->next = NULL;
  if (p) {
    tide__promise_retain(p);
    tide_promise_on_cancel(p, work_cancel_hook, req);
  }
  if (pool->pending++ == 0) uv_ref((uv_handle_t *)&pool->async);
  uv_mutex_lock(&pool->lock);
  req->state = W_QUEUED;
  req->prev = pool->tail;
  if (pool->tail) pool->tail->next = req; else pool->head = req;
  pool->tail = req;
  wake = pool->idle > 0;
  uv_mutex_unlock(&pool->lock);
  /* After unlocking, so the woken worker does not block on the mutex; a
   * worker that is not waiting checks the queue before it waits. */
  if (wake) uv_cond_signal(&pool->cond);
  return 0;
}

int tide_work_cancel(tide_work *req) {
  tide__pool *pool;
  int err = 0, wake = 0;
  if (req == NULL || req->rt == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(req->rt, UV_EPERM);
  if ((pool = req->rt->pool) == NULL) return UV_EINVAL;
  uv_mutex_lock(&pool->lock);
  switch (req->state) {
    case W_QUEUED:
      if (req->prev) req->prev->next = req->next; else pool->head = req->next;
      if (req->next) req->next->prev = req->prev; else pool->tail = req->prev;
      req->prev = req->next = NULL;
      req->state = W_DONE;
      req->status = UV_ECANCELED;
      wake = post_locked(pool, &req->done);
      break;
    case W_RUNNING:
    case W_DONE:
      err = UV_EBUSY;
      break;
    default:
      err = UV_EINVAL;
      break;
  }
  uv_mutex_unlock(&pool->lock);
  if (wake) uv_async_send(&pool->async);
  return err;
}

int tide_work_send(tide_work *req, tide_work_msg *msg, tide_work_msg_cb cb) {
  tide__pool *pool;
  int wake;
  /* state is written by this worker only while the job runs */
  if (req == NULL || msg == NULL || cb == NULL || req->state != W_RUNNING) return UV_EINVAL;
  pool = req->rt->pool;
  msg->req = req;
  msg->cb = cb;
  uv_mutex_lock(&pool->lock);
  wake = post_locked(pool, msg);
  uv_mutex_unlock(&pool->lock);
  if (wake) uv_async_send(&pool->async);
  return 0;
}

void *tide_worker_get(tide_worker *w, const tide_worker_key *key) {
  tide__wslot *s;
  for (s = w->slots; s; s = s->next)
    if (s->key == key) return s->value;
  return NULL;
}

int tide_worker_set(tide_worker *w, const tide_worker_key *key, void *value) {
  tide__wslot *s, **link;
  for (link = &w->slots; (s = *link) != NULL; link = &s->next) {
    if (s->key == key) {
      if (value) { s->value = value; return 0; }
      *link = s->next;  /* clear the slot */
      free(s);
      return 0;
    }
  }
  if (value == NULL) return 0;
  if ((s = malloc(sizeof(*s))) == NULL) return UV_ENOMEM;
  s->key = key;
  s->value = value;
  s->next = w->slots;
  w->slots = s;
  return 0;
}

int tide_worker_index(const tide_worker *w) { return w->index; }

int tide_pool_size(tide_rt *rt) {
  if (rt == NULL) return UV_EINVAL;
  return rt->pool ? rt->pool->nworkers : pool_size_wanted(rt);
}
