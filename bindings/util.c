/* util.c — the runtime's Lua side (tide_lua: one per lua_State), error
 * objects, protected calls with tracebacks, reports on stderr and argument
 * helpers shared by every binding.
 *
 * Stack discipline: each helper states its effect in the manual's notation,
 * [-o, +p, x]. Registry entries owned here: the tide_lua userdata (key
 * &lua_key), the weak tracebacks table and tide.Cancelled.
 */
#include "binding.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char lua_key = 'T';

/* The last state this thread asked about, keyed by the address of its
 * registry (one per lua_State and its coroutines): every binding asks on
 * its hot path, and a registry lookup by pointer costs about a hundred
 * instructions. Cleared when that state's runtime side goes away. */
static _Thread_local const void *cached_registry;
static _Thread_local tide_lua *cached_lua;

/* [-0, +0, -] The runtime's Lua side of `L`, or NULL before luaopen_tide. */
tide_lua *tide_lua_get(lua_State *L) {
  const void *registry = lua_topointer(L, LUA_REGISTRYINDEX);
  tide_lua *tl;
  if (registry == cached_registry && cached_lua) return cached_lua;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lua_key);
  tl = lua_touserdata(L, -1);
  lua_pop(L, 1);  /* remove the userdata */
  if (tl) {
    cached_registry = registry;
    cached_lua = tl;
  }
  return tl;
}

tide_lua *tide_lua_of(tide_rt *rt) { return tide_rt_binding(rt); }

static int rt_gc(lua_State *L) {
  tide_lua *tl = lua_touserdata(L, 1);
  if (cached_lua == tl) cached_registry = NULL, cached_lua = NULL;

  if (tl->rt) {
    tide_rt_set_binding(tl->rt, NULL);
    if (tl->owns_rt) tide_rt_free(tl->rt);
    tl->rt = NULL;
  }
  return 0;
}

/* [-0, +0, m] Attaches runtime `rt` (NULL: a new one the state owns) to
 * `L`; does nothing when `L` has one already. Returns 0 or a libuv error. */
int tide_lua_open_rt(lua_State *L, tide_rt *rt) {
  tide_lua *tl;
  int owns = 0, err;
  if (tide_lua_get(L) != NULL) return 0;
  if (rt == NULL) {
    if ((err = tide_rt_new(NULL, &rt)) != 0) return err;
    owns = 1;
  }
  tl = lua_newuserdatauv(L, sizeof(*tl), 0);
  memset(tl, 0, sizeof(*tl));
  tl->rt = rt;
  tl->owns_rt = owns;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  tl->L = lua_tothread(L, -1);
  lua_pop(L, 1);  /* remove the main thread */
  lua_createtable(L, 0, 1);  /* metatable of the tide_lua userdata */
  lua_pushcfunction(L, rt_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lua_key);  /* registry[&lua_key] = tl */

  lua_newtable(L);  /* tracebacks: promise -> traceback, weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  tl->tracebacks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  tide_rt_set_binding(rt, tl);
  tide_rt_on_unhandled(rt, tide_lua_report_unhandled);
  return 0;
}

/* [-1, +1, m] Message handler for protected calls: keeps the error value
 * as it is and stores the traceback in registry["tide.traceback"]. */
int tide_lua_traceback_handler(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.traceback");
  return 1;
}

/* [-(nargs+1), +(nresults|2), e] Calls the function below the `nargs`
 * arguments under tide_lua_traceback_handler. On error it leaves the error
 * value and its traceback string (nil when memory failed) and returns the
 * status. */
int tide_lua_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs, status;
  lua_pushcfunction(L, tide_lua_traceback_handler);
  lua_insert(L, base);  /* handler below the function */
  status = tide_lua_pcallh(L, nargs, nresults, base);
  lua_remove(L, base);  /* remove the handler */
  return status;
}

