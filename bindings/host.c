/* host.c — the Lua side of the embedding API (tide.h, section "lua"): the
 * runtime's own Lua state, host states attached to a runtime, chunks run
 * as tasks, Lua promises awaited from C with C values, and host functions,
 * plain and async.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]. Entry points
 * that hosts call from plain C (outside any Lua call) do their Lua work in
 * a protected call (protect()), so a memory error becomes UV_ENOMEM rather
 * than a panic, and they leave the stack as they found it.
 *
 * Ownership:
 *  - The state made by tide_lua_state() belongs to the runtime:
 *    tide_rt_free() closes it through the binding close hook. A state
 *    attached with tide_lua_attach() stays the host's.
 *  - An awaiter (tide_lua_await) is a userdata referenced from the registry
 *    while its listener waits; the reference goes when it is called.
 *  - An async call is a promise userdata (hostcall, lpromise first) that
 *    embeds the C promise the host settles. The Lua promise's listener
 *    waits on that C promise; until the listener is called (or detached
 *    from a failed call) the Lua promise is held (tide_lp_hold) and the
 *    runtime too (tide_rt_hold), so neither the memory the host settles
 *    nor the loop goes away under the host. The C promise's store hook
 *    turns the host's values into Lua values at once (user value
 *    HC_RESULTS): nothing owns C memory.
 */
#include "binding.h"

#include <stdio.h>
#include <string.h>

#ifdef NDEBUG
#define HOST_LOOP_THREAD(rt, name) ((void)0)
#else
#define HOST_LOOP_THREAD(rt, name)                                                \
  do {                                                                            \
    if (!tide_rt_on_loop_thread(rt)) {                                            \
      fprintf(stderr, "tide: %s called off the runtime's loop thread (use tide_post)\n", \
              name);                                                              \
      return UV_EPERM;                                                            \
    }                                                                             \
  } while (0)
#endif

/* [-0, +0, -] Calls fn(ud [, value at `idx`]) in protected mode (`idx` 0:
 * no value; the callee sees its own stack, so a value it needs goes as an
 * argument). Returns 0, UV_ENOMEM after a memory error, or UV_EINVAL after
 * another error, which is reported on stderr (a strict-mode _G refusing a
 * global, say). */
static int protect(lua_State *L, lua_CFunction fn, void *ud, int idx) {
  int status;
  if (!lua_checkstack(L, 4)) return UV_ENOMEM;
  if (idx != 0) idx = lua_absindex(L, idx);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  if (idx != 0) lua_pushvalue(L, idx);
  status = lua_pcall(L, idx != 0 ? 2 : 1, 0, 0);
  if (status == LUA_OK) return 0;
  if (status != LUA_ERRMEM) tide_lua_report(L, "", 0);
  lua_pop(L, 1);  /* remove the error */
  return status == LUA_ERRMEM ? UV_ENOMEM : UV_EINVAL;
}

/* [-0, +0, -] The main thread of the state of `L`. */
static lua_State *main_thread(lua_State *L) {
  lua_State *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);  /* remove the thread */
  return main;
}

/* ------------------------------------------------------------ the state */

typedef struct {
  tide_rt *rt;
  int err;
} open_args;

/* [-0, +0, m] Prefixes package[field] with the templates `paths`. */
static void prefix_path(lua_State *L, const char *field, const char *paths) {
  size_t n = paths ? strlen(paths) : 0;
  if (n == 0) return;
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    lua_pushstring(L, paths);
    lua_pushstring(L, paths[n - 1] == ';' ? "" : ";");
    lua_getfield(L, -3, field);
    lua_concat(L, 3);
    lua_setfield(L, -2, field);
  }
  lua_pop(L, 1);  /* remove package */
}

/* [-0, +0, m] Loads the tide module into `L` (global and package.loaded)
 * and applies the path options of `rt`. */
static void load_module(lua_State *L, tide_rt *rt) {
  const tide_options *o = tide_rt_options(rt);
  luaL_requiref(L, "tide", luaopen_tide, 1);
  lua_pop(L, 1);  /* remove the module */
  prefix_path(L, "path", o->lua_path);
  prefix_path(L, "cpath", o->lua_cpath);
}

