/* rt.c — the runtime: owns (or borrows) the libuv loop, the callback queue
 * and its draining, run modes, cross-thread posts and the report of
 * unhandled rejections. Nothing here knows about Lua. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void drain_cb(uv_prepare_t *h) { tide_rt_drain(h->data); }
static void drain_check_cb(uv_check_t *h) {
  tide_rt_drain(h->data);
  tide__clock_check(h->data);  /* virtual time: timers due, jumps */
}
static void keepalive_cb(uv_async_t *h) { (void)h; }

/* Runs every post queued by other threads, in the order they were made.
 * The handle is referenced only while tide_rt_run() needs libuv to poll
 * for a wake-up (see there): it stops keeping the loop alive now. */
static void posts_cb(uv_async_t *h) {
  tide_rt *rt = h->data;
  tide__post *p;
  uv_unref((uv_handle_t *)h);
  uv_mutex_lock(&rt->post_lock);
  p = rt->posts_head;
  rt->posts_head = rt->posts_tail = NULL;
  uv_mutex_unlock(&rt->post_lock);
  while (p) {
    tide__post *next = p->next;
    p->fn(rt, p->data);
    free(p);
    p = next;
  }
  tide_rt_drain(rt);
}

static int posts_waiting(tide_rt *rt) {
  int waiting;
  uv_mutex_lock(&rt->post_lock);
  waiting = rt->posts_head != NULL;
  uv_mutex_unlock(&rt->post_lock);
  return waiting;
}

static void default_unhandled(tide_rt *rt, tide_promise *p) {
  (void)rt;
  fprintf(stderr, "tide: unhandled rejection");
  if (p->nvalues > 0) {
    const tide_value *v = &p->values[0];
    switch (v->type) {
      case TIDE_BYTES:
        fprintf(stderr, ": %.*s", (int)v->u.bytes.len, v->u.bytes.data); break;
      case TIDE_INTEGER: fprintf(stderr, ": %lld", (long long)v->u.integer); break;
      case TIDE_NUMBER: fprintf(stderr, ": %g", v->u.number); break;
      case TIDE_BOOLEAN: fprintf(stderr, ": %s", v->u.boolean ? "true" : "false"); break;
      case TIDE_NIL: fprintf(stderr, ": nil"); break;
    }
  }
  fputc('\n', stderr);
}

#ifndef NDEBUG
int tide__wrong_thread(const tide_rt *rt, const char *fn) {
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &rt->thread)) return 0;
  fprintf(stderr, "tide: %s called off the runtime's loop thread (use tide_post)\n", fn);
  return 1;
}
#endif

int tide_rt_on_loop_thread(tide_rt *rt) {
  uv_thread_t self = uv_thread_self();
  return rt != NULL && uv_thread_equal(&self, &rt->thread);
}

/* Copies `s` (NULL stays NULL); returns 0, or UV_ENOMEM. */
static int copy_string(const char *s, const char **out) {
  char *c;
  *out = NULL;
  if (s == NULL) return 0;
  if ((c = malloc(strlen(s) + 1)) == NULL) return UV_ENOMEM;
  strcpy(c, s);
  *out = c;
  return 0;
}

static void free_options(tide_rt *rt) {
  free((char *)rt->opts.lua_path);
  free((char *)rt->opts.lua_cpath);
}

int tide_rt_new(const tide_options *opts, tide_rt **out) {
  tide_rt *rt;
  int err;
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  rt = calloc(1, sizeof(*rt));
  if (rt == NULL) return UV_ENOMEM;
  rt->unhandled_cb = default_unhandled;
  rt->threads = opts ? opts->threads : 0;
  rt->thread = uv_thread_self();
  if (opts) rt->opts = *opts;
  if ((err = copy_string(opts ? opts->lua_path : NULL, &rt->opts.lua_path)) != 0 ||
      (err = copy_string(opts ? opts->lua_cpath : NULL, &rt->opts.lua_cpath)) != 0)
    goto err;
  if (opts && opts->loop) {
    rt->loop = opts->loop;
  } else {
    if ((err = uv_loop_init(&rt->own_loop)) != 0) goto err;
    rt->loop = &rt->own_loop;
    rt->owns_loop = 1;
  }
  rt->opts.loop = rt->loop;
  if ((err = uv_mutex_init(&rt->post_lock)) != 0) goto err_loop;
  uv_prepare_init(rt->loop, &rt->prepare);
  uv_check_init(rt->loop, &rt->check);
  tide__clock_init(rt);   /* these two cannot fail on Unix, as the two above */
  tide__sleeps_init(rt);
  rt->prepare.data = rt->check.data = rt;
  uv_prepare_start(&rt->prepare, drain_cb);
  uv_check_start(&rt->check, drain_check_cb);
  uv_unref((uv_handle_t *)&rt->prepare);
  uv_unref((uv_handle_t *)&rt->check);
  if ((err = uv_async_init(rt->loop, &rt->async, posts_cb)) != 0) goto err_handles;
  rt->async.data = rt;
  uv_unref((uv_handle_t *)&rt->async);
  if ((err = uv_async_init(rt->loop, &rt->keepalive, keepalive_cb)) != 0) goto err_async;
  uv_unref((uv_handle_t *)&rt->keepalive);
  *out = rt;
  return 0;

err_async:
  uv_close((uv_handle_t *)&rt->async, NULL);
err_handles:
  tide_timer_close(&rt->sleep_timer, NULL);
  tide__clock_close(rt);
  uv_close((uv_handle_t *)&rt->prepare, NULL);
  uv_close((uv_handle_t *)&rt->check, NULL);
  uv_run(rt->loop, UV_RUN_NOWAIT);
  uv_mutex_destroy(&rt->post_lock);
err_loop:
  if (rt->owns_loop) uv_loop_close(&rt->own_loop);
err:
  free_options(rt);
  free(rt);
  return err;
}

