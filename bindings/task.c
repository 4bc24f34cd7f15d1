/* task.c — tasks: coroutines that await promises. tide.spawn, tide.await
 * (and p:await), cancellation with tide.Cancelled, tide.current and
 * tide.run, the entry point that drives the loop until a task is done,
 * and tide.shield.
 *
 * A task is a promise userdata (kind LP_TASK) whose user value UV_VALUES
 * is its coroutine until it finishes (then its results). It is held (see binding.h) from spawn until it finishes.
 * A delayed task (tide.timer) is an ldelayed: it waits on a core promise
 * of its own that a sleep settles, and until it starts UV_VALUES is its
 * function (its coroutine is made at the start), so 100k pending timers
 * cost neither 100k coroutines nor 100k more userdata.
 * tl->current is the task on the CPU, which is how await finds its task. Awaiting registers the task's
 * listener on the promise and yields with lua_yieldk; the listener
 * callback moves the values onto the coroutine's stack and resumes it, and
 * the continuation returns them or raises the rejection.
 *
 * Cancellation is level-triggered (as in trio): t->cancel, once set, stays
 * set until the task ends, and every await while it is set and no shield
 * is active (t->shield == 0) raises tide.Cancelled at once, without
 * suspending. A cancel that arrives while a shield is active only sets the
 * flag; the first await after the last shield ends raises it. A cancel
 * that arrives once the awaited promise has settled (its callback queued)
 * lets the await return that outcome, so nothing handed to the task (an
 * item of a queue, a permit) is lost; the next await raises.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks run
 * on tl->L and leave its stack as they found it; values cross to a task's
 * coroutine only with lua_xmove. Ownership: the task holds itself (one
 * hold, see binding.h) from spawn to its end; its coroutine is its UV_VALUES
 * until then.
 */
#include "binding.h"

#include <stdio.h>
#include <string.h>

enum {
  T_QUEUED,       /* spawned, its start is queued */
  T_DELAYED,      /* tide.timer: waits on a sleep before its start */
  T_RUNNING,      /* on the CPU */
  T_AWAITING,     /* suspended in await, listening to a promise */
  T_WAKING,       /* a resumption is queued (cancel, cooperative yield) */
  T_DONE
};

struct ltask {
  lpromise base;          /* kind LP_TASK; base.l listens while awaiting */
  lua_State *co;
  tide_job job;           /* start, or a queued resumption */
  unsigned char status;
  unsigned char cancel;   /* cancellation requested: stays set (level-triggered) */
  unsigned shield;        /* depth of active tide.shield calls */
  unsigned char resume_state;  /* a tide_state: how the awaited one settled */
  int n;                  /* arguments of the first resumption, then the
                             values of each resumption */
  int cause_ref;          /* registry: {error, traceback} of the rejection an
                             await raised last, for the causal traceback */
  int site_line;          /* tide.spawn's caller: line (0: unknown) ... */
  char site[LUA_IDSIZE];  /* ... and its short source */
};

/* A task started by tide.timer: `sleep` is settled by the core timer (a
 * plain core promise: no ops, no Lua value), or rejected by cancelling. */
typedef struct ldelayed {
  ltask t;
  tide_promise sleep;
} ldelayed;

#define task_of_listener(lst) ((ltask *)tide__lp_of_listener(lst))

/* The task whose coroutine is `co` when it is the one running, else NULL
 * (the main thread, or a coroutine the task itself resumed). */
static ltask *running_task(tide_lua *tl, lua_State *co) {
  return tl->current && tl->current->co == co ? tl->current : NULL;
}

/* [-0, +0, m] Causal tracebacks. When the error a task ends with is the
 * rejection one of its awaits raised (it crossed the await), the
 * traceback at `top + 1` (the task's own, just below the error at
 * `err_idx`) becomes the chain: where the error came from, then "awaited
 * by the task spawned at FILE:LINE" and this task's stack. */
