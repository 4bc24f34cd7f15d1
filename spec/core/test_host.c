/* Tests of bindings/host.c, the Lua side of the embedding API: the
 * runtime's Lua state and its options, attaching a host's own state,
 * chunks run as tasks with their results and errors as C values, awaiting
 * Lua promises from C, plain and async host functions (settled later, from
 * another thread, at once, failed, raising, rejected, cancelled), and the
 * loop-thread checks. Each test ends by checking that the loop closes
 * cleanly after tide_rt_free.
 * tests: host_state host_state_bad_args host_attach host_free_with_connections
 *        host_dostring_values
 *        host_dostring_awaits host_chunk_errors host_unhandled_without_done
 *        host_lua_await host_register host_async_later host_async_thread
 *        host_async_at_once host_async_fails host_async_raises
 *        host_async_rejects host_async_cancel_hook host_async_cancel_no_hook
 *        host_wrong_thread */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "rt_helpers.h"

/* What a done callback saw (values copied out as text). */
typedef struct {
  int calls;
  tide_state state;
  int n;
  tide_type types[8];
  char text[8][200];
  int64_t ints[8];
  double nums[8];
  size_t lens[8];
} outcome;

static void record_cb(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  outcome *o = data;
  int i;
  (void)rt;
  o->calls++;
  o->state = state;
  o->n = n;
  for (i = 0; i < n && i < 8; i++) {
    o->types[i] = v[i].type;
    if (v[i].type == TIDE_BYTES) {
      size_t len = v[i].u.bytes.len < 199 ? v[i].u.bytes.len : 199;
      memcpy(o->text[i], v[i].u.bytes.data, len);
      o->text[i][len] = '\0';
      o->lens[i] = v[i].u.bytes.len;
    } else if (v[i].type == TIDE_INTEGER) {
      o->ints[i] = v[i].u.integer;
    } else if (v[i].type == TIDE_NUMBER) {
      o->nums[i] = v[i].u.number;
    } else if (v[i].type == TIDE_BOOLEAN) {
      o->ints[i] = v[i].u.boolean;
    }
  }
}

/* Runs `src` in the runtime's state and the loop until it is done. */
static int run_chunk(tide_rt *rt, const char *src, outcome *o) {
  memset(o, 0, sizeof *o);
  if (tide_dostring(rt, src, record_cb, o) != 0) return -1;
  if (o->calls != 0) return -2;  /* never inside the call */
  tide_rt_run(rt, TIDE_RUN_DEFAULT);
  return o->calls == 1 ? 0 : -3;
}

