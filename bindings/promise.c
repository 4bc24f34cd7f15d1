/* promise.c — the promise type seen from Lua (tide.promise): settling with
 * Lua values, adoption of promises, explicit chaining (next, catch,
 * finally), named events (emit, on), the report of unhandled rejections,
 * and the promise userdata every other binding builds on.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]. Callbacks
 * from the core run on the main thread tl->L and leave its stack as they
 * found it. Ownership: see binding.h (one registry reference per held
 * promise; values in user values).
 */
#include "binding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void lp_retain(tide_promise *p) {
  lpromise *lp = (lpromise *)p;
  /* The core only retains a promise a binding holds at that moment. */
  assert(lp->ref != LUA_NOREF);
  lp->holds++;
}

static void lp_release(tide_promise *p) {
  lpromise *lp = (lpromise *)p;
  assert(lp->holds > 0);
  if (--lp->holds == 0) {
    tide_lua *tl = tide_lua_of(p->rt);
    if (tl) luaL_unref(tl->L, LUA_REGISTRYINDEX, lp->ref);
    lp->ref = LUA_NOREF;
  }
}

static void store_values(lua_State *L, int idx, int first, int n);

/* [-0, +1, m] Pushes C value `v` (host.c converts host results too). */
void tide_lua_push_cvalue(lua_State *L, const tide_value *v) {
  switch (v->type) {
    case TIDE_BOOLEAN: lua_pushboolean(L, v->u.boolean); break;
    case TIDE_INTEGER: lua_pushinteger(L, (lua_Integer)v->u.integer); break;
    case TIDE_NUMBER: lua_pushnumber(L, v->u.number); break;
    case TIDE_BYTES: lua_pushlstring(L, v->u.bytes.data, v->u.bytes.len); break;
    default: lua_pushnil(L); break;
  }
}


/* [-0, +0, m] The core's store hook: C values settled by C code (a host,
 * the pool) become Lua values at once, so a promise never owns C memory
 * and needs no finalizer. The promise must be held. */
static int lp_store(tide_promise *p, const tide_value *values, int n) {
  lpromise *lp = (lpromise *)p;
  tide_lua *tl = tide_lua_of(p->rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L), i;
  if (lp->ref == LUA_NOREF || !lua_checkstack(L, n + 2)) return UV_ENOMEM;
  tide_lp_push(L, lp);
  if (tide_promise_is_cancelled(p)) {  /* flagged before the reject */
    tide_lp_push_cancelled(L);
    n = 1;
  } else {
    for (i = 0; i < n; i++) tide_lua_push_cvalue(L, &values[i]);
  }
  store_values(L, top + 1, top + 2, n);
  lua_settop(L, top);
  return 0;
}

static const tide_promise_ops lp_ops = {lp_retain, lp_release, lp_store};

/* [-0, +1, m] Pushes a new pending promise userdata of `size` bytes (at
 * least sizeof(lpromise)) with user values up to slot `nuv` (UV_EVENTS,
 * UV_OWNER...: see binding.h), plus one more for its unretained listeners
 * (lp->luv). */
lpromise *tide_lp_new(lua_State *L, size_t size, int kind, int nuv) {
  tide_lua *tl = tide_lua_get(L);
  lpromise *lp = lua_newuserdatauv(L, size, nuv + 1);
  tide_promise_init(tl->rt, &lp->p, &lp_ops);  /* zeroes the core part */
  memset((char *)lp + sizeof(tide_promise), 0, size - sizeof(tide_promise));
  lp->ref = LUA_NOREF;
  lp->kind = (unsigned char)kind;
  lp->luv = (unsigned char)(nuv + 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, tl->promise_mt_ref);
  lua_setmetatable(L, -2);
  return lp;
}

/* [-0, +0, -] The promise at `idx`, or NULL. Compares metatable addresses:
 * cheaper than luaL_testudata's lookup by name, on the hottest paths. */
lpromise *tide_lp_test(lua_State *L, int idx) {
  void *ud = lua_touserdata(L, idx);
  const void *mt;
  if (ud == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);  /* remove the metatable */
  return mt == tide_lua_get(L)->promise_mt ? ud : NULL;
}

lpromise *tide_lp_check(lua_State *L, int idx) {
  lpromise *lp = tide_lp_test(L, idx);
  if (lp == NULL) luaL_typeerror(L, idx, TIDE_PROMISE_MT);
  return lp;
}

