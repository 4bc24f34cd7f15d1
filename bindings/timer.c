/* timer.c — time from Lua: tide.sleep (a promise settled by a core timer,
 * released when cancelled), tide.interval (a task calling a function on
 * a fixed schedule) and tide.virtual_clock (the runtime on virtual time,
 * see core/clock.c). tide.timer lives in task.c: it is a delayed task.
 *
 * Stack discipline: each function leaves one result, as documented.
 * Ownership: the sleep promise is held by the core timer while it runs;
 * the interval body is a Lua chunk kept in registry["tide.interval"]; a
 * clock object is a userdata holding whether it still runs the runtime's
 * clock (it has no __gc: the runtime stays on virtual time until
 * clock:close(), whatever becomes of the object).
 */
#include "binding.h"

#include <stdlib.h>

/* A sleep on the real clock: its own timer (malloc'd: the handle may
 * outlive the promise userdata), which holds the promise until it fires or
 * the sleep is cancelled, then closes and frees itself. */
typedef struct rsleep {
  tide_timer t;
  lpromise *lp;
} rsleep;

static void rsleep_close_cb(uv_handle_t *h) { free(h->data); }

static void rsleep_end(rsleep *r) {
  tide_lp_drop(r->lp);
  r->lp = NULL;
  tide_timer_close(&r->t, rsleep_close_cb);
}

static void rsleep_cb(tide_timer *t) {
  rsleep *r = t->data;
  tide_rt *rt = t->rt;
  tide_promise_settle(&r->lp->p, TIDE_FULFILLED);
  rsleep_end(r);
  tide_rt_drain(rt);
}

static void rsleep_cancel_cb(tide_promise *p, void *data) {
  (void)p;
  rsleep_end(data);
}

/* [-0, +1, m] Pushes a promise fulfilled after `ms` ms of real time. */
static int real_sleep(lua_State *L, tide_lua *tl, uint64_t ms) {
  rsleep *r = malloc(sizeof(*r));
  int err;
  if (r == NULL) return luaL_error(L, "not enough memory");
  if ((err = tide_timer_init_real(tl->rt, &r->t)) != 0) {
    free(r);
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  r->t.data = r;
  r->lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_hold(L, -1);  /* held until it fires or is cancelled */
  tide_promise_on_cancel(&r->lp->p, rsleep_cancel_cb, r);
  tide_timer_start(&r->t, rsleep_cb, ms);
  return 1;
}

/* tide.sleep(seconds [, opts]) -> promise fulfilled after `seconds`;
 * opts.real: on the real clock even on virtual time. */
static int l_sleep(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uint64_t ms = tide_lua_ms(tide_lua_checkseconds(L, 1));
  lpromise *lp;
  int err;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "real") != LUA_TNIL && lua_toboolean(L, -1)) return real_sleep(L, tl, ms);
    lua_pop(L, 1);  /* remove opts.real */
  }
  lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  tide_lp_hold(L, -1);  /* lets the timer retain it */
  err = tide_sleep(tl->rt, &lp->p, ms);
  tide_lp_drop(lp);
  if (err != 0) {
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  return 1;
}

/* The body of tide.interval: ticks on a schedule computed from the start,
 * so a slow tick does not shift the ones after it; ticks missed while fn
 * ran are skipped. fn returning false ends the interval. */
static const char interval_lua[] =
  "local tide, seconds, fn = ...\n"
  "return tide.spawn(function()\n"
  "  local start, i = tide.now(), 0\n"
  "  while true do\n"
  "    local due = start + (i + 1) * seconds\n"
  "    local now = tide.now()\n"
  "    if due < now then i = math.floor((now - start) / seconds); due = start + (i + 1) * seconds end\n"
  "    tide.sleep(due - now):await()\n"
  "    i = i + 1\n"
  "    if fn(i) == false then return i end\n"
  "  end\n"
  "end)\n";

/* tide.interval(seconds, fn) -> task: calls fn(i) every `seconds` until
 * fn returns false or the task is cancelled. */
static int l_interval(lua_State *L) {
  double s = tide_lua_checkseconds(L, 1);
  luaL_argcheck(L, s > 0, 1, "interval must be > 0");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.interval");
  lua_pushvalue(L, lua_upvalueindex(1));  /* the tide module */
  lua_pushnumber(L, s);
  lua_pushvalue(L, 2);
  lua_call(L, 3, 1);
  return 1;
}

