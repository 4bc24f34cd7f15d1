/* dns.c — name resolution as promises: tide.dns.lookup (getaddrinfo) and
 * tide.dns.reverse (getnameinfo), both run on libuv's thread pool; and the
 * numeric socket addresses every binding shares (tide_addr_parse,
 * tide_addr_push).
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread and leave its stack as they found it.
 *
 * Ownership: a request is malloc'd, holds its promise (see ioutil.c) from
 * its start to its callback and is freed there. Cancelling the promise
 * (directly, by a cancelled task or by a timeout) calls uv_cancel; a lookup
 * already running on the pool cannot be stopped: it finishes and its
 * result is dropped.
 */
#include "binding.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- addresses */

/* Parses the numeric address `host` ("127.0.0.1", "::1", "fe80::1%eth0")
 * with `port` into *ss. Returns 0, or UV_EINVAL when `host` is not a
 * numeric IPv4 or IPv6 address. */
int tide_addr_parse(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  memset(ss, 0, sizeof(*ss));
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

/* [-0, +2, m] Pushes the address string and the port of `sa` (nil, nil
 * for a family other than IPv4 and IPv6). Returns its family: 4, 6 or 0. */
int tide_addr_push(lua_State *L, const struct sockaddr *sa) {
  const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
  char name[INET6_ADDRSTRLEN];
  int family = sa == NULL ? 0 : sa->sa_family == AF_INET ? 4 : sa->sa_family == AF_INET6 ? 6 : 0;
  if (family == 0) {
    lua_pushnil(L);
    lua_pushnil(L);
    return 0;
  }
  if (family == 4) uv_ip4_name(in, name, sizeof(name));
  else uv_ip6_name(in6, name, sizeof(name));
  lua_pushstring(L, name);
  lua_pushinteger(L, ntohs(family == 4 ? in->sin_port : in6->sin6_port));
  return family;
}

/* -------------------------------------------------------------- requests */

typedef struct dnsreq {
  union {
    uv_req_t req;
    uv_getaddrinfo_t gai;
    uv_getnameinfo_t gni;
  } u;
  tide_rt *rt;
  lpromise *lp;             /* held until the callback */
  char subject[1];          /* the name or address asked about */
} dnsreq;

static void dns_cancel(tide_promise *p, void *data) {
  (void)p;
  uv_cancel(&((dnsreq *)data)->u.req);  /* the callback frees it */
}

/* [-0, +1, e] Pushes the promise of a new request about `subject`. */
static dnsreq *dnsreq_new(lua_State *L, const char *subject) {
  tide_lua *tl = tide_lua_get(L);
  size_t len = strlen(subject);
  lpromise *lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  dnsreq *r = malloc(sizeof(dnsreq) + len);
  if (r == NULL) luaL_error(L, "not enough memory");
  r->rt = tl->rt;
  r->lp = lp;
  memcpy(r->subject, subject, len + 1);
  r->u.req.data = r;
  return r;
}

/* [-0, +0, e] After the uv call that should have started `r` returned
 * `err`: on success the promise on top is held and cancellable, else it
 * is rejected at once and `r` freed. */
static void dnsreq_started(lua_State *L, dnsreq *r, int err) {
  if (err != 0) {
    tide_lua_push_uverror_at(L, err, r->subject);
    tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
    lua_pop(L, 1);  /* remove the error */
    free(r);
    return;
  }
  tide_lp_hold(L, -1);
  tide_promise_on_cancel(&r->lp->p, dns_cancel, r);
}

/* In the callback of request `r`: the main state when its promise is to
 * be fulfilled (the caller pushes the values and calls tide_op_settle),
 * or NULL when there is nothing more to do: the promise was cancelled,
 * the Lua side is gone, or `status` is a failure (rejected here). */
static lua_State *dnsreq_result(dnsreq *r, int status) {
  lua_State *L = tide_op_state(r->rt, r->lp);
  if (L != NULL && status < 0) {
    tide_op_fail(L, r->lp, status, r->subject);
    return NULL;
  }
  return L;
}

/* The end of request `r`'s callback: frees it and runs what its
 * settlement queued. */
static void dnsreq_end(dnsreq *r) {
  tide_rt *rt = r->rt;
  free(r);
  tide_rt_drain(rt);
}

/* ---------------------------------------------------------------- lookup */

static int family_number(int af) { return af == AF_INET6 ? 6 : 4; }

/* [-0, +0, m] Appends the address of `ai` to the list at `list` unless
 * the set at `seen` has it. */
static void add_address(lua_State *L, int list, int seen, const struct addrinfo *ai) {
  tide_addr_push(L, ai->ai_addr);
  lua_pop(L, 1);  /* remove the port */
  lua_pushvalue(L, -1);
  if (lua_rawget(L, seen) == LUA_TNIL) {
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);  /* seen[address] = true */
    lua_pushvalue(L, -2);
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
  }
  lua_pop(L, 2);  /* remove the lookup result and the address */
}

