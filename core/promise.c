/* promise.c — the promise state machine: pending, then settled once;
 * listeners called in registration order from the callback queue, never
 * synchronously; cancellation hooks; unhandled-rejection tracking; the C
 * values a promise settled from C carries. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void tide__promise_retain(tide_promise *p) {
  if (p->ops && p->ops->retain) p->ops->retain(p);
}

void tide__promise_release(tide_promise *p) {
  if (p->ops && p->ops->release) p->ops->release(p);
}

void tide_promise_init(tide_rt *rt, tide_promise *p, const tide_promise_ops *ops) {
  if (rt == NULL || p == NULL) return;
  TIDE__LOOP_THREAD(rt, );
  memset(p, 0, sizeof(*p));
  p->rt = rt;
  p->ops = ops;
}

static void free_values(tide_promise *p) {
  if (p->flags & TIDE__P_OWNVALUES) free(p->values);
  p->values = NULL;
  p->nvalues = 0;
  p->flags &= ~TIDE__P_OWNVALUES;
}

void tide_promise_dispose(tide_promise *p) {
  if (p == NULL) return;
  TIDE__LOOP_THREAD(p->rt, );
  while (p->head) tide_listener_remove(p->head);
  free_values(p);
}

/* Copies `n` values, bytes included, into one allocation owned by `p`. */
static int copy_values(tide_promise *p, const tide_value *values, int n) {
  size_t size = sizeof(tide_value) * (size_t)n, off;
  char *mem;
  int i;
  if (n <= 0) return 0;
  if (values == NULL) return UV_EINVAL;
  for (i = 0; i < n; i++)
    if (values[i].type == TIDE_BYTES) size += values[i].u.bytes.len + 1;
  mem = malloc(size);
  if (mem == NULL) return UV_ENOMEM;
  memcpy(mem, values, sizeof(tide_value) * (size_t)n);
  off = sizeof(tide_value) * (size_t)n;
  p->values = (tide_value *)mem;
  for (i = 0; i < n; i++) {
    tide_value *v = &p->values[i];
    if (v->type == TIDE_BYTES) {
      char *dst = mem + off;
      if (v->u.bytes.len) memcpy(dst, v->u.bytes.data, v->u.bytes.len);
      dst[v->u.bytes.len] = '\0';
      v->u.bytes.data = dst;
      off += v->u.bytes.len + 1;
    }
  }
  p->nvalues = n;
  p->flags |= TIDE__P_OWNVALUES;
  return 0;
}

/* Hands the values to the owner's store hook, or keeps copies. Values of
 * an unknown type, and bytes with a NULL pointer, are refused before
 * anything changes. */
static int store_values(tide_promise *p, const tide_value *values, int n) {
  int i;
  if (n > 0 && values == NULL) return UV_EINVAL;
  for (i = 0; i < n; i++) {
    if ((unsigned)values[i].type > TIDE_BYTES) return UV_EINVAL;
    if (values[i].type == TIDE_BYTES && values[i].u.bytes.data == NULL &&
        values[i].u.bytes.len > 0) return UV_EINVAL;
  }
  if (p->ops && p->ops->store) return p->ops->store(p, values, n);
  return copy_values(p, values, n);
}

/* A queued listener callback: the source stays retained until it ran. */
static void listener_job(tide_rt *rt, tide_job *job) {
  tide_listener *l = tide__container_of(job, tide_listener, job);
  tide_promise *source = l->queued;
  (void)rt;
  l->queued = NULL;
  l->cb(l, source);
  tide__promise_release(source);
}

/* Moves listener `l` of settled promise `p` to the queue. */
static void queue_listener(tide_promise *p, tide_listener *l) {
  l->source = NULL;
  l->next = l->prev = NULL;
  l->queued = p;
  tide__promise_retain(p);           /* for the queued job */
  tide_job_queue(p->rt, &l->job, listener_job);
}

int tide_promise_settle(tide_promise *p, tide_state state) {
  tide_listener *l;
  if (p == NULL || (state != TIDE_FULFILLED && state != TIDE_REJECTED)) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  p->state = state;
  p->cancel_cb = NULL;
  p->cancel_data = NULL;
  if (state == TIDE_REJECTED && p->head == NULL && !(p->flags & TIDE__P_HANDLED)) {
    tide_rt *rt = p->rt;
    p->flags |= TIDE__P_UNHANDLED;
    tide__promise_retain(p);         /* for the unhandled list */
    if (rt->unhandled_tail) rt->unhandled_tail->unhandled_next = p;
    else rt->unhandled_head = p;
    rt->unhandled_tail = p;
  }
  /* Each registered listener trades its registration hold (if it took
   * one) for a job hold. */
  while ((l = p->head) != NULL) {
    p->head = l->next;
    queue_listener(p, l);
    if (!(l->flags & TIDE_LISTENER_UNRETAINED))
      tide__promise_release(p);      /* the registration's */
  }
  p->tail = NULL;
  return 0;
}