static int open_state_p(lua_State *L) {
  open_args *a = lua_touserdata(L, 1);
  luaL_openlibs(L);
  if ((a->err = tide_lua_open_rt(L, a->rt)) != 0) return 0;
  load_module(L, a->rt);
  tide_lua_get(L)->running = 1;  /* the loop is the host's: tide.run raises */
  return 0;
}

/* The binding close hook of a state the runtime owns (tide_rt_free). */
static void close_state(tide_rt *rt, void *binding) {
  tide_lua *tl = binding;
  (void)rt;
  if (tl != NULL) tide_lua_closestate(main_thread(tl->L));
}

int tide_lua_state(tide_rt *rt, lua_State **out) {
  open_args a;
  tide_lua *tl;
  lua_State *L;
  int err;
  if (out != NULL) *out = NULL;
  if (rt == NULL || out == NULL) return UV_EINVAL;
  HOST_LOOP_THREAD(rt, "tide_lua_state");
  if ((tl = tide_lua_of(rt)) != NULL) {
    *out = main_thread(tl->L);
    return 0;
  }
  if ((L = tide_lua_newstate()) == NULL) return UV_ENOMEM;
  a.rt = rt;
  a.err = 0;
  if ((err = protect(L, open_state_p, &a, 0)) == 0) err = a.err;
  if (err != 0) {
    tide_lua_closestate(L);
    return err;
  }
  tide_rt_set_binding_close(rt, close_state);
  *out = L;
  return 0;
}

static int attach_p(lua_State *L) {
  open_args *a = lua_touserdata(L, 1);
  if (tide_lua_get(L) != NULL) {
    a->err = UV_EBUSY;
    return 0;
  }
  if ((a->err = tide_lua_open_rt(L, a->rt)) != 0) return 0;
  load_module(L, a->rt);
  return 0;
}

int tide_lua_attach(tide_rt *rt, lua_State *L) {
  open_args a;
  int err;
  if (rt == NULL || L == NULL) return UV_EINVAL;
  HOST_LOOP_THREAD(rt, "tide_lua_attach");
  if (tide_lua_of(rt) != NULL) return UV_EBUSY;
  a.rt = rt;
  a.err = 0;
  if ((err = protect(L, attach_p, &a, 0)) != 0) return err;
  return a.err;
}

tide_rt *tide_lua_rt(lua_State *L) {
  tide_lua *tl = L ? tide_lua_get(L) : NULL;
  return tl ? tl->rt : NULL;
}

/* ------------------------------------------------------ awaiting from C */

typedef struct {
  tide_listener l;      /* first: the listener is the awaiter */
  tide_done_cb done;
  void *data;
  int ref;              /* registry: this userdata, while it waits */
} awaiter;

typedef struct {
  awaiter *aw;
  tide_promise *src;
  int called;
} deliver_args;

static int tostring_p(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* [-0, +0, m] Converts the value at `idx` to a C value. A value of another
 * type than nil, boolean, number and string is replaced in its slot by its
 * tostring (its type name when __tostring fails), so that the bytes live
 * as long as the slot. */
static void to_cvalue(lua_State *L, int idx, tide_value *v) {
  const char *s;
  size_t len;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: *v = tide_nil(); return;
    case LUA_TBOOLEAN: *v = tide_boolean(lua_toboolean(L, idx)); return;
    case LUA_TNUMBER:
      *v = lua_isinteger(L, idx) ? tide_integer((int64_t)lua_tointeger(L, idx))
                                 : tide_number((double)lua_tonumber(L, idx));
      return;
    case LUA_TSTRING: break;
    default:
      lua_pushcfunction(L, tostring_p);
      lua_pushvalue(L, idx);
      if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);  /* remove the error */
        lua_pushstring(L, luaL_typename(L, idx));
      }
      lua_replace(L, idx);
  }
  s = lua_tolstring(L, idx, &len);
  *v = tide_bytes(s, len);
}

/* Converts the outcome of d->src and calls the awaiter with it. */
static int deliver_p(lua_State *L) {
  deliver_args *d = lua_touserdata(L, 1);
  int base = lua_gettop(L), n, i;
  tide_value *v;
  tide_lp_push(L, (lpromise *)d->src);  /* base+1: held by the queued call */
  n = tide_lp_push_values(L, base + 1);
  if (d->src->state == TIDE_REJECTED) {
    lua_settop(L, base + 2);  /* exactly one error value */
    n = tide_lp_get_traceback(L, base + 1) == LUA_TSTRING ? 2 : 1;
    lua_settop(L, base + 1 + n);
  }
  v = lua_newuserdatauv(L, sizeof(tide_value) * (size_t)(n > 0 ? n : 1), 0);
  for (i = 0; i < n; i++) to_cvalue(L, base + 2 + i, &v[i]);
  d->called = 1;
  d->aw->done(d->src->rt, d->src->state, v, n, d->aw->data);
  return 0;
}

