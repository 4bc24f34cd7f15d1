/* process.c — tide.process: spawn a child with pipes for its stdio
 * (streams, see stream.c), wait for its exit (a promise of code and
 * signal), kill it; exec runs a command and captures its output.
 *
 *   local p = tide.process.spawn{"sort", args = {"-r"}, stdin = "pipe", stdout = "pipe"}
 *   p.stdin:write("a\nb\n"); p.stdin:close()
 *   print(p.stdout:read_all():await(), p:wait():await())
 *
 * Ownership: a process is a malloc'd lproc holding its uv_process_t,
 * closed in the exit callback and freed in its close callback. The
 * userdata holds a pointer to it (NULL once freed) and it points back to
 * the userdata's slot (NULL once collected: the child runs on and its
 * handle keeps the loop alive until it exits). User values of the
 * userdata: 1-3 the stdin/stdout/stderr streams (or false), 4 the exit
 * promise, which the lproc holds (tide_lp_hold) until the exit callback,
 * 5 the pid. Until its exit, an lproc is on its state's list of running
 * children (proc_list, an upvalue of spawn that the registry keeps): when
 * the state closes, the list's __gc closes their handles (the children run
 * on), so that the runtime's last loop turns free them.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread, leave its stack as they found it and end with
 * tide_rt_drain().
 */
#include "binding.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define PROCESS_MT "tide.process"
#define EXEC_LIMIT (16 * 1024 * 1024)

/* User values of a process userdata. */
enum {
  PROC_STDIN = 1,           /* ... PROC_STDIN + 2: the stdio streams, or nil */
  PROC_EXIT = 4,            /* the exit promise */
  PROC_PID = 5,             /* the pid, which stays after the exit */
  PROC_NUV = 5
};

extern char **environ;

typedef struct lproc {
  uv_process_t h;
  tide_io *io;
  struct lproc **ud;          /* the userdata's slot, or NULL */
  lpromise *exit;             /* held until the exit callback */
  struct lproc *next;         /* on the list of running children, */
  struct lproc **prevp;       /*   or NULL: not on it */
  int pid;
  int exited;
} lproc;

/* A state's running children (the userdata is the upvalue of spawn). */
typedef struct proc_list {
  lproc *head;
} proc_list;

static void list_add(proc_list *l, lproc *p) {
  p->next = l->head;
  if (p->next) p->next->prevp = &p->next;
  p->prevp = &l->head;
  l->head = p;
}

static void list_remove(lproc *p) {
  if (p->prevp == NULL) return;
  *p->prevp = p->next;
  if (p->next) p->next->prevp = p->prevp;
  p->next = NULL;
  p->prevp = NULL;
}

static void proc_close_cb(uv_handle_t *h) {
  lproc *p = h->data;
  if (p->ud) *p->ud = NULL;
  tide_io_unref(p->io);
  free(p);
}

static void exit_cb(uv_process_t *h, int64_t status, int signum) {
  lproc *p = h->data;
  tide_rt *rt = p->io->rt;
  lua_State *L = tide_io_state(p->io);
  p->exited = 1;
  list_remove(p);
  uv_close((uv_handle_t *)h, proc_close_cb);
  if (L == NULL) return;
  if (signum) {
    const char *name = tide_signal_name(signum);
    lua_pushnil(L);
    if (name) lua_pushstring(L, name);
    else lua_pushfstring(L, "SIG%d", signum);
  } else {
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushnil(L);
  }
  tide_op_settle(L, p->exit, TIDE_FULFILLED, 2);
  tide_rt_drain(rt);
}

/* [-0, +0, v] Stores in *c how stdio `fd` of the child is set up from
 * field `name` of the table at `opts`: "inherit" (the default), "ignore",
 * "pipe" (a new stream left on the stack, else false is pushed), a
 * stream, or an fd number. Pushes exactly one value. */
static void stdio_opt(lua_State *L, int opts, const char *name, int fd, uv_stdio_container_t *c) {
  tide_stream *s;
  int t = lua_getfield(L, opts, name);
  if (t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inherit") == 0)) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "ignore") == 0) {
    c->flags = UV_IGNORE;
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pipe") == 0) {
    tide_io *io = tide_io_get(L);
    lua_pop(L, 1);  /* remove "pipe" */
    if ((s = tide_stream_alloc(io, TIDE_STREAM_PIPE)) == NULL) luaL_error(L, "not enough memory");
    uv_pipe_init(io->loop, &s->h.pipe, 0);  /* cannot fail for a pipe that is not ipc */
    tide_stream_opened(s);
    tide_stream_push(L, s, 0);
    c->flags = UV_CREATE_PIPE | (fd == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
    c->data.stream = &s->h.stream;
    return;
  } else if (t == LUA_TNUMBER && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
             lua_tointeger(L, -1) <= 1 << 20) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = (int)lua_tointeger(L, -1);
  } else if (luaL_testudata(L, -1, TIDE_STREAM_MT)) {
    s = tide_stream_check(L, -1, 0);
    if (s->kind == TIDE_STREAM_FILE) {
      c->flags = UV_INHERIT_FD;
      c->data.fd = s->fd;
    } else {
      c->flags = UV_INHERIT_STREAM;
      c->data.stream = &s->h.stream;
    }
  } else {
    luaL_error(L, "option '%s': \"pipe\", \"inherit\", \"ignore\", a stream or an fd expected", name);
  }
  lua_pop(L, 1);  /* remove the value */
  lua_pushboolean(L, 0);
}