TEST_IMPL(host_state) {
  uv_loop_t loop;
  tide_rt *rt;
  tide_options opt;
  lua_State *L, *L2;
  outcome o;
  memset(&opt, 0, sizeof opt);
  ASSERT_OK(uv_loop_init(&loop));
  opt.loop = &loop;
  opt.lua_path = "/nowhere/?.lua;";
  opt.lua_cpath = "/nowhere/?.so";
  ASSERT_OK(tide_rt_new(&opt, &rt));
  ASSERT_OK(tide_lua_state(rt, &L));
  ASSERT_OK(tide_lua_state(rt, &L2));
  ASSERT(L == L2);                          /* one state per runtime */
  ASSERT(tide_lua_rt(L) == rt);
  ASSERT(tide_rt_binding(rt) != NULL);
  ASSERT_OK(run_chunk(rt,
    "assert(type(tide) == 'table' and require('tide') == tide)\n"
    "assert(package.path:find('/nowhere/?.lua;', 1, true) == 1)\n"
    "assert(package.cpath:find('/nowhere/?.so;', 1, true) == 1)\n"
    "assert(string and table and io and os, 'standard libraries')\n"
    "assert(not pcall(tide.run, function() end), 'the loop is the host\\'s')\n"
    "return tide.version", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_STR_EQ(o.text[0], TIDE_VERSION_STRING);
  RT_CLOSE(&loop, rt);                      /* closes the state too */
  return 0;
}

TEST_IMPL(host_state_bad_args) {
  uv_loop_t loop;
  tide_rt *rt;
  lua_State *L = (lua_State *)1;
  outcome o;
  RT_OPEN(&loop, rt);
  ASSERT_EQ(tide_lua_state(NULL, &L), UV_EINVAL);
  ASSERT(L == NULL);
  ASSERT_EQ(tide_lua_state(rt, NULL), UV_EINVAL);
  ASSERT_EQ(tide_lua_attach(NULL, NULL), UV_EINVAL);
  ASSERT(tide_lua_rt(NULL) == NULL);
  ASSERT_EQ(tide_dofile(NULL, "x.lua", NULL, NULL), UV_EINVAL);
  ASSERT_EQ(tide_dofile(rt, NULL, NULL, NULL), UV_EINVAL);
  ASSERT_EQ(tide_dostring(rt, NULL, record_cb, &o), UV_EINVAL);
  ASSERT_EQ(tide_lua_await(NULL, 1, record_cb, &o), UV_EINVAL);
  ASSERT_EQ(tide_lua_register(rt, NULL, NULL, luaopen_base), UV_EINVAL);
  ASSERT_EQ(tide_lua_register(rt, NULL, "f", NULL), UV_EINVAL);
  ASSERT_EQ(tide_lua_register_async(NULL, NULL, "f", NULL, NULL), UV_EINVAL);
  ASSERT_EQ(tide_lua_register_async(rt, "m", "f", NULL, NULL), UV_EINVAL);
  ASSERT(tide_rt_binding(rt) == NULL);      /* none of this made a state */
  ASSERT_OK(tide_lua_state(rt, &L));
  ASSERT_EQ(tide_lua_await(L, 1, record_cb, &o), UV_EINVAL);  /* empty stack */
  lua_pushinteger(L, 3);
  ASSERT_EQ(tide_lua_await(L, -1, record_cb, &o), UV_EINVAL); /* not a promise */
  ASSERT_EQ(tide_lua_await(L, -1, NULL, NULL), UV_EINVAL);
  lua_pop(L, 1);
  /* a plain state without tide */
  {
    lua_State *plain = luaL_newstate();
    ASSERT(tide_lua_rt(plain) == NULL);
    ASSERT_EQ(tide_lua_await(plain, 1, record_cb, &o), UV_EINVAL);
    lua_close(plain);
  }
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_attach) {
  uv_loop_t loop;
  tide_rt *rt, *other;
  lua_State *L = luaL_newstate(), *got;
  outcome o;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_rt_new(NULL, &other));
  luaL_openlibs(L);
  ASSERT_OK(tide_lua_attach(rt, L));
  ASSERT_EQ(tide_lua_attach(rt, L), UV_EBUSY);      /* rt has a state */
  ASSERT_EQ(tide_lua_attach(other, L), UV_EBUSY);   /* L has a runtime */
  ASSERT(tide_lua_rt(L) == rt);
  ASSERT_OK(tide_lua_state(rt, &got));
  ASSERT(got == L);                                  /* the host's state */
  ASSERT_OK(run_chunk(rt, "tide.sleep(0.01):await() return 1 + 1", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.ints[0], 2);
  /* the host's own code may drive it with tide.run, too */
  ASSERT_OK(luaL_dostring(L, "return tide.run(function() tide.sleep(0):await() return 'ran' end)"));
  ASSERT_STR_EQ(lua_tostring(L, -1), "ran");
  lua_close(L);                                      /* the host's: first */
  ASSERT(tide_rt_binding(rt) == NULL);
  tide_rt_free(other);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_free_with_connections) {
  uv_loop_t loop;
  tide_rt *rt;
  outcome o;
  RT_OPEN(&loop, rt);
  memset(&o, 0, sizeof o);
  /* a server, a client and an accepted connection stay open at free: the
   * state closes them, and the runtime finishes their closes on the
   * host's loop, which then closes cleanly */
  ASSERT_OK(tide_dostring(rt,
    "local got = tide.promise()\n"
    "server = tide.tcp.serve({port = 0}, function(conn)\n"
    "  got:resolve(conn:read_line():await())\n"
    "  tide.sleep(60):await()\n"
    "end)\n"
    "client = tide.tcp.connect('127.0.0.1', server.port):await()\n"
    "client:write('hi\\n'):await()\n"
    "return got:await()", record_cb, &o));
  while (o.calls == 0) ASSERT(tide_rt_run(rt, TIDE_RUN_ONCE) != 0);
  ASSERT_STR_EQ(o.text[0], "hi");
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_dostring_values) {
  uv_loop_t loop;
  tide_rt *rt;
  outcome o;
  RT_OPEN(&loop, rt);
  ASSERT_OK(run_chunk(rt,
    "return nil, true, -7, 2.5, 'a\\0b', setmetatable({}, {__tostring = function() return 'T' end}),"
    " tide.error('EFOO', 'went wrong'), 3.0", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.n, 8);
  ASSERT_EQ(o.types[0], TIDE_NIL);
  ASSERT_EQ(o.types[1], TIDE_BOOLEAN);
  ASSERT_EQ(o.ints[1], 1);
  ASSERT_EQ(o.types[2], TIDE_INTEGER);
  ASSERT_EQ(o.ints[2], -7);
  ASSERT_EQ(o.types[3], TIDE_NUMBER);
  ASSERT(o.nums[3] == 2.5);
  ASSERT_EQ(o.types[4], TIDE_BYTES);
  ASSERT_EQ(o.lens[4], 3);                      /* binary-safe */
  ASSERT_STR_EQ(o.text[5], "T");                /* tables: tostring */
  ASSERT_STR_EQ(o.text[6], "EFOO: went wrong");
  ASSERT_EQ(o.types[7], TIDE_NUMBER);           /* a float stays a float */
  ASSERT_OK(run_chunk(rt, "return", &o));
  ASSERT_EQ(o.n, 0);
  ASSERT_OK(run_chunk(rt, "return {}", &o));
  ASSERT(strncmp(o.text[0], "table: ", 7) == 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_dostring_awaits) {
  uv_loop_t loop;
  tide_rt *rt;
  outcome a, b;
  uint64_t start = ms_now();
  RT_OPEN(&loop, rt);
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  /* two chunks run side by side as tasks */
  ASSERT_OK(tide_dostring(rt, "tide.sleep(0.05):await() return 'slow'", record_cb, &a));
  ASSERT_OK(tide_dostring(rt, "tide.sleep(0.01):await() return 'fast'", record_cb, &b));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_STR_EQ(a.text[0], "slow");
  ASSERT_STR_EQ(b.text[0], "fast");
  ASSERT(ms_now() - start >= 49);
  ASSERT(ms_now() - start < 1000);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_chunk_errors) {
  uv_loop_t loop;
  tide_rt *rt;
  outcome o;
  RT_OPEN(&loop, rt);
  /* a runtime error: message and traceback */
  ASSERT_OK(run_chunk(rt, "local function f() error('boom') end f()", &o));
  ASSERT_EQ(o.state, TIDE_REJECTED);
  ASSERT_EQ(o.n, 2);
  ASSERT(strstr(o.text[0], "boom") != NULL);
  ASSERT(strstr(o.text[1], "traceback") != NULL);
  /* an error object: its one readable line */
  ASSERT_OK(run_chunk(rt, "error(tide.error('ETIMEDOUT', 'too slow'))", &o));
  ASSERT_STR_EQ(o.text[0], "ETIMEDOUT: too slow");
  /* a syntax error: a task that failed with the loader's message */
  ASSERT_OK(run_chunk(rt, "return +", &o));
  ASSERT_EQ(o.state, TIDE_REJECTED);
  ASSERT(strstr(o.text[0], "unexpected symbol") != NULL);
  /* a missing file */
  memset(&o, 0, sizeof o);
  ASSERT_OK(tide_dofile(rt, "/nonexistent/script.lua", record_cb, &o));
  ASSERT_EQ(o.calls, 0);
  tide_rt_run(rt, TIDE_RUN_DEFAULT);
  ASSERT_EQ(o.calls, 1);
  ASSERT_EQ(o.state, TIDE_REJECTED);
  ASSERT(strstr(o.text[0], "cannot open") != NULL);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);    /* all handled by done */
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_unhandled_without_done) {
  uv_loop_t loop;
  tide_rt *rt;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_dostring(rt, "error('nobody listens')", NULL, NULL));
  ASSERT_OK(tide_dostring(rt, "return 1", NULL, NULL));
  ASSERT_OK(tide_dofile(rt, "/nonexistent.lua", NULL, NULL));
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 2);    /* reported on stderr */
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_lua_await) {
  uv_loop_t loop;
  tide_rt *rt;
  lua_State *L;
  outcome o, e, s;
  int top;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_lua_state(rt, &L));
  memset(&o, 0, sizeof o);
  memset(&e, 0, sizeof e);
  memset(&s, 0, sizeof s);
  top = lua_gettop(L);
  ASSERT_OK(luaL_dostring(L, "P = tide.promise() return P, tide.rejected(tide.error('EX', 'x')), tide.resolved(5)"));
  ASSERT_OK(tide_lua_await(L, -3, record_cb, &o));
  ASSERT_OK(tide_lua_await(L, -2, record_cb, &e));
  ASSERT_OK(tide_lua_await(L, -1, record_cb, &s));
  ASSERT_EQ(lua_gettop(L), top + 3);            /* the stack as it was */
  lua_settop(L, top);
  ASSERT_EQ(e.calls + s.calls, 0);              /* settled: still never inside */
  tide_rt_drain(rt);
  ASSERT_EQ(s.calls, 1);
  ASSERT_EQ(s.ints[0], 5);
  ASSERT_EQ(e.calls, 1);
  ASSERT_EQ(e.state, TIDE_REJECTED);
  ASSERT_STR_EQ(e.text[0], "EX: x");
  ASSERT_EQ(o.calls, 0);                        /* still pending */
  lua_gc(L, LUA_GCCOLLECT);                     /* the awaiter survives a collection */
  ASSERT_OK(luaL_dostring(L, "P:resolve('late', 1) P = nil"));
  lua_gc(L, LUA_GCCOLLECT);
  tide_rt_run(rt, TIDE_RUN_DEFAULT);
  ASSERT_EQ(o.calls, 1);
  ASSERT_EQ(o.n, 2);
  ASSERT_STR_EQ(o.text[0], "late");
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);    /* the awaited rejection was handled */
  RT_CLOSE(&loop, rt);
  return 0;
}