static void chain_traceback(lua_State *L, ltask *t, int err_idx) {
  int tb = err_idx + 1;
  const char *own;
  if (t->cause_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->cause_ref);
  lua_rawgeti(L, -1, 1);
  if (!lua_rawequal(L, -1, err_idx) || lua_rawgeti(L, -2, 2) != LUA_TSTRING) {
    lua_settop(L, tb);  /* another error: its own traceback stands */
    luaL_unref(L, LUA_REGISTRYINDEX, t->cause_ref);
    t->cause_ref = LUA_NOREF;
    return;
  }
  own = lua_tostring(L, tb);
  if (strncmp(own, "stack traceback:", 16) == 0) own += 16;
  if (t->site_line > 0)
    lua_pushfstring(L, "\nawaited by the task spawned at %s:%d:%s", t->site, t->site_line, own);
  else
    lua_pushfstring(L, "\nawaited by a task (TIDE_DEBUG=1 tells where it was spawned):%s", own);
  lua_concat(L, 2);       /* the cause's traceback, then this task's */
  lua_replace(L, tb);
  lua_settop(L, tb);
}

/* [-0, +0, m] An await of task `t` raises the rejection of `src` (the
 * error at the top of the stack of `L`): remembers the error and the
 * traceback `src` keeps, for chain_traceback. Nothing when it keeps none. */
static void remember_cause(lua_State *L, ltask *t, lpromise *src) {
  tide_lua *tl = tide_lua_get(L);
  lua_State *M = tl->L;
  int top = lua_gettop(M);
  luaL_unref(M, LUA_REGISTRYINDEX, t->cause_ref);
  t->cause_ref = LUA_NOREF;
  tide_lp_push(M, src);
  if (tide_lp_get_traceback(M, top + 1) != LUA_TSTRING) {
    lua_settop(M, top);
    return;
  }
  lua_createtable(M, 2, 0);
  lua_pushvalue(L, -1);
  if (L != M) lua_xmove(L, M, 1);
  lua_rawseti(M, -2, 1);    /* the error */
  lua_insert(M, -2);
  lua_rawseti(M, -2, 2);    /* its traceback */
  t->cause_ref = luaL_ref(M, LUA_REGISTRYINDEX);
  lua_settop(M, top);
}

/* Finishes task `t` with the outcome of its coroutine: `status` of
 * lua_resume and `nres` results (or the error) on the coroutine. */
static void task_finish(tide_lua *tl, ltask *t, int status, int nres) {
  lua_State *L = tl->L, *co = t->co;
  int top;
  /* Settling overwrites the user value that held the coroutine: keep it
   * on the stack until we are done with it. */
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  top = lua_gettop(L);
  tide_lp_push(L, &t->base);                           /* top+1: the task */
  if (status == LUA_OK) {
    /* the rejection an await raised, caught: its cause goes too */
    luaL_unref(L, LUA_REGISTRYINDEX, t->cause_ref);
    t->cause_ref = LUA_NOREF;
    luaL_checkstack(L, nres + 1, "too many results");
    lua_xmove(co, L, nres);
    t->status = T_DONE;
    tide_lp_settle(L, top + 1, TIDE_FULFILLED, top + 2, nres);
  } else {
    lua_xmove(co, L, 1);                               /* top+2: the error */
    luaL_traceback(L, co, NULL, 0);                    /* top+3 */
    chain_traceback(L, t, top + 2);
    if (lua_type(L, top + 2) == LUA_TTABLE && lua_getmetatable(L, top + 2)) {
      /* error objects (tide.Error) carry their traceback: the chain, once
       * it crossed an await */
      luaL_getmetatable(L, TIDE_ERROR_MT);
      if (lua_rawequal(L, -1, -2) &&
          (t->cause_ref != LUA_NOREF || lua_getfield(L, top + 2, "traceback") == LUA_TNIL)) {
        lua_pushvalue(L, top + 3);
        lua_setfield(L, top + 2, "traceback");
      }
      lua_settop(L, top + 3);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->cause_ref);
    t->cause_ref = LUA_NOREF;
    if (tide_lp_is_cancelled_value(L, top + 2)) tide_promise_mark_handled(&t->base.p);
    tide_lp_set_traceback(L, top + 1, top + 3);
    t->status = T_DONE;
    tide_lp_settle(L, top + 1, TIDE_REJECTED, top + 2, 1);
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, L);  /* close pending to-be-closed variables */
#else
    lua_resetthread(co);
#endif
  }
  lua_settop(L, top - 1);  /* and the coroutine */
  /* tide.run's task ended: the turn must not go on to wait for I/O (a
   * server still open would block it there, when it ended in a phase of
   * the turn before the poll: a timer's, or a write's callback). */
  if (t == tl->main_task) tide_rt_stop(tl->rt);
  tide_lp_drop(&t->base);  /* the hold taken by spawn */
}

static void task_job_cb(tide_rt *rt, tide_job *job);

