/* ioutil.c — what the I/O bindings share: operations that hold their
 * promise while libuv works on them, error objects that name their subject
 * ("ENOENT: no such file or directory: /x"), the fields of options tables
 * (one reading and one error message for every binding), time limits
 * through tide.timeout, and feeds: the values a handle
 * produces (datagrams, file changes, signals), queued up to a bound and
 * handed out one per promise.
 *
 * Stack discipline: every helper states its effect as [-o, +p, x]; libuv
 * callbacks run on the main thread tl->L and leave its stack as they found
 * it.
 *
 * Ownership:
 *  - An operation holds its promise (tide_lp_hold) from its start until its
 *    libuv callback, which settles it when it is still pending; a promise
 *    cancelled meanwhile is left as the runtime rejected it. A callback
 *    that runs once the Lua side is gone (a C host closed the state first)
 *    touches no Lua memory: tide_op_state tells it.
 *  - A feed keeps its queued values in a registry table (queue_ref) and
 *    its waiting promises in a C list; each waiting promise is held, and
 *    holds the object that owns the feed in user value UV_OWNER, so a handle is
 *    never collected while somebody waits on it. The feed's handle is
 *    referenced (keeps the loop alive) exactly while a promise waits.
 */
#include "binding.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ operations */

/* In the libuv callback of an operation that held `lp`: returns the main
 * lua_State when `lp` is still pending (the caller settles it with
 * tide_op_settle), or NULL when there is nothing to settle: the promise was
 * cancelled (the operation's hold is dropped here) or the Lua side is gone
 * (nothing of Lua is touched). Either way the caller frees its request. */
lua_State *tide_op_state(tide_rt *rt, lpromise *lp) {
  tide_lua *tl = tide_lua_of(rt);
  if (tl == NULL) return NULL;
  if (lp->p.state != TIDE_PENDING) {
    tide_lp_drop(lp);
    return NULL;
  }
  return tl->L;
}

/* [-n, +0, m] Settles the held promise `lp` with the `n` values on top of
 * the stack (the error, when rejected), pops them and drops the
 * operation's hold. */
void tide_op_settle(lua_State *L, lpromise *lp, tide_state state, int n) {
  int first = lua_gettop(L) - n + 1;
  tide_lp_push(L, lp);
  tide_lp_settle(L, -1, state, first, n);
  lua_settop(L, first - 1);
  tide_lp_drop(lp);
}

/* [-0, +0, m] Settles the held promise `lp` with the error object of libuv
 * status `status` (naming `subject` when not NULL), as above. */
void tide_op_fail(lua_State *L, lpromise *lp, int status, const char *subject) {
  tide_lua_push_uverror_at(L, status, subject);
  tide_op_settle(L, lp, TIDE_REJECTED, 1);
}

/* --------------------------------------------------------------- errors */

/* [-0, +1, m] Pushes the error object of libuv status `status`; with a
 * `subject` (a path, a host name, an address) its message ends with it and
 * the object carries it as `subject`: "ENOENT: no such file or directory:
 * /x". */
void tide_lua_push_uverror_at(lua_State *L, int status, const char *subject) {
  if (subject == NULL) {
    tide_lua_push_uverror(L, status);
    return;
  }
  lua_pushfstring(L, "%s: %s", uv_strerror(status), subject);
  tide_lua_push_error(L, uv_err_name(status), lua_tostring(L, -1));
  lua_remove(L, -2);  /* remove the message */
  lua_pushstring(L, subject);
  lua_setfield(L, -2, "subject");
}

/* -------------------------------------------------------------- options */

/* [-0, +1, m] What an option's value at the top is, for its error: a
 * number itself, else its type. */
static const char *got(lua_State *L) {
  return lua_type(L, -1) == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL) : luaL_typename(L, -1);
}

/* [-0, +0, v] Field `key` of the options table at `idx`: an integer from
 * `min` to `max`, or `def` (unchecked) when absent. Anything else raises
 * "option 'key': integer from min to max expected, got ...". */
lua_Integer tide_opt_int(lua_State *L, int idx, const char *key, lua_Integer def,
                         lua_Integer min, lua_Integer max) {
  lua_Integer v;
  int isint;
  if (lua_getfield(L, idx, key) == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    return def;
  }
  v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < min || v > max)
    luaL_error(L, "option '%s': integer from %I to %I expected, got %s", key, min, max, got(L));
  lua_pop(L, 1);  /* remove the value */
  return v;
}

/* [-0, +0, v] Field `key` of the options table at `idx` as a boolean
 * (false when absent). */