/* [-0, +0, v] The NULL-terminated argv of `cmd` and the items `from`.. of
 * the list at `list` (strings or numbers). The array and the strings are
 * kept in the table at `anchor` so they live until uv_spawn. */
static char **string_list(lua_State *L, int anchor, const char *cmd, int list, lua_Integer from) {
  lua_Integer n = luaL_len(L, list), count = n >= from ? n - from + 1 : 0, i;
  char **v;
  if (count > 65536) luaL_error(L, "too many arguments");
  v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(count + 2), 0);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  v[0] = (char *)cmd;
  for (i = 0; i < count; i++) {
    int t = lua_rawgeti(L, list, from + i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "argument %d: string expected, got %s", (int)(i + 1), luaL_typename(L, -1));
    v[i + 1] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);  /* keep it */
  }
  v[count + 1] = NULL;
  return v;
}

/* [-0, +0, v] The child's environment: the parent's with the entries of
 * the table at `env` added or replaced (false removes one). Strings live
 * in the anchor table. */
static char **env_list(lua_State *L, int anchor, int env) {
  size_t n = 0, k = 0, i;
  char **v;
  while (environ[n]) n++;
  lua_pushnil(L);
  while (lua_next(L, env)) {  /* count, and check the entries */
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') || lua_tostring(L, -2)[0] == '\0')
      luaL_error(L, "option 'env': variable names must be non-empty strings without '='");
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER && !(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
      luaL_error(L, "option 'env': value of '%s' must be a string or false", lua_tostring(L, -2));
    lua_pop(L, 1);  /* remove the value */
    k++;
  }
  v = lua_newuserdatauv(L, sizeof(char *) * (n + k + 1), 0);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  k = 0;
  for (i = 0; i < n; i++) {  /* the parent's, unless replaced */
    const char *eq = strchr(environ[i], '=');
    if (eq == NULL) continue;
    lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
    if (lua_rawget(L, env) == LUA_TNIL) v[k++] = environ[i];
    lua_pop(L, 1);  /* remove the value */
  }
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_toboolean(L, -1)) {
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      v[k++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    }
    lua_pop(L, 1);  /* remove the value */
  }
  v[k] = NULL;
  return v;
}

/* tide.process.spawn{cmd, args = {...}, env = {K = V}, cwd =, detached =,
 * stdin =, stdout =, stderr =} -> process. The arguments may also follow
 * cmd in the list: spawn{"ls", "-l"}. stdio: "inherit" (default), "ignore",
 * "pipe" (process.stdin / .stdout / .stderr are then streams), a stream,
 * or an fd. Raises when the command cannot be started (ENOENT, ...). */
