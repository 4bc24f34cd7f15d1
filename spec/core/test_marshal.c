/* Tests of bindings/marshal.c: values and functions crossing lua_States.
 * tests: marshal_mbuf marshal_scalars marshal_strings marshal_nested
 *        marshal_shared_and_cycles marshal_table_keys marshal_refused
 *        marshal_nesting_limit marshal_random_roundtrip marshal_corrupt
 *        marshal_malformed_messages marshal_function_dump
 *        marshal_function_refused marshal_function_load_checks */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "test.h"
#include "marshal.h"

static lua_State *marshal_new_state(void) {
  lua_State *L = luaL_newstate();
  if (L != NULL)
    luaL_openlibs(L);
  return L;
}

/* Runs src in L, leaving its results on the stack. Returns 0, or 1 after
 * printing the error. */
static int marshal_run(lua_State *L, const char *src, int nresults) {
  if (luaL_loadstring(L, src) != LUA_OK ||
      lua_pcall(L, 0, nresults, 0) != LUA_OK) {
    fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Runs make in a fresh state A, sends all its results to a fresh state B and
 * runs check there with them as arguments; check must return true. */
static int marshal_roundtrip(const char *make, const char *check) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  int n, ok;

  tide_mbuf_init(&buf);
  ASSERT(A != NULL && B != NULL);
  ASSERT_OK(marshal_run(A, make, LUA_MULTRET));
  n = lua_gettop(A);
  ASSERT_OK(tide_marshal_encode(A, 1, n, &buf, err, sizeof err));
  ASSERT_EQ(lua_gettop(A), n);
  ASSERT_OK(luaL_loadstring(B, check));
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), n);
  ASSERT_EQ(lua_gettop(B), n + 1);
  if (lua_pcall(B, n, 1, 0) != LUA_OK)
    fprintf(stderr, "check error: %s\n", lua_tostring(B, -1));
  ok = lua_toboolean(B, -1);
  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);
  ASSERT(ok);
  return 0;
}

TEST_IMPL(marshal_mbuf) {
  tide_mbuf b;
  int i;

  tide_mbuf_init(&b);
  ASSERT(b.data == NULL);
  ASSERT_EQ(b.len, 0);
  ASSERT_OK(tide_mbuf_append(&b, NULL, 0));
  for (i = 0; i < 1000; i++)
    ASSERT_OK(tide_mbuf_append(&b, "abc", 3));
  ASSERT_EQ(b.len, 3000);
  ASSERT(b.cap >= b.len);
  ASSERT(memcmp(b.data + 2997, "abc", 3) == 0);
  tide_mbuf_free(&b);
  ASSERT(b.data == NULL);
  ASSERT_EQ(b.cap, 0);
  tide_mbuf_free(&b);  /* twice is harmless */
  return 0;
}

TEST_IMPL(marshal_scalars) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  int i, n;
  double da, db;

  tide_mbuf_init(&buf);
  lua_pushnil(A);
  lua_pushboolean(A, 1);
  lua_pushboolean(A, 0);
  lua_pushinteger(A, 0);
  lua_pushinteger(A, -1);
  lua_pushinteger(A, 1234567);
  lua_pushinteger(A, LUA_MININTEGER);
  lua_pushinteger(A, LUA_MAXINTEGER);
  lua_pushnumber(A, 0.0);
  lua_pushnumber(A, -0.0);
  lua_pushnumber(A, 1.0);
  lua_pushnumber(A, 0.1);
  lua_pushnumber(A, HUGE_VAL);
  lua_pushnumber(A, -HUGE_VAL);
  lua_pushnumber(A, NAN);
  lua_pushnumber(A, -NAN);
  lua_pushnumber(A, DBL_MIN / 4);  /* subnormal */
  lua_pushnumber(A, DBL_MAX);
  lua_pushnumber(A, 9007199254740992.0);  /* 2^53 */
  lua_pushnumber(A, (lua_Number)LUA_MININTEGER);
  n = lua_gettop(A);
  ASSERT_OK(tide_marshal_encode(A, 1, n, &buf, err, sizeof err));
  ASSERT_EQ(lua_gettop(A), n);
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), n);
  ASSERT_EQ(lua_gettop(B), n);
  for (i = 1; i <= n; i++) {
    ASSERT_EQ(lua_type(A, i), lua_type(B, i));
    ASSERT_EQ(lua_isinteger(A, i), lua_isinteger(B, i));
    if (lua_isinteger(A, i)) {
      ASSERT_EQ(lua_tointeger(A, i), lua_tointeger(B, i));
    } else if (lua_type(A, i) == LUA_TNUMBER) {
      da = lua_tonumber(A, i);
      db = lua_tonumber(B, i);
      ASSERT(memcmp(&da, &db, sizeof da) == 0);  /* same bits: -0.0, nan */
    } else if (lua_type(A, i) == LUA_TBOOLEAN) {
      ASSERT_EQ(lua_toboolean(A, i), lua_toboolean(B, i));
    }
  }
  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);

  /* The same, seen from Lua. */
  return marshal_roundtrip(
      "return 1, 1.0, -0.0, math.mininteger, math.maxinteger, 1/0, 0/0,"
      "  math.mininteger + 0.0, 3",
      "local i, f, nz, mn, mx, inf, nan, mnf, last = ...\n"
      "return math.type(i) == 'integer' and math.type(f) == 'float'"
      "  and i == 1 and f == 1.0 and 1/nz == -math.huge"
      "  and mn == math.mininteger and math.type(mn) == 'integer'"
      "  and mx == math.maxinteger and inf == math.huge and nan ~= nan"
      "  and math.type(mnf) == 'float' and mnf == -2^63"
      "  and last == 3 and select('#', ...) == 9");
}