int tide_opt_bool(lua_State *L, int idx, const char *key) {
  int b;
  lua_getfield(L, idx, key);
  b = lua_toboolean(L, -1);
  lua_pop(L, 1);  /* remove the value */
  return b;
}

/* [-0, +0, v] Field `key` of the options table at `idx` as a duration in
 * seconds (a finite number >= 0), -1 when absent. */
double tide_opt_seconds(lua_State *L, int idx, const char *key) {
  double s = -1;
  int isnum;
  if (lua_getfield(L, idx, key) != LUA_TNIL) {
    s = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(s >= 0 && isfinite(s)))
      luaL_error(L, "option '%s': seconds (a finite number >= 0) expected, got %s", key, got(L));
  }
  lua_pop(L, 1);  /* remove the value */
  return s;
}

/* ---------------------------------------------------------- time limits */

/* [-0, +0, v] An optional duration in seconds at `idx`: -1 when nil or
 * absent, else checked as tide_lua_checkseconds does. */
double tide_lua_optseconds(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return -1;
  return tide_lua_checkseconds(L, idx);
}

/* [-1, +1, e] Replaces the promise on top of the stack with
 * tide.timeout(p, seconds) when `seconds` >= 0: settled as p, or rejected
 * with an ETIMEDOUT error once `seconds` have passed, p then being
 * cancelled (its producer's hook stops the operation). */
void tide_lua_timeout(lua_State *L, double seconds) {
  if (seconds < 0) return;
  if (lua_getfield(L, LUA_REGISTRYINDEX, "tide.io.timeout") != LUA_TFUNCTION) {
    lua_pop(L, 1);  /* remove the nil */
    lua_getfield(L, LUA_REGISTRYINDEX, "tide.module");
    lua_getfield(L, -1, "timeout");
    lua_remove(L, -2);  /* remove the module */
    luaL_checktype(L, -1, LUA_TFUNCTION);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "tide.io.timeout");
  }
  lua_insert(L, -2);  /* timeout below the promise */
  lua_pushnumber(L, seconds);
  lua_call(L, 2, 1);
}

/* ---------------------------------------------------------------- feeds */

/* A promise waiting on a feed. */
typedef struct feed_wait {
  lpromise lp;                  /* must be first */
  tide_feed *feed;              /* NULL once it left the feed */
  struct feed_wait *prev, *next;
} feed_wait;

/* The handle keeps the loop alive exactly while somebody waits. */
static void feed_update_ref(tide_feed *f) {
  if (f->handle == NULL || uv_is_closing(f->handle)) return;
  if (f->head) uv_ref(f->handle);
  else uv_unref(f->handle);
}

static void feed_unlink(feed_wait *w) {
  tide_feed *f = w->feed;
  if (w->prev) w->prev->next = w->next; else f->head = w->next;
  if (w->next) w->next->prev = w->prev; else f->tail = w->prev;
  w->prev = w->next = NULL;
  w->feed = NULL;
  feed_update_ref(f);
}

/* The cancel hook of a waiting promise: it leaves the feed. */
static void feed_wait_cancel(tide_promise *p, void *data) {
  feed_wait *w = data;
  (void)p;
  feed_unlink(w);
  tide_lp_drop(&w->lp);
}

/* [-0, +0, m] Prepares feed `f` of items of `arity` values, of which at
 * most `limit` are queued while nobody waits (more are dropped and
 * counted). `handle` (may be NULL) is unreferenced until a promise waits. */
void tide_feed_init(lua_State *L, tide_feed *f, uv_handle_t *handle, int arity, lua_Integer limit) {
  memset(f, 0, sizeof(*f));
  f->handle = handle;
  f->arity = arity;
  f->limit = limit;
  lua_newtable(L);
  f->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  feed_update_ref(f);
}

/* [-0, +arity, m] Pushes the values of the oldest queued item and takes
 * it off the queue. */
static void feed_shift(lua_State *L, tide_feed *f) {
  lua_Integer base = f->first * f->arity;
  int i;
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->queue_ref);
  for (i = 0; i < f->arity; i++) {
    lua_rawgeti(L, -1 - i, base + i);
    lua_pushnil(L);
    lua_rawseti(L, -3 - i, base + i);  /* queue[base + i] = nil */
  }
  lua_remove(L, -1 - f->arity);  /* remove the queue */
  f->first++;
  if (--f->count == 0) f->first = 0;  /* keep the keys small */
}