/* [-(nargs+1), +(nresults|2), e] As tide_lua_pcall, with the handler
 * already on the stack at `msgh` (absolute, below the function), where
 * it stays: hot paths push it before the function instead of moving it. */
int tide_lua_pcallh(lua_State *L, int nargs, int nresults, int msgh) {
  int status = lua_pcall(L, nargs, nresults, msgh);
  if (status != LUA_OK) {
    if (status == LUA_ERRRUN) lua_getfield(L, LUA_REGISTRYINDEX, "tide.traceback");
    else lua_pushnil(L);
  }
  return status;
}

static int error_tostring(lua_State *L) {
  const char *code, *msg;
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  code = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  if (code && msg) lua_pushfstring(L, "%s: %s", code, msg);
  else if (msg) lua_pushstring(L, msg);
  else if (code) lua_pushstring(L, code);
  else lua_pushliteral(L, "tide error");
  return 1;
}

/* The state's one userdata under `key` (see binding.h). */
void *tide_lua_singleton(lua_State *L, const void *key, size_t size, lua_CFunction gc) {
  void *p;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return lua_touserdata(L, -1);
  lua_pop(L, 1);  /* remove the nil */
  p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  return p;
}

/* [-0, +0, m] Creates the metatable `name` of a userdata class: the
 * metamethods `meta` (or none), and an __index over the functions
 * `methods`: a closure of `index` with the methods table as its upvalue
 * (it answers methods first, then the fields it computes), or the methods
 * table itself when `index` is NULL. The methods table is also
 * registry[name .. ".methods"], for other files to add their own (tcp.c
 * adds nodelay and keepalive to streams). */
void tide_lua_newclass(lua_State *L, const char *name, const luaL_Reg *meta,
                       const luaL_Reg *methods, lua_CFunction index) {
  luaL_newmetatable(L, name);
  if (meta) luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushfstring(L, "%s.methods", name);
  lua_pushvalue(L, -2);
  lua_settable(L, LUA_REGISTRYINDEX);  /* registry[key] = methods */
  if (index) lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);  /* remove the metatable */
}

/* [-0, +1, -] The first step of an __index closure made by
 * tide_lua_newclass (the methods table is upvalue 1): pushes the method
 * named by the key at 2 and returns NULL when there is one, or when the
 * key is no string (the value pushed, nil, is then the answer); else
 * returns the key, nil on top, for the caller's fields. */
const char *tide_lua_index_key(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING) return NULL;
  return lua_tostring(L, 2);
}

