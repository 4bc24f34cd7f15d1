/* marshal.c -- Lua values and functions as bytes, for crossing lua_States.
 *
 * This file owns the byte format that the thread pool uses to move job
 * arguments into a worker's lua_State and results back, and the transport of
 * the job's function as bytecode. It owns no threads and no states: the
 * encoder only reads the sending state, the decoder only writes the receiving
 * state, and the bytes in between (a tide_mbuf, plain malloc) belong to
 * whoever holds them.
 *
 * Byte format (version 1). Integers written "uvar" are unsigned LEB128: seven
 * bits a byte, low bits first, high bit set on every byte but the last, at
 * most 10 bytes.
 *
 *   stream := 0x01 (version) count:uvar value*count
 *   value  := 0x00                          nil
 *           | 0x01                          false
 *           | 0x02                          true
 *           | 0x03 zigzag:uvar              integer; zigzag maps 0, -1, 1,
 *                                           -2, ... to 0, 1, 2, 3, ...
 *           | 0x04 bits:8                   float, IEEE-754 binary64 bits,
 *                                           little-endian (keeps -0.0, nan)
 *           | 0x05 len:uvar byte*len        string, any bytes
 *           | 0x06 narr:uvar nhash:uvar     a table not seen before: it gets
 *                  value*narr                 the next id (1, 2, ...), then
 *                  (key value)*nhash          t[1..narr] and nhash pairs
 *           | 0x07 id:uvar                  the table that got this id
 *
 * Ids are given in the order the 0x06 tags appear, by the encoder when it
 * first meets a table and by the decoder when it reads the tag, before the
 * contents: so a table inside itself, or reachable twice, or used as a key,
 * decodes to one table, and identity holds across all values of a stream.
 * Every array entry and pair takes at least one byte, so the sum of narr and
 * nhash over a valid stream is at most its length; the decoder checks that
 * before it allocates anything.
 *
 * Stack discipline. Both directions run their work as a C function under
 * lua_pcall, so a memory error, a refusal or malformed bytes unwinds to the
 * public function, which turns it into -1. The encoder's body gets the n
 * values as arguments 2..n+1 (argument 1 is the encoder as light userdata)
 * and keeps a "seen" table (table -> id) above them; each level of table
 * nesting uses at most 3 more slots while it walks with lua_next (key,
 * value, and the lookup in "seen"), and pops them before it returns. The
 * decoder's body keeps a "seen" list (id -> table) above its argument and
 * pushes each decoded value; a table under construction holds its key and
 * value above it until lua_rawset takes them. Both bodies check the stack
 * with luaL_checkstack on every level and stop at TIDE_MARSHAL_MAXDEPTH
 * levels, so neither the C stack nor the Lua stack can overflow.
 */
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "marshal.h"

_Static_assert(sizeof(lua_Number) == 8, "marshal.c expects double floats");
_Static_assert(sizeof(lua_Integer) == 8, "marshal.c expects 64-bit integers");

#define MARSHAL_VERSION 1

enum {
  TAG_NIL, TAG_FALSE, TAG_TRUE, TAG_INT, TAG_FLT, TAG_STR, TAG_TABLE, TAG_REF
};

/* Longest rendered key path in an error message before it is cut with
 * "...", so a 200-level path still leaves room for the rest. */
#define PATH_MAXCHARS 120

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* ---- tide_mbuf --------------------------------------------------------- */

