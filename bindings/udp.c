/* udp.c — UDP sockets (tide.udp): bind, send and receive datagrams as
 * promises, multicast membership. A bound socket receives all the time;
 * datagrams that arrive while no recv() waits are queued up to a bound
 * (opts.queue), then dropped and counted (sock.dropped): see ioutil.c's
 * feeds.
 *
 * Loop liveness: a socket keeps the loop alive only while a recv() waits
 * or a send is in flight; a forgotten socket never holds the process.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread and leave its stack as they found it.
 *
 * Ownership: the socket userdata holds a pointer to a malloc'd ludp (the
 * uv_udp_t, its feed, its receive buffer), freed in the close callback;
 * close(), __close and __gc close it and clear the pointer. A send in
 * flight is a malloc'd request holding its promise, whose user values keep
 * the socket (3) and the data (4) alive until the callback; closing the
 * socket completes it with ECANCELED.
 */
#include "binding.h"

#include <stdlib.h>
#include <string.h>

#define UDP_MT "tide.udp"
#define UDP_BUFSIZE 65536     /* the largest datagram */

typedef struct ludp {
  uv_udp_t h;
  tide_rt *rt;
  tide_feed feed;           /* received datagrams: data, host, port */
  int family;               /* 4 or 6 */
  int port;                 /* the bound port */
  int deferred_ref;         /* a send error nobody handled, for the next recv */
  int told;                 /* such an error was raised once */
  char buf[UDP_BUFSIZE];    /* receives one datagram at a time */
} ludp;

typedef struct udp_send {
  uv_udp_send_t req;
  tide_rt *rt;
  lpromise *lp;             /* held until the callback */
} udp_send;

/* [-0, +0, v] The open socket at `idx`. */
static ludp *check_udp(lua_State *L, int idx) {
  ludp **box = luaL_checkudata(L, idx, UDP_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed UDP socket");
  return *box;
}

/* [-0, +0, v] A port number at `idx`: an integer in 0..65535. */
static int check_port(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  luaL_argcheck(L, port >= 0 && port <= 65535, idx, "port must be in 0..65535");
  return (int)port;
}

/* [-0, +0, v] Parses the numeric `host` and `port` into *ss, or raises an
 * argument error about argument `idx`. */
static void check_addr(lua_State *L, int idx, const char *host, int port, struct sockaddr_storage *ss) {
  if (tide_addr_parse(host, port, ss) != 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "'%s' is not a numeric IPv4 or IPv6 address", host));
}

static void udp_close_cb(uv_handle_t *h) { free(h->data); }

/* [-0, +0, m] Closes the socket at `idx` (nothing when closed already);
 * waiting recv() promises are fulfilled with nothing when `settle`. */
static void udp_close(lua_State *L, int idx, int settle) {
  ludp **box = luaL_checkudata(L, idx, UDP_MT);
  ludp *u = *box;
  if (u == NULL) return;
  *box = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, u->deferred_ref);
  tide_feed_close(L, &u->feed, settle);
  uv_close((uv_handle_t *)&u->h, udp_close_cb);
}

/* ----------------------------------------------------------------- bind */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ludp *u = h->data;
  (void)suggested;
  *buf = uv_buf_init(u->buf, sizeof(u->buf));
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags) {
  ludp *u = h->data;
  tide_lua *tl = tide_lua_of(u->rt);
  lua_State *L;
  int top;
  (void)flags;
  if (tl == NULL || (nread == 0 && addr == NULL)) return;  /* nothing more to read */
  L = tl->L;
  top = lua_gettop(L);
  if (nread < 0) {
    tide_lua_push_uverror(L, (int)nread);
    tide_feed_fail(L, &u->feed);
  } else {
    lua_pushlstring(L, buf->base, (size_t)nread);
    tide_addr_push(L, addr);
    tide_feed_push(L, &u->feed);
  }
  tide_stack_check(L, top, 0);
  tide_rt_drain(u->rt);
}

/* [-0, +0, e] Raises the error object of `err` about `subject` when it is
 * a failure. */
static void check_uv(lua_State *L, int err, const char *subject) {
  if (err == 0) return;
  tide_lua_push_uverror_at(L, err, subject);
  lua_error(L);
}

/* tide.udp.bind{host = "0.0.0.0", port = 0, reuseaddr = false,
 * ipv6only = false, broadcast = false, ttl =, multicast_ttl =,
 * multicast_loop =, queue = 1024} -> socket. Port 0 picks a free port
 * (sock.port). Raises the error object of a failed bind (EADDRINUSE). */