int tide_promise_resolve(tide_promise *p, const tide_value *values, int n) {
  int err;
  if (p == NULL || n < 0) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  if ((err = store_values(p, values, n)) != 0) return err;
  return tide_promise_settle(p, TIDE_FULFILLED);
}

int tide_promise_reject(tide_promise *p, const tide_value *error) {
  tide_value nil = tide_nil();
  int err;
  if (p == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  if ((err = store_values(p, error ? error : &nil, 1)) != 0) return err;
  return tide_promise_settle(p, TIDE_REJECTED);
}

int tide_promise_listen(tide_promise *p, tide_listener *l, tide_listener_cb cb) {
  if (p == NULL || l == NULL || cb == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (l->source != NULL || l->queued != NULL) return UV_EBUSY;
  l->cb = cb;
  p->flags |= TIDE__P_HANDLED;
  if (p->state != TIDE_PENDING) {
    queue_listener(p, l);
    return 0;
  }
  if (!(l->flags & TIDE_LISTENER_UNRETAINED))
    tide__promise_retain(p);         /* for the registration */
  l->source = p;
  l->next = NULL;
  l->prev = p->tail;
  if (p->tail) p->tail->next = l; else p->head = l;
  p->tail = l;
  return 0;
}

int tide_listener_remove(tide_listener *l) {
  tide_promise *p;
  if (l == NULL) return UV_EINVAL;
  if ((p = l->source) == NULL) return UV_ENOENT;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (l->prev) l->prev->next = l->next; else p->head = l->next;
  if (l->next) l->next->prev = l->prev; else p->tail = l->prev;
  l->prev = l->next = NULL;
  l->source = NULL;
  if (!(l->flags & TIDE_LISTENER_UNRETAINED)) tide__promise_release(p);
  return 0;
}

int tide_promise_listeners(const tide_promise *p) {
  int n = 0;
  const tide_listener *l;
  if (p == NULL) return 0;
  for (l = p->head; l; l = l->next) n++;
  return n;
}

void tide_promise_on_cancel(tide_promise *p, tide_cancel_cb cb, void *data) {
  if (p == NULL) return;
  TIDE__LOOP_THREAD(p->rt, );
  p->cancel_cb = cb;
  p->cancel_data = cb ? data : NULL;
}

int tide_promise_reject_cancelled(tide_promise *p) {
  tide_value err = tide_string("cancelled");
  unsigned flags;
  int status;
  if (p == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  flags = p->flags;
  p->flags |= TIDE__P_HANDLED | TIDE__P_CANCELLED;  /* seen by store hooks */
  if ((status = tide_promise_reject(p, &err)) != 0) p->flags = flags;  /* still pending */
  return status;
}

int tide_promise_detach(tide_promise *p) {
  tide_cancel_cb cb;
  void *data;
  if (p == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  if ((cb = p->cancel_cb) == NULL) return UV_ENOTSUP;
  data = p->cancel_data;
  p->cancel_cb = NULL;
  p->cancel_data = NULL;
  cb(p, data);
  return 0;
}

int tide_promise_cancel(tide_promise *p) {
  int err;
  if (p == NULL) return UV_EINVAL;
  TIDE__LOOP_THREAD(p->rt, UV_EPERM);
  if (p->state != TIDE_PENDING) return UV_EALREADY;
  if (p->cancel_cb == NULL) return UV_ENOTSUP;
  tide__promise_retain(p);   /* the hook may drop the producer's hold */
  tide_promise_detach(p);
  err = tide_promise_reject_cancelled(p);
  tide__promise_release(p);
  return err == UV_EALREADY ? 0 : err;
}

int tide_promise_is_cancelled(const tide_promise *p) {
  return p != NULL && (p->flags & TIDE__P_CANCELLED) != 0;
}

void tide_promise_mark_handled(tide_promise *p) {
  if (p == NULL) return;
  TIDE__LOOP_THREAD(p->rt, );
  p->flags |= TIDE__P_HANDLED;
}
