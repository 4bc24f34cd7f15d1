/* zlib.c — tide.zlib: streaming deflate and inflate on zlib, for the
 * protocols that compress (WebSocket permessage-deflate, HTTP gzip and
 * deflate codings). A stream object keeps one z_stream: each write feeds
 * it bytes and returns what came out, so a protocol may compress a
 * message at a time with the window kept between messages (context
 * takeover), flush at a message's end (sync flush), or reset.
 *
 * Inflating is bounded: a write given `max` raises EMSGSIZE as soon as it
 * would return more than `max` bytes, so a small input cannot make a huge
 * output (a decompression bomb) before the caller learns of it.
 *
 * Stack discipline: methods take the stream at index 1 and leave their
 * results, as documented. Ownership: the userdata holds the z_stream
 * itself (zlib's own memory hangs off it); __gc and close() end it.
 */
#include "binding.h"

#include <string.h>
#include <zlib.h>

#define ZSTREAM_MT "tide.zlib.stream"
#define CHUNK 16384

typedef struct zstream {
  z_stream z;
  int deflating;   /* 1: deflate stream, 0: inflate */
  int open;        /* z was initialised and not ended yet */
  int done;        /* inflate: the end of the compressed data was read */
} zstream;

static zstream *check_zs(lua_State *L) {
  zstream *zs = luaL_checkudata(L, 1, ZSTREAM_MT);
  if (!zs->open) luaL_error(L, "attempt to use a closed zlib stream");
  return zs;
}

/* [-0, +0, v] Raises an error object for the zlib status `rc`. */
static int zerror(lua_State *L, zstream *zs, int rc) {
  const char *code = rc == Z_MEM_ERROR ? "ENOMEM" : "EPROTO";
  lua_pushfstring(L, "%s: %s", zs->deflating ? "deflate" : "inflate",
                  zs->z.msg ? zs->z.msg : zError(rc));
  tide_lua_push_error(L, code, lua_tostring(L, -1));
  return lua_error(L);
}

/* Window bits for zlib from the options: 8..15 and the format ("raw",
 * "zlib", "gzip"; inflate also "auto": zlib or gzip). */
static int window_bits(lua_State *L, int opts, int deflating) {
  lua_Integer wb;
  const char *fmt;
  lua_getfield(L, opts, "window_bits");
  wb = luaL_optinteger(L, -1, 15);
  lua_pop(L, 1);  /* remove window_bits */
  if (wb < 8 || wb > 15) luaL_error(L, "tide.zlib: window_bits must be in 8..15");
  /* zlib's deflate cannot do 256-byte windows; 9 is what it uses instead,
   * and a raw stream made so inflates with a window of 512. */
  if (deflating && wb == 8) wb = 9;
  lua_getfield(L, opts, "format");
  fmt = luaL_optstring(L, -1, "raw");
  if (strcmp(fmt, "raw") == 0) wb = -wb;
  else if (strcmp(fmt, "gzip") == 0) wb += 16;
  else if (strcmp(fmt, "auto") == 0 && !deflating) wb += 32;
  else if (strcmp(fmt, "zlib") != 0) luaL_error(L, "tide.zlib: unknown format '%s'", fmt);
  lua_pop(L, 1);  /* remove format */
  return (int)wb;
}

static zstream *new_zs(lua_State *L, int deflating) {
  zstream *zs = lua_newuserdatauv(L, sizeof(zstream), 0);
  memset(zs, 0, sizeof(*zs));
  zs->deflating = deflating;
  luaL_setmetatable(L, ZSTREAM_MT);
  return zs;
}

/* tide.zlib.deflate([opts]) -> a deflate stream. opts: format ("raw",
 * default, "zlib" or "gzip"), window_bits (8..15, default 15), level
 * (0..9, default 6), mem_level (1..9, default 8). */
static int l_deflate(lua_State *L) {
  int wb, rc;
  lua_Integer level, mem;
  zstream *zs;
  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  wb = window_bits(L, 1, 1);
  lua_getfield(L, 1, "level");
  level = luaL_optinteger(L, -1, 6);
  lua_getfield(L, 1, "mem_level");
  mem = luaL_optinteger(L, -1, 8);
  lua_pop(L, 2);  /* remove level, mem_level */
  if (level < 0 || level > 9) return luaL_error(L, "tide.zlib: level must be in 0..9");
  if (mem < 1 || mem > 9) return luaL_error(L, "tide.zlib: mem_level must be in 1..9");
  zs = new_zs(L, 1);
  rc = deflateInit2(&zs->z, (int)level, Z_DEFLATED, wb, (int)mem, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) return zerror(L, zs, rc);
  zs->open = 1;
  return 1;
}

/* tide.zlib.inflate([opts]) -> an inflate stream. opts: format ("raw",
 * default, "zlib", "gzip" or "auto"), window_bits (8..15, default 15). */
static int l_inflate(lua_State *L) {
  int wb, rc;
  zstream *zs;
  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  wb = window_bits(L, 1, 0);
  zs = new_zs(L, 0);
  rc = inflateInit2(&zs->z, wb);
  if (rc != Z_OK) return zerror(L, zs, rc);
  zs->open = 1;
  return 1;
}