TEST_IMPL(marshal_strings) {
  return marshal_roundtrip(
      "local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end\n"
      "return table.concat(t), '', 'a\\0b\\0', ('\\0'):rep(70000),"
      "  ('xyz'):rep(50000)",
      "local all, empty, nul, zeros, long = ...\n"
      "if #all ~= 256 then return false end\n"
      "for i = 0, 255 do if all:byte(i + 1) ~= i then return false end end\n"
      "return empty == '' and nul == 'a\\0b\\0' and #nul == 4"
      "  and zeros == ('\\0'):rep(70000) and long == ('xyz'):rep(50000)");
}

TEST_IMPL(marshal_nested) {
  ASSERT_OK(marshal_roundtrip(
      "return {1, 2, {3, {4, 'x'}}, name = 'n', [10] = true, [-1] = 2.5,"
      "  [1.5] = 'f', sub = {deep = {deeper = {}}}}, {}, {1, nil, 3}",
      "local t, empty, holes = ...\n"
      "return t[1] == 1 and t[2] == 2 and t[3][1] == 3 and t[3][2][1] == 4"
      "  and t[3][2][2] == 'x' and t.name == 'n' and t[10] == true"
      "  and t[-1] == 2.5 and t[1.5] == 'f' and next(t.sub.deep.deeper) == nil"
      "  and next(empty) == nil and holes[1] == 1 and holes[2] == nil"
      "  and holes[3] == 3 and #t == 3"));
  /* Strings and numbers keep their types as keys. */
  return marshal_roundtrip(
      "return {[1] = 'int', ['1'] = 'str', [2^53] = 'big'}",
      "local t = ... return t[1] == 'int' and t['1'] == 'str'"
      "  and t[2^53] == 'big' and t[math.tointeger(2^53)] == 'big'");
}

TEST_IMPL(marshal_shared_and_cycles) {
  ASSERT_OK(marshal_roundtrip(
      "local s = {1}\n"
      "local t = {a = s, b = s, list = {s, s}}\n"
      "t.self = t\n"
      "s.back = t\n"
      "return t, s, t",
      "local t, s, t2 = ...\n"
      "return t.a == t.b and t.a == s and t.list[1] == s and t.list[2] == s"
      "  and t.self == t and s.back == t and t2 == t and s[1] == 1"));
  /* A table that is its own key and value. */
  ASSERT_OK(marshal_roundtrip(
      "local t = {} t[t] = t return t",
      "local t = ... local k, v = next(t)\n"
      "return k == t and v == t and t[t] == t and next(t, k) == nil"));
  /* A longer cycle through array entries. */
  return marshal_roundtrip(
      "local a, b, c = {}, {}, {} a[1] = b b[1] = c c[1] = a return c, a",
      "local c, a = ... return a[1][1] == c and c[1] == a and a[1][1][1] == a");
}

TEST_IMPL(marshal_table_keys) {
  return marshal_roundtrip(
      "local k1, k2 = {'k1'}, {'k2'}\n"
      "return {[k1] = 1, [k2] = k1, [true] = 'yes', [false] = 'no',"
      "  [2.5] = 'f', [math.maxinteger] = 'max', [math.mininteger] = 'min'}",
      "local t = ...\n"
      "local k1, k2, n = nil, nil, 0\n"
      "for k in pairs(t) do\n"
      "  n = n + 1\n"
      "  if type(k) == 'table' then\n"
      "    if k[1] == 'k1' then k1 = k else k2 = k end\n"
      "  end\n"
      "end\n"
      "return n == 7 and k1 and k2 and k1 ~= k2 and t[k1] == 1 and t[k2] == k1"
      "  and t[true] == 'yes' and t[false] == 'no' and t[2.5] == 'f'"
      "  and t[math.maxinteger] == 'max' and t[math.mininteger] == 'min'");
}

/* Encodes what src returns (or, when src is NULL, the whole stack) and
 * expects exactly msg as the error. */