/* [-0, +1, e] Pushes a promise of the next item of `f`: fulfilled at once
 * with the oldest queued item, else pending until an item comes (or the
 * feed closes: then fulfilled with no values). The promise keeps the
 * object at `owner` alive while it waits. With `seconds` >= 0 it is
 * wrapped in tide.timeout. The feed must be open. */
void tide_feed_next(lua_State *L, tide_feed *f, int owner, double seconds) {
  feed_wait *w;
  int top;
  owner = lua_absindex(L, owner);
  if (f->count > 0) {
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    top = lua_gettop(L);
    feed_shift(L, f);
    tide_lp_settle(L, top, TIDE_FULFILLED, top + 1, f->arity);
    lua_settop(L, top);
    return;
  }
  w = (feed_wait *)tide_lp_new(L, sizeof(feed_wait), LP_PLAIN, UV_OWNER);
  lua_pushvalue(L, owner);
  lua_setiuservalue(L, -2, UV_OWNER);  /* the promise keeps the owner alive */
  w->feed = f;
  w->prev = f->tail;
  if (f->tail) f->tail->next = w; else f->head = w;
  f->tail = w;
  tide_lp_hold(L, -1);  /* held while it waits */
  tide_promise_on_cancel(&w->lp.p, feed_wait_cancel, w);
  feed_update_ref(f);
  tide_lua_timeout(L, seconds);
}

/* [-arity, +0, m] Delivers the item made of the `arity` values on top: to
 * the oldest waiting promise, else to the queue, else (queue full) it is
 * dropped and counted. */
void tide_feed_push(lua_State *L, tide_feed *f) {
  int first = lua_gettop(L) - f->arity + 1, i;
  feed_wait *w = f->head;
  if (w != NULL) {
    feed_unlink(w);
    tide_op_settle(L, &w->lp, TIDE_FULFILLED, f->arity);
    return;
  }
  if (f->count < f->limit && !f->closed) {
    lua_Integer base = (f->first + f->count) * f->arity;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->queue_ref);
    for (i = 0; i < f->arity; i++) {
      lua_pushvalue(L, first + i);
      lua_rawseti(L, -2, base + i);
    }
    f->count++;
  } else {
    f->dropped++;
  }
  lua_settop(L, first - 1);
}

/* [-1, +0, m] Rejects the oldest waiting promise with the error on top;
 * with nobody waiting the error is counted in `errors` and dropped. */
void tide_feed_fail(lua_State *L, tide_feed *f) {
  feed_wait *w = f->head;
  if (w == NULL) {
    f->errors++;
    lua_pop(L, 1);  /* remove the error */
    return;
  }
  feed_unlink(w);
  tide_op_settle(L, &w->lp, TIDE_REJECTED, 1);
}

/* [-0, +0, m] Closes feed `f`: waiting promises are fulfilled with no
 * values (the end, as a stream's read gives nil at EOF), or with `settle`
 * 0 only let go (from __gc while the state closes); queued items are
 * dropped. Safe to call twice. */
void tide_feed_close(lua_State *L, tide_feed *f, int settle) {
  feed_wait *w;
  f->closed = 1;
  while ((w = f->head) != NULL) {
    feed_unlink(w);
    if (settle) {
      tide_op_settle(L, &w->lp, TIDE_FULFILLED, 0);
    } else {
      tide_promise_on_cancel(&w->lp.p, NULL, NULL);
      tide_lp_drop(&w->lp);
    }
  }
  luaL_unref(L, LUA_REGISTRYINDEX, f->queue_ref);
  f->queue_ref = LUA_NOREF;
  f->count = f->first = 0;
}

/* [-0, +1, v] owner:next([timeout]) of the feed owner at index 1 (a
 * watcher, a socket) whose feed is `f`: pushes the promise of its next
 * item, limited to the seconds at 2 (if any). Returns 1. */
int tide_feed_lnext(lua_State *L, tide_feed *f) {
  tide_feed_next(L, f, 1, tide_lua_optseconds(L, 2));
  return 1;
}

/* [-0, +(0|1), -] For __index: pushes the counter of `f` named `key`
 * ("queued", "dropped", "errors") and returns 1, or returns 0. */
int tide_feed_field(lua_State *L, tide_feed *f, const char *key) {
  lua_Integer v;
  if (strcmp(key, "queued") == 0) v = f->count;
  else if (strcmp(key, "dropped") == 0) v = f->dropped;
  else if (strcmp(key, "errors") == 0) v = f->errors;
  else return 0;
  lua_pushinteger(L, v);
  return 1;
}