/* [-0, +0, m] Takes a hold on the promise at `idx`. */
void tide_lp_hold(lua_State *L, int idx) {
  lpromise *lp = lua_touserdata(L, idx);
  if (lp->ref == LUA_NOREF) {
    lua_pushvalue(L, idx);
    lp->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lp->holds++;
}

void tide_lp_drop(lpromise *lp) { lp_release(&lp->p); }

/* [-0, +1, -] Pushes a promise that is held. */
int tide_lp_push(lua_State *L, lpromise *lp) {
  return lua_rawgeti(L, LUA_REGISTRYINDEX, lp->ref);
}

void tide_lp_push_cancelled(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.Cancelled");
}

/* [-0, +n, m] Pushes the settled values of the promise at `idx` (the
 * error, for a rejected one) and returns their count. */
int tide_lp_push_values(lua_State *L, int idx) {
  lpromise *lp = lua_touserdata(L, idx);
  int i, n;
  if (!(lp->flags & (LP_ONE | LP_PACKED))) return 0;
  lua_getiuservalue(L, idx, UV_VALUES);
  if (lp->flags & LP_ONE) return 1;
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);  /* remove n */
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);  /* remove the values table */
  return n;
}

/* [-0, +0, m] Stores the `n` values from `first` in the promise at `idx`:
 * one value as it is, more in a table {n = count, ...}. A task's slot held
 * its coroutine until now, so it is overwritten even with no values. */
static void store_values(lua_State *L, int idx, int first, int n) {
  lpromise *lp = lua_touserdata(L, idx);
  int i;
  if (n == 1) {
    lua_pushvalue(L, first);
    lua_setiuservalue(L, idx, UV_VALUES);
    lp->flags |= LP_ONE;
  } else if (n > 1) {
    lua_createtable(L, n, 1);
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, first + i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_setiuservalue(L, idx, UV_VALUES);
    lp->flags |= LP_PACKED;
  } else if (lp->kind == LP_TASK) {
    lua_pushnil(L);
    lua_setiuservalue(L, idx, UV_VALUES);
  }
}

/* [-0, +0, m] Settles the promise at `idx` with the given values, with no
 * adoption. The promise must be pending. */
static void settle_raw(lua_State *L, int idx, tide_state state, int first, int n) {
  lpromise *lp = lua_touserdata(L, idx);
  store_values(L, idx, first, n);
  /* The core retains it for queued listeners and the unhandled list: it
   * may only do so while a binding holds it. Without either, no hold (and
   * no registry reference) is needed. */
  if (lp->p.head == NULL && state == TIDE_FULFILLED) {
    tide_promise_settle(&lp->p, state);
    return;
  }
  tide_lp_hold(L, idx);
  tide_promise_settle(&lp->p, state);
  tide_lp_drop(lp);
}

static void follow_cb(tide_listener *l, tide_promise *src);

/* [-0, +0, m] Settles the promise at `idx` with `n` values from `first`.
 * Fulfilling with one promise adopts it; fulfilling with itself rejects.
 * Returns UV_EALREADY when the promise was settled (or is adopting). */
int tide_lp_settle(lua_State *L, int idx, tide_state state, int first, int n) {
  lpromise *lp = lua_touserdata(L, idx);
  lpromise *other;
  idx = lua_absindex(L, idx);
  first = lua_absindex(L, first);
  if (lp->p.state != TIDE_PENDING || lp->l.source || lp->l.queued) {
    tide_lua *tl = tide_lua_get(L);
    if (tl->debug) {
      luaL_traceback(L, L, "tide: promise settled twice (ignored)", 1);
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      lua_pop(L, 1);  /* remove the message */
    }
    return UV_EALREADY;
  }
  if (state == TIDE_FULFILLED && n == 1 && (other = tide_lp_test(L, first)) != NULL) {
    if (other == lp) {
      tide_lua_push_error(L, "EINVAL", "promise resolved with itself");
      settle_raw(L, idx, TIDE_REJECTED, lua_gettop(L), 1);
      lua_pop(L, 1);  /* remove the error */
      return 0;
    }
    tide_lp_hold(L, idx);  /* held while it follows `other` */
    tide_lp_listen(L, first, &lp->l, follow_cb);
    return 0;
  }
  settle_raw(L, idx, state, first, n);
  return 0;
}