static int marshal_expect_refusal(lua_State *A, const char *src,
                                  const char *msg) {
  tide_mbuf buf;
  char err[256];
  int n;

  tide_mbuf_init(&buf);
  ASSERT_OK(tide_mbuf_append(&buf, "keep", 4));
  if (src != NULL) {  /* else: the values already on the stack */
    lua_settop(A, 0);
    ASSERT_OK(marshal_run(A, src, LUA_MULTRET));
  }
  n = lua_gettop(A);
  ASSERT_EQ(tide_marshal_encode(A, 1, n, &buf, err, sizeof err), -1);
  if (strcmp(err, msg) != 0)
    fprintf(stderr, "got:      %s\nexpected: %s\n", err, msg);
  ASSERT_STR_EQ(err, msg);
  ASSERT_EQ(lua_gettop(A), n);  /* stack unchanged */
  ASSERT_EQ(buf.len, 4);  /* output as it was */
  ASSERT(memcmp(buf.data, "keep", 4) == 0);
  tide_mbuf_free(&buf);
  lua_settop(A, 0);
  return 0;
}

TEST_IMPL(marshal_refused) {
  lua_State *A = marshal_new_state();
  static int dummy;
  char small[16];
  tide_mbuf buf;

  ASSERT_OK(marshal_expect_refusal(A, "return 1, {1, 2, {cb = print}}",
      "argument 2: function at [3][\"cb\"] cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return function() end",
      "argument 1: function cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {x = setmetatable({}, {})}",
      "argument 1: table with a metatable at [\"x\"] cannot be sent to "
      "another thread"));
  ASSERT_OK(marshal_expect_refusal(A,
      "return 'ok', setmetatable({}, {__metatable = false})",
      "argument 2: table with a metatable cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {io.stdout}",
      "argument 1: userdata at [1] cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A,
      "return nil, {co = coroutine.create(print)}",
      "argument 2: thread at [\"co\"] cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A,
      "return {['not an ident'] = {[2.5] = {[true] = {print}}}}",
      "argument 1: function at [<string>][<number>][<boolean>][1] cannot be "
      "sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {[100] = print}",
      "argument 1: function at [100] cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {[-5] = {_x9 = print}}",
      "argument 1: function at [-5][\"_x9\"] cannot be sent to another thread"));
  /* A refused key, and a refused value inside a key. */
  ASSERT_OK(marshal_expect_refusal(A, "return {a = {[print] = 1}}",
      "argument 1: function at [\"a\"]{key} cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {[{1, print}] = true}",
      "argument 1: function at {key}[2] cannot be sent to another thread"));
  ASSERT_OK(marshal_expect_refusal(A, "return {[{}] = {f = print}}",
      "argument 1: function at [<table>][\"f\"] cannot be sent to another "
      "thread"));
  /* Values pushed from C. */
  lua_settop(A, 0);
  lua_newtable(A);
  lua_pushlightuserdata(A, &dummy);
  lua_setfield(A, -2, "p");  /* t.p = light userdata */
  ASSERT_OK(marshal_expect_refusal(A, NULL,
      "argument 1: light userdata at [\"p\"] cannot be sent to another thread"));
  lua_settop(A, 0);
  lua_pushinteger(A, 1);
  lua_pushinteger(A, 2);
  lua_newuserdatauv(A, 8, 0);
  ASSERT_OK(marshal_expect_refusal(A, NULL,
      "argument 3: userdata cannot be sent to another thread"));

  /* A small err buffer gets a truncated, terminated message; a NULL one is
   * fine too. */
  tide_mbuf_init(&buf);
  lua_settop(A, 0);
  lua_pushcfunction(A, luaopen_base);
  ASSERT_EQ(tide_marshal_encode(A, 1, 1, &buf, small, sizeof small), -1);
  ASSERT_STR_EQ(small, "argument 1: fun");
  ASSERT_EQ(tide_marshal_encode(A, 1, 1, &buf, NULL, 0), -1);
  ASSERT_EQ(buf.len, 0);
  /* Values in the middle of the stack, and zero values. */
  lua_settop(A, 0);
  lua_pushcfunction(A, luaopen_base);
  lua_pushinteger(A, 7);
  lua_pushcfunction(A, luaopen_base);
  ASSERT_OK(tide_marshal_encode(A, 2, 1, &buf, small, sizeof small));
  ASSERT_OK(tide_marshal_encode(A, -2, 1, &buf, small, sizeof small));
  tide_mbuf_free(&buf);
  ASSERT_OK(tide_marshal_encode(A, 1, 0, &buf, small, sizeof small));
  ASSERT_EQ(tide_marshal_decode(A, buf.data, buf.len), 0);
  ASSERT_EQ(lua_gettop(A), 3);
  tide_mbuf_free(&buf);
  lua_close(A);
  return 0;
}

static const char marshal_nest_src[] =
    "function nest(n)\n"
    "  local r = {} local t = r\n"
    "  for i = 2, n do t[1] = {} t = t[1] end\n"
    "  return r\n"
    "end\n"
    "function nestkeys(n)\n"
    "  local r = {} local t = r\n"
    "  for i = 2, n do local k = {} t[k] = true t = k end\n"
    "  return r\n"
    "end\n"
    "function depth(t)\n"
    "  local d = 0 while type(t) == 'table' do d = d + 1 t = t[1] end\n"
    "  return d\n"
    "end\n";

