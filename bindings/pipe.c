/* pipe.c — tide.pipe: Unix domain sockets with the stream API. connect,
 * listen (server:accept) and serve (one task per connection); a server
 * removes its socket file when it closes. Streams and servers live in
 * stream.c, connecting in connect.c.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]. Ownership:
 * a server's userdata owns its stream (see stream.c); a listen that fails
 * leaves it to the GC, which closes it.
 */
#include "binding.h"

#include <stdlib.h>

#define DEFAULT_BACKLOG 1024

/* [-0, +1, e] Binds and listens as the options table at `idx` says
 * ({path=, backlog=, ...}); pushes the server. */
static void listen_opts(lua_State *L, int idx) {
  tide_io *io = tide_io_get(L);
  tide_stream_opts o;
  tide_stream *s;
  const char *path;
  int backlog, err;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "path");
  if ((path = lua_tostring(L, -1)) == NULL) luaL_error(L, "option 'path': string expected");
  backlog = (int)tide_opt_int(L, idx, "backlog", DEFAULT_BACKLOG, 1, 65535);  /* the path stays until the end */
  tide_stream_opts_init(&o);
  tide_stream_opts_get(L, idx, &o);
  if ((s = tide_stream_alloc(io, TIDE_STREAM_PIPE)) == NULL) luaL_error(L, "not enough memory");
  if ((err = uv_pipe_init(io->loop, &s->h.pipe, 0)) != 0) {
    free(s);
  } else {
    tide_stream_opened(s);
    tide_stream_push(L, s, 1);  /* from here the GC closes it on error */
    s->opts = o;
    if ((err = uv_pipe_bind(&s->h.pipe, path)) == 0) err = tide_server_listen(L, s, backlog);
  }
  if (err != 0) {
    tide_lua_push_uverror_at(L, err, path);
    lua_error(L);
  }
  lua_remove(L, -2);  /* remove the path */
}

/* tide.pipe.listen{path=, backlog=, high_water=, low_water=, read_buffer=}
 * -> server listening on the Unix domain socket `path`. */
static int l_listen(lua_State *L) { return tide_server_open(L, listen_opts, 0); }

/* tide.pipe.serve(opts, handler) -> server: listens as listen does and runs
 * handler(conn) in a new task for each connection (see tide.tcp.serve). */
static int l_serve(lua_State *L) { return tide_server_open(L, listen_opts, 1); }

/* tide.pipe.connect(path [, {timeout=, ...}]) -> promise of a stream. */
static int l_connect(lua_State *L) {
  tide_connect_pipe(L, luaL_checkstring(L, 1), 2);
  return 1;
}

static const luaL_Reg pipe_funcs[] = {
  {"connect", l_connect},
  {"listen", l_listen},
  {"serve", l_serve},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.pipe to the module table at the top. */
int tide_open_pipe(lua_State *L) {
  luaL_newlib(L, pipe_funcs);
  lua_setfield(L, -2, "pipe");
  return 0;
}
