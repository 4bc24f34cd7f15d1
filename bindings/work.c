/* work.c — Lua functions on the thread pool: tide.work(fn, ...),
 * tide.work_module(mod, name, ...) and tide.pool_size(). Each worker thread
 * owns a lua_State of its own (created on that thread by its first job,
 * closed on it when the pool shuts down); nothing is shared between states.
 * A job crosses as bytes (bindings/marshal.c): the function's bytecode,
 * then its marshalled arguments; its results, its error, or the values of
 * its progress events come back the same way.
 *
 * Threads. The caller's side (submit, after, progress delivery) runs on the
 * loop thread and touches only the main state; the job's side runs on a
 * worker and touches only that worker's state. A job (lwork) and its bytes
 * pass from one side to the other through the pool's queue and completion
 * list (core/pool.c), which order every write before the other side reads.
 * The package paths a job carries (wconf) are immutable and counted on the
 * loop thread only: the submit takes a count, the after function drops it.
 *
 * Stack discipline. Helpers state their effect as [-o, +p, x]. Callbacks on
 * the loop thread run on tl->L and leave its stack as they found it. On a
 * worker, the whole job runs as one C function under lua_pcall (job_body),
 * so a memory error or a bad chunk unwinds to work_run, which reports it as
 * the job's error; the user's function runs under tide_lua_pcall inside it,
 * so its traceback is taken where it failed.
 *
 * References. A job's promise is retained by the pool from submit until its
 * after function returned (core/tide.h), so lw->lp stays valid and held
 * until then; once the runtime's Lua side is gone (tide_lua_of(rt) is NULL,
 * the state is closing) the after and progress callbacks only free C
 * memory. The per-runtime state (wstate userdata, an upvalue of the Lua
 * functions) keeps in its user values the package strings of the current
 * wconf, the weak cache function -> bytecode, and the work_module runner;
 * its __gc drops its count on the current wconf. In a worker's state, the
 * registry holds the cache bytecode -> function (WS_CACHE) and the
 * worker-side `tide` table (global `tide` and package.loaded.tide).
 */
#include "binding.h"
#include "marshal.h"

#include <stdlib.h>
#include <string.h>

/* A worker's state forgets its loaded functions past this many. */
#define WORK_CACHE_MAX 256

/* Outcome of a job, written by the worker. */
enum {
  OUT_NONE = 0,   /* nothing ran: no memory for the worker's state */
  OUT_OK,         /* buf: the results */
  OUT_ERROR       /* buf: message, traceback or nil, error value or nil */
};

/* User values of the per-runtime state. */
enum {
  WS_PATH = 1,        /* package.path the current wconf was made from */
  WS_CPATH = 2,       /* package.cpath likewise */
  WS_FNCACHE = 3,     /* weak-keyed table: function -> bytecode string */
  WS_RUNNER = 4,      /* the function tide.work_module sends */
  WS_NUV = 4
};

/* Package paths for the workers: immutable once made. */
typedef struct wconf {
  unsigned refs;            /* loop thread only */
  unsigned gen;             /* 1, 2, ... per runtime */
  char *path, *cpath;       /* NULL: not a string in the main state */
} wconf;

/* The per-runtime state of this file (a userdata). */
typedef struct wstate {
  wconf *conf;              /* current; one count held */
  unsigned gen;             /* of the latest wconf */
} wstate;

/* One job. */
typedef struct lwork {
  tide_work req;            /* must be first */
  lpromise *lp;
  wconf *conf;
  tide_mbuf buf;            /* in: bytecode, then arguments; out: outcome */
  size_t code_len;
  int outcome;
} lwork;

/* A progress event on its way to the loop thread. */
typedef struct lprogress {
  tide_work_msg msg;        /* must be first */
  tide_mbuf buf;            /* the values */
} lprogress;

/* A worker's Lua side: one per worker thread. */
typedef struct wlua {
  lua_State *L;
  lwork *current;           /* the job running now (tide.progress) */
  unsigned gen;             /* of the package paths applied */
  int ncached;              /* functions in the cache */
  int cache_ref;            /* registry: bytecode -> function */
} wlua;

