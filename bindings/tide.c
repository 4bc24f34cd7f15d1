/* tide.c — the `tide` Lua module: luaopen_tide gathers the functions of
 * every binding into one table. Opened in a stock lua5.4 (require "tide")
 * it creates a runtime with its own loop, freed when the state closes; in
 * the `tide` binary and in C hosts it uses the runtime they attached with
 * tide_lua_open_rt().
 *
 * Stack discipline: luaopen_tide leaves the module table, also kept in
 * registry["tide.module"] (one module per state); each tide_open_* call adds
 * its functions to the table on top and leaves the stack as it found it.
 */
#include "binding.h"

#include <stdlib.h>

int luaopen_tide(lua_State *L) {
  tide_lua *tl;
  int err = tide_lua_open_rt(L, NULL);
  if (err != 0) return luaL_error(L, "tide: cannot create the runtime: %s", uv_strerror(err));
  tl = tide_lua_get(L);
  tl->debug = getenv("TIDE_DEBUG") != NULL && *getenv("TIDE_DEBUG") != '\0';
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.module");
  if (lua_istable(L, -1)) return 1;  /* opened before in this state */
  lua_pop(L, 1);  /* remove the nil */
  lua_newtable(L);
  tide_open_util(L);
  tide_open_promise(L);
  tide_open_task(L);
  tide_open_timer(L);
  tide_open_combine(L);
  tide_open_group(L);
  tide_open_queue(L);
  tide_open_semaphore(L);
  tide_open_event(L);
  tide_open_charset(L);
  tide_open_bytes(L);
  tide_open_zlib(L);
  tide_open_fields(L);
  tide_open_resp(L);
  tide_open_udp(L);
  tide_open_dns(L);
  tide_open_signal(L);
  tide_open_fs(L);
  tide_open_stream(L);
  tide_open_tls(L);
  tide_open_tcp(L);
  tide_open_pipe(L);
  tide_open_stdio(L);
  tide_open_process(L);
  tide_open_work(L);
  tide_open_watchdog(L);
  lua_pushliteral(L, TIDE_VERSION_STRING);
  lua_setfield(L, -2, "version");
  if (getenv("TIDE_WORKER") != NULL) {  /* a worker of tide --workers n */
    lua_pushinteger(L, atoi(getenv("TIDE_WORKER")));
    lua_setfield(L, -2, "worker");
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.module");
  return 1;
}