static int add_fn(lua_State *L) {
  lua_Integer a = luaL_checkinteger(L, 1), b = luaL_checkinteger(L, 2);
  lua_pushinteger(L, a + b);
  lua_pushboolean(L, tide_lua_rt(L) != NULL);
  return 2;
}

TEST_IMPL(host_register) {
  uv_loop_t loop;
  tide_rt *rt;
  lua_State *L;
  outcome o;
  RT_OPEN(&loop, rt);
  ASSERT_OK(tide_lua_register(rt, NULL, "add", add_fn));
  ASSERT_OK(tide_lua_register(rt, "app", "add", add_fn));
  ASSERT_OK(tide_lua_register(rt, "app", "add2", add_fn));
  ASSERT_OK(run_chunk(rt,
    "local app = require 'app'\n"
    "assert(app.add2 == app.add2)\n"
    "local ok, err = pcall(add, 1, 'x')\n"
    "assert(not ok and err:find('bad argument #2'), err)\n"
    "local s, has_rt = app.add(2, 3)\n"
    "return add(s, 10), has_rt", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.ints[0], 15);
  ASSERT_EQ(o.ints[1], 1);
  /* a module slot that is not a table is refused */
  ASSERT_OK(tide_lua_state(rt, &L));
  ASSERT_OK(luaL_dostring(L, "package.loaded.notatable = true"));
  ASSERT_EQ(tide_lua_register(rt, "notatable", "f", add_fn), UV_EINVAL);
  RT_CLOSE(&loop, rt);
  return 0;
}

/* ------------------------------------------------------ async functions */

typedef struct {
  tide_promise *p;      /* the call to settle later */
  int calls;
  int mode;             /* what fetch does: see fetch_fn */
  int hook_calls;
  lua_Integer arg;
} host_app;

static void app_cancel_hook(tide_promise *p, void *data) {
  (void)p;
  ((host_app *)data)->hook_calls++;
}

enum { KEEP, AT_ONCE, FAIL, RAISE, HOOK };

/* fetch(n) -> promise: keeps p for later, settles at once, fails, or
 * raises, by app->mode. */
static int fetch_fn(tide_rt *rt, lua_State *L, tide_promise *p, void *data) {
  host_app *app = data;
  tide_value v[2];
  (void)rt;
  app->arg = luaL_checkinteger(L, 1);
  if (lua_gettop(L) != 1) return luaL_error(L, "fetch: one argument");
  app->calls++;
  switch (app->mode) {
    case AT_ONCE:
      v[0] = tide_integer(app->arg * 2);
      v[1] = tide_string("now");
      return tide_promise_resolve(p, v, 2);
    case FAIL:
      return UV_ENOENT;
    case RAISE:
      return luaL_error(L, "fetch: refused %d", (int)app->arg);
    case HOOK:
      tide_promise_on_cancel(p, app_cancel_hook, app);
      /* fall through */
    default:
      app->p = p;
      return 0;
  }
}

typedef struct {
  tide_job job;
  host_app *app;
} settle_later;

static void settle_later_cb(tide_rt *rt, tide_job *job) {
  host_app *app = ((settle_later *)job)->app;
  tide_value v[3] = {tide_integer(app->arg + 1), tide_string("bytes\0x"), tide_boolean(1)};
  (void)rt;
  v[1].u.bytes.len = 7;
  tide_promise_resolve(app->p, v, 3);
}

TEST_IMPL(host_async_later) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  settle_later sl;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  memset(&o, 0, sizeof o);
  ASSERT_OK(tide_lua_register_async(rt, "app", "fetch", fetch_fn, &app));
  ASSERT_OK(tide_dostring(rt,
    "local p = require('app').fetch(41)\n"
    "assert(tide.is_promise(p) and p:state() == 'pending')\n"
    "assert(not pcall(p.resolve, p, 'from Lua') or p:state() == 'pending')\n"
    "collectgarbage()\n"
    "return p:await()", record_cb, &o));
  /* the call keeps the loop alive: NOWAIT turns leave it pending */
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);
  ASSERT_EQ(app.calls, 1);
  ASSERT(app.p != NULL);
  ASSERT_EQ(o.calls, 0);
  sl.app = &app;
  tide_job_queue(rt, &sl.job, settle_later_cb);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(o.calls, 1);
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.n, 3);
  ASSERT_EQ(o.ints[0], 42);
  ASSERT_EQ(o.lens[1], 7);
  ASSERT_EQ(o.types[2], TIDE_BOOLEAN);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_rt *rt;
  host_app *app;
} worker_arg;