/* Calls global fn(n) in L and encodes its result into buf. */
static int marshal_encode_call(lua_State *L, const char *fn, int n,
                               tide_mbuf *buf, char *err, size_t errlen) {
  int r;

  lua_getglobal(L, fn);
  lua_pushinteger(L, n);
  lua_call(L, 1, 1);
  r = tide_marshal_encode(L, -1, 1, buf, err, errlen);
  lua_pop(L, 1);
  return r;
}

static int marshal_starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int marshal_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Bytes for one value: `levels` tables, each the only entry of the one
 * around it. */
static int marshal_nested_bytes(tide_mbuf *buf, int levels) {
  int i;

  buf->len = 0;
  if (tide_mbuf_append(buf, "\x01\x01", 2))
    return -1;
  for (i = 1; i < levels; i++)
    if (tide_mbuf_append(buf, "\x06\x01\x00", 3))
      return -1;
  return tide_mbuf_append(buf, "\x06\x00\x00", 3);
}

TEST_IMPL(marshal_nesting_limit) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  const char *msg;

  tide_mbuf_init(&buf);
  ASSERT_OK(marshal_run(A, marshal_nest_src, 0));
  ASSERT_OK(marshal_run(B, marshal_nest_src, 0));

  /* 200 levels go through. */
  ASSERT_OK(marshal_encode_call(A, "nest", 200, &buf, err, sizeof err));
  lua_getglobal(B, "depth");
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), 1);
  lua_call(B, 1, 1);
  ASSERT_EQ(lua_tointeger(B, -1), 200);
  lua_settop(B, 0);
  buf.len = 0;
  ASSERT_OK(marshal_encode_call(A, "nestkeys", 200, &buf, err, sizeof err));

  /* 201 do not, with the path cut short. */
  ASSERT_EQ(marshal_encode_call(A, "nest", 201, &buf, err, sizeof err), -1);
  ASSERT(marshal_starts_with(err, "argument 1: table nested more than 200 "
                             "levels deep at [1][1][1][1]"));
  ASSERT(marshal_ends_with(err, "[1]... cannot be sent to another thread"));
  ASSERT_EQ(marshal_encode_call(A, "nestkeys", 201, &buf, err, sizeof err), -1);
  ASSERT(marshal_starts_with(err, "argument 1: table nested more than 200 "
                             "levels deep at {key}{key}{key}"));
  /* Far deeper than the C stack would allow. */
  ASSERT_EQ(marshal_encode_call(A, "nest", 100000, &buf, err, sizeof err), -1);
  ASSERT(marshal_starts_with(err, "argument 1: table nested more than 200"));
  ASSERT_EQ(lua_gettop(A), 0);

  /* The decoder holds the same line against crafted bytes. */
  ASSERT_OK(marshal_nested_bytes(&buf, 200));
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), 1);
  lua_settop(B, 0);
  ASSERT_OK(marshal_nested_bytes(&buf, 201));
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), -1);
  msg = lua_tostring(B, -1);
  ASSERT(msg != NULL && strstr(msg, "tables nested too deep") != NULL);
  lua_settop(B, 0);
  ASSERT_OK(marshal_nested_bytes(&buf, 100000));
  ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), -1);
  lua_settop(B, 0);

  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);
  return 0;
}

/* make(seed) returns 1 to 3 random values: scalars of every kind and edge
 * value, binary strings, and tables up to 5 levels deep with holes, table
 * keys, shared tables and cycles (a table is reused from `pool`, which holds
 * every table made so far, ancestors included). Every table has a unique id
 * at [0] so that the comparison can pair up table keys. The same seed makes
 * the same values in any state. */