/* Makes the coroutine of delayed task `t` at its start: its function
 * moves from UV_VALUES into it, and the coroutine takes its place. */
static void coroutine_make(tide_lua *tl, ltask *t) {
  lua_State *L = tl->L;
  int top = lua_gettop(L);
  tide_lp_push(L, &t->base);                  /* top+1: the task (held) */
  t->co = lua_newthread(L);                   /* top+2 */
  lua_getiuservalue(L, top + 1, UV_VALUES);   /* top+3: the function */
  lua_xmove(L, t->co, 1);
  lua_setiuservalue(L, top + 1, UV_VALUES);   /* the task owns co */
  lua_settop(L, top);
}

/* Resumes task `t` with the `nargs` values on top of its coroutine. */
static void task_resume(tide_lua *tl, ltask *t, int nargs) {
  ltask *prev = tl->current;
  int status, nres = 0;
  t->status = T_RUNNING;
  tl->current = t;
  status = lua_resume(t->co, tl->L, nargs, &nres);
  tl->current = prev;
  if (status == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->status == T_RUNNING) {
      /* A bare coroutine.yield in a task: give others a turn. */
      t->status = T_WAKING;
      t->resume_state = TIDE_FULFILLED;
      t->n = 0;
      tide_job_queue(tl->rt, &t->job, task_job_cb);
    }
    return;
  }
  task_finish(tl, t, status, nres);
}

/* [-0, +0, -] Queues the resumption of `t` with tide.Cancelled raised. */
static void wake_cancelled(tide_lua *tl, ltask *t) {
  t->status = T_WAKING;
  t->resume_state = TIDE_REJECTED;
  tide_job_queue(tl->rt, &t->job, task_job_cb);
}

/* The queued start or resumption of a task. */
static void task_job_cb(tide_rt *rt, tide_job *job) {
  ltask *t = (ltask *)((char *)job - offsetof(ltask, job));
  tide_lua *tl = tide_lua_of(rt);
  if (t->co == NULL) coroutine_make(tl, t);
  if (t->status == T_QUEUED) {
    if (t->cancel) {
      lua_settop(t->co, 0);
      tide_lp_push_cancelled(t->co);
      task_finish(tl, t, LUA_ERRRUN, 1);
    } else {
      task_resume(tl, t, t->n);
    }
    return;
  }
  /* T_WAKING: cancelled (wake_cancelled), or after a cooperative yield */
  if (t->resume_state == TIDE_REJECTED) {
    tide_lp_push_cancelled(t->co);
    t->n = 1;
    task_resume(tl, t, 1);
  } else {
    task_resume(tl, t, 0);
  }
}

/* The promise a task awaits has settled: resume it with the outcome. */
static void task_await_cb(tide_listener *l, tide_promise *src) {
  ltask *t = task_of_listener(l);
  tide_lua *tl = tide_lua_of(src->rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L), n;
  /* A cancel that came while this call was queued (or while a shield was
   * active) does not take the outcome away: the next await raises it. */
  tide_lp_push(L, (lpromise *)src);
  n = tide_lp_push_values(L, top + 1);
  if (!lua_checkstack(t->co, n + LUA_MINSTACK)) {
    lua_settop(L, top);
    lua_pushliteral(t->co, "tide.await: too many values");
    t->resume_state = TIDE_REJECTED;
    t->n = 1;
    task_resume(tl, t, 1);
    return;
  }
  lua_xmove(L, t->co, n);
  lua_settop(L, top);
  t->resume_state = src->state;
  t->n = n;
  if (src->state == TIDE_REJECTED && src->ops != NULL) remember_cause(t->co, t, (lpromise *)src);
  task_resume(tl, t, n);
}

/* Continuation of await: returns the values or raises the rejection. */
static int await_k(lua_State *co, int status, lua_KContext ctx) {
  ltask *t = (ltask *)ctx;
  (void)status;
  if (t->resume_state == TIDE_REJECTED) return lua_error(co);
  return t->n;
}

/* Lets go of the pending promise `src` that a cancelled task no longer
 * waits for, when nobody else listens to it: a task is cancelled in turn,
 * another promise's producer is stopped (a timer, a read, a pool job). */
static void release_source(lua_State *L, tide_promise *src) {
  if (src->state != TIDE_PENDING || tide_promise_listeners(src) != 0) return;
  tide_lp_cancel(L, (lpromise *)src);
}

