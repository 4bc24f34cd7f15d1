/* bytes.c — tide.mask: XOR of a string with a repeating 4-byte key, the
 * masking of WebSocket frames (RFC 6455 section 5.3). A Lua loop over the
 * bytes of a payload costs tens of instructions per byte (string.byte,
 * bit operations, string.char); here it is a loop over 8-byte words.
 *
 * Stack discipline: each function leaves its results, as documented.
 * Ownership: nothing is kept; the result is a new string.
 */
#include "binding.h"

#include <stdint.h>
#include <string.h>

/* tide.mask(data, key [, offset [, i [, j]]]) -> data[i..j] XOR key
 * repeated, where `key` is a string of 4 bytes, `offset` (default 0) the
 * position in the key of byte `i` (to mask a payload in pieces), and `i`
 * (default 1) and `j` (default #data) the bytes to mask (a frame's payload
 * inside a buffer, without copying it out first).
 * Masking twice with the same key gives back the data. */
static int l_mask(lua_State *L) {
  size_t len, klen, i = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  const unsigned char *k = (const unsigned char *)luaL_checklstring(L, 2, &klen);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  lua_Integer from = luaL_optinteger(L, 4, 1);
  lua_Integer to = luaL_optinteger(L, 5, (lua_Integer)len);
  luaL_argcheck(L, from >= 1 && (size_t)from <= len + 1, 4, "start out of range");
  luaL_argcheck(L, to >= from - 1 && (size_t)to <= len, 5, "end out of range");
  s += from - 1;
  len = (size_t)(to - from + 1);
  unsigned char key[8];
  luaL_Buffer b;
  unsigned char *out;
  uint64_t k8;
  luaL_argcheck(L, klen == 4, 2, "the key must be 4 bytes");
  luaL_argcheck(L, off >= 0, 3, "the offset must not be negative");
  for (i = 0; i < 8; i++) key[i] = k[(i + (size_t)off) & 3];
  out = (unsigned char *)luaL_buffinitsize(L, &b, len);
  memcpy(&k8, key, 8);
  for (i = 0; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    w ^= k8;
    memcpy(out + i, &w, 8);
  }
  for (; i < len; i++) out[i] = s[i] ^ key[i & 7];
  luaL_pushresultsize(&b, len);
  return 1;
}

/* [-0, +0, m] Adds tide.mask to the module table at the top. */
int tide_open_bytes(lua_State *L) {
  lua_pushcfunction(L, l_mask);
  lua_setfield(L, -2, "mask");
  return 0;
}