static const char marshal_gen_src[] =
    "local nextid, pool\n"
    "local edge = {0.0, -0.0, 1/0, -1/0, 0/0, 1.0, 0.1, 2^53, 2^63, -2^63,\n"
    "  5e-324, 1.7976931348623157e308, math.mininteger, math.maxinteger,\n"
    "  math.mininteger + 0.0, -1, 0}\n"
    "local function rnd_string()\n"
    "  local t = {}\n"
    "  for i = 1, math.random(0, 12) do t[i] = string.char(math.random(0, 255)) end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local scalars = {\n"
    "  function() return nil end,\n"
    "  function() return true end,\n"
    "  function() return false end,\n"
    "  function() return math.random(-1000, 1000) end,\n"
    "  function() return math.random(0) end,\n"
    "  function() return math.random() * 1e6 - 5e5 end,\n"
    "  function() return edge[math.random(#edge)] end,\n"
    "  rnd_string,\n"
    "  function() return ('k'):rep(math.random(1, 3)) end,\n"
    "}\n"
    "local function scalar() return scalars[math.random(#scalars)]() end\n"
    "local gen_value\n"
    "local function gen_table(depth)\n"
    "  nextid = nextid + 1\n"
    "  local t = {[0] = nextid}\n"
    "  pool[#pool + 1] = t\n"
    "  for i = 1, math.random(0, 5) do t[i] = gen_value(depth - 1) end\n"
    "  for _ = 1, math.random(0, 4) do\n"
    "    local k\n"
    "    if depth > 1 and math.random(5) == 1 then\n"
    "      if math.random(2) == 1 then k = pool[math.random(#pool)]\n"
    "      else k = gen_table(depth - 1) end\n"
    "    else\n"
    "      k = scalar()\n"
    "      if k ~= k or k == 0 then k = nil end\n"
    "    end\n"
    "    if k ~= nil then t[k] = gen_value(depth - 1) end\n"
    "  end\n"
    "  return t\n"
    "end\n"
    "function gen_value(depth)\n"
    "  local r = math.random(10)\n"
    "  if depth > 0 and r <= 4 then\n"
    "    if r == 1 and #pool > 0 then return pool[math.random(#pool)] end\n"
    "    return gen_table(depth)\n"
    "  end\n"
    "  return scalar()\n"
    "end\n"
    "function make(seed)\n"
    "  math.randomseed(seed)\n"
    "  nextid, pool = 0, {}\n"
    "  local out, n = {}, math.random(1, 3)\n"
    "  for i = 1, n do out[i] = gen_value(math.random(0, 5)) end\n"
    "  return table.unpack(out, 1, n)\n"
    "end\n";

/* same(n, a1..an, b1..bn): whether the a's and the b's are equal values of
 * the same shape: integers and floats apart, -0.0 apart from 0.0, nan equal
 * to nan, and the tables in a one-to-one match (m1, m2) that spans all the
 * values, so a shared table must decode to one shared table, a cycle to a
 * cycle. */
static const char marshal_same_src[] =
    "local function eq(a, b, m1, m2)\n"
    "  if type(a) ~= type(b) or math.type(a) ~= math.type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if a ~= a then return b ~= b end\n"
    "    if a == 0 and math.type(a) == 'float' then return 1/a == 1/b end\n"
    "    return a == b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if m1[a] ~= nil or m2[b] ~= nil then return m1[a] == b and m2[b] == a end\n"
    "  m1[a], m2[b] = b, a\n"
    "  local bykey, nb, na = {}, 0, 0\n"
    "  for k in pairs(b) do\n"
    "    nb = nb + 1\n"
    "    if type(k) == 'table' then bykey[k[0]] = k end\n"
    "  end\n"
    "  for k, v in pairs(a) do\n"
    "    na = na + 1\n"
    "    local kb = k\n"
    "    if type(k) == 'table' then\n"
    "      kb = bykey[k[0]]\n"
    "      if kb == nil or not eq(k, kb, m1, m2) then return false end\n"
    "    end\n"
    "    if not eq(v, rawget(b, kb), m1, m2) then return false end\n"
    "  end\n"
    "  return na == nb\n"
    "end\n"
    "function same(n, ...)\n"
    "  local v = table.pack(...)\n"
    "  local m1, m2 = {}, {}\n"
    "  for i = 1, n do\n"
    "    if not eq(v[i], v[n + i], m1, m2) then return false, i end\n"
    "  end\n"
    "  return true\n"
    "end\n";

TEST_IMPL(marshal_random_roundtrip) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  int i, n;
  size_t total = 0;

  tide_mbuf_init(&buf);
  ASSERT_OK(marshal_run(A, marshal_gen_src, 0));
  ASSERT_OK(marshal_run(B, marshal_gen_src, 0));
  ASSERT_OK(marshal_run(B, marshal_same_src, 0));
  for (i = 1; i <= 3000; i++) {
    lua_settop(A, 0);
    lua_getglobal(A, "make");
    lua_pushinteger(A, i);
    lua_call(A, 1, LUA_MULTRET);
    n = lua_gettop(A);
    buf.len = 0;
    if (tide_marshal_encode(A, 1, n, &buf, err, sizeof err) != 0)
      fprintf(stderr, "seed %d: %s\n", i, err);
    ASSERT_EQ(lua_gettop(A), n);
    total += buf.len;

    lua_settop(B, 0);
    lua_getglobal(B, "same");
    lua_pushinteger(B, n);
    lua_getglobal(B, "make");  /* the expected values, made in B */
    lua_pushinteger(B, i);
    lua_call(B, 1, LUA_MULTRET);
    ASSERT_EQ(lua_gettop(B), 2 + n);
    ASSERT_EQ(tide_marshal_decode(B, buf.data, buf.len), n);
    if (lua_pcall(B, 2 * n + 1, 2, 0) != LUA_OK)
      fprintf(stderr, "seed %d: %s\n", i, lua_tostring(B, -1));
    else if (!lua_toboolean(B, -2))
      fprintf(stderr, "seed %d: value %d differs\n", i, (int)lua_tointeger(B, -1));
    ASSERT(lua_gettop(B) == 2 && lua_toboolean(B, -2));  /* not an error */
  }
  ASSERT(total > 100000);  /* the values were not all trivial */
  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);
  return 0;
}