/* [-0, +0, v] Raises tide.Cancelled in the cancelled task running `L`
 * at an await of the promise `p`, which is released as a cancel during
 * the wait would have released it. */
static int raise_cancelled(lua_State *L, lpromise *p) {
  if (p->p.state == TIDE_PENDING && !p->l.source && !p->l.queued) release_source(L, &p->p);
  tide_lp_push_cancelled(L);
  return lua_error(L);
}

/* tide.await(p) / p:await() -> the values of p, or raises its error. In
 * a cancelled task outside shields, raises tide.Cancelled at once. */
static int l_await(lua_State *L) {
  lpromise *p = tide_lp_check(L, 1);
  tide_lua *tl = tide_lua_get(L);
  ltask *t = running_task(tl, L);
  if (t != NULL && t->cancel && t->shield == 0) return raise_cancelled(L, p);
  /* A settled promise answers at once, unless events it emitted are still
   * queued: those are delivered first. */
  if (p->p.state != TIDE_PENDING && !p->l.source && p->events_queued == 0) {
    int n;
    tide_promise_mark_handled(&p->p);
    n = tide_lp_push_values(L, 1);
    if (p->p.state == TIDE_REJECTED) {
      if (t != NULL) remember_cause(L, t, p);
      return lua_error(L);
    }
    return n;
  }
  if (t == NULL)
    return luaL_error(L, "tide.await: not inside a task (run the code with tide.spawn or tide.run)");
  if (!lua_isyieldable(L))
    return luaL_error(L, "tide.await: cannot wait inside a C function such as table.sort or string.gsub");
  if (&t->base == p)
    return luaL_error(L, "tide.await: a task cannot await itself");
  lua_settop(L, 1);
  tide_lp_listen(L, 1, &t->base.l, task_await_cb);
  t->status = T_AWAITING;
  return lua_yieldk(L, 0, (lua_KContext)t, await_k);
}

/* [-(nargs+1), +1, m] Spawns a task running the function at `fn_idx` with
 * the `nargs` values above it, which are moved to the task; pushes it. */
/* [-0, +0, m] Adds the new task at the top to the table of
 * tide.track_tasks, when one is set. */
static void track(lua_State *L) {
  if (!tide_lua_get(L)->tracking) return;
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.tracked");
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);  /* tracked[task] = true */
  lua_pop(L, 1);  /* remove the table */
}

static ltask *task_new(lua_State *L, int fn_idx, int nargs, int status, size_t size) {
  ltask *t;
  lua_State *co;
  fn_idx = lua_absindex(L, fn_idx);
  t = (ltask *)tide_lp_new(L, size, LP_TASK, UV_EVENTS);
  co = lua_newthread(L);
  t->co = co;
  lua_setiuservalue(L, -2, UV_VALUES);              /* the task owns co */
  lua_rotate(L, fn_idx, 1);                         /* task below fn */
  lua_xmove(L, co, nargs + 1);                      /* fn and args to co */
  t->n = nargs;
  t->status = status;
  t->cause_ref = LUA_NOREF;
  t->site_line = 0;
  tide_lp_hold(L, -1);                              /* held until done */
  track(L);
  return t;
}

int tide_task_spawn(lua_State *L, int fn_idx, int nargs) {
  tide_lua *tl = tide_lua_get(L);
  ltask *t = task_new(L, fn_idx, nargs, T_QUEUED, sizeof(ltask));
  tide_job_queue(tl->rt, &t->job, task_job_cb);
  return 1;
}

/* tide.spawn(fn, ...) -> task */
static int l_spawn(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lua_Debug ar;
  ltask *t;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  t = task_new(L, 1, lua_gettop(L) - 1, T_QUEUED, sizeof(ltask));
  tide_job_queue(tl->rt, &t->job, task_job_cb);
  /* where it was spawned, for causal tracebacks: TIDE_DEBUG only, as it
   * costs a sixth of a spawn and await */
  if (tl->debug && lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
    t->site_line = ar.currentline;
    snprintf(t->site, sizeof(t->site), "%s", ar.short_src);
  }
  return 1;
}

/* The sleep of tide.timer ended: start the task, or finish it cancelled. */
static void delayed_start_cb(tide_listener *l, tide_promise *src) {
  ltask *t = task_of_listener(l);
  tide_lua *tl = tide_lua_of(src->rt);
  if (src->state == TIDE_REJECTED) t->cancel = 1;
  t->status = T_QUEUED;
  task_job_cb(tl->rt, &t->job);
}