/* The awaited promise settled: hand its outcome to the host. */
static void awaiter_cb(tide_listener *l, tide_promise *src) {
  awaiter *aw = (awaiter *)l;
  lua_State *L = tide_lua_of(src->rt)->L;
  int top = lua_gettop(L);
  deliver_args d;
  lua_rawgeti(L, LUA_REGISTRYINDEX, aw->ref);  /* keeps the awaiter alive */
  luaL_unref(L, LUA_REGISTRYINDEX, aw->ref);
  aw->ref = LUA_NOREF;
  d.aw = aw;
  d.src = src;
  d.called = 0;
  if (protect(L, deliver_p, &d, 0) != 0 && !d.called) {
    tide_value err = tide_string("ENOMEM: not enough memory for the results");
    aw->done(src->rt, TIDE_REJECTED, &err, 1, aw->data);
  }
  lua_settop(L, top);
}

/* [-0, +0, m] Registers an awaiter of the promise at `idx`. */
static void await_promise(lua_State *L, int idx, tide_done_cb done, void *data) {
  awaiter *aw;
  idx = lua_absindex(L, idx);
  aw = lua_newuserdatauv(L, sizeof(*aw), 0);
  memset(aw, 0, sizeof(*aw));
  aw->done = done;
  aw->data = data;
  aw->ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* pops the awaiter */
  tide_lp_listen(L, idx, &aw->l, awaiter_cb);
}

typedef struct {
  tide_done_cb done;
  void *data;
} await_args;

static int await_p(lua_State *L) {  /* (args, promise) */
  await_args *a = lua_touserdata(L, 1);
  await_promise(L, 2, a->done, a->data);
  return 0;
}

int tide_lua_await(lua_State *L, int idx, tide_done_cb done, void *data) {
  tide_lua *tl;
  await_args a;
  if (L == NULL || done == NULL || (tl = tide_lua_get(L)) == NULL) return UV_EINVAL;
  HOST_LOOP_THREAD(tl->rt, "tide_lua_await");
  if (tide_lp_test(L, idx) == NULL) return UV_EINVAL;
  a.done = done;
  a.data = data;
  return protect(L, await_p, &a, idx);
}

/* ------------------------------------------------------- running chunks */

typedef struct {
  const char *src;
  int file;
  tide_done_cb done;
  void *data;
} chunk_args;

/* Loads the chunk and spawns it as a task; a chunk that does not load is
 * a promise rejected with the loader's message, so both take one path. */
static int start_chunk_p(lua_State *L) {
  chunk_args *c = lua_touserdata(L, 1);
  int status = c->file ? luaL_loadfile(L, c->src) : luaL_loadstring(L, c->src);  /* 2 */
  if (status == LUA_ERRMEM) return lua_error(L);
  if (status != LUA_OK) {
    tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);  /* 3 */
    tide_lp_settle(L, 3, TIDE_REJECTED, 2, 1);
  } else {
    tide_task_spawn(L, 2, 0);  /* the task replaces the function at 2 */
  }
  if (c->done) await_promise(L, -1, c->done, c->data);
  return 0;
}

static int start_chunk(tide_rt *rt, const char *src, int file, tide_done_cb done,
                       void *data) {
  chunk_args c;
  lua_State *L;
  int err;
  if (rt == NULL || src == NULL) return UV_EINVAL;
  HOST_LOOP_THREAD(rt, file ? "tide_dofile" : "tide_dostring");
  if ((err = tide_lua_state(rt, &L)) != 0) return err;
  c.src = src;
  c.file = file;
  c.done = done;
  c.data = data;
  return protect(L, start_chunk_p, &c, 0);
}

int tide_dofile(tide_rt *rt, const char *path, tide_done_cb done, void *data) {
  return start_chunk(rt, path, 1, done, data);
}

int tide_dostring(tide_rt *rt, const char *chunk, tide_done_cb done, void *data) {
  return start_chunk(rt, chunk, 0, done, data);
}