static void progress_cb(tide_work *req, tide_work_msg *msg, int status);

static void conf_unref(wconf *c) {
  if (c != NULL && --c->refs == 0) {
    free(c->path);
    free(c->cpath);
    free(c);
  }
}

/* ================================================== worker side (threads) */

static void wlua_fini(void *value) {
  wlua *w = value;
  tide_lua_closestate(w->L);
  free(w);
}

/* The slot of a worker's Lua side: created by its first job. */
static const tide_worker_key wlua_key = {wlua_fini};

/* tide.progress(...) in a worker: sends the values to the caller's
 * promise as a "progress" event. */
static int w_progress(lua_State *L) {
  wlua *w = lua_touserdata(L, lua_upvalueindex(1));
  lprogress *pm;
  char err[256];
  if (w->current == NULL)
    return luaL_error(L, "tide.progress: no job is running on this worker");
  pm = malloc(sizeof(*pm));
  if (pm == NULL) return luaL_error(L, "not enough memory");
  tide_mbuf_init(&pm->buf);
  if (tide_marshal_encode(L, 1, lua_gettop(L), &pm->buf, err, sizeof(err)) != 0) {
    tide_mbuf_free(&pm->buf);  /* a refusal keeps what was encoded so far */
    free(pm);
    return luaL_error(L, "tide.progress: %s", err);
  }
  if (tide_work_send(&w->current->req, &pm->msg, progress_cb) != 0) {
    tide_mbuf_free(&pm->buf);
    free(pm);
    return luaL_error(L, "tide.progress: the job is not running");
  }
  return 0;
}

/* tide.hrtime() in a worker: the monotonic clock in nanoseconds, as in
 * the main state. */
static int w_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

/* [-2, +0, m] Sets up a new worker state: standard libraries, the cache,
 * and the worker-side `tide` table. Arguments: the wlua and the worker's
 * index. */
static int wlua_init(lua_State *L) {
  wlua *w = lua_touserdata(L, 1);
  int index = (int)lua_tointeger(L, 2);
  luaL_openlibs(L);
  lua_newtable(L);  /* the cache */
  w->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, 0, 4);  /* the worker's tide table */
  lua_pushlightuserdata(L, w);
  lua_pushcclosure(L, w_progress, 1);
  lua_setfield(L, -2, "progress");
  lua_pushcfunction(L, w_hrtime);
  lua_setfield(L, -2, "hrtime");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "is_worker");
  lua_pushinteger(L, index + 1);
  lua_setfield(L, -2, "worker_id");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "tide");  /* require "tide" gives this table */
  lua_pop(L, 1);  /* remove the loaded table */
  lua_setglobal(L, "tide");
  return 0;
}

/* The worker's Lua side, created on this thread on first use; NULL when
 * memory runs out. */
static wlua *wlua_get(tide_worker *worker) {
  wlua *w = tide_worker_get(worker, &wlua_key);
  if (w != NULL) return w;
  if ((w = calloc(1, sizeof(*w))) == NULL) return NULL;
  if ((w->L = tide_lua_newstate()) == NULL) { free(w); return NULL; }
  lua_pushcfunction(w->L, wlua_init);
  lua_pushlightuserdata(w->L, w);
  lua_pushinteger(w->L, tide_worker_index(worker));
  if (lua_pcall(w->L, 2, 0, 0) != LUA_OK || tide_worker_set(worker, &wlua_key, w) != 0) {
    tide_lua_closestate(w->L);
    free(w);
    return NULL;
  }
  return w;
}