static void resolve_post(tide_rt *rt, void *data) {
  host_app *app = data;
  tide_value v = tide_integer(app->arg * 10);
  (void)rt;
  tide_promise_resolve(app->p, &v, 1);
}

static void worker_thread(void *arg) {
  worker_arg *w = arg;
  uv_sleep(30);                       /* "work" */
  tide_post(w->rt, resolve_post, w->app);
}

static worker_arg w;
static uv_thread_t worker_tid;

static int spawn_fn(tide_rt *rt, lua_State *L, tide_promise *p, void *data) {
  host_app *app = data;
  app->arg = luaL_checkinteger(L, 1);
  app->p = p;
  w.rt = rt;
  w.app = app;
  return uv_thread_create(&worker_tid, worker_thread, &w);
}

TEST_IMPL(host_async_thread) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  uint64_t start = ms_now();
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  ASSERT_OK(tide_lua_register_async(rt, NULL, "compute", spawn_fn, &app));
  /* no hold by the host: the pending call keeps the loop running until
   * the worker's post settles it */
  ASSERT_OK(run_chunk(rt, "return compute(7):await() + 1", &o));
  ASSERT_OK(uv_thread_join(&worker_tid));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.ints[0], 71);
  ASSERT(ms_now() - start >= 29);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_async_at_once) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  app.mode = AT_ONCE;
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(run_chunk(rt, "local p = fetch(4) local a, b = p:await() return a, b, p:state()", &o));
  ASSERT_EQ(o.ints[0], 8);
  ASSERT_STR_EQ(o.text[1], "now");
  ASSERT_STR_EQ(o.text[2], "fulfilled");
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_async_fails) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  app.mode = FAIL;
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(run_chunk(rt,
    "local ok, err = pcall(function() return fetch(1):await() end)\n"
    "assert(not ok)\n"
    "return err.code, tostring(err)", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_STR_EQ(o.text[0], "ENOENT");
  ASSERT(strncmp(o.text[1], "ENOENT: ", 8) == 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_async_raises) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  app.mode = RAISE;
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(run_chunk(rt,
    "local ok1, e1 = pcall(fetch, 'x')\n"       /* luaL_checkinteger */
    "local ok2, e2 = pcall(fetch, 1, 2)\n"      /* extra argument: the host sees 2 */
    "local ok3, e3 = pcall(fetch, 5)\n"         /* the host raises */
    "return ok1, e1, ok2, e2, ok3, e3", &o));
  ASSERT_EQ(o.ints[0], 0);
  ASSERT(strstr(o.text[1], "bad argument #1") != NULL);
  ASSERT(strstr(o.text[3], "one argument") != NULL);
  ASSERT(strstr(o.text[5], "refused 5") != NULL);
  /* nothing was left held: the run above ended, and ends again at once */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_NOWAIT), 0);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