static const char *const flushes[] = { "none", "sync", "full", "finish", NULL };
static const int flush_values[] = { Z_NO_FLUSH, Z_SYNC_FLUSH, Z_FULL_FLUSH, Z_FINISH };

/* z:write(data [, arg]) -> the bytes that came out. A deflate stream takes
 * the flush as `arg`: "none" (default: zlib may keep bytes back), "sync"
 * (everything out, ending on an empty stored block 00 00 ff ff), "full"
 * (sync, and later output does not refer to earlier data) or "finish"
 * (the end of the compressed data). An inflate stream takes `max`, the
 * most bytes it may return (default unbounded): more raises an EMSGSIZE
 * error object. Malformed data raises EPROTO. After the end of the
 * compressed data (z.done), further input is ignored until z:reset(). */
static int zs_write(lua_State *L) {
  zstream *zs = check_zs(L);
  size_t len, total = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  int flush = Z_NO_FLUSH;
  lua_Integer max = -1;
  luaL_Buffer b;
  if (zs->deflating) {
    flush = flush_values[luaL_checkoption(L, 3, "none", flushes)];
  } else {
    max = luaL_optinteger(L, 3, -1);
  }
  zs->z.next_in = (Bytef *)data;
  zs->z.avail_in = (uInt)len;
  luaL_buffinit(L, &b);
  for (;;) {
    unsigned char *out = (unsigned char *)luaL_prepbuffsize(&b, CHUNK);
    size_t got;
    int rc;
    zs->z.next_out = out;
    zs->z.avail_out = CHUNK;
    if (zs->deflating) {
      rc = deflate(&zs->z, flush);
    } else if (zs->done) {
      rc = Z_STREAM_END;
    } else {
      rc = inflate(&zs->z, Z_SYNC_FLUSH);
    }
    got = CHUNK - zs->z.avail_out;
    luaL_addsize(&b, got);
    total += got;
    if (max >= 0 && total > (size_t)max) {
      lua_pushfstring(L, "inflated data larger than %I bytes", max);
      tide_lua_push_error(L, "EMSGSIZE", lua_tostring(L, -1));
      return lua_error(L);
    }
    if (rc == Z_STREAM_END) {
      if (!zs->deflating) zs->done = 1;
      break;
    }
    if (rc == Z_BUF_ERROR) break;        /* no progress possible: all taken */
    if (rc != Z_OK) return zerror(L, zs, rc);
    if (zs->z.avail_out != 0 && zs->z.avail_in == 0) break;
  }
  zs->z.next_in = NULL;  /* `data` may be collected */
  zs->z.avail_in = 0;
  luaL_pushresult(&b);
  return 1;
}

/* z:reset() -> z: starts over, forgetting the window (no context takeover). */
static int zs_reset(lua_State *L) {
  zstream *zs = check_zs(L);
  int rc = zs->deflating ? deflateReset(&zs->z) : inflateReset(&zs->z);
  if (rc != Z_OK) return zerror(L, zs, rc);
  zs->done = 0;
  lua_settop(L, 1);
  return 1;
}

/* z:close(): frees zlib's memory; again: nothing. Also __gc and __close. */
static int zs_close(lua_State *L) {
  zstream *zs = luaL_checkudata(L, 1, ZSTREAM_MT);
  if (zs->open) {
    if (zs->deflating) deflateEnd(&zs->z); else inflateEnd(&zs->z);
    zs->open = 0;
  }
  return 0;
}

static int zs_index(lua_State *L) {
  zstream *zs = luaL_checkudata(L, 1, ZSTREAM_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "done") == 0) { lua_pushboolean(L, zs->done); return 1; }
  if (strcmp(k, "closed") == 0) { lua_pushboolean(L, !zs->open); return 1; }
  if (strcmp(k, "total_in") == 0) { lua_pushinteger(L, (lua_Integer)zs->z.total_in); return 1; }
  if (strcmp(k, "total_out") == 0) { lua_pushinteger(L, (lua_Integer)zs->z.total_out); return 1; }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

static int zs_tostring(lua_State *L) {
  zstream *zs = luaL_checkudata(L, 1, ZSTREAM_MT);
  lua_pushfstring(L, "tide.zlib.%s: %p", zs->deflating ? "deflate" : "inflate", (void *)zs);
  return 1;
}

/* [-0, +0, m] Adds tide.zlib to the module table at the top. */
int tide_open_zlib(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "write", zs_write }, { "reset", zs_reset }, { "close", zs_close }, { NULL, NULL } };
  static const luaL_Reg meta[] = {
    { "__index", zs_index }, { "__gc", zs_close }, { "__close", zs_close },
    { "__tostring", zs_tostring }, { NULL, NULL } };
  static const luaL_Reg funcs[] = {
    { "deflate", l_deflate }, { "inflate", l_inflate }, { NULL, NULL } };
  luaL_newmetatable(L, ZSTREAM_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);  /* remove the metatable */
  luaL_newlib(L, funcs);
  lua_pushstring(L, zlibVersion());
  lua_setfield(L, -2, "version");
  lua_setfield(L, -2, "zlib");
  return 0;
}
