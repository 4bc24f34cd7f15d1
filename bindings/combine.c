/* combine.c — promises made of other promises: tide.all, tide.race,
 * tide.any, tide.settled and tide.timeout.
 *
 * The result is a promise userdata (kind LP_COMBINE). Its user value
 * UV_COMBINE is a `combine` userdata with one listener node per input;
 * UV_OUTCOMES is a
 * table collecting per-input outcomes. The result is held once per
 * registered node; once it settles, the nodes still registered are
 * removed (the inputs are not cancelled, except by tide.timeout).
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; node_cb runs
 * on the main thread and leaves its stack as it found it. Ownership: the
 * `combine` userdata is reachable from the result (UV_COMBINE), which its
 * registered nodes hold, so node memory lives as long as a node can fire.
 */
#include "binding.h"

#include <string.h>

enum { C_ALL, C_RACE, C_ANY, C_SETTLED, C_TIMEOUT };

typedef struct combine combine;

typedef struct {
  tide_listener l;
  combine *c;
  int index;              /* 1-based input position */
} cnode;

struct combine {
  lpromise *result;
  int mode;
  int shield;             /* tide.timeout with {shield = true}: never cancels its input */
  int n;                  /* inputs */
  int remaining;          /* inputs not settled yet */
  cnode nodes[1];
};

/* Removes every node still registered and drops their holds. */
static void detach_all(combine *c) {
  int i;
  for (i = 0; i < c->n; i++) {
    tide_promise *src = c->nodes[i].l.source;
    if (src == NULL) continue;
    tide_listener_remove(&c->nodes[i].l);
    /* tide.timeout: the timer, or the promise timed out (unless shielded) */
    if (c->mode == C_TIMEOUT && !(c->shield && i == 0)) {
      tide_lp_cancel(c->result->p.rt ? tide_lua_of(src->rt)->L : NULL, (lpromise *)src);
    }
    tide_lp_drop(c->result);
  }
}

/* [-0, +0, m] Settles the result at `res` with the `n` values from `first`
 * and lets go of the other inputs. */
static void finish(lua_State *L, combine *c, int res, tide_state state, int first, int n) {
  tide_lp_settle(L, res, state, first, n);
  detach_all(c);
}

/* [-0, +0, m] Once every input of all() or settled() is in: fulfils the
 * result (at top+1) with the outcomes (the table at top+3), in order. */
static void finish_all(lua_State *L, combine *c, int top) {
  int i;
  lua_settop(L, top + 3);
  luaL_checkstack(L, c->n, "too many promises");
  for (i = 1; i <= c->n; i++) lua_rawgeti(L, top + 3, i);
  finish(L, c, top + 1, TIDE_FULFILLED, top + 4, c->n);
}

static void node_cb(tide_listener *l, tide_promise *src) {
  cnode *node = (cnode *)l;
  combine *c = node->c;
  lpromise *r = c->result;
  tide_lua *tl = tide_lua_of(src->rt);
  lua_State *L = tl->L;
  int top = lua_gettop(L), n, i;
  int ok = src->state == TIDE_FULFILLED;
  tide_lp_push(L, r);                           /* top+1: the result */
  tide_lp_push(L, (lpromise *)src);             /* top+2: the input */
  lua_getiuservalue(L, top + 1, UV_OUTCOMES);          /* top+3: outcomes */
  n = tide_lp_push_values(L, top + 2);          /* top+4...: its values */
  c->remaining--;
  if (r->p.state != TIDE_PENDING) goto done;
  switch (c->mode) {
    case C_ALL:
      if (!ok) { finish(L, c, top + 1, TIDE_REJECTED, top + 4, 1); break; }
      lua_settop(L, top + 4 + (n > 0) - 1 + (n == 0));
      if (n == 0) lua_pushnil(L);
      lua_rawseti(L, top + 3, node->index);     /* outcomes[i] = first value */
      if (c->remaining == 0) finish_all(L, c, top);
      break;
    case C_RACE:
      finish(L, c, top + 1, src->state, top + 4, n);
      break;
    case C_TIMEOUT:
      if (node->index == 2) {   /* the timer won */
        if (!ok) break;  /* the timer was cancelled: not a timeout */
        tide_lua_push_error(L, "ETIMEDOUT", "timed out");
        finish(L, c, top + 1, TIDE_REJECTED, lua_gettop(L), 1);
      } else {
        if (!ok) {
          tide_lp_get_traceback(L, top + 2);
          tide_lp_set_traceback(L, top + 1, -1);
          lua_pop(L, 1);  /* remove the traceback */
        }
        finish(L, c, top + 1, src->state, top + 4, n);
      }
      break;
    case C_ANY:
      if (ok) { finish(L, c, top + 1, TIDE_FULFILLED, top + 4, n); break; }
      lua_settop(L, top + 4);
      lua_rawseti(L, top + 3, node->index);     /* outcomes[i] = error */
      if (c->remaining == 0) {
        tide_lua_push_error(L, "EAGGREGATE", "every promise was rejected");
        lua_pushvalue(L, top + 3);
        lua_setfield(L, -2, "errors");
        finish(L, c, top + 1, TIDE_REJECTED, lua_gettop(L), 1);
      }
      break;
    case C_SETTLED:
      lua_createtable(L, n, 3);                 /* {status=, value=, n values} */
      lua_pushstring(L, ok ? "fulfilled" : "rejected");
      lua_setfield(L, -2, "status");
      if (n > 0) {
        lua_pushvalue(L, top + 4);
        lua_setfield(L, -2, ok ? "value" : "error");
      }
      for (i = 0; i < n; i++) {
        lua_pushvalue(L, top + 4 + i);
        lua_rawseti(L, -2, i + 1);
      }
      lua_pushinteger(L, n);
      lua_setfield(L, -2, "n");
      lua_rawseti(L, top + 3, node->index);
      if (c->remaining == 0) finish_all(L, c, top);
      break;
  }
done:
  lua_settop(L, top);
  tide_lp_drop(r);  /* this node's hold */
}