typedef struct {
  tide_job job;
  host_app *app;
} reject_later;

static void reject_later_cb(tide_rt *rt, tide_job *job) {
  host_app *app = ((reject_later *)job)->app;
  tide_value err = tide_string("host says no");
  (void)rt;
  tide_promise_reject(app->p, &err);
}

TEST_IMPL(host_async_rejects) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  reject_later rl;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  memset(&o, 0, sizeof o);
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(tide_dostring(rt, "return fetch(1):await()", record_cb, &o));
  tide_rt_run(rt, TIDE_RUN_NOWAIT);
  rl.app = &app;
  tide_job_queue(rt, &rl.job, reject_later_cb);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(o.state, TIDE_REJECTED);
  ASSERT_STR_EQ(o.text[0], "host says no");
  /* a call nobody awaits reports its rejection */
  ASSERT_OK(tide_dostring(rt, "fetch(2)", NULL, NULL));
  tide_rt_run(rt, TIDE_RUN_NOWAIT);
  tide_job_queue(rt, &rl.job, reject_later_cb);
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 1);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_async_cancel_hook) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  app.mode = HOOK;
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(run_chunk(rt,
    "local t = tide.spawn(function() return fetch(1):await() end)\n"
    "tide.sleep(0.01):await()\n"
    "t:cancel()\n"
    "local ok, err = pcall(t.await, t)\n"
    "local p = fetch(2)\n"
    "p:cancel()\n"
    "return ok, err == tide.Cancelled, p:state()", &o));
  ASSERT_EQ(o.state, TIDE_FULFILLED);
  ASSERT_EQ(o.ints[0], 0);
  ASSERT_EQ(o.ints[1], 1);
  ASSERT_STR_EQ(o.text[2], "rejected");
  ASSERT_EQ(app.hook_calls, 2);              /* the host stopped both */
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