/* [-0, +0, m] Fulfils the lookup `r` with the addresses of `res` and
 * their family, or rejects it with EAI_NODATA when none is IPv4 or IPv6. */
static void lookup_settle(lua_State *L, dnsreq *r, const struct addrinfo *res) {
  const struct addrinfo *ai;
  int top = lua_gettop(L), family = 0;
  lua_newtable(L);                            /* top+1: the list */
  lua_newtable(L);                            /* top+2: seen */
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (family == 0) family = family_number(ai->ai_family);
    add_address(L, top + 1, top + 2, ai);
  }
  lua_pop(L, 1);  /* remove seen */
  if (family == 0) {
    lua_pop(L, 1);  /* remove the empty list */
    tide_op_fail(L, r->lp, UV_EAI_NODATA, r->subject);
  } else {
    lua_pushinteger(L, family);
    tide_op_settle(L, r->lp, TIDE_FULFILLED, 2);
  }
}

static void lookup_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  dnsreq *r = req->data;
  lua_State *L = dnsreq_result(r, status);
  if (L != NULL) lookup_settle(L, r, res);
  uv_freeaddrinfo(res);
  dnsreq_end(r);
}

/* [-0, +0, v] The `family` option of the table at `idx`: AF_UNSPEC, or
 * AF_INET / AF_INET6 for 4 / 6. */
static int opt_family(lua_State *L, int idx) {
  lua_Integer f;
  if (lua_getfield(L, idx, "family") == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    return AF_UNSPEC;
  }
  f = lua_tointeger(L, -1);
  if (!lua_isinteger(L, -1) || (f != 4 && f != 6))
    luaL_argerror(L, idx, "family must be 4 or 6");
  lua_pop(L, 1);  /* remove the family */
  return f == 4 ? AF_INET : AF_INET6;
}

/* tide.dns.lookup(name [, {family = 4|6, timeout = s}]) -> promise of
 * (addresses, family): the list of address strings `name` resolves to, in
 * the resolver's order without repeats, and the family of the first. */
static int l_lookup(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  struct addrinfo hints;
  struct sockaddr_storage ss;
  double timeout = -1;
  dnsreq *r;
  int err;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  /* one entry per address */
  luaL_argcheck(L, strlen(name) == len, 1, "name contains a zero byte");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    hints.ai_family = opt_family(L, 2);
    timeout = tide_opt_seconds(L, 2, "timeout");
  }
  lua_settop(L, 1);
  if (tide_addr_parse(name, 0, &ss) == 0
      && (hints.ai_family == AF_UNSPEC || hints.ai_family == ss.ss_family)) {
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);  /* a number: no lookup */
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, family_number(ss.ss_family));
    tide_lp_settle(L, 2, TIDE_FULFILLED, 3, 2);
    lua_settop(L, 2);
    return 1;
  }
  r = dnsreq_new(L, name);
  err = uv_getaddrinfo(tide_rt_loop(tl->rt), &r->u.gai, lookup_cb, name, NULL, &hints);
  dnsreq_started(L, r, err);
  tide_lua_timeout(L, timeout);
  return 1;
}

/* --------------------------------------------------------------- reverse */

static void reverse_cb(uv_getnameinfo_t *req, int status, const char *host, const char *service) {
  dnsreq *r = req->data;
  lua_State *L = dnsreq_result(r, status);
  (void)service;
  if (L != NULL) {
    lua_pushstring(L, host);
    tide_op_settle(L, r->lp, TIDE_FULFILLED, 1);
  }
  dnsreq_end(r);
}

/* tide.dns.reverse(address [, {timeout = s}]) -> promise of the host name
 * of a numeric IPv4 or IPv6 address; EAI_NONAME when it has none. */
static int l_reverse(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  const char *addr = luaL_checkstring(L, 1);
  struct sockaddr_storage ss;
  double timeout = -1;
  dnsreq *r;
  int err;
  if (tide_addr_parse(addr, 0, &ss) != 0)
    return luaL_argerror(L, 1, "not a numeric IPv4 or IPv6 address");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    timeout = tide_opt_seconds(L, 2, "timeout");
  }
  lua_settop(L, 1);
  r = dnsreq_new(L, addr);
  err = uv_getnameinfo(tide_rt_loop(tl->rt), &r->u.gni, reverse_cb,
                       (const struct sockaddr *)&ss, NI_NAMEREQD);
  dnsreq_started(L, r, err);
  tide_lua_timeout(L, timeout);
  return 1;
}

static const luaL_Reg dns_funcs[] = {
  {"lookup", l_lookup},
  {"reverse", l_reverse},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.dns to the module table at the top. */
int tide_open_dns(lua_State *L) {
  luaL_newlib(L, dns_funcs);
  lua_setfield(L, -2, "dns");
  return 0;
}