static int l_spawn(lua_State *L) {
  static const char *const stdio_names[] = {"stdin", "stdout", "stderr"};
  tide_io *io = tide_io_get(L);
  uv_process_options_t po;
  uv_stdio_container_t stdio[3];
  lproc *p, **ud;
  const char *cmd;
  int anchor, i, err;
  lpromise *exitp;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  memset(&po, 0, sizeof(po));
  lua_newtable(L);                                   /* 2: anchor of strings */
  anchor = 2;
  if (lua_rawgeti(L, 1, 1) == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    lua_getfield(L, 1, "cmd");
  }
  if ((cmd = lua_tostring(L, -1)) == NULL || cmd[0] == '\0') return luaL_error(L, "spawn: command expected (first list item or 'cmd')");
  lua_rawseti(L, anchor, 1);                         /* anchor[1] = cmd */
  if (lua_getfield(L, 1, "args") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), 1, "table in option 'args'");
    po.args = string_list(L, anchor, cmd, lua_gettop(L), 1);
  } else {
    po.args = string_list(L, anchor, cmd, 1, 2);
  }
  lua_pop(L, 1);  /* remove args */
  po.file = cmd;
  if (lua_getfield(L, 1, "env") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), 1, "table in option 'env'");
    po.env = env_list(L, anchor, lua_gettop(L));
  }
  lua_pop(L, 1);  /* remove env */
  if (lua_getfield(L, 1, "cwd") != LUA_TNIL) {
    if ((po.cwd = lua_tostring(L, -1)) == NULL) return luaL_error(L, "option 'cwd': string expected");
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  } else {
    lua_pop(L, 1);  /* remove the nil */
  }
  lua_getfield(L, 1, "detached");
  if (lua_toboolean(L, -1)) po.flags |= UV_PROCESS_DETACHED;
  lua_pop(L, 1);  /* remove detached */
  for (i = 0; i < 3; i++) stdio_opt(L, 1, stdio_names[i], i, &stdio[i]);  /* 3, 4, 5 */
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = exit_cb;
  /* The Lua values first: an allocation that fails then leaves no C
   * memory, and no child, behind. */
  ud = lua_newuserdatauv(L, sizeof(*ud), PROC_NUV);   /* 6: the process */
  *ud = NULL;
  luaL_setmetatable(L, PROCESS_MT);
  exitp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);  /* 7: its exit */
  tide_lp_hold(L, -1);
  if ((p = calloc(1, sizeof(*p))) == NULL) {
    tide_lp_drop(exitp);
    return luaL_error(L, "not enough memory");
  }
  p->io = tide_io_ref(io);
  p->h.data = p;
  err = uv_spawn(io->loop, &p->h, &po);
  if (err != 0) {
    tide_lp_drop(exitp);
    uv_close((uv_handle_t *)&p->h, proc_close_cb);  /* uv_spawn initialised it */
    for (i = 3; i <= 5; i++) {  /* close the pipes made for it */
      tide_stream **sud = luaL_testudata(L, i, TIDE_STREAM_MT);
      if (sud && *sud) tide_stream_abort(*sud);
    }
    tide_lua_push_uverror_at(L, err, cmd);
    return lua_error(L);
  }
  *ud = p;
  p->ud = ud;
  p->pid = p->h.pid;
  list_add(lua_touserdata(L, lua_upvalueindex(1)), p);
  for (i = 0; i < 3; i++) {
    lua_pushvalue(L, 3 + i);
    lua_setiuservalue(L, 6, PROC_STDIN + i);
  }
  lua_pushinteger(L, p->pid);
  lua_setiuservalue(L, 6, PROC_PID);
  p->exit = exitp;
  lua_setiuservalue(L, 6, PROC_EXIT);
  return 1;
}

static lproc **check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROCESS_MT);
}

/* p:wait([timeout]) -> promise of code, signal: the exit code and nil, or
 * nil and the name of the signal that ended the process. */
static int p_wait(lua_State *L) {
  double timeout;
  check_proc(L);
  timeout = tide_lua_optseconds(L, 2);
  lua_getiuservalue(L, 1, PROC_EXIT);
  tide_lua_timeout(L, timeout);
  return 1;
}

/* p:kill([signal]) -> boolean: sends `signal` (a name or a number,
 * default "SIGTERM"); false when the process has exited. */
static int p_kill(lua_State *L) {
  lproc *p = *check_proc(L);
  int signum;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n < 128, 2, "unknown signal number");
    signum = (int)n;
  } else {
    const char *name = luaL_optstring(L, 2, "SIGTERM");
    if ((signum = tide_signal_number(name)) == 0)
      return luaL_argerror(L, 2, lua_pushfstring(L, "unknown signal '%s'", name));
  }
  lua_pushboolean(L, p != NULL && !p->exited && uv_process_kill(&p->h, signum) == 0);
  return 1;
}

/* __close: closes the process's pipes and ends it with SIGTERM when it is
 * still running. */
static int p_tbc_close(lua_State *L) {
  lproc *p = *check_proc(L);
  int i;
  for (i = 0; i < 3; i++) {
    tide_stream **sud;
    lua_getiuservalue(L, 1, PROC_STDIN + i);
    sud = luaL_testudata(L, -1, TIDE_STREAM_MT);
    if (sud && *sud) tide_stream_close(L, *sud, 0);
    lua_pop(L, 1);  /* remove the stream */
  }
  if (p != NULL && !p->exited) uv_process_kill(&p->h, SIGTERM);
  return 0;
}

/* __gc: the child runs on; its handle is freed when it exits. */
static int p_gc(lua_State *L) {
  lproc **ud = lua_touserdata(L, 1);
  if (*ud) (*ud)->ud = NULL;
  return 0;
}

/* __gc of the list of running children: runs only when the state closes
 * (the registry keeps the list). Closes the handles of the children still
 * running, which run on: their close callbacks free them, in the last loop
 * turns of the runtime. Their exit promises go with the state. */