/* [-0, +1, m] Pushes a readable message for the error value at `idx`. */
static void push_message(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    lua_pushvalue(L, idx);
    lua_tostring(L, -1);  /* a number becomes a string, on the copy */
    return;
  }
  if (luaL_callmeta(L, idx, "__tostring")) {  /* pushes its result */
    if (lua_type(L, -1) == LUA_TSTRING) return;
    lua_pop(L, 1);  /* remove the result that is not a string */
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

/* [-0, +0, m] Applies the package paths of `c` if the state has older
 * ones. */
static void apply_conf(lua_State *L, wlua *w, const wconf *c) {
  if (w->gen == c->gen) return;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "package") == LUA_TTABLE) {
    if (c->path) { lua_pushstring(L, c->path); lua_setfield(L, -2, "path"); }
    if (c->cpath) { lua_pushstring(L, c->cpath); lua_setfield(L, -2, "cpath"); }
  }
  lua_pop(L, 2);  /* remove package and the loaded table */
  w->gen = c->gen;
}

/* [-0, +1, m] Pushes the job's function: from the cache, or loaded from
 * its bytecode and cached. */
static void push_function(lua_State *L, wlua *w, lwork *job) {
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->cache_ref);              /* top+1 */
  lua_pushlstring(L, job->buf.data, job->code_len);             /* top+2 */
  lua_pushvalue(L, top + 2);
  if (lua_rawget(L, top + 1) == LUA_TFUNCTION) {                /* top+3 */
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return;
  }
  lua_pop(L, 1);  /* remove the nil */
  if (tide_marshal_load_function(L, job->buf.data, job->code_len, NULL) != 0)
    lua_error(L);  /* the message is on top */
  if (++w->ncached > WORK_CACHE_MAX) {  /* forget the others */
    lua_newtable(L);
    lua_replace(L, top + 1);
    lua_pushvalue(L, top + 1);
    lua_rawseti(L, LUA_REGISTRYINDEX, w->cache_ref);
    w->ncached = 1;
  }
  lua_pushvalue(L, top + 2);
  lua_pushvalue(L, top + 3);
  lua_rawset(L, top + 1);  /* cache[bytecode] = function */
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* [-0, +0, m] Writes the job's outcome from the `n` values at `first`. */
static void encode_outcome(lua_State *L, lwork *job, int outcome, int first, int n) {
  char err[256];
  job->buf.len = 0;
  if (tide_marshal_encode_as(L, first, n, "result", 1, &job->buf, err, sizeof(err)) == 0) {
    job->outcome = outcome;
    return;
  }
  if (outcome == OUT_ERROR) {
    /* the error value cannot cross: send the message and traceback */
    lua_pushnil(L);
    lua_replace(L, first + 2);
    if (tide_marshal_encode(L, first, 3, &job->buf, NULL, 0) != 0)
      luaL_error(L, "not enough memory");
  } else {
    /* a result cannot cross: the job fails with the refusal */
    int top = lua_gettop(L);
    lua_pushstring(L, err);
    lua_pushnil(L);
    lua_pushnil(L);
    if (tide_marshal_encode(L, top + 1, 3, &job->buf, NULL, 0) != 0)
      luaL_error(L, "not enough memory");
    lua_settop(L, top);
  }
  job->outcome = OUT_ERROR;
}

/* [-2, +0, e] The job on the worker, protected: argument 1 is the wlua,
 * argument 2 the job. */
static int job_body(lua_State *L) {
  wlua *w = lua_touserdata(L, 1);
  lwork *job = lua_touserdata(L, 2);
  int base, n;
  apply_conf(L, w, job->conf);
  push_function(L, w, job);                                     /* 3 */
  base = lua_gettop(L);
  n = tide_marshal_decode(L, job->buf.data + job->code_len, job->buf.len - job->code_len);
  if (n < 0) return lua_error(L);
  w->current = job;
  if (tide_lua_pcall(L, n, LUA_MULTRET) != LUA_OK) {
    w->current = NULL;
    /* error at base, traceback at base + 1 */
    push_message(L, base);                                      /* base+2 */
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base);                                     /* msg, tb, value */
    encode_outcome(L, job, OUT_ERROR, base + 2, 3);
    return 0;
  }
  w->current = NULL;
  encode_outcome(L, job, OUT_OK, base, lua_gettop(L) - base + 1);
  return 0;
}