/* [-0, +1, m] Pushes a combine result for `n` inputs. */
static combine *combine_new(lua_State *L, int mode, int n) {
  lpromise *r = tide_lp_new(L, sizeof(lpromise), LP_COMBINE, UV_COMBINE);
  combine *c = lua_newuserdatauv(L, sizeof(combine) + sizeof(cnode) * (size_t)(n > 0 ? n - 1 : 0), 0);
  int i;
  memset(c, 0, sizeof(combine) + sizeof(cnode) * (size_t)(n > 0 ? n - 1 : 0));
  c->result = r;
  c->mode = mode;
  c->n = c->remaining = n;
  for (i = 0; i < n; i++) { c->nodes[i].c = c; c->nodes[i].index = i + 1; }
  lua_setiuservalue(L, -2, UV_COMBINE);
  lua_createtable(L, n, 0);
  lua_setiuservalue(L, -2, UV_OUTCOMES);
  return c;
}

/* [-0, +0, m] Registers node `i` on the promise at `idx`; a value that is
 * not a promise counts as a promise fulfilled with it. */
static void attach(lua_State *L, combine *c, int res, int i, int idx) {
  if (tide_lp_test(L, idx) == NULL) {
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    tide_lp_settle(L, -1, TIDE_FULFILLED, idx, 1);
    idx = lua_gettop(L);
  }
  tide_lp_hold(L, res);
  tide_lp_listen(L, idx, &c->nodes[i].l, node_cb);
}

static int combine_list(lua_State *L, int mode) {
  int n, i, res;
  combine *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  n = (int)luaL_len(L, 1);
  c = combine_new(L, mode, n);
  res = lua_gettop(L);
  if (n == 0 && mode != C_RACE) {
    if (mode == C_ANY) {
      tide_lua_push_error(L, "EAGGREGATE", "every promise was rejected");
      lua_newtable(L);
      lua_setfield(L, -2, "errors");
      tide_lp_settle(L, res, TIDE_REJECTED, res + 1, 1);
    } else {
      tide_lp_settle(L, res, TIDE_FULFILLED, res + 1, 0);
    }
    lua_settop(L, res);
    return 1;
  }
  for (i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    attach(L, c, res, i, res + 1);
    lua_settop(L, res);
  }
  return 1;
}

/* tide.all{p1, p2, ...} -> promise of (v1, v2, ...): the first value of
 * each, in order; rejected with the first rejection. */
static int l_all(lua_State *L) { return combine_list(L, C_ALL); }
/* tide.race{...} -> settles as the first input to settle. */
static int l_race(lua_State *L) { return combine_list(L, C_RACE); }
/* tide.any{...} -> the first fulfilment; EAGGREGATE error (with .errors)
 * when every input is rejected. */
static int l_any(lua_State *L) { return combine_list(L, C_ANY); }
/* tide.settled{...} -> promise of one table per input:
 * {status = "fulfilled"|"rejected", value = | error =, n = count, ...}. */
static int l_settled(lua_State *L) { return combine_list(L, C_SETTLED); }

/* Cancelling a tide.timeout result stops its timer and cancels its
 * input, so a task cancelled while it awaits one releases the operation. */
static void timeout_cancel(tide_promise *p, void *data) {
  (void)p;
  detach_all(data);
}

/* tide.timeout(p, seconds [, {shield = true}]) -> promise settled as p, or
 * rejected with an ETIMEDOUT error after `seconds`, in which case p is
 * cancelled; cancelling the result cancels p too. With shield, p is never
 * cancelled: it runs on, and the result only stops waiting for it. */
static int l_timeout(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uint64_t ms;
  combine *c;
  lpromise *sleep;
  int res, err, shield = 0;
  tide_lp_check(L, 1);
  ms = tide_lua_ms(tide_lua_checkseconds(L, 2));
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "shield");
    shield = lua_toboolean(L, -1);
  }
  lua_settop(L, 1);
  c = combine_new(L, C_TIMEOUT, 2);
  c->shield = shield;
  res = lua_gettop(L);
  sleep = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_hold(L, -1);
  err = tide_sleep(tl->rt, &sleep->p, ms);
  tide_lp_drop(sleep);
  if (err != 0) {
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  attach(L, c, res, 0, 1);
  attach(L, c, res, 1, res + 1);
  tide_promise_on_cancel(&c->result->p, timeout_cancel, c);
  lua_settop(L, res);
  return 1;
}

static const luaL_Reg combine_funcs[] = {
  {"all", l_all},
  {"race", l_race},
  {"any", l_any},
  {"settled", l_settled},
  {"timeout", l_timeout},
  {NULL, NULL}
};

/* [-0, +0, m] Adds the combinators to the module table at the top. */
int tide_open_combine(lua_State *L) {
  luaL_setfuncs(L, combine_funcs, 0);
  return 0;
}