static uint64_t marshal_rng = 0x9E3779B97F4A7C15u;

static uint64_t marshal_random(void) {  /* xorshift64 */
  marshal_rng ^= marshal_rng << 13;
  marshal_rng ^= marshal_rng >> 7;
  marshal_rng ^= marshal_rng << 17;
  return marshal_rng;
}

/* Decodes a private malloc'd copy of exactly len bytes (so that reading
 * past the end is caught by ASan). Returns the count or -1, and checks that
 * the stack holds what it says. */
static int marshal_decode_copy(lua_State *L, const char *data, size_t len,
                               int *result) {
  char *copy = malloc(len ? len : 1);
  int r;

  ASSERT(copy != NULL);
  if (len > 0)
    memcpy(copy, data, len);
  lua_settop(L, 0);
  r = tide_marshal_decode(L, copy, len);
  free(copy);
  if (r == -1)
    ASSERT(lua_gettop(L) == 1 && lua_type(L, -1) == LUA_TSTRING);
  else
    ASSERT(r >= 0 && lua_gettop(L) == r);
  lua_settop(L, 0);
  *result = r;
  return 0;
}

TEST_IMPL(marshal_corrupt) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf enc[21];
  char err[256];
  char *bytes;
  size_t len, j;
  int i, k, r, accepted = 0;

  ASSERT_OK(marshal_run(A, marshal_gen_src, 0));
  ASSERT_OK(marshal_run(A,
      "local t = {1, -0.0, 0/0, math.mininteger, 'bin\\0ary', {x = {y = {}}},"
      "  [true] = false, [2.5] = 'f'}\n"
      "t.self = t t[t] = {t}\n"
      "return t, 'tail', 42.5, nil", LUA_MULTRET));
  tide_mbuf_init(&enc[0]);
  ASSERT_OK(tide_marshal_encode(A, 1, lua_gettop(A), &enc[0], err, sizeof err));
  for (i = 1; i < 21; i++) {
    lua_settop(A, 0);
    lua_getglobal(A, "make");
    lua_pushinteger(A, 7000 + i);
    lua_call(A, 1, LUA_MULTRET);
    tide_mbuf_init(&enc[i]);
    ASSERT_OK(tide_marshal_encode(A, 1, lua_gettop(A), &enc[i], err, sizeof err));
  }

  /* Every proper prefix is refused; the whole is accepted. */
  for (i = 0; i < 21; i++) {
    for (j = 0; j < enc[i].len; j++) {
      ASSERT_OK(marshal_decode_copy(B, enc[i].data, j, &r));
      ASSERT_EQ(r, -1);
    }
    ASSERT_OK(marshal_decode_copy(B, enc[i].data, enc[i].len, &r));
    ASSERT(r >= 1);
  }

  /* Random flips of one to three bytes: an error or some values, never a
   * crash or a read out of bounds. */
  for (k = 0; k < 6000; k++) {
    i = k % 3 == 0 ? 0 : (int)(marshal_random() % 21);
    len = enc[i].len;
    bytes = malloc(len);
    ASSERT(bytes != NULL);
    memcpy(bytes, enc[i].data, len);
    for (j = 1 + marshal_random() % 3; j > 0; j--)
      bytes[marshal_random() % len] ^= (char)(1 + marshal_random() % 255);
    ASSERT_OK(marshal_decode_copy(B, bytes, len, &r));
    accepted += r >= 0;
    free(bytes);
    if (k % 500 == 0)
      lua_gc(B, LUA_GCCOLLECT);
  }

  /* Random short garbage after a valid header. */
  bytes = malloc(48);
  ASSERT(bytes != NULL);
  for (k = 0; k < 3000; k++) {
    len = 2 + marshal_random() % 46;
    for (j = 0; j < len; j++)
      bytes[j] = (char)(marshal_random() % 9);  /* mostly tags and small sizes */
    bytes[0] = 1;
    bytes[1] = (char)(marshal_random() % 3);
    ASSERT_OK(marshal_decode_copy(B, bytes, len, &r));
    accepted += r >= 0;
  }
  free(bytes);
  ASSERT(accepted > 0);  /* some corruptions still decode, as they may */

  for (i = 0; i < 21; i++)
    tide_mbuf_free(&enc[i]);
  lua_close(A);
  lua_close(B);
  return 0;
}

/* Decodes len bytes and expects -1 with a message containing what. */
static int marshal_expect_malformed(lua_State *L, const char *data,
                                    size_t len, const char *what) {
  const char *msg;

  lua_settop(L, 0);
  ASSERT_EQ(tide_marshal_decode(L, data, len), -1);
  ASSERT_EQ(lua_gettop(L), 1);
  msg = lua_tostring(L, -1);
  if (msg == NULL || strstr(msg, what) == NULL)
    fprintf(stderr, "got: %s\nexpected: %s\n", msg ? msg : "(null)", what);
  ASSERT(msg != NULL && strstr(msg, what) != NULL);
  lua_settop(L, 0);
  return 0;
}