static void closing_walk_cb(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) *(int *)arg = 1;
}

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void tide_rt_free(tide_rt *rt) {
  tide__post *p;
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  /* The Lua state goes first, while everything it may touch is whole. */
  if (rt->binding_close) {
    tide_binding_close_cb close = rt->binding_close;
    rt->binding_close = NULL;
    close(rt, rt->binding);
  }
  uv_mutex_lock(&rt->post_lock);
  rt->closing = 1;
  p = rt->posts_head;
  rt->posts_head = rt->posts_tail = NULL;
  uv_mutex_unlock(&rt->post_lock);
  while (p) { tide__post *next = p->next; free(p); p = next; }
  tide__pool_free(rt);  /* no new job from here: rt->closing is set */

  /* Queued callbacks are dropped: their owners are being freed too. */
  rt->head = rt->tail = NULL;
  tide__sleep_close_all(rt);
  tide__clock_close(rt);
  uv_close((uv_handle_t *)&rt->prepare, NULL);
  uv_close((uv_handle_t *)&rt->check, NULL);
  uv_close((uv_handle_t *)&rt->async, NULL);
  uv_close((uv_handle_t *)&rt->keepalive, NULL);
  if (rt->owns_loop) {
    /* Whatever the bindings left open goes too: their close callbacks run
     * here, while the runtime is still valid. */
    uv_walk(rt->loop, close_walk_cb, NULL);
    while (uv_run(rt->loop, UV_RUN_DEFAULT) != 0) {}
    uv_loop_close(rt->loop);
  } else {
    /* The host's loop: turns until no handle is closing, since a close
     * callback may close another handle (a stream's timer, say). */
    int closing;
    do {
      uv_run(rt->loop, UV_RUN_NOWAIT);
      closing = 0;
      uv_walk(rt->loop, closing_walk_cb, &closing);
    } while (closing);
  }
  uv_mutex_destroy(&rt->post_lock);
  free_options(rt);
  free(rt);
}

/* Runs the loop in `mode`, draining the queue before and after each reactor
 * turn (callbacks drain themselves too; this covers jobs queued by a host
 * between runs). In the default mode it returns only when no handle, job
 * or post is left, or after tide_rt_stop(). */