#define CLOCK_MT "tide.clock"

typedef struct { int open; } lclock;

/* [-0, +0, v] The autojump threshold in ms for the value at `idx`: true or
 * nil is 0 (jump as soon as the runtime is idle), a number of seconds of
 * real idleness, false is -1 (the clock moves only by hand). */
static int64_t check_autojump(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_isboolean(L, idx)) return lua_toboolean(L, idx) ? 0 : -1;
  return (int64_t)tide_lua_ms(tide_lua_checkseconds(L, idx));
}

static lclock *check_clock(lua_State *L) {
  lclock *c = luaL_checkudata(L, 1, CLOCK_MT);
  if (!c->open) luaL_error(L, "the virtual clock was closed");
  return c;
}

/* tide.virtual_clock([opts]) -> clock: puts the runtime on virtual time.
 * opts.autojump: see check_autojump (default true). */
static int l_virtual_clock(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  int64_t autojump = 0;
  lclock *c;
  int err;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "autojump");
    autojump = check_autojump(L, -1);
    lua_pop(L, 1);  /* remove opts.autojump */
  }
  if (tide_rt_clock_is_virtual(tl->rt))
    return luaL_error(L, "tide.virtual_clock: the runtime is on virtual time already");
  if ((err = tide_rt_clock_virtual(tl->rt, 1, autojump)) != 0) {
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  c = lua_newuserdatauv(L, sizeof(lclock), 0);
  c->open = 1;
  luaL_setmetatable(L, CLOCK_MT);
  return 1;
}

/* clock:advance(seconds) -> promise fulfilled once `seconds` have passed
 * on the clock: the timers due meanwhile fired first, in order. */
static int c_advance(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uint64_t ms;
  check_clock(L);
  ms = tide_lua_ms(tide_lua_checkseconds(L, 2));
  tide_rt_clock_advance(tl->rt, ms);
  lua_pushcfunction(L, l_sleep);
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);  /* tide.sleep(seconds): due when the clock gets there */
  return 1;
}

/* clock:autojump(threshold): see check_autojump. Returns the clock. */
static int c_autojump(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  check_clock(L);
  luaL_checkany(L, 2);
  tide_rt_clock_virtual(tl->rt, 1, check_autojump(L, 2));
  lua_settop(L, 1);
  return 1;
}

/* clock:now() -> the runtime's time in seconds (tide.now()). */
static int c_now(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  check_clock(L);
  lua_pushnumber(L, (lua_Number)tide_rt_now(tl->rt) / 1000.0);
  return 1;
}

/* clock:close(): the runtime goes back to the real clock (running timers
 * keep their time left); later calls do nothing. Also __close. */
static int c_close(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lclock *c = luaL_checkudata(L, 1, CLOCK_MT);
  if (c->open) {
    c->open = 0;
    tide_rt_clock_virtual(tl->rt, 0, -1);
  }
  return 0;
}

static int c_tostring(lua_State *L) {
  lclock *c = luaL_checkudata(L, 1, CLOCK_MT);
  lua_pushfstring(L, "tide.clock (%s): %p", c->open ? "virtual" : "closed", (void *)c);
  return 1;
}

static const luaL_Reg clock_methods[] = {
  {"advance", c_advance},
  {"autojump", c_autojump},
  {"now", c_now},
  {"close", c_close},
  {NULL, NULL}
};

static const luaL_Reg clock_meta[] = {
  {"__close", c_close},
  {"__tostring", c_tostring},
  {NULL, NULL}
};

/* [-0, +0, m] Adds the timer functions to the module table at the top. */
int tide_open_timer(lua_State *L) {
  tide_lua_newclass(L, CLOCK_MT, clock_meta, clock_methods, NULL);
  lua_pushcfunction(L, l_virtual_clock);
  lua_setfield(L, -2, "virtual_clock");
  lua_pushcfunction(L, l_sleep);
  lua_setfield(L, -2, "sleep");
  if (luaL_loadbuffer(L, interval_lua, sizeof(interval_lua) - 1, "=[tide.interval]") != LUA_OK)
    return lua_error(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.interval");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_interval, 1);
  lua_setfield(L, -2, "interval");
  return 0;
}