void tide_mbuf_init(tide_mbuf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void tide_mbuf_free(tide_mbuf *b) {
  free(b->data);
  tide_mbuf_init(b);
}

/* Makes room for n more bytes. Returns 0, or -1 (b unchanged). */
static int mbuf_reserve(tide_mbuf *b, size_t n) {
  size_t need, cap;
  char *p;

  if (n <= b->cap - b->len)
    return 0;
  if (n > SIZE_MAX - b->len)
    return -1;
  need = b->len + n;
  cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int tide_mbuf_append(tide_mbuf *b, const void *p, size_t n) {
  if (n == 0)
    return 0;
  if (mbuf_reserve(b, n))
    return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Formats into err (if any) like snprintf. Returns -1 for the caller's
 * convenience. */
static int set_error(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ---- encoder ----------------------------------------------------------- */

/* One step of the path from an argument down to the value being encoded. */
enum { STEP_INDEX, STEP_KEY, STEP_INKEY };
typedef struct path_step {
  int kind;       /* STEP_INDEX: array entry [i]; STEP_KEY: value under the
                     key at stack index idx; STEP_INKEY: inside a key */
  int idx;
  lua_Integer i;
} path_step;

typedef struct encoder {
  tide_mbuf *out;
  char *err;
  size_t errlen;
  int refused;        /* err holds a refusal (the error object is a dummy) */
  const char *label;  /* what the values are called in refusals */
  int number;         /* the number of the first value in refusals */
  int arg;            /* which value (1-based) is being encoded */
  int seen;           /* stack index of the table -> id map */
  lua_Integer nseen;  /* ids given so far */
  int depth;          /* tables entered; path[0 .. depth-1] are valid */
  path_step path[TIDE_MARSHAL_MAXDEPTH];
} encoder;

/* Appends a formatted piece to e->err at *pos, truncating quietly. */
static void err_append(encoder *e, size_t *pos, const char *fmt, ...) {
  va_list ap;
  int n;

  if (e->err == NULL || *pos + 1 >= e->errlen)
    return;
  va_start(ap, fmt);
  n = vsnprintf(e->err + *pos, e->errlen - *pos, fmt, ap);
  va_end(ap);
  if (n > 0)
    *pos += (size_t)n;
  if (*pos >= e->errlen)
    *pos = e->errlen - 1;
}

/* Whether s is a Lua identifier short enough to quote in a message. */
static int is_identifier(const char *s, size_t len) {
  size_t i;

  if (len == 0 || len > 40 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') ||
                                (s[0] >= 'A' && s[0] <= 'Z')))
    return 0;
  for (i = 1; i < len; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      return 0;
  }
  return 1;
}

/* [-0, +0, -] Renders one path step: [3], ["name"], [<type>] or {key}
 * (meaning: inside a key of the table). Never converts a key in place, so
 * lua_next still works on it afterwards. */
static void err_append_step(lua_State *L, encoder *e, size_t *pos,
                            const path_step *s) {
  size_t len;
  const char *str;

  switch (s->kind) {
  case STEP_INDEX:
    err_append(e, pos, "[" LUA_INTEGER_FMT "]", (LUAI_UACINT)s->i);
    break;
  case STEP_INKEY:
    err_append(e, pos, "{key}");
    break;
  default:
    if (lua_isinteger(L, s->idx)) {
      err_append(e, pos, "[" LUA_INTEGER_FMT "]",
                 (LUAI_UACINT)lua_tointeger(L, s->idx));
      break;
    }
    if (lua_type(L, s->idx) == LUA_TSTRING) {
      str = lua_tolstring(L, s->idx, &len);  /* a string: not converted */
      if (is_identifier(str, len)) {
        err_append(e, pos, "[\"%s\"]", str);
        break;
      }
    }
    err_append(e, pos, "[<%s>]", luaL_typename(L, s->idx));
    break;
  }
}

/* [-0, +1, v] Refuses the value being encoded: writes
 *   LABEL N: WHAT at PATH cannot be sent to another thread
 * into e->err and raises (the error object is a placeholder; the caller
 * reads e->err). Does not return. */
static int refuse(lua_State *L, encoder *e, const char *what) {
  size_t pos = 0;
  int i;

  err_append(e, &pos, "%s %d: %s", e->label, e->number + e->arg - 1, what);
  if (e->depth > 0) {
    err_append(e, &pos, " at ");
    for (i = 0; i < e->depth; i++) {
      if (pos >= PATH_MAXCHARS) {
        err_append(e, &pos, "...");
        break;
      }
      err_append_step(L, e, &pos, &e->path[i]);
    }
  }
  err_append(e, &pos, " cannot be sent to another thread");
  e->refused = 1;
  lua_pushboolean(L, 0);  /* placeholder error object (allocates nothing) */
  return lua_error(L);
}

/* [-0, +0, m] Appends n bytes to the output or raises a memory error. */
static void put(lua_State *L, encoder *e, const void *p, size_t n) {
  if (tide_mbuf_append(e->out, p, n))
    luaL_error(L, "not enough memory");
}

/* [-0, +0, m] */
static void put_byte(lua_State *L, encoder *e, int b) {
  unsigned char c = (unsigned char)b;
  put(L, e, &c, 1);
}

/* [-0, +0, m] Appends v as a uvar. */
static void put_uvar(lua_State *L, encoder *e, uint64_t v) {
  unsigned char b[10];
  size_t n = 0;

  while (v >= 0x80) {
    b[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (unsigned char)v;
  put(L, e, b, n);
}

static void encode_value(lua_State *L, encoder *e, int idx);

/* [-0, +0, -] Whether the key at idx is one that the array part of a table
 * with narr entries already covers. */
static int in_array(lua_State *L, int idx, lua_Integer narr) {
  lua_Integer k;

  if (!lua_isinteger(L, idx))
    return 0;
  k = lua_tointeger(L, idx);
  return k >= 1 && k <= narr;
}

/* [-0, +0, v] Encodes the table at idx (absolute): a reference if it was
 * seen before, else TAG_TABLE and its contents. */
static void encode_table(lua_State *L, encoder *e, int idx) {
  lua_Integer narr, nhash, i;
  int top;
#ifndef NDEBUG
  int top0 = lua_gettop(L);
#endif

  luaL_checkstack(L, 3, "too many nested tables");
  lua_pushvalue(L, idx);  /* the table, as key into "seen" */
  if (lua_rawget(L, e->seen) != LUA_TNIL) {  /* push seen[t]: encoded before */
    i = lua_tointeger(L, -1);
    lua_pop(L, 1);  /* remove the id */
    put_byte(L, e, TAG_REF);
    put_uvar(L, e, (uint64_t)i);
    assert(lua_gettop(L) == top0);
    return;
  }
  lua_pop(L, 1);  /* remove nil */
  if (lua_getmetatable(L, idx)) {  /* push the metatable, if any */
    lua_pop(L, 1);  /* remove it */
    refuse(L, e, "table with a metatable");
  }
  if (e->depth >= TIDE_MARSHAL_MAXDEPTH)
    refuse(L, e, "table nested more than "
           STRINGIFY(TIDE_MARSHAL_MAXDEPTH) " levels deep");
  lua_pushvalue(L, idx);  /* key: the table */
  lua_pushinteger(L, ++e->nseen);  /* value: its id */
  lua_rawset(L, e->seen);  /* seen[t] = id; pops both */

  /* Size the array part: 1..narr all non-nil (lua_rawlen may stop at any
   * border, holes included, so count instead). */
  for (narr = 0; lua_rawgeti(L, idx, narr + 1) != LUA_TNIL; narr++)
    lua_pop(L, 1);  /* remove t[narr + 1] */
  lua_pop(L, 1);  /* remove the nil that ended the array part */
  nhash = 0;
  lua_pushnil(L);  /* first key */
  while (lua_next(L, idx)) {  /* push key, value */
    lua_pop(L, 1);  /* remove value; keep key for lua_next */
    if (!in_array(L, -1, narr))
      nhash++;
  }

  put_byte(L, e, TAG_TABLE);
  put_uvar(L, e, (uint64_t)narr);
  put_uvar(L, e, (uint64_t)nhash);
  e->depth++;
  for (i = 1; i <= narr; i++) {
    lua_rawgeti(L, idx, i);  /* push t[i] */
    e->path[e->depth - 1].kind = STEP_INDEX;
    e->path[e->depth - 1].i = i;
    encode_value(L, e, lua_gettop(L));
    lua_pop(L, 1);  /* remove t[i] */
  }
  lua_pushnil(L);  /* first key */
  while (lua_next(L, idx)) {  /* push key, value */
    top = lua_gettop(L);  /* key at top - 1, value at top */
    if (!in_array(L, top - 1, narr)) {
      e->path[e->depth - 1].kind = STEP_INKEY;
      encode_value(L, e, top - 1);
      e->path[e->depth - 1].kind = STEP_KEY;
      e->path[e->depth - 1].idx = top - 1;
      encode_value(L, e, top);
    }
    lua_pop(L, 1);  /* remove value; keep key for lua_next */
  }
  e->depth--;
  assert(lua_gettop(L) == top0);
}

/* [-0, +0, v] Encodes the value at idx (absolute), refusing what cannot
 * cross between states. */
static void encode_value(lua_State *L, encoder *e, int idx) {
  uint64_t u;
  lua_Number d;
  unsigned char b[8];
  const char *s;
  size_t len;
  int i;

  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    put_byte(L, e, TAG_NIL);
    break;
  case LUA_TBOOLEAN:
    put_byte(L, e, lua_toboolean(L, idx) ? TAG_TRUE : TAG_FALSE);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      u = (uint64_t)lua_tointeger(L, idx);
      put_byte(L, e, TAG_INT);
      put_uvar(L, e, (u << 1) ^ (0 - (u >> 63)));  /* zigzag */
    } else {
      d = lua_tonumber(L, idx);
      memcpy(&u, &d, sizeof u);
      for (i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
      put_byte(L, e, TAG_FLT);
      put(L, e, b, sizeof b);
    }
    break;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    put_byte(L, e, TAG_STR);
    put_uvar(L, e, (uint64_t)len);
    put(L, e, s, len);
    break;
  case LUA_TTABLE:
    encode_table(L, e, idx);
    break;
  case LUA_TLIGHTUSERDATA:
    refuse(L, e, "light userdata");
    break;
  default:  /* function, userdata, thread */
    refuse(L, e, luaL_typename(L, idx));
    break;
  }
}

/* [-(n+1), +0, v] The protected body of tide_marshal_encode: argument 1 is
 * the encoder, arguments 2 .. n+1 are the values. */
static int encode_all(lua_State *L) {
  encoder *e = (encoder *)lua_touserdata(L, 1);
  int n = lua_gettop(L) - 1;
  int i;

  lua_newtable(L);  /* push "seen": table -> id */
  e->seen = lua_gettop(L);
  put_byte(L, e, MARSHAL_VERSION);
  put_uvar(L, e, (uint64_t)n);
  for (i = 1; i <= n; i++) {
    e->arg = i;
    encode_value(L, e, i + 1);
  }
  return 0;
}

/* [-0, +0, -] */
int tide_marshal_encode(lua_State *L, int first, int n, tide_mbuf *out,
                        char *err, size_t errlen) {
  return tide_marshal_encode_as(L, first, n, "argument", 1, out, err, errlen);
}

/* [-0, +0, -] */
int tide_marshal_encode_as(lua_State *L, int first, int n, const char *label,
                           int number, tide_mbuf *out, char *err,
                           size_t errlen) {
  encoder e;
  size_t oldlen = out->len;
  const char *msg;
  int i;
#ifndef NDEBUG
  int top = lua_gettop(L);
#endif

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (n < 0 || n > INT_MAX - 3 || !lua_checkstack(L, n + 3))
    return set_error(err, errlen, "too many values to send to another thread");
  first = lua_absindex(L, first);
  memset(&e, 0, sizeof e);
  e.out = out;
  e.label = label;
  e.number = number;
  e.err = err;
  e.errlen = err != NULL ? errlen : 0;
  lua_pushcfunction(L, encode_all);
  lua_pushlightuserdata(L, &e);  /* argument 1: the encoder */
  for (i = 0; i < n; i++)
    lua_pushvalue(L, first + i);  /* arguments 2 .. n+1: the values */
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {
    if (!e.refused) {  /* memory error, stack overflow: report its message */
      msg = lua_tostring(L, -1);
      set_error(err, errlen, "%s", msg != NULL ? msg : "marshal error");
    }
    lua_pop(L, 1);  /* remove the error object */
    out->len = oldlen;
    assert(lua_gettop(L) == top);
    return -1;
  }
  assert(lua_gettop(L) == top);
  return 0;
}

/* ---- decoder ----------------------------------------------------------- */

typedef struct decoder {
  const unsigned char *start, *p, *end;
  int seen;           /* stack index of the id -> table list */
  lua_Integer nseen;  /* ids given so far */
  uint64_t budget;    /* table entries the remaining stream can account for */
  int depth;          /* tables being filled */
} decoder;

/* [-0, +1, v] Raises "malformed marshal data: WHAT at byte N". */
static int malformed(lua_State *L, decoder *d, const char *what) {
  return luaL_error(L, "malformed marshal data: %s at byte %I", what,
                    (lua_Integer)(d->p - d->start));
}

/* [-0, +0, v] */
static int get_byte(lua_State *L, decoder *d) {
  if (d->p == d->end)
    malformed(L, d, "truncated data");
  return *d->p++;
}

/* [-0, +0, v] Reads a uvar. */
static uint64_t get_uvar(lua_State *L, decoder *d) {
  uint64_t v = 0;
  int shift, b;

  for (shift = 0; shift < 64; shift += 7) {
    b = get_byte(L, d);
    if (shift == 63 && b > 1)
      malformed(L, d, "integer out of range");
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return v;
  }
  malformed(L, d, "integer too long");
  return 0;
}

/* Two's complement without implementation-defined conversions. */
static lua_Integer to_integer(uint64_t u) {
  if (u <= (uint64_t)LUA_MAXINTEGER)
    return (lua_Integer)u;
  return -(lua_Integer)~u - 1;
}

static void decode_value(lua_State *L, decoder *d);

/* [-0, +1, v] Decodes a table after its tag: registers it under the next id
 * before its contents, so that they can refer to it. */
static void decode_table(lua_State *L, decoder *d) {
  uint64_t narr, nhash, i;
  int t;

  if (d->depth >= TIDE_MARSHAL_MAXDEPTH)
    malformed(L, d, "tables nested too deep");
  narr = get_uvar(L, d);
  nhash = get_uvar(L, d);
  if (narr > d->budget || nhash > d->budget - narr)
    malformed(L, d, "table larger than the data");
  d->budget -= narr + nhash;
  lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr,
                  nhash > INT_MAX ? INT_MAX : (int)nhash);  /* push t */
  t = lua_gettop(L);
  lua_pushvalue(L, t);  /* push t again */
  lua_rawseti(L, d->seen, ++d->nseen);  /* seen[id] = t; pops it */
  d->depth++;
  for (i = 1; i <= narr; i++) {
    decode_value(L, d);  /* push the value */
    lua_rawseti(L, t, (lua_Integer)i);  /* t[i] = value; pops it */
  }
  for (i = 0; i < nhash; i++) {
    decode_value(L, d);  /* push the key */
    if (lua_isnil(L, -1))
      malformed(L, d, "nil table key");
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
        lua_tonumber(L, -1) != lua_tonumber(L, -1))
      malformed(L, d, "NaN table key");
    decode_value(L, d);  /* push the value */
    lua_rawset(L, t);  /* t[key] = value; pops both */
  }
  d->depth--;
  assert(lua_gettop(L) == t);
}

/* [-0, +1, v] Decodes one value and pushes it. */
static void decode_value(lua_State *L, decoder *d) {
  uint64_t u, len;
  lua_Number n;
  int i;

  luaL_checkstack(L, 3, "too many values to decode");
  switch (get_byte(L, d)) {
  case TAG_NIL:
    lua_pushnil(L);
    break;
  case TAG_FALSE:
    lua_pushboolean(L, 0);
    break;
  case TAG_TRUE:
    lua_pushboolean(L, 1);
    break;
  case TAG_INT:
    u = get_uvar(L, d);
    lua_pushinteger(L, to_integer((u >> 1) ^ (0 - (u & 1))));  /* unzigzag */
    break;
  case TAG_FLT:
    if (d->end - d->p < 8)
      malformed(L, d, "truncated float");
    u = 0;
    for (i = 0; i < 8; i++)
      u |= (uint64_t)d->p[i] << (8 * i);
    d->p += 8;
    memcpy(&n, &u, sizeof n);
    lua_pushnumber(L, n);
    break;
  case TAG_STR:
    len = get_uvar(L, d);
    if (len > (uint64_t)(d->end - d->p))
      malformed(L, d, "truncated string");
    lua_pushlstring(L, (const char *)d->p, (size_t)len);
    d->p += len;
    break;
  case TAG_TABLE:
    decode_table(L, d);
    break;
  case TAG_REF:
    u = get_uvar(L, d);
    if (u == 0 || u > (uint64_t)d->nseen)
      malformed(L, d, "reference to an unknown table");
    lua_rawgeti(L, d->seen, (lua_Integer)u);  /* push seen[id] */
    break;
  default:
    d->p--;  /* point the message at the tag */
    malformed(L, d, "unknown tag");
    break;
  }
}

/* [-1, +n, v] The protected body of tide_marshal_decode: argument 1 is the
 * decoder. Returns the n values. */
static int decode_all(lua_State *L) {
  decoder *d = (decoder *)lua_touserdata(L, 1);
  uint64_t n, i;

  lua_newtable(L);  /* push "seen": id -> table */
  d->seen = lua_gettop(L);
  if (get_byte(L, d) != MARSHAL_VERSION) {
    d->p--;
    malformed(L, d, "unknown format version");
  }
  n = get_uvar(L, d);
  if (n > (uint64_t)(d->end - d->p))
    malformed(L, d, "more values than data");
  for (i = 0; i < n; i++)
    decode_value(L, d);  /* push each value */
  if (d->p != d->end)
    malformed(L, d, "trailing bytes");
  return (int)n;  /* fits: luaL_checkstack stops far below INT_MAX */
}

/* [-0, +(n|1), -] */
int tide_marshal_decode(lua_State *L, const char *data, size_t len) {
  decoder d;
  int top = lua_gettop(L);

  if (data == NULL)  /* no arithmetic on NULL, even + 0 */
    data = "";
  memset(&d, 0, sizeof d);
  d.start = d.p = (const unsigned char *)data;
  d.end = d.start + len;
  d.budget = len;
  lua_pushcfunction(L, decode_all);
  lua_pushlightuserdata(L, &d);  /* argument 1: the decoder */
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    assert(lua_gettop(L) == top + 1);
    return -1;  /* the error message is on top */
  }
  return lua_gettop(L) - top;
}

/* ---- functions --------------------------------------------------------- */

/* lua_Writer for lua_dump: appends to the tide_mbuf in ud. */
static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return tide_mbuf_append((tide_mbuf *)ud, p, sz) != 0;
}