static int l_bind(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  const char *host = "0.0.0.0";
  int port = 0, err, ttl, mttl, mloop, flags = 0;
  struct sockaddr_storage ss;
  int sslen = sizeof(ss);
  lua_Integer queue;
  ludp **box, *u;
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  switch (lua_getfield(L, 1, "host")) {
    case LUA_TNIL: break;
    case LUA_TSTRING: host = lua_tostring(L, -1); break;
    default: return luaL_argerror(L, 1, "host must be a string");
  }
  lua_pop(L, 1);  /* remove the host (a string the options table keeps) */
  port = (int)tide_opt_int(L, 1, "port", 0, 0, 65535);
  queue = tide_opt_int(L, 1, "queue", 1024, 0, LUA_MAXINTEGER);
  ttl = (int)tide_opt_int(L, 1, "ttl", 0, 1, 255);
  mttl = (int)tide_opt_int(L, 1, "multicast_ttl", 0, 1, 255);
  lua_getfield(L, 1, "multicast_loop");
  mloop = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
  lua_pop(L, 1);  /* remove multicast_loop */
  if (tide_opt_bool(L, 1, "reuseaddr")) flags |= UV_UDP_REUSEADDR;
  if (tide_opt_bool(L, 1, "ipv6only")) flags |= UV_UDP_IPV6ONLY;
  check_addr(L, 1, host, port, &ss);

  box = lua_newuserdatauv(L, sizeof(ludp *), 0);
  *box = NULL;
  luaL_setmetatable(L, UDP_MT);
  if ((u = calloc(1, sizeof(*u))) == NULL) return luaL_error(L, "not enough memory");
  u->deferred_ref = LUA_NOREF;
  if ((err = uv_udp_init(tide_rt_loop(tl->rt), &u->h)) != 0) {
    free(u);
    check_uv(L, err, NULL);
  }
  u->h.data = u;
  u->rt = tl->rt;
  u->family = ss.ss_family == AF_INET6 ? 6 : 4;
  *box = u;
  tide_feed_init(L, &u->feed, (uv_handle_t *)&u->h, 3, queue);
  lua_pushfstring(L, "%s:%d", host, port);  /* the subject of errors */
  err = uv_udp_bind(&u->h, (const struct sockaddr *)&ss, (unsigned)flags);
  if (err == 0 && tide_opt_bool(L, 1, "broadcast")) err = uv_udp_set_broadcast(&u->h, 1);
  if (err == 0 && ttl) err = uv_udp_set_ttl(&u->h, ttl);
  if (err == 0 && mttl) err = uv_udp_set_multicast_ttl(&u->h, mttl);
  if (err == 0 && mloop >= 0) err = uv_udp_set_multicast_loop(&u->h, mloop);
  if (err == 0) err = uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &sslen);
  if (err == 0) err = uv_udp_recv_start(&u->h, alloc_cb, recv_cb);
  if (err != 0) {
    udp_close(L, 2, 0);
    check_uv(L, err, lua_tostring(L, 3));
  }
  lua_pop(L, 1);  /* remove the subject */
  u->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 1;
}

/* ----------------------------------------------------------------- send */

static void send_cb(uv_udp_send_t *req, int status) {
  udp_send *s = req->data;
  tide_rt *rt = s->rt;
  lua_State *L = tide_op_state(rt, s->lp);
  if (L != NULL) {
    if (status < 0) tide_op_fail(L, s->lp, status, NULL);
    else tide_op_settle(L, s->lp, TIDE_FULFILLED, 0);
  }
  free(s);
  tide_rt_drain(rt);
}

/* Sends to a host name: resolves it, then sends (a task, so the promise
 * returned can be awaited and cancelled like any other). */
static const char send_named_lua[] =
  "local tide, sock, data, host, port, family = ...\n"
  "return tide.spawn(function()\n"
  "  local addrs = tide.dns.lookup(host, {family = family}):await()\n"
  "  return sock:send(data, addrs[1], port):await()\n"
  "end)\n";

/* sock:send(data, host, port) -> promise fulfilled once the datagram is
 * handed to the kernel. `host` may be a name: it is resolved first (in the
 * socket's family). */
static int u_send(lua_State *L) {
  ludp *u = check_udp(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *host = luaL_checkstring(L, 3);
  int port = check_port(L, 4), err;
  struct sockaddr_storage ss;
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  udp_send *s;
  lpromise *lp;
  luaL_argcheck(L, len <= UDP_BUFSIZE, 2, "datagram larger than 64 KiB");
  luaL_argcheck(L, port > 0, 4, "cannot send to port 0");
  lua_settop(L, 4);
  if (tide_addr_parse(host, port, &ss) != 0) {
    lua_getfield(L, LUA_REGISTRYINDEX, "tide.udp.send_named");
    lua_getfield(L, LUA_REGISTRYINDEX, "tide.module");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    lua_pushinteger(L, u->family);
    lua_call(L, 6, 1);
    return 1;
  }
  lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_KEEP);   /* 5 */
  lp->flags |= LP_STREAM_OP;              /* unhandled, its error goes to recv */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 5, UV_OWNER);          /* keeps the socket */
  err = uv_udp_try_send(&u->h, &buf, 1, (const struct sockaddr *)&ss);
  if (err >= 0) {                         /* sent at once */
    tide_lp_settle(L, 5, TIDE_FULFILLED, 6, 0);
    return 1;
  }
  if (err == UV_EAGAIN) {                 /* earlier sends are queued: wait */
    if ((s = malloc(sizeof(*s))) == NULL) return luaL_error(L, "not enough memory");
    s->rt = u->rt;
    s->lp = lp;
    s->req.data = s;
    err = uv_udp_send(&s->req, &u->h, &buf, 1, (const struct sockaddr *)&ss, send_cb);
    if (err == 0) {
      lua_pushvalue(L, 2);
      lua_setiuservalue(L, 5, UV_KEEP);      /* keeps the data */
      tide_lp_hold(L, 5);
      return 1;
    }
    free(s);
  }
  lua_pushfstring(L, "%s:%d", host, port);
  tide_lua_push_uverror_at(L, err, lua_tostring(L, -1));
  tide_lp_settle(L, 5, TIDE_REJECTED, 7, 1);
  lua_settop(L, 5);
  return 1;
}