/* The work function: runs the job in this worker's state. */
static void work_run(tide_work *req, tide_worker *worker) {
  lwork *job = (lwork *)req;
  wlua *w = wlua_get(worker);
  lua_State *L;
  int top;
  if (w == NULL) return;  /* OUT_NONE */
  L = w->L;
  top = lua_gettop(L);
  lua_pushcfunction(L, job_body);
  lua_pushlightuserdata(L, w);
  lua_pushlightuserdata(L, job);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    /* the job could not even start (memory, a bad chunk): report why */
    w->current = NULL;
    lua_pushnil(L);
    lua_pushnil(L);
    job->buf.len = 0;
    job->outcome = tide_marshal_encode(L, top + 1, 3, &job->buf, NULL, 0) == 0 ? OUT_ERROR : OUT_NONE;
  }
  lua_settop(L, top);
}

/* ===================================================== loop thread side */

/* Delivers a progress event: emits "progress" with its values on the
 * job's promise, unless the promise has settled (cancelled) or the Lua
 * side is gone. */
static void progress_cb(tide_work *req, tide_work_msg *msg, int status) {
  lwork *job = (lwork *)req;
  lprogress *pm = (lprogress *)msg;
  tide_lua *tl = tide_lua_of(req->rt);
  if (status == 0 && tl != NULL && job->lp->p.state == TIDE_PENDING) {
    lua_State *L = tl->L;
    int top = lua_gettop(L), n;
    tide_lp_push(L, job->lp);                                   /* top+1 */
    lua_pushliteral(L, "progress");                             /* top+2 */
    n = tide_marshal_decode(L, pm->buf.data, pm->buf.len);
    if (n >= 0) tide_lp_emit(L, top + 1, top + 2, n);
    lua_settop(L, top);
  }
  tide_mbuf_free(&pm->buf);
  free(pm);
}

/* [-0, +0, m] Settles the job's promise at `idx` with its outcome. */
static void settle_job(lua_State *L, int idx, lwork *job) {
  int top = lua_gettop(L), n;
  if (job->outcome == OUT_NONE) {
    tide_lua_push_error(L, "ENOMEM", "not enough memory for the worker's Lua state");
    tide_lp_settle(L, idx, TIDE_REJECTED, top + 1, 1);
    lua_settop(L, top);
    return;
  }
  n = tide_marshal_decode(L, job->buf.data, job->buf.len);
  if (n < 0) {  /* not enough memory: the message is on top */
    tide_lua_push_error(L, "ENOMEM", lua_tostring(L, -1));
    tide_lp_settle(L, idx, TIDE_REJECTED, lua_gettop(L), 1);
  } else if (job->outcome == OUT_OK) {
    tide_lp_settle(L, idx, TIDE_FULFILLED, top + 1, n);
  } else {
    /* message at top+1, traceback at top+2, the error value at top+3 */
    tide_lua_push_error(L, "EWORKER", lua_tostring(L, top + 1));  /* top+4 */
    lua_pushvalue(L, top + 2);
    lua_setfield(L, top + 4, "traceback");
    lua_pushvalue(L, top + 3);
    lua_setfield(L, top + 4, "value");
    tide_lp_set_traceback(L, idx, top + 2);
    tide_lp_settle(L, idx, TIDE_REJECTED, top + 4, 1);
  }
  lua_settop(L, top);
}

/* The after function: settles the promise (unless it was cancelled while
 * the job ran, or the Lua side is gone) and frees the job. */
static void work_after(tide_work *req, int status) {
  lwork *job = (lwork *)req;
  tide_lua *tl = tide_lua_of(req->rt);
  if (status == 0 && tl != NULL && job->lp->p.state == TIDE_PENDING) {
    lua_State *L = tl->L;
    int top = lua_gettop(L);
    tide_lp_push(L, job->lp);
    settle_job(L, top + 1, job);
    lua_settop(L, top);
  }
  /* status UV_ECANCELED: the pool rejects the promise as cancelled */
  conf_unref(job->conf);
  tide_mbuf_free(&job->buf);
  free(job);
}