/* ------------------------------------------------------- host functions */

enum { HC_RESULTS = 3 };  /* user value after UV_EVENTS: the host's results {n = count, ...} */

typedef struct {
  tide_async_fn fn;
  void *data;
} hostfn;

typedef struct {
  lpromise base;          /* the Lua promise; base.l listens to `host` */
  tide_promise host;      /* what the host settles */
  int status;             /* what the host function returned */
  int raised;             /* the host function raised an error */
} hostcall;

#define hostcall_of(p) ((hostcall *)((char *)(p) - offsetof(hostcall, host)))

typedef struct {
  hostcall *hc;
  const tide_value *values;
  int n;
} store_args;

/* Keeps the host's values as Lua values in the call's HC_RESULTS. */
static int store_p(lua_State *L) {
  store_args *a = lua_touserdata(L, 1);
  int i;
  luaL_checkstack(L, 4, NULL);
  tide_lp_push(L, &a->hc->base);                 /* 2 */
  lua_createtable(L, a->n, 1);                   /* 3 */
  if (tide_promise_is_cancelled(&a->hc->host)) {  /* flagged before the reject */
    tide_lp_push_cancelled(L);
    lua_rawseti(L, 3, 1);
    a->n = 1;
  } else {
    for (i = 0; i < a->n; i++) {
      tide_lua_push_cvalue(L, &a->values[i]);
      lua_rawseti(L, 3, i + 1);
    }
  }
  lua_pushinteger(L, a->n);
  lua_setfield(L, 3, "n");
  lua_setiuservalue(L, 2, HC_RESULTS);
  return 0;
}

/* The store hook of the host's promise: called by tide_promise_resolve or
 * tide_promise_reject, before the state changes. */
static int hc_store(tide_promise *p, const tide_value *values, int n) {
  store_args a;
  tide_lua *tl = tide_lua_of(p->rt);
  a.hc = hostcall_of(p);
  a.values = values;
  a.n = n;
  if (tl == NULL) return UV_EINVAL;
  if (a.hc->base.ref == LUA_NOREF) return 0;  /* a failed call: nobody waits */
  return protect(tl->L, store_p, &a, 0);
}

static const tide_promise_ops hc_ops = {NULL, NULL, hc_store};

/* The host settled its promise: the Lua promise takes the outcome (unless
 * it was cancelled, or the call failed), then the holds go. */
static void hc_done_cb(tide_listener *l, tide_promise *src) {
  hostcall *hc = (hostcall *)tide__lp_of_listener(l);
  tide_rt *rt = src->rt;
  lua_State *L = tide_lua_of(rt)->L;
  int top = lua_gettop(L), n, i;
  tide_lp_push(L, &hc->base);                               /* top+1 */
  if (hc->base.p.state == TIDE_PENDING && !hc->raised) {
    if (hc->status < 0) {
      tide_lua_push_uverror(L, hc->status);
      tide_lp_settle(L, top + 1, TIDE_REJECTED, top + 2, 1);
    } else {
      lua_getiuservalue(L, top + 1, HC_RESULTS);            /* top+2 */
      lua_getfield(L, top + 2, "n");
      n = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);  /* remove n */
      luaL_checkstack(L, n, "too many results");
      for (i = 1; i <= n; i++) lua_rawgeti(L, top + 2, i);
      tide_lp_settle(L, top + 1, src->state, top + 3, n);
    }
  }
  lua_pushnil(L);
  lua_setiuservalue(L, top + 1, HC_RESULTS);  /* drop the results */
  lua_settop(L, top);
  tide_lp_drop(&hc->base);
  tide_rt_release(rt);
}

/* Cancel hook of the Lua promise: the host's hook, if any, stops the work
 * (and its promise is rejected as cancelled); without one the call stays
 * pending until the host settles it. Never settles the Lua promise. */
static void hc_cancel_cb(tide_promise *p, void *data) {
  (void)p;
  tide_promise_cancel(&((hostcall *)data)->host);
}

/* [-0, +0, -] Detaches a failed call from the host's promise. The holds
 * go now, or with the queued listener call when the host settled first. */
static int hc_detach(hostcall *hc) {
  tide_promise_on_cancel(&hc->base.p, NULL, NULL);
  if (tide_listener_remove(&hc->base.l) != 0) return 0;
  tide_lp_drop(&hc->base);
  tide_rt_release(hc->base.p.rt);
  return 1;
}

