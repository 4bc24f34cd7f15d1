/* charset.c — tide.charset: sets of bytes, and a scan of a string for the
 * first byte outside one. The helper protocol parsers need to check that
 * a run of bytes belongs to a class (a token, a field value, a target):
 * Lua's patterns test each byte against a bracket class by walking the
 * class, at tens of instructions per byte, which made checking a browser's
 * request head cost more than the rest of the request. Here a set is a
 * 256-bit table and the scan a loop of a few instructions per byte.
 *
 * Stack discipline: each function leaves its results, as documented.
 * Ownership: a set is a userdata, the one upvalue of the function that
 * scans with it; nothing else refers to it.
 */
#include "binding.h"

#include <string.h>

typedef struct charset {
  unsigned char in[256];   /* 1 for the bytes of the set */
} charset;

/* span(s [, i [, j]]) -> the position of the first byte of s[i..j] (i 1,
 * j #s by default; negative counts from the end, as string.sub) that is
 * not in the set; j + 1 when every byte is, i when the range is empty. */
static int cs_span(lua_State *L) {
  const charset *cs = lua_touserdata(L, lua_upvalueindex(1));
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, -1);
  if (i < 0) i = (lua_Integer)len + i + 1 > 0 ? (lua_Integer)len + i + 1 : 1;
  else if (i == 0) i = 1;
  if (j < 0) j = (lua_Integer)len + j + 1;
  else if (j > (lua_Integer)len) j = (lua_Integer)len;
  while (i <= j && cs->in[s[i - 1]]) i++;
  lua_pushinteger(L, i);
  return 1;
}

/* tide.charset(spec) -> span: the set of the bytes of `spec`, where "a-z"
 * stands for a range; a "-" first or last is itself. Returns the scan
 * function of that set (see cs_span). */
static int l_charset(lua_State *L) {
  size_t len, k;
  const unsigned char *spec = (const unsigned char *)luaL_checklstring(L, 1, &len);
  charset *cs = lua_newuserdatauv(L, sizeof(charset), 0);
  memset(cs->in, 0, sizeof(cs->in));
  for (k = 0; k < len; k++) {
    unsigned lo = spec[k], hi = lo, b;
    if (k + 2 < len && spec[k + 1] == '-') {
      hi = spec[k + 2];
      if (hi < lo) return luaL_error(L, "tide.charset: range %c-%c is reversed", lo, hi);
      k += 2;
    }
    for (b = lo; b <= hi; b++) cs->in[b] = 1;
  }
  lua_pushcclosure(L, cs_span, 1);
  return 1;
}

/* [-0, +0, m] Adds tide.charset to the module table at the top. */
int tide_open_charset(lua_State *L) {
  lua_pushcfunction(L, l_charset);
  lua_setfield(L, -2, "charset");
  return 0;
}