static wstate *check_state(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* [-0, +0, m] Makes the state's wconf match package.path and
 * package.cpath of the main state; returns it. */
static wconf *current_conf(lua_State *L, wstate *st) {
  int top = lua_gettop(L), st_idx = lua_upvalueindex(1);
  wconf *c;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);     /* top+1 */
  if (lua_getfield(L, top + 1, "package") == LUA_TTABLE) {      /* top+2 */
    lua_getfield(L, top + 2, "path");                           /* top+3 */
    lua_getfield(L, top + 2, "cpath");                          /* top+4 */
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_getiuservalue(L, st_idx, WS_PATH);                        /* top+5 */
  lua_getiuservalue(L, st_idx, WS_CPATH);                       /* top+6 */
  if (st->conf && lua_rawequal(L, top + 3, top + 5) && lua_rawequal(L, top + 4, top + 6)) {
    lua_settop(L, top);
    return st->conf;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    luaL_error(L, "not enough memory");
    return NULL;
  }
  if (lua_type(L, top + 3) == LUA_TSTRING) c->path = strdup(lua_tostring(L, top + 3));
  if (lua_type(L, top + 4) == LUA_TSTRING) c->cpath = strdup(lua_tostring(L, top + 4));
  if ((lua_type(L, top + 3) == LUA_TSTRING && c->path == NULL) ||
      (lua_type(L, top + 4) == LUA_TSTRING && c->cpath == NULL)) {
    free(c->path);
    free(c);
    luaL_error(L, "not enough memory");
    return NULL;
  }
  c->refs = 1;
  c->gen = ++st->gen;
  conf_unref(st->conf);
  st->conf = c;
  lua_pushvalue(L, top + 3);
  lua_setiuservalue(L, st_idx, WS_PATH);
  lua_pushvalue(L, top + 4);
  lua_setiuservalue(L, st_idx, WS_CPATH);
  lua_settop(L, top);
  return c;
}

/* [-0, +1, m] A Lua string of the bytecode to send for the function at
 * `idx`, from the cache or dumped now. Raises a refusal naming argument
 * `argn` of `fname`. */
static int push_bytecode_bytes(lua_State *L) {
  tide_mbuf *b = lua_touserdata(L, 1);
  lua_pushlstring(L, b->data, b->len);
  return 1;
}

static void push_bytecode(lua_State *L, int idx, int argn) {
  int cache = lua_gettop(L) + 1, status;
  tide_mbuf b;
  char err[256];
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, lua_upvalueindex(1), WS_FNCACHE);        /* cache */
  lua_pushvalue(L, idx);
  if (lua_rawget(L, cache) == LUA_TSTRING) {
    lua_remove(L, cache);
    return;
  }
  lua_pop(L, 1);  /* remove the nil */
  tide_mbuf_init(&b);
  if (tide_marshal_dump_function(L, idx, &b, err, sizeof(err)) != 0) {
    tide_mbuf_free(&b);
    luaL_argerror(L, argn, err);
  }
  /* the string is made under pcall, so that b is freed whatever happens */
  lua_pushcfunction(L, push_bytecode_bytes);
  lua_pushlightuserdata(L, &b);
  status = lua_pcall(L, 1, 1, 0);
  tide_mbuf_free(&b);
  if (status != LUA_OK) lua_error(L);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, cache);  /* cache[fn] = bytecode */
  lua_remove(L, cache);
}

/* [-0, +1, m] Submits the function at `fn_idx` with the `n` values from
 * `first` (called "argument <number>", ... in refusals) and pushes the
 * job's promise. A refusal raises, naming `fname`. */
