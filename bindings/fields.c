/* fields.c — tide.fields: splits a block of "Name: value" lines, the
 * header block of HTTP/1.1 and of the many protocols that share its
 * syntax (MIME, SIP, STOMP, ...), in one call. In Lua the same split took
 * about ten C calls per line (spans, bytes, subs), each a few hundred
 * instructions of call overhead; here it is one loop over the bytes. The
 * decision what a field means stays with the protocol module.
 *
 * Syntax (RFC 9110 section 5.5, RFC 9112 section 5): a name is a token,
 * then ":", optional whitespace (SP, HTAB), a value of HTAB, SP, VCHAR
 * and obs-text, optional whitespace; each line ends in CRLF, the last one
 * may also end at the end of the block. Nothing else is accepted: no bare
 * CR or LF, no NUL, no space before the colon, no folded lines.
 *
 * Stack discipline: each function leaves its results, as documented.
 * Ownership: the caller's tables are filled in place; nothing is kept.
 */
#include "binding.h"

#include <string.h>

/* RFC 9110 tchar as a 256-bit set: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static const unsigned int TCHAR[8] = {
  0x00000000u, 0x03ff6cfau, 0xc7fffffeu, 0x57ffffffu, 0, 0, 0, 0 };
#define tchar(b) ((TCHAR[(b) >> 5] >> ((b) & 31)) & 1u)
/* a byte a field value may hold: HTAB, SP, VCHAR, obs-text */
#define vchar(b) ((b) == '\t' || ((b) >= ' ' && (b) != 127))
#define lowered(b) ((unsigned char)(((b) >= 'A' && (b) <= 'Z') ? (b) + 32 : (b)))

/* fields(s, init [, max_fields [, max_line]]) -> t, n, index
 *   or nil, pos, why
 * Splits the field lines of s from position init to its end into a new
 * table t, sized for them (and for two more keys of the caller's). Field
 * k goes to t[3k-2] (the name as sent), t[3k-1] (the name in lower case) and
 * t[3k] (the value without surrounding whitespace); `index`, a new table,
 * maps the lowercased name of each field to the position of its first
 * field (made here, sized for a typical head: growing a table from empty
 * rehashes it at every power of two). `max_fields`
 * (default unlimited) bounds the count, `max_line` (default unlimited) the
 * length of a line without its CRLF. Returns the number of fields, or on
 * failure nil, the position of the line at fault and why: "syntax",
 * "line" (longer than max_line) or "count" (more than max_fields). */
static int l_fields(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  lua_Integer max_fields, max_line;
  size_t pos, n = 0;
  max_fields = luaL_optinteger(L, 3, LUA_MAXINTEGER);
  max_line = luaL_optinteger(L, 4, LUA_MAXINTEGER);
  luaL_argcheck(L, init >= 1, 2, "position out of range");
  pos = (size_t)init - 1;
  {  /* one field per line at most: count the LFs to size t */
    const unsigned char *p = s + (pos < len ? pos : len), *end = s + len;
    lua_Integer lines = 1;  /* bounded by max_fields: a block of bare LFs costs no memory */
    while (lines <= max_fields && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
      lines++;
      p++;
    }
    if (lines > max_fields) lines = max_fields;
    if (lines > 4096) lines = 4096;  /* only a size hint */
    lua_settop(L, 2);
    lua_createtable(L, (int)(3 * lines), 2);  /* t, at 3 */
    lua_createtable(L, 0, lines < 8 ? (int)lines : 8);  /* the index, at 4 */
  }
  while (pos < len) {
    size_t start = pos, name_end, vs, ve, e;
    const char *why = "syntax";
    unsigned char low[64];
    while (pos < len && tchar(s[pos])) pos++;
    name_end = pos;
    if (name_end == start || pos >= len || s[pos] != ':') goto fail;
    pos++;
    while (pos < len && (s[pos] == ' ' || s[pos] == '\t')) pos++;
    vs = pos;
    while (pos < len && vchar(s[pos])) pos++;
    e = pos;  /* the end of the line's content */
    if (e < len) {
      if (s[e] != '\r' || e + 1 >= len || s[e + 1] != '\n') goto fail;
      pos = e + 2;
    }
    if ((lua_Integer)(e - start) > max_line) { why = "line"; goto fail; }
    if ((lua_Integer)++n > max_fields) { why = "count"; goto fail; }
    ve = e;
    while (ve > vs && (s[ve - 1] == ' ' || s[ve - 1] == '\t')) ve--;
    /* the name, as sent and lowercased (the same string when it was) */
    lua_pushlstring(L, (const char *)s + start, name_end - start);
    lua_pushvalue(L, -1);  /* the name again */
    lua_rawseti(L, 3, (lua_Integer)(3 * n - 2));  /* t[3n-2] = name */
    {
      size_t k, nl = name_end - start;
      for (k = start; k < name_end && lowered(s[k]) == s[k]; k++) {}
      if (k < name_end) {  /* an upper-case byte: lowercase the name */
        lua_pop(L, 1);  /* remove the name */
        if (nl <= sizeof(low)) {
          for (k = 0; k < nl; k++) low[k] = lowered(s[start + k]);
          lua_pushlstring(L, (const char *)low, nl);
        } else {
          luaL_Buffer b;
          char *p = luaL_buffinitsize(L, &b, nl);
          for (k = 0; k < nl; k++) p[k] = (char)lowered(s[start + k]);
          luaL_pushresultsize(&b, nl);
        }
      }
    }
    /* stack: ..., lname */
    lua_pushvalue(L, -1);  /* lname again */
    lua_rawseti(L, 3, (lua_Integer)(3 * n - 1));  /* t[3n-1] = lname */
    lua_pushvalue(L, -1);  /* lname, the key of the index */
    if (lua_rawget(L, 4) == LUA_TNIL) {  /* index[lname] is not set yet */
      lua_pop(L, 1);  /* remove the nil */
      lua_pushinteger(L, (lua_Integer)n);
      lua_rawset(L, 4);  /* index[lname] = n; pops lname and n */
    } else {
      lua_pop(L, 2);  /* remove the position and lname */
    }
    lua_pushlstring(L, (const char *)s + vs, ve - vs);
    lua_rawseti(L, 3, (lua_Integer)(3 * n));  /* t[3n] = value */
    continue;
  fail:
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)start + 1);
    lua_pushstring(L, why);
    return 3;
  }
  lua_pushvalue(L, 3);  /* t */
  lua_pushinteger(L, (lua_Integer)n);
  lua_pushvalue(L, 4);  /* the index */
  return 3;
}

/* [-0, +0, m] Adds tide.fields to the module table at the top. */
int tide_open_fields(lua_State *L) {
  lua_pushcfunction(L, l_fields);
  lua_setfield(L, -2, "fields");
  return 0;
}