/* [-0, +0, m] Registers listener `l` on the promise at `src_idx`. */
void tide_lp_listen(lua_State *L, int src_idx, tide_listener *l, tide_listener_cb cb) {
  lpromise *src = lua_touserdata(L, src_idx);
  tide_lp_hold(L, src_idx);  /* lets the core retain it */
  tide_promise_listen(&src->p, l, cb);
  tide_lp_drop(src);
}

/* [-0, +0, m] Remembers the traceback string at `tb_idx` for the promise
 * at `idx`. */
void tide_lp_set_traceback(lua_State *L, int idx, int tb_idx) {
  tide_lua *tl = tide_lua_get(L);
  if (lua_type(L, tb_idx) != LUA_TSTRING) return;
  idx = lua_absindex(L, idx);
  tb_idx = lua_absindex(L, tb_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, tl->tracebacks_ref);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, tb_idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);  /* remove the tracebacks table */
}

/* [-0, +1, -] Pushes the traceback remembered for the promise at `idx`
 * (or nil); returns its type. */
int tide_lp_get_traceback(lua_State *L, int idx) {
  tide_lua *tl = tide_lua_get(L);
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, tl->tracebacks_ref);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);  /* remove the tracebacks table */
  return lua_type(L, -1);
}

/* [-0, +0, m] Settles the promise at `dst` as the settled one at `src`
 * did: same state, same values, same traceback. */
static void copy_outcome(lua_State *L, int dst, int src) {
  lpromise *s = lua_touserdata(L, src);
  int top = lua_gettop(L), n;
  n = tide_lp_push_values(L, src);
  if (s->p.state == TIDE_REJECTED) {
    tide_lp_get_traceback(L, src);
    tide_lp_set_traceback(L, dst, -1);
    lua_pop(L, 1);  /* remove the traceback */
  }
  settle_raw(L, dst, s->p.state, top + 1, n);
  lua_settop(L, top);
}

/* Listener of a promise that adopted another: takes its outcome. */
static void follow_cb(tide_listener *l, tide_promise *src) {
  lpromise *lp = tide__lp_of_listener(l);
  tide_lua *tl = tide_lua_of(src->rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L);
  tide_lp_push(L, lp);
  tide_lp_push(L, (lpromise *)src);
  copy_outcome(L, top + 1, top + 2);
  lua_settop(L, top);
  tide_lp_drop(lp);  /* the hold taken when it started following */
}

/* [-0, +0, m] Makes the promise at `src_idx` keep the promise at
 * `owner_idx`, whose listener it is about to register unretained: in its
 * listener user value directly, or in a table lightuserdata(owner) ->
 * owner when it keeps several. */
static void keep_owner(lua_State *L, int src_idx, int owner_idx) {
  lpromise *src = lua_touserdata(L, src_idx);
  switch (lua_getiuservalue(L, src_idx, src->luv)) {
    case LUA_TNIL:                      /* the first: kept directly */
      lua_pop(L, 1);  /* remove the nil */
      lua_pushvalue(L, owner_idx);
      lua_setiuservalue(L, src_idx, src->luv);
      return;
    case LUA_TTABLE:                    /* a table already */
      lua_pushvalue(L, owner_idx);
      lua_rawsetp(L, -2, lua_touserdata(L, owner_idx));
      lua_pop(L, 1);  /* remove the table */
      return;
    default:                            /* one kept directly: make a table */
      lua_createtable(L, 0, 2);
      lua_insert(L, -2);  /* the table below the one kept */
      lua_rawsetp(L, -2, lua_touserdata(L, -1));
      lua_pushvalue(L, owner_idx);
      lua_rawsetp(L, -2, lua_touserdata(L, owner_idx));
      lua_setiuservalue(L, src_idx, src->luv);
  }
}

/* [-0, +1, m] Pushes `owner`, kept by the promise at `src_idx` for its
 * unretained listener (keep_owner), and lets it go there. */
static void take_owner(lua_State *L, int src_idx, lpromise *owner) {
  lpromise *src = lua_touserdata(L, src_idx);
  if (lua_getiuservalue(L, src_idx, src->luv) == LUA_TTABLE) {
    lua_rawgetp(L, -1, owner);
    lua_pushnil(L);
    lua_rawsetp(L, -3, owner);  /* table[owner] = nil */
    lua_remove(L, -2);  /* remove the table */
  } else {
    lua_pushnil(L);
    lua_setiuservalue(L, src_idx, src->luv);
  }
  assert(lua_touserdata(L, -1) == owner);
}

/* Listener of a promise made by next/catch/finally: runs the handler and
 * settles with what it returns or raises. The source is held by the
 * queued call; this promise is found in the source's listener user value
 * (an unretained listener, see binding.h). */