/* [-0, +1, m] Pushes the metatable of error objects. */
static void push_error_mt(lua_State *L) {
  if (luaL_newmetatable(L, TIDE_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

/* [-0, +1, m] Pushes an error object {code=, message=} whose tostring is
 * one readable line, "CODE: message". */
void tide_lua_push_error(lua_State *L, const char *code, const char *message) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  push_error_mt(L);
  lua_setmetatable(L, -2);
}

/* [-0, +1, m] Pushes the error object of libuv status `status`. */
void tide_lua_push_uverror(lua_State *L, int status) {
  tide_lua_push_error(L, uv_err_name(status), uv_strerror(status));
}

/* tide.error(code, message [, fields]) -> error object. */
static int l_error(lua_State *L) {
  const char *code = luaL_checkstring(L, 1);
  const char *msg = luaL_optstring(L, 2, code);
  tide_lua_push_error(L, code, msg);
  if (lua_istable(L, 3)) {  /* copy extra fields */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return 1;
}

/* tide.is_error(v [, code]) -> boolean */
static int l_is_error(lua_State *L) {
  int yes = luaL_testudata(L, 1, TIDE_ERROR_MT) != NULL;
  if (!yes && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, TIDE_ERROR_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);  /* remove both metatables */
  }
  if (yes && !lua_isnoneornil(L, 2)) {
    lua_getfield(L, 1, "code");
    yes = lua_compare(L, -1, 2, LUA_OPEQ);
    lua_pop(L, 1);  /* remove the code */
  }
  lua_pushboolean(L, yes);
  return 1;
}

static int safe_tostring(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* [-0, +0, -] Prints "tide: <what><tostring(value at top)>" and the
 * traceback at `tb_idx` (0: none) on stderr. Never raises. */
void tide_lua_report(lua_State *L, const char *what, int tb_idx) {
  const char *msg;
  int top = lua_gettop(L);
  if (tb_idx < 0) tb_idx = lua_absindex(L, tb_idx);
  lua_pushcfunction(L, safe_tostring);
  lua_pushvalue(L, top);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(error object is not a string)");
  }
  msg = lua_tostring(L, -1);
  fprintf(stderr, "tide: %s%s\n", what, msg ? msg : "?");
  if (tb_idx > 0 && lua_type(L, tb_idx) == LUA_TSTRING)
    fprintf(stderr, "%s\n", lua_tostring(L, tb_idx));
  fflush(stderr);
  lua_settop(L, top);
}

/* [-0, +0, v] A duration in seconds: a non-negative finite number. */
double tide_lua_checkseconds(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0 && isfinite(s), idx, "seconds must be a finite number >= 0");
  return s;
}

/* Milliseconds of libuv timers for `seconds`, rounded up. */
uint64_t tide_lua_ms(double seconds) {
  /* Up to the next millisecond, but noise of the float arithmetic that
   * made `seconds` (0.1 + 0.2 is 0.30000000000000004) is no millisecond */
  double ms = ceil(seconds * 1000.0 - 1e-6);
  return ms >= 9.0e15 ? (uint64_t)9.0e15 : (uint64_t)ms;
}

static int l_now(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lua_pushnumber(L, (lua_Number)tide_rt_now(tl->rt) / 1000.0);
  return 1;
}

static int l_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static void count_cb(uv_handle_t *h, void *arg) {
  lua_State *L = arg;
  const char *type;
  if (uv_is_closing(h)) return;
  if (uv_is_active(h) && uv_has_ref(h)) {  /* stats.alive: one more */
    lua_pushinteger(L, lua_tointeger(L, -2) + 1);
    lua_replace(L, -3);
  }
  type = uv_handle_type_name(uv_handle_get_type(h));
  lua_getfield(L, -1, type);
  lua_pushinteger(L, luaL_optinteger(L, -1, 0) + 1);
  lua_setfield(L, -3, type);  /* handles[type] = count + 1 */
  lua_pop(L, 1);  /* remove the old count */
}

/* tide.stats() -> {handles = {type = count, ...}, nhandles = n,
 * alive = n, unhandled = n}: the libuv handles of the loop not closing (the
 * runtime's own among them), how many handles and requests are active and
 * keep the loop running (what can still wake a task: a timer, a socket, a
 * process, a thread's job...), and the unhandled rejections reported so
 * far. For tests. */
static int l_stats(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uv_loop_t *loop = tide_rt_loop(tl->rt);
  lua_Integer n = 0;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)loop->active_reqs.count);  /* alive, counted on */
  lua_newtable(L);
  uv_walk(loop, count_cb, L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {  /* sum the counts */
    n += lua_tointeger(L, -1);
    lua_pop(L, 1);  /* remove the count */
  }
  lua_setfield(L, -3, "handles");
  lua_setfield(L, -2, "alive");
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "nhandles");
  lua_pushinteger(L, (lua_Integer)tl->reported);
  lua_setfield(L, -2, "unhandled");
  return 1;
}

static const luaL_Reg util_funcs[] = {
  {"stats", l_stats},
  {"error", l_error},
  {"is_error", l_is_error},
  {"now", l_now},
  {"hrtime", l_hrtime},
  {NULL, NULL}
};

/* [-0, +0, m] Adds the helpers to the module table at the top. */
int tide_open_util(lua_State *L) {
  luaL_setfuncs(L, util_funcs, 0);
  push_error_mt(L);
  lua_setfield(L, -2, "Error");
  return 0;
}