int tide_rt_run(tide_rt *rt, tide_run_mode mode) {
  uv_run_mode uvmode = mode == TIDE_RUN_ONCE ? UV_RUN_ONCE
                     : mode == TIDE_RUN_NOWAIT ? UV_RUN_NOWAIT : UV_RUN_DEFAULT;
  int alive;
  if (rt == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  rt->stop = 0;
  for (;;) {
    tide_rt_drain(rt);
    /* The post handle is unreferenced, and libuv does not poll a loop that
     * nothing keeps alive: the wake-up of a post would stay unread (and a
     * host polling the backend fd would spin on it). Reference it for this
     * turn when posts wait, and always in NOWAIT mode (a zero-timeout poll
     * that clears a wake-up whose posts already ran); posts_cb drops the
     * reference, so the default mode does not wait for posts forever. */
    if (mode == TIDE_RUN_NOWAIT || posts_waiting(rt)) uv_ref((uv_handle_t *)&rt->async);
    uv_run(rt->loop, uvmode);
    uv_unref((uv_handle_t *)&rt->async);
    tide_rt_drain(rt);
    alive = uv_loop_alive(rt->loop) || rt->head != NULL || posts_waiting(rt);
    if (mode != TIDE_RUN_DEFAULT || rt->stop || !alive) return alive;
  }
}

void tide_rt_stop(tide_rt *rt) {
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  rt->stop = 1;
  uv_stop(rt->loop);
}

uv_loop_t *tide_rt_loop(tide_rt *rt) { return rt ? rt->loop : NULL; }
const tide_options *tide_rt_options(tide_rt *rt) { return rt ? &rt->opts : NULL; }

int tide_rt_backend_fd(tide_rt *rt) {
  return rt ? uv_backend_fd(rt->loop) : UV_EINVAL;
}

int tide_rt_backend_timeout(tide_rt *rt) {
  int timeout;
  if (rt == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(rt, UV_EPERM);
  if (rt->head != NULL || posts_waiting(rt)) return 0;
  /* Timers are due relative to the loop's cached time, which stands still
   * between runs: a host asking later (GLib's check after its poll) must
   * get the time left from now, 0 once a timer is due. */
  uv_update_time(rt->loop);
  /* uv_backend_timeout() answers 0 for a loop with nothing referenced (it
   * expects uv_run() to return at once), but an idle runtime still waits
   * on the fd for posts. Ask with the keepalive handle referenced: the
   * answer is then the next timer, -1, or 0 when libuv has pending or
   * closing handles, idle handles, or watchers to register first. */
  if (rt->holds == 0) uv_ref((uv_handle_t *)&rt->keepalive);
  timeout = uv_backend_timeout(rt->loop);
  if (rt->holds == 0) uv_unref((uv_handle_t *)&rt->keepalive);
  return timeout;
}

void tide_rt_hold(tide_rt *rt) {
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  if (rt->holds++ == 0) uv_ref((uv_handle_t *)&rt->keepalive);
}

void tide_rt_release(tide_rt *rt) {
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  if (rt->holds > 0 && --rt->holds == 0) uv_unref((uv_handle_t *)&rt->keepalive);
}

void tide_rt_on_unhandled(tide_rt *rt, tide_unhandled_cb cb) {
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  rt->unhandled_cb = cb ? cb : default_unhandled;
}

unsigned tide_rt_unhandled_count(tide_rt *rt) { return rt ? rt->unhandled_count : 0; }
void *tide_rt_get_data(tide_rt *rt) { return rt ? rt->data : NULL; }
void *tide_rt_binding(tide_rt *rt) { return rt ? rt->binding : NULL; }
void tide_rt_set_binding(tide_rt *rt, void *binding) { if (rt) rt->binding = binding; }
void tide_rt_set_binding_close(tide_rt *rt, tide_binding_close_cb close) {
  if (rt) rt->binding_close = close;
}
void tide_rt_set_data(tide_rt *rt, void *data) { if (rt) rt->data = data; }

int tide_post(tide_rt *rt, tide_post_cb fn, void *data) {
  tide__post *p;
  if (rt == NULL || fn == NULL) return UV_EINVAL;
  p = malloc(sizeof(*p));
  if (p == NULL) return UV_ENOMEM;
  p->next = NULL;
  p->fn = fn;
  p->data = data;
  uv_mutex_lock(&rt->post_lock);
  if (rt->closing) {
    uv_mutex_unlock(&rt->post_lock);
    free(p);
    return UV_ECANCELED;
  }
  if (rt->posts_tail) rt->posts_tail->next = p; else rt->posts_head = p;
  rt->posts_tail = p;
  /* uv_async_send under the lock: the runtime cannot close the handle
   * between our check of `closing` and the send. */
  uv_async_send(&rt->async);
  uv_mutex_unlock(&rt->post_lock);
  return 0;
}

void tide_job_queue(tide_rt *rt, tide_job *job, tide_job_cb cb) {
  if (rt == NULL || job == NULL || cb == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  job->cb = cb;
  job->next = NULL;
  if (rt->tail) rt->tail->next = job; else rt->head = job;
  rt->tail = job;
}

void tide_rt_drain(tide_rt *rt) {
  if (rt == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  if (rt->draining) return;
  rt->draining = 1;
  for (;;) {
    while (rt->head) {
      tide_job *job = rt->head;
      rt->head = job->next;
      if (rt->head == NULL) rt->tail = NULL;
      job->next = NULL;
      rt->jobs_run++;  /* the clock's measure of activity */
      job->cb(rt, job);
    }
    if (rt->unhandled_head == NULL) break;
    tide__report_unhandled(rt);
    /* A reporter may queue work (it runs Lua); drain that too. */
    if (rt->head == NULL) break;
  }
  rt->draining = 0;
}

/* Judges the rejections collected during this drain: those that still
 * have no consumer are reported. */
void tide__report_unhandled(tide_rt *rt) {
  tide_promise *p = rt->unhandled_head;
  rt->unhandled_head = rt->unhandled_tail = NULL;
  while (p) {
    tide_promise *next = p->unhandled_next;
    p->unhandled_next = NULL;
    p->flags &= ~TIDE__P_UNHANDLED;
    if (!(p->flags & TIDE__P_HANDLED)) {
      p->flags |= TIDE__P_HANDLED;
      rt->unhandled_count++;
      rt->unhandled_cb(rt, p);
    }
    tide__promise_release(p);
    p = next;
  }
}