static void next_cb(tide_listener *l, tide_promise *src) {
  lpromise *lp = tide__lp_of_listener(l);
  tide_lua *tl = tide_lua_of(src->rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L), nargs, status;
  int is_finally = (lp->flags & LP_FINALLY) != 0;
  tide_lp_push(L, (lpromise *)src);       /* top+1: the source */
  take_owner(L, top + 1, lp);             /* top+2: this promise */
  lua_rotate(L, top + 1, 1);              /* top+1: this promise, top+2: the source */
  lua_pushnil(L);
  lua_setiuservalue(L, top + 1, UV_VALUES);  /* drop the link to the source */
  lua_pushcfunction(L, tide_lua_traceback_handler);  /* top+3 */
  if (lua_getiuservalue(L, top + 1, src->state == TIDE_FULFILLED ? UV_ON_OK : UV_ON_ERR) == LUA_TNIL) {
    copy_outcome(L, top + 1, top + 2);    /* no handler: pass it on */
  } else {                                /* top+4: the handler */
    nargs = is_finally ? 0 : tide_lp_push_values(L, top + 2);
    status = tide_lua_pcallh(L, nargs, is_finally ? 0 : LUA_MULTRET, top + 3);
    if (status != LUA_OK) {
      tide_lp_set_traceback(L, top + 1, -1);
      settle_raw(L, top + 1, TIDE_REJECTED, lua_gettop(L) - 1, 1);
    } else if (is_finally) {
      copy_outcome(L, top + 1, top + 2);
    } else {
      tide_lp_settle(L, top + 1, TIDE_FULFILLED, top + 4, lua_gettop(L) - top - 3);
    }
  }
  lua_settop(L, top);
}

/* [-0, +1, m] p:next(on_ok, on_err), with `flags` for finally. */
static int chain(lua_State *L, int ok_idx, int err_idx, unsigned flags) {
  lpromise *d, *src;
  int t;
  src = tide_lp_check(L, 1);
  /* the callers set the top: an absent handler is nil */
  if (ok_idx && (t = lua_type(L, ok_idx)) != LUA_TFUNCTION && t != LUA_TNIL)
    luaL_typeerror(L, ok_idx, "function or nil");
  if (err_idx && err_idx != ok_idx && (t = lua_type(L, err_idx)) != LUA_TFUNCTION && t != LUA_TNIL)
    luaL_typeerror(L, err_idx, "function or nil");
  lua_settop(L, 3);
  d = tide_lp_new(L, sizeof(lpromise), LP_NEXT, UV_ON_ERR);  /* at 4 */
  d->flags |= flags;
  if (ok_idx) { lua_pushvalue(L, ok_idx); lua_setiuservalue(L, 4, UV_ON_OK); }
  if (err_idx) { lua_pushvalue(L, err_idx); lua_setiuservalue(L, 4, UV_ON_ERR); }
  /* Unretained: the source keeps d, d keeps the source (UV_VALUES while
   * pending); no registry reference while the source is pending. */
  d->l.flags = TIDE_LISTENER_UNRETAINED;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 4, UV_VALUES);
  keep_owner(L, 1, 4);
  if (src->p.state == TIDE_PENDING) tide_promise_listen(&src->p, &d->l, next_cb);
  else tide_lp_listen(L, 1, &d->l, next_cb);  /* its call is queued at once */
  return 1;
}

static int p_next(lua_State *L) {
  lua_settop(L, 3);
  return chain(L, 2, 3, 0);
}

static int p_catch(lua_State *L) {
  lua_settop(L, 2);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return chain(L, 0, 2, 0);
}

static int p_finally(lua_State *L) {
  lua_settop(L, 2);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return chain(L, 2, 2, LP_FINALLY);
}

/* A promise settled by hand while an operation still works on it (a
 * read, a sleep, a pool job...): the operation stops first, so that it
 * neither consumes what it was waiting for (the bytes of a read stay for
 * the next one) nor keeps the loop alive. */
static void stop_producer(lpromise *lp) {
  if (lp->p.state == TIDE_PENDING && !lp->l.source && !lp->l.queued)
    tide_promise_detach(&lp->p);
}

static int p_resolve(lua_State *L) {
  stop_producer(tide_lp_check(L, 1));
  tide_lp_settle(L, 1, TIDE_FULFILLED, 2, lua_gettop(L) - 1);
  return 0;
}