#define MALFORMED(L, lit, what) \
  ASSERT_OK(marshal_expect_malformed((L), (lit), sizeof(lit) - 1, (what)))

TEST_IMPL(marshal_malformed_messages) {
  lua_State *L = marshal_new_state();

  ASSERT_OK(marshal_expect_malformed(L, NULL, 0,
      "malformed marshal data: truncated data at byte 0"));
  MALFORMED(L, "\x02\x00", "unknown format version at byte 0");
  MALFORMED(L, "\x01\x01\x00\x00", "trailing bytes at byte 3");
  MALFORMED(L, "\x01\x05\x00", "more values than data");
  MALFORMED(L, "\x01\x01\x09", "unknown tag at byte 2");
  MALFORMED(L, "\x01\x01\x07\x01", "reference to an unknown table");
  MALFORMED(L, "\x01\x01\x06\x00\x01\x07\x00\x00", "reference to an unknown table");
  MALFORMED(L, "\x01\x01\x06\x00\x01\x00\x01", "nil table key");
  MALFORMED(L, "\x01\x01\x06\x00\x01\x04\x00\x00\x00\x00\x00\x00\xf8\x7f\x01",
            "NaN table key");
  MALFORMED(L, "\x01\x01\x05\x05" "ab", "truncated string");
  MALFORMED(L, "\x01\x01\x04\x00\x00", "truncated float");
  MALFORMED(L, "\x01\x01\x06\x7f\x00", "table larger than the data");
  MALFORMED(L, "\x01\x01\x06\x00\x7f", "table larger than the data");
  MALFORMED(L, "\x01\x01\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
            "integer out of range");
  MALFORMED(L, "\x01\x01\x03\x80", "truncated data");
  /* The largest uvar is fine: zigzag 2^64-1 is mininteger. */
  lua_settop(L, 0);
  ASSERT_EQ(tide_marshal_decode(L, "\x01\x01\x03\xff\xff\xff\xff\xff\xff\xff"
                                   "\xff\xff\x01", 13), 1);
  ASSERT(lua_isinteger(L, 1) && lua_tointeger(L, 1) == LUA_MININTEGER);
  /* A reference to the table being filled is a cycle, not an error. */
  lua_settop(L, 0);
  ASSERT_EQ(tide_marshal_decode(L, "\x01\x01\x06\x01\x00\x07\x01", 7), 1);
  lua_rawgeti(L, 1, 1);
  ASSERT(lua_rawequal(L, 1, 2));
  lua_close(L);
  return 0;
}

static int marshal_cfunc(lua_State *L) {
  (void)L;
  return 0;
}

static int marshal_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return tide_mbuf_append((tide_mbuf *)ud, p, sz);
}

/* Loads src in A under chunkname, runs it to get a function, dumps that
 * function into buf. Returns what tide_marshal_dump_function returned. */
static int marshal_dump_src(lua_State *A, const char *src,
                            const char *chunkname, tide_mbuf *buf,
                            char *err, size_t errlen) {
  int r;

  if (luaL_loadbuffer(A, src, strlen(src), chunkname) != LUA_OK ||
      lua_pcall(A, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "lua error: %s\n", lua_tostring(A, -1));
    lua_pop(A, 1);
    return -2;
  }
  r = tide_marshal_dump_function(A, -1, buf, err, errlen);
  lua_pop(A, 1);  /* the function */
  return r;
}

TEST_IMPL(marshal_function_dump) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  const char *name;

  tide_mbuf_init(&buf);
  /* A function that calls a global only B has. */
  ASSERT_OK(marshal_dump_src(A, "return function(a, b)\n"
                                "  return double(a) + b\n"
                                "end", "=job", &buf, err, sizeof err));
  ASSERT_EQ(lua_gettop(A), 0);
  ASSERT_OK(marshal_run(B, "function double(x) return x * 2 end", 0));
  ASSERT_OK(tide_marshal_load_function(B, buf.data, buf.len, "=job"));
  ASSERT_EQ(lua_gettop(B), 1);
  name = lua_getupvalue(B, 1, 1);
  ASSERT(name != NULL);
  ASSERT_STR_EQ(name, "_ENV");
  lua_rawgeti(B, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  ASSERT(lua_rawequal(B, -1, -2));  /* _ENV is B's global table */
  lua_pop(B, 2);
  lua_pushinteger(B, 20);
  lua_pushinteger(B, 2);
  ASSERT_OK(lua_pcall(B, 2, 1, 0));
  ASSERT_EQ(lua_tointeger(B, -1), 42);
  lua_settop(B, 0);

  /* Line numbers survive for tracebacks. */
  buf.len = 0;
  ASSERT_OK(marshal_dump_src(A, "return function()\n"
                                "  local x = 1\n"
                                "  error('boom')\n"
                                "end", "@job.lua", &buf, err, sizeof err));
  ASSERT_OK(tide_marshal_load_function(B, buf.data, buf.len, NULL));
  ASSERT_EQ(lua_pcall(B, 0, 0, 0), LUA_ERRRUN);
  ASSERT_STR_EQ(lua_tostring(B, -1), "job.lua:3: boom");
  lua_settop(B, 0);

  /* No upvalues at all, and closures made inside the function. */
  buf.len = 0;
  ASSERT_OK(marshal_dump_src(A, "return function(n)\n"
                                "  local acc = 0\n"
                                "  local function add(x) acc = acc + x end\n"
                                "  for i = 1, n do add(i) end\n"
                                "  return acc\n"
                                "end", "=sum", &buf, err, sizeof err));
  ASSERT_OK(tide_marshal_load_function(B, buf.data, buf.len, "=sum"));
  ASSERT(lua_getupvalue(B, -1, 1) == NULL);
  lua_pushinteger(B, 10);
  ASSERT_OK(lua_pcall(B, 1, 1, 0));
  ASSERT_EQ(lua_tointeger(B, -1), 55);
  lua_settop(B, 0);

  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);
  return 0;
}