/* [-0, +0, -] */
int tide_marshal_dump_function(lua_State *L, int idx, tide_mbuf *out,
                               char *err, size_t errlen) {
  size_t oldlen = out->len;
  const char *name;
  int i, status;
#ifndef NDEBUG
  int top = lua_gettop(L);
#endif

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TFUNCTION)
    return set_error(err, errlen,
                     "a %s cannot be sent to a worker as a function",
                     luaL_typename(L, idx));
  if (lua_iscfunction(L, idx))
    return set_error(err, errlen, "function is a C function; functions sent "
                     "to a worker must be Lua functions");
  if (!lua_checkstack(L, 1))
    return set_error(err, errlen, "stack overflow");
  for (i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);  /* remove the upvalue's value; the name stays valid */
    if (strcmp(name, "_ENV") != 0)
      return set_error(err, errlen, "function has upvalue '%s'; functions sent "
                       "to a worker can only use globals and their arguments",
                       name);
  }
  lua_pushvalue(L, idx);  /* lua_dump dumps the function on top */
  status = lua_dump(L, dump_writer, out, 0);  /* strip = 0: keep lines */
  lua_pop(L, 1);  /* remove the copy */
  assert(lua_gettop(L) == top);
  if (status != 0) {
    out->len = oldlen;
    return set_error(err, errlen, "not enough memory");
  }
  return 0;
}

/* [-0, +1, m] */
int tide_marshal_load_function(lua_State *L, const char *data, size_t len,
                               const char *chunkname) {
  const char *name;
  int i;
#ifndef NDEBUG
  int top = lua_gettop(L);
#endif

  if (chunkname == NULL)
    chunkname = "=(tide.work)";
  if (luaL_loadbufferx(L, data, len, chunkname, "b") != LUA_OK)
    return -1;  /* the error message is on top */
  /* lua_load has already set upvalue 1 to the global table whatever its
   * name; check every name instead of trusting that. */
  for (i = 1; (name = lua_getupvalue(L, -1, i)) != NULL; i++) {
    lua_pop(L, 1);  /* remove the upvalue's value */
    if (strcmp(name, "_ENV") != 0) {
      lua_pushfstring(L, "function has upvalue '%s'; functions sent to a "
                      "worker can only use globals and their arguments", name);
      lua_remove(L, -2);  /* remove the function, keep the message */
      return -1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);  /* push _G */
    lua_setupvalue(L, -2, i);  /* it becomes the function's _ENV; pops it */
  }
  assert(lua_gettop(L) == top + 1);
  return 0;
}