static int p_reject(lua_State *L) {
  stop_producer(tide_lp_check(L, 1));
  lua_settop(L, 2);
  tide_lp_settle(L, 1, TIDE_REJECTED, 2, 1);
  return 0;
}

/* An event on its way through the queue. */
typedef struct {
  tide_job job;
  lpromise *lp;
  int args_ref;   /* table {name, n = count, ...} */
} event_job;

/* Delivers an event to the listeners registered for its name now. An
 * error in a listener is reported and never reaches the promise. */
static void event_cb(tide_rt *rt, tide_job *job) {
  event_job *ev = (event_job *)job;
  tide_lua *tl = tide_lua_of(rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L), n, i, k, count;
  tide_lp_push(L, ev->lp);                                   /* top+1 */
  lua_rawgeti(L, LUA_REGISTRYINDEX, ev->args_ref);           /* top+2 */
  luaL_unref(L, LUA_REGISTRYINDEX, ev->args_ref);
  lua_getfield(L, top + 2, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);  /* remove n */
  if (lua_getiuservalue(L, top + 1, UV_EVENTS) == LUA_TTABLE) {  /* top+3 */
    lua_rawgeti(L, top + 2, 1);
    lua_rawget(L, top + 3);                                  /* top+4: list */
    count = lua_istable(L, top + 4) ? (int)lua_rawlen(L, top + 4) : 0;
    for (k = 1; k <= count; k++) {
      lua_rawgeti(L, top + 4, k);
      luaL_checkstack(L, n, "too many event values");
      for (i = 2; i <= n + 1; i++) lua_rawgeti(L, top + 2, i);
      if (tide_lua_pcall(L, n, 0) != LUA_OK) {
        lua_rawgeti(L, top + 2, 1);
        lua_pushfstring(L, "error in '%s' listener: ", lua_tostring(L, -1));
        lua_pushvalue(L, -4);  /* the error */
        tide_lua_report(L, lua_tostring(L, -2), -4);
        lua_pop(L, 4);  /* remove error, traceback, name, prefix and copy */
      }
    }
  }
  lua_settop(L, top);
  ev->lp->events_queued--;
  tide_lp_drop(ev->lp);
  free(ev);
}

/* [-0, +0, m] Queues an event for the listeners of the promise at `idx`:
 * its name is the value at `first`, its `n` values those above it. Returns
 * 0 (and queues nothing) once the promise has settled, 1 otherwise. The
 * emit path of p:emit and of C producers (the pool's progress events). */
int tide_lp_emit(lua_State *L, int idx, int first, int n) {
  lpromise *lp = lua_touserdata(L, idx);
  int i, args_ref;
  event_job *ev;
  if (lp->p.state != TIDE_PENDING) return 0;
  idx = lua_absindex(L, idx);
  first = lua_absindex(L, first);
  /* The Lua side first: a failed allocation there leaves no job behind. */
  lua_createtable(L, n + 1, 1);
  for (i = 0; i <= n; i++) {
    lua_pushvalue(L, first + i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  tide_lp_hold(L, idx);
  if ((ev = malloc(sizeof(*ev))) == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, args_ref);
    tide_lp_drop(lp);
    return luaL_error(L, "not enough memory");
  }
  ev->args_ref = args_ref;
  ev->lp = lp;
  lp->events_queued++;
  tide_job_queue(lp->p.rt, &ev->job, event_cb);
  return 1;
}

/* p:emit(name, ...) -> boolean: queues the event for the listeners of
 * `name`; false (and nothing) once the promise has settled. */
static int p_emit(lua_State *L) {
  tide_lp_check(L, 1);
  luaL_checkany(L, 2);
  lua_pushboolean(L, tide_lp_emit(L, 1, 2, lua_gettop(L) - 2));
  return 1;
}

/* p:on(name, fn) -> p: adds a listener for events called `name`. */
static int p_on(lua_State *L) {
  tide_lp_check(L, 1);
  luaL_checkany(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  if (lua_getiuservalue(L, 1, UV_EVENTS) != LUA_TTABLE) {
    lua_pop(L, 1);  /* remove the nil */
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_EVENTS);
  }
  lua_pushvalue(L, 2);
  if (lua_rawget(L, 4) != LUA_TTABLE) {
    lua_pop(L, 1);  /* remove the nil */
    lua_newtable(L);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 4);  /* events[name] = list */
  }
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_settop(L, 1);
  return 1;
}

static const char *const state_names[] = {"pending", "fulfilled", "rejected"};

