/* resp.c — tide.resp: parses as many whole RESP replies (or, for servers,
 * RESP commands) as a buffer holds, in one call; and tide.resp_encode,
 * the bytes of a command in one call. tide.redis.resp parsed
 * each reply in Lua with half a dozen C calls (find, sub, tonumber, byte),
 * each a few hundred instructions of call overhead; here a pipelined batch
 * of replies costs one call.
 *
 * It takes only the plain cases: simple strings, integers, bulk strings
 * and arrays of them (RESP2, as Redis answers GET, SET, INCR, MGET,
 * LRANGE...) that have all come, within the parser's limits. It stops
 * before the first reply it does not take whole: one cut by the end of
 * the buffer, an error reply, a RESP3 type, anything malformed or past a
 * limit. The Lua parser of tide.redis.resp, which owns the protocol's
 * contract (every type, EPROTO errors, resuming a cut reply without
 * parsing it again), then takes that reply. What this file accepts it
 * maps to exactly the values the Lua parser would give, so the two are
 * interchangeable reply by reply.
 *
 * Stack discipline: l_resp leaves its three results, l_encode its one or
 * two.
 * Ownership: the table it returns is new; nothing is kept.
 */
#include "binding.h"

#include <stdio.h>
#include <string.h>

/* Nesting this deep is left to the Lua parser (which keeps arrays being
 * filled on a heap stack), so C recursion stays bounded whatever
 * max_depth says. */
#define RESP_C_DEPTH 32

typedef struct resp_limits {
  lua_Integer max_bulk, max_array, max_depth, max_line;
  int commands;  /* only arrays of bulk strings, at the top */
  int null;      /* stack index of the null sentinel */
} resp_limits;

/* The position of the "\r\n" ending the line that starts at s[p], if it
 * comes within max_line bytes of p (the Lua parser's limit: the line with
 * its type byte, without the CRLF); else (-1) it has not come yet or the
 * line is too long, for the Lua parser to tell. */
static long line_end(const char *s, size_t len, size_t p, lua_Integer max_line) {
  size_t stop = len;
  if ((lua_Unsigned)max_line < (lua_Unsigned)(len - p)) stop = p + (size_t)max_line + 1;  /* the last \r allowed */
  while (p < stop) {
    const char *cr = memchr(s + p, '\r', stop - p);
    if (cr == NULL) return -1;
    p = (size_t)(cr - s);
    if (p + 1 < len && s[p + 1] == '\n') return (long)p;
    p++;
  }
  return -1;
}

/* The decimal integer s[i..j) as the Lua parser reads a header: "-" and 1
 * to 19 digits within a 64-bit integer (past it, Lua's tonumber gives a
 * float, which the Lua parser refuses). Returns 0 when it is not one. */
static int header_int(const char *s, size_t i, size_t j, lua_Integer *out) {
  const lua_Unsigned maxby10 = (lua_Unsigned)LUA_MAXINTEGER / 10;
  const int maxlastd = (int)((lua_Unsigned)LUA_MAXINTEGER % 10);
  int neg = 0;
  lua_Unsigned a = 0;
  if (i < j && s[i] == '-') { neg = 1; i++; }
  if (i >= j || j - i > 19) return 0;
  for (; i < j; i++) {
    int d = s[i] - '0';
    if (d < 0 || d > 9) return 0;
    if (a >= maxby10 && (a > maxby10 || d > maxlastd + neg)) return 0;  /* as lua_stringtonumber */
    a = a * 10 + (lua_Unsigned)d;
  }
  *out = neg ? (lua_Integer)(0u - a) : (lua_Integer)a;
  return 1;
}

/* Pushes the reply at s[*pos..len) and moves *pos past it: returns 1.
 * Returns 0, with the stack and *pos as they were, when the reply is not
 * one this file takes whole (see the top). `depth` counts the arrays
 * around it. */
static int reply(lua_State *L, const char *s, size_t len, size_t *pos, int depth,
                 const resp_limits *lim) {
  size_t p = *pos;
  long e;
  lua_Integer n;
  int t;
  if (p >= len) return 0;
  t = (unsigned char)s[p];
  if (lim->commands && t != (depth == 0 ? '*' : '$')) return 0;
  if (t != '$' && t != '*' && t != '+' && t != ':') return 0;
  e = line_end(s, len, p, lim->max_line);
  if (e < 0) return 0;
  if (t == '+') {
    lua_pushlstring(L, s + p + 1, (size_t)e - p - 1);
    *pos = (size_t)e + 2;
    return 1;
  }
  if (!header_int(s, p + 1, (size_t)e, &n)) return 0;
  p = (size_t)e + 2;  /* after the header */
  if (t == ':') {
    lua_pushinteger(L, n);
  } else if (t == '$') {
    if (n < 0) {
      if (n != -1 || lim->commands) return 0;
      lua_pushvalue(L, lim->null);  /* nil: the caller makes it nil at the top */
    } else {
      if (n > lim->max_bulk || (lua_Unsigned)n > len - p || len - p - (size_t)n < 2) return 0;
      if (s[p + n] != '\r' || s[p + n + 1] != '\n') return 0;
      lua_pushlstring(L, s + p, (size_t)n);
      p += (size_t)n + 2;
    }
  } else {  /* '*' */
    lua_Integer i;
    int hint;
    if (n < 0) {
      if (n != -1 || lim->commands) return 0;
      lua_pushvalue(L, lim->null);
      *pos = p;
      return 1;
    }
    if (n > lim->max_array) return 0;
    if (n > 0 && (depth >= lim->max_depth || depth >= RESP_C_DEPTH)) return 0;
    if (!lua_checkstack(L, 3)) return 0;
    /* each element takes 4 bytes at least: a partial array of a huge
     * count allocates no more than its bytes justify */
    {
      size_t most = (len - p) / 4;
      if (most > (1u << 24)) most = 1u << 24;  /* only a size hint, kept within an int */
      hint = (lua_Unsigned)n <= most ? (int)n : (int)most;
    }
    lua_createtable(L, hint, 0);
    for (i = 1; i <= n; i++) {
      if (!reply(L, s, len, &p, depth + 1, lim)) {
        lua_pop(L, 1);  /* remove the partial array */
        return 0;
      }
      lua_rawseti(L, -2, i);
    }
  }
  *pos = p;
  return 1;
}