static int submit(lua_State *L, const char *fname, int fn_idx, int first, int n, int number) {
  wstate *st = check_state(L);
  tide_lua *tl = tide_lua_get(L);
  wconf *conf;
  lwork *job;
  lpromise *lp;
  const char *code;
  size_t code_len;
  char err[256];
  int err_status, lp_idx;
  first = lua_absindex(L, first);
  push_bytecode(L, fn_idx, fn_idx);                             /* code */
  code = lua_tolstring(L, -1, &code_len);
  conf = current_conf(L, st);
  lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);           /* promise */
  lp_idx = lua_gettop(L);
  tide_lp_hold(L, lp_idx);  /* lets the pool retain it */
  if ((job = calloc(1, sizeof(*job))) == NULL) {
    tide_lp_drop(lp);
    return luaL_error(L, "not enough memory");
  }
  tide_mbuf_init(&job->buf);
  if (tide_mbuf_append(&job->buf, code, code_len) != 0) {
    free(job);
    tide_lp_drop(lp);
    return luaL_error(L, "not enough memory");
  }
  job->code_len = code_len;
  if (tide_marshal_encode_as(L, first, n, "argument", number, &job->buf, err, sizeof(err)) != 0) {
    tide_mbuf_free(&job->buf);
    free(job);
    tide_lp_drop(lp);
    return luaL_error(L, "%s: %s", fname, err);
  }
  job->lp = lp;
  job->conf = conf;
  conf->refs++;
  err_status = tide_work_submit(tl->rt, &job->req, &lp->p, work_run, work_after);
  if (err_status != 0) {
    conf_unref(conf);
    tide_mbuf_free(&job->buf);
    free(job);
    tide_lua_push_uverror(L, err_status);
    tide_lp_settle(L, lp_idx, TIDE_REJECTED, lua_gettop(L), 1);
    lua_pop(L, 1);  /* remove the error */
  }
  tide_lp_drop(lp);
  return 1;
}

/* tide.work(fn, ...) -> promise of fn(...)'s results, run on a worker. */
static int l_work(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return submit(L, "tide.work", 1, 2, lua_gettop(L) - 1, 2);
}

/* tide.work_module(mod, name, ...) -> promise of require(mod)[name](...)'s
 * results, run on a worker. */
static int l_work_module(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TSTRING);
  luaL_checktype(L, 2, LUA_TSTRING);
  lua_getiuservalue(L, lua_upvalueindex(1), WS_RUNNER);
  return submit(L, "tide.work_module", n + 1, 1, n, 1);
}

/* tide.pool_size() -> the number of worker threads. */
static int l_pool_size(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lua_pushinteger(L, tide_pool_size(tl->rt));
  return 1;
}

static int wstate_gc(lua_State *L) {
  wstate *st = lua_touserdata(L, 1);
  conf_unref(st->conf);
  st->conf = NULL;
  return 0;
}

/* The function tide.work_module sends: it runs in the worker. */
static const char runner_lua[] =
  "local mod, name = ...\n"
  "local m = require(mod)\n"
  "if type(m) ~= 'table' then\n"
  "  error(string.format(\"module '%s' returned a %s, not a table\", mod, type(m)), 0)\n"
  "end\n"
  "local f = m[name]\n"
  "if type(f) ~= 'function' then\n"
  "  error(string.format(\"module '%s' has no function '%s'\", mod, name), 0)\n"
  "end\n"
  "return f(select(3, ...))\n";

static const luaL_Reg work_funcs[] = {
  {"work", l_work},
  {"work_module", l_work_module},
  {"pool_size", l_pool_size},
  {NULL, NULL}
};

/* [-0, +0, m] Adds the pool functions to the module table at the top. */
int tide_open_work(lua_State *L) {
  wstate *st = lua_newuserdatauv(L, sizeof(*st), WS_NUV);       /* st */
  memset(st, 0, sizeof(*st));
  lua_createtable(L, 0, 1);  /* its metatable */
  lua_pushcfunction(L, wstate_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_newtable(L);  /* function -> bytecode, weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, WS_FNCACHE);
  if (luaL_loadbuffer(L, runner_lua, sizeof(runner_lua) - 1, "=[tide.work_module]") != LUA_OK)
    return lua_error(L);
  lua_setiuservalue(L, -2, WS_RUNNER);
  luaL_setfuncs(L, work_funcs, 1);  /* st is every function's upvalue */
  return 0;
}