/* An async host function called from Lua: returns its promise. The
 * host function runs in a protected call of this same function (upvalue 2
 * holds the call while it starts), so that it sees only its arguments,
 * its errors name it ("bad argument #1 to 'host.fetch'"), and an error it
 * raises reaches the caller after the holds were dropped. */
static int host_call(lua_State *L) {
  const hostfn *hf = lua_touserdata(L, lua_upvalueindex(1));
  tide_rt *rt = tide_lua_get(L)->rt;
  int nargs = lua_gettop(L);
  lua_Debug ar;
  hostcall *hc;
  if ((hc = lua_touserdata(L, lua_upvalueindex(2))) != NULL) {  /* the inner call */
    lua_pushnil(L);
    lua_replace(L, lua_upvalueindex(2));     /* calls made from here are outer ones */
    hc->status = hf->fn(rt, L, &hc->host, hf->data);
    return 0;
  }
  luaL_checkstack(L, 4, "too many arguments");
  hc = (hostcall *)tide_lp_new(L, sizeof(hostcall), LP_PLAIN, HC_RESULTS);
  lua_insert(L, 1);                          /* the promise below the arguments */
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar))  /* this function */
    return luaL_error(L, "tide: host function not found on the stack");
  lua_insert(L, 2);                          /* the call below the arguments */
  tide_promise_init(rt, &hc->host, &hc_ops);
  tide_promise_listen(&hc->host, &hc->base.l, hc_done_cb);
  tide_promise_on_cancel(&hc->base.p, hc_cancel_cb, hc);
  tide_lp_hold(L, 1);
  tide_rt_hold(rt);
  lua_pushlightuserdata(L, hc);
  lua_replace(L, lua_upvalueindex(2));
  if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {  /* misuse: raise it to the caller */
    lua_pushnil(L);
    lua_replace(L, lua_upvalueindex(2));     /* when it failed before starting */
    hc->raised = 1;
    hc_detach(hc);
    return lua_error(L);
  }
  if (hc->status < 0 && hc_detach(hc)) {
    tide_lua_push_uverror(L, hc->status);
    tide_lp_settle(L, 1, TIDE_REJECTED, 2, 1);
    lua_pop(L, 1);  /* remove the error */
  }
  return 1;
}

typedef struct {
  const char *module, *name;
  tide_lua_fn fn;
  tide_async_fn afn;
  void *data;
} reg_args;

static int register_p(lua_State *L) {
  reg_args *r = lua_touserdata(L, 1);
  if (r->module != NULL) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, r->module) != LUA_TTABLE) {
      if (!lua_isnil(L, -1)) return luaL_error(L, "package.loaded[\"%s\"] is not a table", r->module);
      lua_pop(L, 1);  /* remove the nil */
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, r->module);  /* package.loaded[module] = {} */
    }
  } else {
    lua_pushglobaltable(L);
  }
  if (r->afn != NULL) {
    hostfn *hf = lua_newuserdatauv(L, sizeof(hostfn), 0);
    hf->fn = r->afn;
    hf->data = r->data;
    lua_pushnil(L);  /* the call starting, see host_call */
    lua_pushcclosure(L, host_call, 2);
  } else {
    lua_pushcfunction(L, r->fn);
  }
  lua_setfield(L, -2, r->name);
  return 0;
}

static int register_fn(tide_rt *rt, reg_args *r) {
  lua_State *L;
  int err;
  if (rt == NULL || r->name == NULL || (r->fn == NULL && r->afn == NULL)) return UV_EINVAL;
  HOST_LOOP_THREAD(rt, r->afn ? "tide_lua_register_async" : "tide_lua_register");
  if ((err = tide_lua_state(rt, &L)) != 0) return err;
  return protect(L, register_p, r, 0);
}

int tide_lua_register(tide_rt *rt, const char *module, const char *name, tide_lua_fn fn) {
  reg_args r = {module, name, fn, NULL, NULL};
  if (fn == NULL) return UV_EINVAL;
  return register_fn(rt, &r);
}

int tide_lua_register_async(tide_rt *rt, const char *module, const char *name,
                            tide_async_fn fn, void *data) {
  reg_args r = {module, name, NULL, fn, data};
  if (fn == NULL) return UV_EINVAL;
  return register_fn(rt, &r);
}