static int list_gc(lua_State *L) {
  proc_list *l = lua_touserdata(L, 1);
  lproc *p;
  while ((p = l->head) != NULL) {
    list_remove(p);
    uv_close((uv_handle_t *)&p->h, proc_close_cb);
  }
  return 0;
}

static int p_index(lua_State *L) {
  lproc *p = *(lproc **)lua_touserdata(L, 1);
  const char *k = tide_lua_index_key(L);
  static const char *const fields[] = {"stdin", "stdout", "stderr"};
  int i;
  if (k == NULL) return 1;  /* a method */
  for (i = 0; i < 3; i++) {
    if (strcmp(k, fields[i]) == 0) {
      if (lua_getiuservalue(L, 1, PROC_STDIN + i) != LUA_TUSERDATA) lua_pushnil(L);
      return 1;
    }
  }
  if (strcmp(k, "pid") == 0) {
    lua_getiuservalue(L, 1, PROC_PID);
  } else if (strcmp(k, "exited") == 0) {
    lua_pushboolean(L, p == NULL || p->exited);
  }
  return 1;
}

static int p_tostring(lua_State *L) {
  lproc *p = *(lproc **)lua_touserdata(L, 1);
  if (p && !p->exited) lua_pushfstring(L, "tide.process (pid %d): %p", p->pid, (void *)p);
  else lua_pushfstring(L, "tide.process (exited): %p", lua_touserdata(L, 1));
  return 1;
}

/* exec(cmd, ...) / exec{spawn options, input = string, max_output = bytes}
 * -> promise of {status =, signal =, stdout =, stderr =}: runs the command
 * with its output captured (at most max_output bytes each, default 16
 * MiB: more kills it and rejects with EMSGSIZE). */
static const char exec_lua[] =
  "local tide, spawn, limit = ...\n"
  "return function(cmd, ...)\n"
  "  local opts\n"
  "  if type(cmd) == 'table' then\n"
  "    opts = {}\n"
  "    for k, v in pairs(cmd) do opts[k] = v end\n"
  "  else\n"
  "    opts = { cmd, args = { ... } }\n"
  "  end\n"
  "  local input, max = opts.input, opts.max_output or limit\n"
  "  if input ~= nil and type(input) ~= 'string' then error(\"option 'input': string expected\", 2) end\n"
  "  opts.input, opts.max_output = nil, nil\n"
  "  opts.stdin = input and 'pipe' or opts.stdin or 'ignore'\n"
  "  opts.stdout, opts.stderr = 'pipe', 'pipe'\n"
  "  local ok, p = pcall(spawn, opts)\n"
  "  if not ok then return tide.rejected(p) end\n"
  "  return tide.spawn(function()\n"
  "    local ok, res = pcall(function()\n"
  "      if input then\n"
  "        tide.spawn(function()\n"
  "          pcall(function() p.stdin:write(input):await() end)\n"
  "          p.stdin:close()\n"
  "        end)\n"
  "      end\n"
  "      local out, err = tide.all{ p.stdout:read_all(max), p.stderr:read_all(max) }:await()\n"
  "      local status, signal = p:wait():await()\n"
  "      return { status = status, signal = signal, stdout = out, stderr = err }\n"
  "    end)\n"
  "    if not ok then\n"
  "      p:kill('SIGKILL')\n"
  "      if p.stdin then p.stdin:close() end\n"
  "      p.stdout:close(); p.stderr:close()\n"
  "      error(res, 0)\n"
  "    end\n"
  "    return res\n"
  "  end)\n"
  "end\n";

static const luaL_Reg proc_methods[] = {
  {"wait", p_wait},
  {"kill", p_kill},
  {NULL, NULL}
};

static const luaL_Reg proc_meta[] = {
  {"__gc", p_gc},
  {"__close", p_tbc_close},
  {"__tostring", p_tostring},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.process to the module table at the top. */
int tide_open_process(lua_State *L) {
  tide_lua_newclass(L, PROCESS_MT, proc_meta, proc_methods, p_index);
  lua_createtable(L, 0, 2);                            /* tide.process */
  ((proc_list *)lua_newuserdatauv(L, sizeof(proc_list), 0))->head = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, list_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  luaL_ref(L, LUA_REGISTRYINDEX);  /* the registry keeps the list till the end */
  lua_pushcclosure(L, l_spawn, 1);
  lua_setfield(L, -2, "spawn");
  if (luaL_loadbuffer(L, exec_lua, sizeof(exec_lua) - 1, "=[tide.process.exec]") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, -3);                                /* the tide module */
  lua_getfield(L, -3, "spawn");
  lua_pushinteger(L, EXEC_LIMIT);
  lua_call(L, 3, 1);
  lua_setfield(L, -2, "exec");
  lua_setfield(L, -2, "process");
  return 0;
}