/* tide.timer(seconds, fn, ...) -> task: runs fn(...) as a task after
 * `seconds`; cancelling the task before then stops the timer. Without
 * arguments, the coroutine is made when the task starts. */
static int l_timer(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uint64_t ms = tide_lua_ms(tide_lua_checkseconds(L, 1));
  int nargs = lua_gettop(L) - 2, err;
  ldelayed *d;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (nargs > 0) {
    d = (ldelayed *)task_new(L, 2, nargs, T_DELAYED, sizeof(ldelayed));
  } else {
    d = (ldelayed *)tide_lp_new(L, sizeof(ldelayed), LP_TASK, UV_EVENTS);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, UV_VALUES);      /* the function, until the start */
    d->t.status = T_DELAYED;
    d->t.cause_ref = LUA_NOREF;
    d->t.site_line = 0;
    tide_lp_hold(L, -1);                      /* held until done */
    track(L);
  }
  tide_promise_init(tl->rt, &d->sleep, NULL);
  if ((err = tide_sleep(tl->rt, &d->sleep, ms)) != 0) {
    d->t.status = T_DONE;
    tide_lp_drop(&d->t.base);
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  tide_promise_listen(&d->sleep, &d->t.base.l, delayed_start_cb);
  return 1;
}

/* The coroutine of task `t`. */
lua_State *tide_task_thread(ltask *t) { return t->co; }

/* Requests the cancellation of any promise `lp` (p:cancel(), see
 * docs/lua-api.md "Cancellation"): a task is cancelled at its next await,
 * any other promise has its producer stopped (tide_promise_cancel). `L`
 * is used for tasks only. Returns whether it had any effect: 0 for a
 * settled promise, a finished task or one cancelled already. */
int tide_lp_cancel(lua_State *L, lpromise *lp) {
  tide_lua *tl;
  ltask *t = (ltask *)lp;
  tide_promise *src;
  if (lp->kind != LP_TASK) return tide_promise_cancel(&lp->p) == 0;
  tl = tide_lua_get(L);
  if (t->status == T_DONE || t->cancel) return 0;
  t->cancel = 1;
  switch (t->status) {
    case T_QUEUED:
    case T_RUNNING:
    case T_WAKING:
      return 1;   /* raised by its next await */
    case T_DELAYED:
      if (t->base.l.source == NULL) return 1;  /* its start is already queued */
      tide_listener_remove(&t->base.l);
      src = &((ldelayed *)t)->sleep;
      tide_promise_cancel(src);       /* stops the sleep */
      tide_promise_dispose(src);      /* frees the rejection's copy */
      t->status = T_QUEUED;
      tide_job_queue(tl->rt, &t->job, task_job_cb);
      return 1;
    case T_AWAITING:
      src = t->base.l.source;
      /* Shielded, or its wake-up is already queued: the next await
       * outside shields raises. */
      if (src == NULL || t->shield > 0) return 1;
      tide_listener_remove(&t->base.l);
      release_source(L, src);  /* when nobody else waits for it */
      wake_cancelled(tl, t);
      return 1;
  }
  return 1;
}

/* Whether the task running `L` (if any) is cancelled outside shields:
 * its next await raises tide.Cancelled. */
int tide_task_cancel_due(lua_State *L) {
  ltask *t = running_task(tide_lua_get(L), L);
  return t != NULL && t->cancel && t->shield == 0;
}

/* The end of tide.shield's call: one shield less, then its results or
 * its error. Also the continuation after the function yielded. */
static int shield_k(lua_State *L, int status, lua_KContext ctx) {
  ltask *t = (ltask *)ctx;
  if (t != NULL) t->shield--;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L);
}

/* tide.shield(fn, ...) -> fn's results: calls fn(...) in the running task
 * with its cancellation held back: awaits inside work normally, and a
 * cancel (pending or arriving) is raised by the first await after the
 * outermost shield ends. Outside a task, just calls fn. */
static int l_shield(lua_State *L) {
  ltask *t;
  int status;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  t = running_task(tide_lua_get(L), L);
  if (t != NULL) t->shield++;
  status = lua_pcallk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, (lua_KContext)t, shield_k);
  return shield_k(L, status, (lua_KContext)t);
}

/* tide.is_cancelled(v) -> whether `v` is tide.Cancelled, or another tide
 * error object with code "ECANCELED". */