TEST_IMPL(host_async_cancel_no_hook) {
  uv_loop_t loop;
  tide_rt *rt;
  host_app app;
  outcome o;
  settle_later sl;
  RT_OPEN(&loop, rt);
  memset(&app, 0, sizeof app);
  memset(&o, 0, sizeof o);
  ASSERT_OK(tide_lua_register_async(rt, NULL, "fetch", fetch_fn, &app));
  ASSERT_OK(tide_dostring(rt,
    "local p = fetch(1) p:cancel() return p:state()", record_cb, &o));
  /* Lua is done with it, but the host still works: the loop stays alive */
  ASSERT(tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0);
  ASSERT_EQ(o.calls, 1);
  ASSERT_STR_EQ(o.text[0], "rejected");
  sl.app = &app;
  tide_job_queue(rt, &sl.job, settle_later_cb);  /* the result is dropped */
  ASSERT_EQ(tide_rt_run(rt, TIDE_RUN_DEFAULT), 0);
  ASSERT_EQ(tide_rt_unhandled_count(rt), 0);
  RT_CLOSE(&loop, rt);
  return 0;
}

#ifndef NDEBUG
typedef struct {
  tide_rt *rt;
  int state, dostring, reg;
} foreign_host;

static void foreign_host_thread(void *arg) {
  foreign_host *f = arg;
  lua_State *L;
  f->state = tide_lua_state(f->rt, &L);
  f->dostring = tide_dostring(f->rt, "return 1", NULL, NULL);
  f->reg = tide_lua_register(f->rt, NULL, "add", add_fn);
}
#endif

TEST_IMPL(host_wrong_thread) {
#ifndef NDEBUG
  uv_loop_t loop;
  tide_rt *rt;
  uv_thread_t th;
  foreign_host f;
  RT_OPEN(&loop, rt);
  memset(&f, 0, sizeof f);
  f.rt = rt;
  ASSERT_OK(uv_thread_create(&th, foreign_host_thread, &f));
  ASSERT_OK(uv_thread_join(&th));
  ASSERT_EQ(f.state, UV_EPERM);
  ASSERT_EQ(f.dostring, UV_EPERM);
  ASSERT_EQ(f.reg, UV_EPERM);
  ASSERT(tide_rt_binding(rt) == NULL);
  RT_CLOSE(&loop, rt);
#endif
  return 0;
}