/* ----------------------------------------------------------------- recv */

/* sock:recv([timeout]) -> promise of (data, host, port) of the next
 * datagram; fulfilled with nothing when the socket closes first. */
static int u_recv(lua_State *L) {
  ludp *u = check_udp(L, 1);
  double timeout = tide_lua_optseconds(L, 2);
  if (u->deferred_ref != LUA_NOREF) {  /* a send nobody awaited failed */
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->deferred_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, u->deferred_ref);
    u->deferred_ref = LUA_NOREF;
    u->told = 1;
    tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
    lua_pop(L, 1);  /* remove the error */
    return 1;
  }
  tide_feed_next(L, &u->feed, 1, timeout);
  return 1;
}

/* [-0, +0, m] A send of the socket at `ud_idx` failed with the error at
 * `err_idx` and nobody handled it: the next recv raises it (the first
 * one only). Returns 0 when the socket is closed (then it is reported). */
int tide_udp_defer_error(lua_State *L, int ud_idx, int err_idx) {
  ludp *u = *(ludp **)lua_touserdata(L, ud_idx);
  if (u == NULL) return 0;
  if (u->deferred_ref == LUA_NOREF && !u->told) {
    lua_pushvalue(L, err_idx);
    u->deferred_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

/* ------------------------------------------------------------ multicast */

static int membership(lua_State *L, uv_membership m) {
  ludp *u = check_udp(L, 1);
  const char *group = luaL_checkstring(L, 2);
  const char *iface = luaL_optstring(L, 3, NULL);
  struct sockaddr_storage ss;
  check_addr(L, 2, group, 0, &ss);
  if (iface) check_addr(L, 3, iface, 0, &ss);
  check_uv(L, uv_udp_set_membership(&u->h, group, iface, m), group);
  lua_settop(L, 1);
  return 1;
}

/* sock:join(group [, interface]) -> sock: joins a multicast group. */
static int u_join(lua_State *L) { return membership(L, UV_JOIN_GROUP); }
/* sock:leave(group [, interface]) -> sock */
static int u_leave(lua_State *L) { return membership(L, UV_LEAVE_GROUP); }

/* ---------------------------------------------------------------- other */

/* sock:address() -> host, port: the address the socket is bound to. */
static int u_address(lua_State *L) {
  ludp *u = check_udp(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  check_uv(L, uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len), NULL);
  tide_addr_push(L, (struct sockaddr *)&ss);
  return 2;
}

/* sock:close(): closes the socket (again: nothing); waiting recv()
 * promises are fulfilled with nothing, queued sends fail with ECANCELED. */
static int u_close(lua_State *L) { udp_close(L, 1, 1); return 0; }
static int u_gc(lua_State *L) { udp_close(L, 1, 0); return 0; }

/* Methods, then the fields port, family, queued, dropped and errors. */
static int u_index(lua_State *L) {
  ludp *u = *(ludp **)luaL_checkudata(L, 1, UDP_MT);
  const char *key = tide_lua_index_key(L);
  if (key == NULL || u == NULL) return 1;
  if (strcmp(key, "port") == 0) lua_pushinteger(L, u->port);
  else if (strcmp(key, "family") == 0) lua_pushinteger(L, u->family);
  else tide_feed_field(L, &u->feed, key);
  return 1;
}

static int u_tostring(lua_State *L) {
  ludp **box = luaL_checkudata(L, 1, UDP_MT);
  if (*box) lua_pushfstring(L, "tide.udp (port %d): %p", (*box)->port, (void *)box);
  else lua_pushfstring(L, "tide.udp (closed): %p", (void *)box);
  return 1;
}

static const luaL_Reg udp_methods[] = {
  {"send", u_send},
  {"recv", u_recv},
  {"join", u_join},
  {"leave", u_leave},
  {"address", u_address},
  {"close", u_close},
  {NULL, NULL}
};

static const luaL_Reg udp_meta[] = {
  {"__gc", u_gc},
  {"__close", u_close},
  {"__tostring", u_tostring},
  {NULL, NULL}
};

static const luaL_Reg udp_funcs[] = {
  {"bind", l_bind},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.udp to the module table at the top. */
int tide_open_udp(lua_State *L) {
  tide_lua_newclass(L, UDP_MT, udp_meta, udp_methods, u_index);
  if (luaL_loadbuffer(L, send_named_lua, sizeof(send_named_lua) - 1, "=[tide.udp.send]") != LUA_OK)
    return lua_error(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.udp.send_named");
  luaL_newlib(L, udp_funcs);
  lua_setfield(L, -2, "udp");
  return 0;
}