static int l_is_cancelled(lua_State *L) {
  int yes = tide_lp_is_cancelled_value(L, 1);
  if (!yes && lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, TIDE_ERROR_MT);
    if (lua_rawequal(L, -1, -2)) {
      lua_getfield(L, 1, "code");
      yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "ECANCELED") == 0;
    }
  }
  lua_pushboolean(L, yes);
  return 1;
}

/* tide.current() -> the running task, or nil outside tasks. */
static int l_current(lua_State *L) {
  ltask *t = running_task(tide_lua_get(L), L);
  if (t == NULL) return 0;
  tide_lp_push(L, &t->base);  /* a running task is held */
  return 1;
}

/* [-(nargs+1), +(n|2), m] Spawns the function below the `nargs` arguments
 * as a task and runs the loop until that task is done. Returns LUA_OK with
 * the task's results pushed, or LUA_ERRRUN with its error and traceback
 * (a string, or nil) pushed. Used by tide.run and the `tide` binary. */
int tide_lua_run_task(lua_State *L, int nargs) {
  tide_lua *tl = tide_lua_get(L);
  lua_State *saved;
  ltask *t;
  int idx, alive = 1;
  if (tl->running)
    return luaL_error(L, "tide.run: the loop is already running (inside a task, use tide.await)");
  tide_task_spawn(L, lua_gettop(L) - nargs, nargs);
  idx = lua_gettop(L);
  t = lua_touserdata(L, idx);
  tide_promise_mark_handled(&t->base.p);  /* its error goes to the caller */
  tl->running = 1;
  tl->main_task = t;
  saved = tl->L;
  tl->L = L;
  /* Drain before each turn: a task that ends in the drain must not be
   * followed by a wait for I/O (a server it opened would block it). */
  for (;;) {
    tide_rt_drain(tl->rt);
    if (t->base.p.state != TIDE_PENDING || !alive) break;
    alive = tide_rt_run(tl->rt, TIDE_RUN_ONCE);
  }
  tl->L = saved;
  tl->running = 0;
  tl->main_task = NULL;
  if (t->base.p.state == TIDE_PENDING) {
    tide_lp_cancel(L, &t->base);
    lua_pushliteral(L, "tide.run: the task can never finish: it waits on a promise "
                       "that nothing left in the loop can settle");
    lua_pushnil(L);
    return LUA_ERRRUN;
  }
  if (t->base.p.state == TIDE_REJECTED) {
    tide_lp_push_values(L, idx);
    tide_lp_get_traceback(L, idx);
    lua_remove(L, idx);  /* remove the task */
    return LUA_ERRRUN;
  }
  tide_lp_push_values(L, idx);
  lua_remove(L, idx);  /* remove the task */
  return LUA_OK;
}

/* tide.run(fn, ...) -> fn's results: spawns fn as a task and runs the loop
 * until that task is done; raises its error. The entry point for a stock
 * lua5.4; the `tide` binary runs scripts the same way. */
static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (tide_lua_run_task(L, lua_gettop(L) - 1) != LUA_OK) {
    lua_pop(L, 1);  /* remove the traceback */
    return lua_error(L);
  }
  return lua_gettop(L);  /* fn and its arguments moved to the task */
}

/* tide.track_tasks(t | nil): from now on every new task is added to table
 * `t` as a key (make it weak-keyed: finished tasks may go); nil stops. What
 * tide.test uses to find the tasks a test left behind. */
static int l_track_tasks(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  tl->tracking = !lua_isnil(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.tracked");
  return 0;
}

static const luaL_Reg task_funcs[] = {
  {"track_tasks", l_track_tasks},
  {"spawn", l_spawn},
  {"await", l_await},
  {"timer", l_timer},
  {"current", l_current},
  {"run", l_run},
  {"shield", l_shield},
  {"is_cancelled", l_is_cancelled},
  {NULL, NULL}
};

/* [-0, +0, m] Adds the task functions to the module table at the top, and
 * await to the promise methods. */
int tide_open_task(lua_State *L) {
  luaL_setfuncs(L, task_funcs, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.promise.methods");
  lua_pushcfunction(L, l_await);
  lua_setfield(L, -2, "await");
  lua_pop(L, 1);  /* remove the methods */
  tide_lua_push_error(L, "ECANCELED", "cancelled");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.Cancelled");
  lua_setfield(L, -2, "Cancelled");
  return 0;
}
