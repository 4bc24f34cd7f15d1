/* timer.c — time from Lua: tide.sleep (a promise settled by a core timer,
 * released when cancelled) and tide.interval (a task calling a function on
 * a fixed schedule). tide.timer lives in task.c: it is a delayed task.
 *
 * Stack discipline: each function leaves one result, as documented.
 * Ownership: the sleep promise is held by the core timer while it runs;
 * the interval body is a Lua chunk kept in registry["tide.interval"].
 */
#include "binding.h"

/* tide.sleep(seconds) -> promise fulfilled after `seconds`. */
static int l_sleep(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uint64_t ms = tide_lua_ms(tide_lua_checkseconds(L, 1));
  lpromise *lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, 2);
  int err;
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

/* [-0, +0, m] Adds the timer functions to the module table at the top. */
int tide_open_timer(lua_State *L) {
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