/* resp(s, init, null, max_bulk, max_array, max_depth, max_line [, commands])
 *   -> t, n, pos
 * Parses the whole replies of s from position init on, as described at
 * the top, into a new table: t[1..n] are the replies, in order, with the
 * sentinel `null` for a nil bulk string or nil array (at the top too: a
 * table cannot hold a nil). pos is the position of the first byte not
 * parsed (#s + 1 when all were). With `commands` true it takes only
 * commands: arrays of bulk strings, none nil. */
static int l_resp(lua_State *L) {
  size_t len, pos;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  resp_limits lim;
  lua_Integer n = 0;
  luaL_checkany(L, 3);
  lim.max_bulk = luaL_checkinteger(L, 4);
  lim.max_array = luaL_checkinteger(L, 5);
  lim.max_depth = luaL_checkinteger(L, 6);
  lim.max_line = luaL_checkinteger(L, 7);
  lim.commands = lua_toboolean(L, 8);
  lim.null = 3;
  luaL_argcheck(L, init >= 1 && (lua_Unsigned)init <= (lua_Unsigned)len + 1, 2, "position out of range");
  luaL_argcheck(L, lim.max_line >= 0, 7, "negative limit");
  lua_settop(L, 7);
  pos = (size_t)init - 1;
  {  /* sized for a batch of short replies ("$3\r\nabc\r\n"), at most 256 */
    size_t guess = (len - pos) / 9 + 1;
    lua_createtable(L, guess < 256 ? (int)guess : 256, 0);  /* t, at 8 */
  }
  while (reply(L, s, len, &pos, 0, &lim)) lua_rawseti(L, 8, ++n);
  lua_pushinteger(L, n);
  lua_pushinteger(L, (lua_Integer)pos + 1);
  return 3;
}

/* The number of decimal digits of u. */
static size_t digits(size_t u) {
  size_t k = 1;
  while (u >= 10) { u /= 10; k++; }
  return k;
}

/* Writes the decimal digits of u, `k` of them, at p; returns the end. */
static char *put_count(char *p, size_t u, size_t k) {
  char *end = p + k;
  do { *--end = (char)('0' + u % 10); u /= 10; } while (u > 0);
  return p + k;
}

/* Commands up to this size are made on the C stack and pushed in one
 * copy; larger ones in a buffer of their exact size. */
#define RESP_SMALL 512

/* resp_encode(...) -> bytes | nil, i
 * The bytes of the command made of the arguments, nils counted: an array
 * of bulk strings. Strings go as they are, integers in decimal, floats
 * with 17 significant digits ("%.17g", as string.format gives them, so
 * that they read back the same). Returns nil and the position of the
 * first argument of another type, for the caller to name in its error.
 * Two passes: the arguments' types and lengths, then the bytes, written
 * once where they go (luaL_addlstring per piece cost more than the rest). */
static int l_encode(lua_State *L) {
  int n = lua_gettop(L), i;
  size_t total, len;
  char small[RESP_SMALL], *out, *p;
  luaL_Buffer b;
  total = 3 + digits((size_t)n);  /* "*<n>\r\n" */
  for (i = 1; i <= n; i++) {
    int t = lua_type(L, i);
    if (t == LUA_TNUMBER) {
      if (lua_isinteger(L, i)) {
        lua_tolstring(L, i, NULL);  /* in place, in decimal */
      } else {
        char f[64];
        int k = snprintf(f, sizeof(f), "%.17g", (double)lua_tonumber(L, i));
        lua_pushlstring(L, f, (size_t)k);
        lua_replace(L, i);
      }
    } else if (t != LUA_TSTRING) {
      lua_pushnil(L);
      lua_pushinteger(L, i);
      return 2;
    }
    lua_tolstring(L, i, &len);
    total += 5 + digits(len) + len;  /* "$<len>\r\n<bytes>\r\n" */
  }
  out = total <= sizeof(small) ? small : luaL_buffinitsize(L, &b, total);
  p = out;
  *p++ = '*';
  p = put_count(p, (size_t)n, digits((size_t)n));
  *p++ = '\r'; *p++ = '\n';
  for (i = 1; i <= n; i++) {
    const char *a = lua_tolstring(L, i, &len);
    *p++ = '$';
    p = put_count(p, len, digits(len));
    *p++ = '\r'; *p++ = '\n';
    memcpy(p, a, len);
    p += len;
    *p++ = '\r'; *p++ = '\n';
  }
  assert((size_t)(p - out) == total);
  if (out == small) lua_pushlstring(L, small, total);
  else luaL_pushresultsize(&b, total);
  return 1;
}

/* [-0, +0, m] Adds tide.resp and tide.resp_encode to the module table at
 * the top. */
int tide_open_resp(lua_State *L) {
  lua_pushcfunction(L, l_resp);
  lua_setfield(L, -2, "resp");
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "resp_encode");
  return 0;
}
