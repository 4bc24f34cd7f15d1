/* tcp.c — tide.tcp: connect (names resolved, IPv4 and IPv6, each address
 * tried in turn), listen (server:accept) and serve (one task per
 * connection), and the tcp methods of streams: nodelay, keepalive.
 * Streams and servers themselves live in stream.c, connecting in
 * connect.c.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]. Ownership:
 * a server's userdata owns its stream (see stream.c); a listen that fails
 * leaves it to the GC, which closes it.
 */
#include "binding.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_BACKLOG 1024

/* [-0, +0, e] Raises the error object of `err`, naming `subject`. */
static int raise_at(lua_State *L, int err, const char *subject) {
  tide_lua_push_uverror_at(L, err, subject);
  return lua_error(L);
}

/* [-0, +0, e] Resolves `host` (numeric, else through the resolver, which
 * blocks: listen is not a hot path) into *ss with `port`. */
static void resolve_now(lua_State *L, const char *host, int port, struct sockaddr_storage *ss) {
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  int err;
  if (tide_addr_parse(host, port, ss) == 0) return;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  err = uv_getaddrinfo(tide_io_get(L)->loop, &req, NULL, host, NULL, &hints);
  if (err != 0) raise_at(L, err, host);
  memset(ss, 0, sizeof(*ss));
  memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
  else ((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
}

/* [-0, +1, e] Binds and listens as the options table at `idx` says;
 * pushes the server. */
static void listen_opts(lua_State *L, int idx) {
  tide_io *io = tide_io_get(L);
  struct sockaddr_storage ss;
  tide_stream_opts o;
  tide_stream *s;
  const char *host;
  int port, backlog, reuseport, err, top;
  uv_os_fd_t fd;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "host") == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    lua_pushliteral(L, "127.0.0.1");
  }
  if ((host = lua_tostring(L, -1)) == NULL) luaL_error(L, "option 'host': string expected");
  port = (int)tide_opt_int(L, idx, "port", 0, 0, 65535);
  backlog = (int)tide_opt_int(L, idx, "backlog", DEFAULT_BACKLOG, 1, 65535);
  /* workers of `tide --workers n` share their ports */
  if (lua_getfield(L, idx, "reuseport") == LUA_TNIL) reuseport = getenv("TIDE_WORKER") != NULL;
  else reuseport = lua_toboolean(L, -1);
  lua_pop(L, 1);  /* remove reuseport; the host stays until the end */
  tide_stream_opts_init(&o);
  tide_stream_opts_get(L, idx, &o);
  resolve_now(L, host, port, &ss);
  lua_pushfstring(L, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);  /* the subject */
  top = lua_gettop(L);
  if ((s = tide_stream_alloc(io, TIDE_STREAM_TCP)) == NULL) {
    luaL_error(L, "not enough memory");
    return;
  }
  if ((err = uv_tcp_init_ex(io->loop, &s->h.tcp, ss.ss_family)) != 0) {
    free(s);
    raise_at(L, err, lua_tostring(L, top));
    return;
  }
  tide_stream_opened(s);
  tide_stream_push(L, s, 1);  /* from here the GC closes it on error */
  s->opts = o;
  if (reuseport && (err = uv_fileno(&s->h.handle, &fd)) == 0) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) err = uv_translate_sys_error(errno);
  }
  if (err == 0) err = uv_tcp_bind(&s->h.tcp, (struct sockaddr *)&ss, 0);
  if (err == 0) err = tide_server_listen(L, s, backlog);
  if (err != 0) raise_at(L, err, lua_tostring(L, top));
  lua_replace(L, top - 1);  /* the server over the host */
  lua_settop(L, top - 1);
}

/* tide.tcp.listen{host=, port=, backlog=, reuseport=, nodelay=, keepalive=,
 * high_water=, low_water=, read_buffer=} -> server. host defaults to
 * 127.0.0.1, port to 0 (a free port: see server.port). */
static int l_listen(lua_State *L) { return tide_server_open(L, listen_opts, 0); }

/* tide.tcp.serve(opts, handler) -> server: listens as listen does and runs
 * handler(conn) in a new task for each connection; conn is closed when
 * the handler returns, an error is reported with its traceback. */
static int l_serve(lua_State *L) { return tide_server_open(L, listen_opts, 1); }

/* tide.tcp.connect(host, port [, {timeout=, nodelay=, keepalive=, ...}])
 * -> promise of a connected stream. */
static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port > 0 && port <= 65535, 2, "port from 1 to 65535 expected");
  tide_connect_tcp(L, host, (int)port, 3);
  return 1;
}

/* conn:nodelay(on) -> conn */
static int t_nodelay(lua_State *L) {
  tide_stream *s = tide_stream_check(L, 1, TIDE_STREAM_TCP);
  int err;
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  if ((err = uv_tcp_nodelay(&s->h.tcp, lua_toboolean(L, 2))) != 0) return raise_at(L, err, NULL);
  s->opts.nodelay = lua_toboolean(L, 2);
  lua_settop(L, 1);
  return 1;
}

/* conn:keepalive(on [, seconds]) -> conn: TCP keep-alive probes after
 * `seconds` (default 60) of silence. */
static int t_keepalive(lua_State *L) {
  tide_stream *s = tide_stream_check(L, 1, TIDE_STREAM_TCP);
  lua_Integer secs = luaL_optinteger(L, 3, 60);
  int on, err;
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  on = lua_toboolean(L, 2);
  luaL_argcheck(L, secs >= 1 && secs <= 86400, 3, "seconds from 1 to 86400 expected");
  if ((err = uv_tcp_keepalive(&s->h.tcp, on, (unsigned)secs)) != 0) return raise_at(L, err, NULL);
  s->opts.keepalive = on ? (int)secs : 0;
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg tcp_funcs[] = {
  {"connect", l_connect},
  {"listen", l_listen},
  {"serve", l_serve},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.tcp to the module table at the top, and the tcp
 * methods to streams. */
int tide_open_tcp(lua_State *L) {
  luaL_newlib(L, tcp_funcs);
  lua_setfield(L, -2, "tcp");
  lua_getfield(L, LUA_REGISTRYINDEX, TIDE_STREAM_MT ".methods");
  lua_pushcfunction(L, t_nodelay);
  lua_setfield(L, -2, "nodelay");
  lua_pushcfunction(L, t_keepalive);
  lua_setfield(L, -2, "keepalive");
  lua_pop(L, 1);  /* remove the methods */
  return 0;
}