TEST_IMPL(marshal_function_refused) {
  lua_State *A = marshal_new_state();
  tide_mbuf buf;
  char err[256];

  tide_mbuf_init(&buf);
  ASSERT_OK(tide_mbuf_append(&buf, "keep", 4));
  ASSERT_EQ(marshal_dump_src(A, "local counter = 0\n"
                                "return function()\n"
                                "  counter = counter + 1\n"
                                "  return counter\n"
                                "end", "=c", &buf, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "function has upvalue 'counter'; functions sent to a "
                     "worker can only use globals and their arguments");
  /* An upvalue after _ENV is named too. */
  ASSERT_EQ(marshal_dump_src(A, "local n = 1\n"
                                "return function() print(n) end",
                                "=n", &buf, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "function has upvalue 'n'; functions sent to a "
                     "worker can only use globals and their arguments");
  lua_pushcfunction(A, marshal_cfunc);
  ASSERT_EQ(tide_marshal_dump_function(A, -1, &buf, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "function is a C function; functions sent to a worker "
                     "must be Lua functions");
  lua_getglobal(A, "print");
  ASSERT_EQ(tide_marshal_dump_function(A, -1, &buf, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "function is a C function; functions sent to a worker "
                     "must be Lua functions");
  lua_pushinteger(A, 3);
  ASSERT_EQ(tide_marshal_dump_function(A, -1, &buf, err, sizeof err), -1);
  ASSERT_STR_EQ(err, "a number cannot be sent to a worker as a function");
  ASSERT_EQ(lua_gettop(A), 3);
  ASSERT_EQ(buf.len, 4);
  tide_mbuf_free(&buf);
  lua_close(A);
  return 0;
}

TEST_IMPL(marshal_function_load_checks) {
  lua_State *A = marshal_new_state(), *B = marshal_new_state();
  tide_mbuf buf;
  char err[256];
  char *copy;
  size_t j;

  tide_mbuf_init(&buf);
  ASSERT_OK(marshal_dump_src(A, "return function(a) return tostring(a) end",
                             "=t", &buf, err, sizeof err));
  /* Truncated bytecode is refused, never read past its end. */
  for (j = 0; j < buf.len; j++) {
    copy = malloc(j ? j : 1);
    ASSERT(copy != NULL);
    memcpy(copy, buf.data, j);
    ASSERT_EQ(tide_marshal_load_function(B, copy, j, "=t"), -1);
    free(copy);
    ASSERT_EQ(lua_gettop(B), 1);
    ASSERT_EQ(lua_type(B, -1), LUA_TSTRING);
    lua_settop(B, 0);
  }
  ASSERT_OK(tide_marshal_load_function(B, buf.data, buf.len, "=t"));
  lua_settop(B, 0);
  /* Source text is refused (mode "b"). */
  ASSERT_EQ(tide_marshal_load_function(B, "return 1", 8, "=src"), -1);
  ASSERT(strstr(lua_tostring(B, -1), "text chunk") != NULL);
  lua_settop(B, 0);
  /* Bytecode with another upvalue (dumped behind the dumper's back) is
   * refused on load too, instead of getting _G in that upvalue. */
  buf.len = 0;
  ASSERT_OK(marshal_run(A, "local counter = 0\n"
                           "return function() counter = counter + 1 end", 1));
  ASSERT_OK(lua_dump(A, marshal_writer, &buf, 0));
  lua_settop(A, 0);
  ASSERT_EQ(tide_marshal_load_function(B, buf.data, buf.len, "=c"), -1);
  ASSERT_EQ(lua_gettop(B), 1);
  ASSERT_STR_EQ(lua_tostring(B, -1), "function has upvalue 'counter'; "
                "functions sent to a worker can only use globals and their "
                "arguments");
  tide_mbuf_free(&buf);
  lua_close(A);
  lua_close(B);
  return 0;
}