static int p_state(lua_State *L) {
  lpromise *lp = tide_lp_check(L, 1);
  lua_pushstring(L, state_names[lp->p.state]);
  return 1;
}

/* p:result() -> ok, values...: the outcome of a settled promise without
 * waiting (ok is nil while pending). Marks a rejection as handled. */
static int p_result(lua_State *L) {
  lpromise *lp = tide_lp_check(L, 1);
  if (lp->p.state == TIDE_PENDING) return 0;
  tide_promise_mark_handled(&lp->p);
  lua_pushboolean(L, lp->p.state == TIDE_FULFILLED);
  return 1 + tide_lp_push_values(L, 1);
}

static int p_cancel(lua_State *L) {
  lpromise *lp = tide_lp_check(L, 1);
  lua_pushboolean(L, tide_lp_cancel(L, lp));
  return 1;
}

static int p_tostring(lua_State *L) {
  lpromise *lp = tide_lp_check(L, 1);
  lua_pushfstring(L, "%s (%s): %p", lp->kind == LP_TASK ? "tide.task" : "tide.promise",
                  state_names[lp->p.state], (void *)lp);
  return 1;
}

/* The unhandled-rejection reporter of a runtime with a Lua side. */
void tide_lua_report_unhandled(tide_rt *rt, tide_promise *p) {
  tide_lua *tl = tide_lua_of(rt);
  lua_State *L;
  int top;
  if (tl == NULL || p->ops != &lp_ops) {
    fprintf(stderr, "tide: unhandled rejection of a C promise\n");
    return;
  }
  L = tl->L;
  top = lua_gettop(L);
  tide_lp_push(L, (lpromise *)p);     /* held by the unhandled list */
  tide_lp_push_values(L, top + 1);
  if ((((lpromise *)p)->flags & LP_STREAM_OP) && tide_stream_defer_error(L, top + 1, top + 2)) {
    /* a write nobody awaited: the stream's next operation raises it */
  } else if (!tide_lp_is_cancelled_value(L, top + 2)) {
    tide_lp_get_traceback(L, top + 1);
    lua_pushvalue(L, top + 2);
    tide_lua_report(L, "unhandled rejection: ", top + 3);
    tl->reported++;
  }
  lua_settop(L, top);
}

/* [-0, +0, -] Whether the value at `idx` is tide.Cancelled. */
int tide_lp_is_cancelled_value(lua_State *L, int idx) {
  int yes;
  idx = lua_absindex(L, idx);
  tide_lp_push_cancelled(L);
  yes = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);  /* remove tide.Cancelled */
  return yes;
}

/* tide.promise() -> a pending promise. */
static int l_promise(lua_State *L) {
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  return 1;
}

/* tide.resolved(...) / tide.rejected(err) -> a settled promise. */
static int l_resolved(lua_State *L) {
  int n = lua_gettop(L);
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_settle(L, -1, TIDE_FULFILLED, 1, n);
  return 1;
}

static int l_rejected(lua_State *L) {
  lua_settop(L, 1);
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_settle(L, 2, TIDE_REJECTED, 1, 1);
  return 1;
}

static int l_is_promise(lua_State *L) {
  lua_pushboolean(L, tide_lp_test(L, 1) != NULL);
  return 1;
}

static const luaL_Reg promise_methods[] = {
  {"resolve", p_resolve},
  {"reject", p_reject},
  {"emit", p_emit},
  {"on", p_on},
  {"next", p_next},
  {"catch", p_catch},
  {"finally", p_finally},
  {"state", p_state},
  {"result", p_result},
  {"cancel", p_cancel},
  {NULL, NULL}
};

static const luaL_Reg promise_funcs[] = {
  {"promise", l_promise},
  {"resolved", l_resolved},
  {"rejected", l_rejected},
  {"is_promise", l_is_promise},
  {NULL, NULL}
};

/* [-0, +0, m] Creates the promise metatable and adds the functions to the
 * module table at the top. The metatable's methods table is left in
 * registry["tide.promise.methods"] for other files to extend (await). */
int tide_open_promise(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  luaL_newmetatable(L, TIDE_PROMISE_MT);
  lua_pushvalue(L, -1);
  tl->promise_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  tl->promise_mt = lua_topointer(L, -1);
  lua_pushcfunction(L, p_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, promise_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.promise.methods");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);  /* remove the metatable */
  luaL_setfuncs(L, promise_funcs, 0);
  return 0;
}
