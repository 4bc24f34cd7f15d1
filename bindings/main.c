/* main.c — the `tide` binary: runs async Lua scripts. It behaves like
 * lua5.4 where it can (script and arguments in `arg`, -e, -l, -, -v, -h,
 * shebang lines), except that every chunk runs as a task, so `await` works
 * at top level, and the process lives on until nothing keeps the loop
 * alive. With no arguments on a terminal (or with -i, after the script)
 * it starts a REPL: line editing and history with readline's callback
 * interface, so that the loop (timers, servers, tasks started at the
 * prompt) goes on while it waits for a line; each line runs as a task,
 * Ctrl-C cancels that task (or clears the line at the prompt) and Ctrl-D
 * leaves.
 *
 * Exit status: 0; 1 when a chunk failed or a rejection went unhandled;
 * the status given to os.exit (which may close the state first).
 * Stack discipline follows lua.c: all work happens in pmain under
 * lua_pcall, errors are printed as "tide: msg" with a traceback.
 */
#include "binding.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

static const char *progname = "tide";

/* readline's own switch (not in its headers): rl_insert reads the keys
 * typed ahead at once. */
extern int _rl_optimize_typeahead;

static void print_usage(void) {
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat   execute string 'stat'\n"
    "  -i        enter interactive mode after executing 'script'\n"
    "  --workers n  run n worker processes of 'script' sharing its ports\n"
    "  -l mod    require library 'mod' into global 'mod'\n"
    "  -v        show version information\n"
    "  -h        show this help\n"
    "  --        stop handling options\n"
    "  -         execute stdin and stop handling options\n"
    "Every chunk runs as a task: tide.await works at top level.\n",
    progname);
}

static void print_version(void) {
  printf("tide %s (%s, libuv %s)\n", TIDE_VERSION_STRING, LUA_RELEASE, uv_version_string());
}

/* [-0, +0, -] Prints the error at -2 with the traceback at -1 and pops
 * them. */
static void report_error(lua_State *L) {
  lua_pushvalue(L, -2);
  tide_lua_report(L, "", lua_gettop(L) - 1);
  lua_pop(L, 3);  /* remove the copy, the traceback and the error */
}

/* [-(n+1), +0, -] Runs the function below `n` arguments as a task until it
 * is done; reports its error. Returns 1 on success. */
static int run_chunk(lua_State *L, int n) {
  int base = lua_gettop(L) - n - 1;
  if (tide_lua_run_task(L, n) != LUA_OK) {
    report_error(L);
    lua_settop(L, base);
    return 0;
  }
  lua_settop(L, base);
  return 1;
}

/* [-0, +0, -] Loads a chunk with lua.c's conventions; reports errors. */
static int load_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Adds the folder of tide's Lua modules to package.path: lua/ of the
 * source tree when running from build/, or share/lua/5.4 of the prefix. */
static void set_module_path(lua_State *L, const char *exe) {
  char dir[4096], path[2 * 4096 + 64];
  size_t len = sizeof(dir);
  char *slash;
  if (uv_exepath(dir, &len) != 0) {
    if (strlen(exe) >= sizeof(dir)) return;
    strcpy(dir, exe);
  }
  if ((slash = strrchr(dir, '/')) == NULL) return;
  *slash = '\0';                                    /* .../build or .../bin */
  snprintf(path, sizeof(path), "%s/../lua/tide", dir);
  if (access(path, F_OK) == 0)
    snprintf(path, sizeof(path), "%s/../lua/?.lua;%s/../lua/?/init.lua;", dir, dir);
  else
    snprintf(path, sizeof(path), "%s/../share/lua/5.4/?.lua;%s/../share/lua/5.4/?/init.lua;", dir, dir);
  lua_getglobal(L, "package");
  lua_pushstring(L, path);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);  /* remove package */
}

/* ------------------------------------------------------------------ REPL */

/* The REPL is a task (repl_lua) that asks for each line with
 * readline(prompt), a promise: readline's callback interface reads the
 * terminal when a uv_poll on fd 0 says it is readable, so the loop runs
 * on between keys. A line runs as a task of its own, which Ctrl-C
 * (SIGINT, through tide.signals) cancels; at the prompt Ctrl-C drops the
 * line. A line that does not compile as an expression is tried as a
 * statement; an incomplete chunk asks for more. */
static const char repl_lua[] =
  "local tide, readline, interrupt = ...\n"
  "local pending, current\n"
  "local sigint = tide.signals('SIGINT')\n"
  "tide.spawn(function()\n"
  "  while sigint:next():await() do\n"
  "    if current then current:cancel() else interrupt() end\n"
  "  end\n"
  "end)\n"
  "while true do\n"
  "  local line = readline(pending and '>> ' or '> '):await()\n"
  "  if line == nil then io.stdout:write('\\n') io.stdout:flush() os.exit(0, true) end\n"
  "  if line == false then pending = nil goto continue end\n"
  "  local src = pending and (pending .. '\\n' .. line) or line\n"
  "  local fn, err = load('return ' .. src, '=stdin')\n"
  "  if not fn then fn, err = load(src, '=stdin') end\n"
  "  if not fn and err:find('<eof>$') then\n"
  "    pending = src\n"
  "  else\n"
  "    pending = nil\n"
  "    if not fn then\n"
  "      io.stderr:write(err, '\\n')\n"
  "    else\n"
  "      current = tide.spawn(function() return table.pack(fn()) end)\n"
  "      local ok, res = pcall(tide.await, current)\n"
  "      current = nil\n"
  "      if not ok then\n"
  "        if tide.is_cancelled(res) then io.stderr:write('interrupted\\n')\n"
  "        else io.stderr:write(tostring(res), '\\n') end\n"
  "      elseif res.n > 0 then print(table.unpack(res, 1, res.n)) end\n"
  "    end\n"
  "  end\n"
  "  ::continue::\n"
  "end\n";

/* The one REPL of the process (readline's state is global too). */
static struct {
  lua_State *L;
  tide_rt *rt;
  uv_poll_t poll;
  int promise_ref;            /* the promise of the line asked for */
} rl;

/* [-0, +0, -] Settles the promise of the line with the value on top. */
static void rl_settle(void) {
  lua_State *L = rl.L;
  rl_callback_handler_remove();
  uv_poll_stop(&rl.poll);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rl.promise_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, rl.promise_ref);
  rl.promise_ref = LUA_NOREF;
  lua_getfield(L, -1, "resolve");
  lua_insert(L, -3);                   /* resolve, value, promise */
  lua_insert(L, -2);                   /* resolve, promise, value */
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* readline's callback: a whole line, or NULL at the end (Ctrl-D). */
static void rl_line(char *line) {
  if (line && *line) add_history(line);
  if (line) lua_pushstring(rl.L, line);
  else lua_pushnil(rl.L);
  free(line);
  rl_settle();
}

static void rl_readable(uv_poll_t *p, int status, int events) {
  (void)p;
  (void)status;
  (void)events;
  rl_callback_read_char();
  tide_rt_drain(rl.rt);
}

/* readline(prompt) -> promise of the next line; nil at the end; false when
 * Ctrl-C dropped it. */
static int l_readline(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  lua_getglobal(L, "tide");
  lua_getfield(L, -1, "promise");
  lua_call(L, 0, 1);
  lua_pushvalue(L, -1);
  rl.promise_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rl_callback_handler_install(prompt, rl_line);
  uv_poll_start(&rl.poll, UV_READABLE, rl_readable);
  return 1;
}

/* interrupt(): Ctrl-C at the prompt: the line is dropped. */
static int l_interrupt(lua_State *L) {
  (void)L;
  if (rl.promise_ref == LUA_NOREF) return 0;
  rl_replace_line("", 0);
  rl_crlf();
  lua_pushboolean(rl.L, 0);
  rl_settle();
  return 0;
}

static int repl(lua_State *L, tide_rt *rt) {
  int ok;
  print_version();
  fflush(stdout);
  rl.L = L;
  rl.rt = rt;
  rl.promise_ref = LUA_NOREF;
  rl_catch_signals = 0;                /* SIGINT goes to tide.signals */
  /* readline reads one key per call: typed-ahead lines stay in the
   * terminal until the next line is asked for (its typeahead buffer would
   * be read on after the handler of a line was removed). */
  _rl_optimize_typeahead = 0;
  rl_readline_name = "tide";
  if (uv_poll_init(tide_rt_loop(rt), &rl.poll, 0) != 0) {
    fprintf(stderr, "%s: cannot watch the terminal\n", progname);
    return 0;
  }
  if (!load_report(L, luaL_loadbuffer(L, repl_lua, sizeof(repl_lua) - 1, "=[tide repl]"))) return 0;
  lua_getglobal(L, "tide");
  lua_pushcfunction(L, l_readline);
  lua_pushcfunction(L, l_interrupt);
  ok = run_chunk(L, 3);
  uv_close((uv_handle_t *)&rl.poll, NULL);
  return ok;
}

/* --------------------------------------------------------------- workers */

/* `tide --workers n script [args]` makes this process a supervisor of n
 * workers: each runs `tide script [args]` with TIDE_WORKER=i (1..n) and
 * TIDE_WORKERS=n in its environment, and its TCP servers share their ports
 * with SO_REUSEPORT (tcp.c), so the kernel spreads connections over them.
 * Nothing else is shared: state that must be common goes to Redis or a
 * database. A worker that ends is started again (after a pause that grows
 * while it keeps dying at once); SIGTERM or SIGINT stop accepting in every
 * worker, let them drain and end within the grace period (TIDE_GRACE
 * seconds, default 10), then the supervisor exits; SIGHUP replaces the
 * workers one at a time, each new one serving (it sends SIGUSR1 once its
 * script ran) before the old one stops. */
static const char supervisor_lua[] =
  "local tide, exe, args, n, grace = ...\n"
  "local workers, stopping = {}, false\n"
  "local ready = tide.signals('SIGUSR1')  -- a worker's script ran\n"
  "local function log(fmt, ...) io.stderr:write(('tide: supervisor: ' .. fmt .. '\\n'):format(...)) end\n"
  "local start\n"
  "local function watch(w)\n"
  "  local code, sig = w.p:wait():await()\n"
  "  if stopping or workers[w.i] ~= w then return end\n"
  "  local pause = tide.now() - w.started < 1 and math.min(w.pause * 2, 5) or 0.1\n"
  "  log('worker %d (pid %d) ended (%s); starting it again in %.1f s', w.i, w.p.pid,\n"
  "      sig or ('status ' .. tostring(code)), pause)\n"
  "  tide.sleep(pause):await()\n"
  "  if not stopping and workers[w.i] == w then start(w.i, pause) end\n"
  "end\n"
  "function start(i, pause)\n"
  "  local w = { i = i, started = tide.now(), pause = pause or 0.05 }\n"
  "  w.p = tide.process.spawn{ exe, args = args,\n"
  "    env = { TIDE_WORKER = tostring(i), TIDE_WORKERS = tostring(n) } }\n"
  "  workers[i] = w\n"
  "  tide.spawn(watch, w)\n"
  "  return w\n"
  "end\n"
  "-- Sends SIGTERM to `w`, waits for it up to the grace period, then kills it.\n"
  "local function retire(w)\n"
  "  w.p:kill('SIGTERM')\n"
  "  if not pcall(tide.await, w.p:wait(grace + 1)) then w.p:kill('SIGKILL') end\n"
  "end\n"
  "for i = 1, n do start(i) end\n"
  "tide.spawn(function()\n"
  "  local sig = tide.signals('SIGTERM', 'SIGINT')\n"
  "  sig:next():await()\n"
  "  stopping = true\n"
  "  local all = {}\n"
  "  for i, w in pairs(workers) do all[#all + 1] = tide.spawn(retire, w) end\n"
  "  tide.all(all):await()\n"
  "  os.exit(0, true)\n"
  "end)\n"
  "local hup = tide.signals('SIGHUP')\n"
  "while hup:next():await() do\n"
  "  log('restarting the workers one by one')\n"
  "  for i = 1, n do\n"
  "    local old = workers[i]\n"
  "    while ready.queued > 0 do ready:next():await() end\n"
  "    start(i)\n"
  "    -- the new one serves (its script ran) before the old one stops\n"
  "    pcall(tide.await, ready:next(grace))\n"
  "    if old then retire(old) end\n"
  "  end\n"
  "end\n";

/* Runs the supervisor of `n` workers of the command after the options. */
static int supervise(lua_State *L, char **argv, int argc, int first, int n) {
  char exe[4096];
  size_t len = sizeof(exe);
  const char *g = getenv("TIDE_GRACE");
  double grace = g ? atof(g) : 10;
  int i;
  if (uv_exepath(exe, &len) != 0) snprintf(exe, sizeof(exe), "%s", argv[0]);
  if (!load_report(L, luaL_loadbuffer(L, supervisor_lua, sizeof(supervisor_lua) - 1, "=[tide supervisor]")))
    return 0;
  lua_getglobal(L, "tide");
  lua_pushstring(L, exe);
  lua_createtable(L, argc - first, 0);
  for (i = first; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - first + 1);
  }
  lua_pushinteger(L, n);
  lua_pushnumber(L, grace > 0 ? grace : 10);
  return run_chunk(L, 5);
}

/* A worker told to stop (SIGTERM): every listening server closes, letting
 * its handlers finish within the grace period; the process then ends when
 * nothing is left to do, or at the end of the grace period. */
static struct {
  lua_State *L;
  uv_signal_t term;
  uv_timer_t deadline;
  double grace;
} worker;

static void worker_deadline(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "%s: worker %s: still busy after the grace period; exiting\n", progname,
          getenv("TIDE_WORKER"));
  exit(EXIT_FAILURE);
}

static void worker_term(uv_signal_t *h, int signum) {
  (void)signum;
  if (uv_is_active((uv_handle_t *)&worker.deadline)) exit(EXIT_FAILURE);  /* asked twice */
  uv_timer_start(&worker.deadline, worker_deadline, (uint64_t)(worker.grace * 1000), 0);
  uv_unref((uv_handle_t *)&worker.deadline);
  uv_signal_stop(h);
  uv_signal_start(h, worker_term, SIGTERM);
  uv_unref((uv_handle_t *)h);
  tide_servers_close(worker.L, worker.grace);
  tide_rt_drain(tide_lua_get(worker.L)->rt);
}

/* Makes this process a worker when TIDE_WORKER says it is one. */
static void worker_init(lua_State *L, tide_rt *rt) {
  const char *g = getenv("TIDE_GRACE");
  if (getenv("TIDE_WORKER") == NULL) return;
  worker.L = L;
  worker.grace = g && atof(g) > 0 ? atof(g) : 10;
  uv_signal_init(tide_rt_loop(rt), &worker.term);
  uv_timer_init(tide_rt_loop(rt), &worker.deadline);
  uv_signal_start(&worker.term, worker_term, SIGTERM);
  uv_unref((uv_handle_t *)&worker.term);  /* never keeps the worker alive */
  uv_unref((uv_handle_t *)&worker.deadline);
}

/* ------------------------------------------------------------ arguments */

/* Builds the global `arg` as lua.c does: script at 0, options below. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  int i;
  if (script == argc) script = 0;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  tide_rt *rt = lua_touserdata(L, 3);
  int i, script = argc, has_e = 0, ok = 1, n, interactive = 0, workers = 0, wopt = 0;
  tide_lua *tl;

  luaL_openlibs(L);
  if (tide_lua_open_rt(L, rt) != 0) return luaL_error(L, "cannot attach the runtime");
  luaL_requiref(L, "tide", luaopen_tide, 1);  /* global `tide` too */
  lua_pop(L, 1);
  tl = tide_lua_get(L);
  set_module_path(L, argv[0]);

  /* First pass: options that print and exit, and where the script is. */
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) { script = i; break; }
    if (strcmp(a, "--") == 0) { script = i + 1; break; }
    if (strcmp(a, "-v") == 0) { print_version(); if (argc == 2) { lua_pushboolean(L, 1); return 1; } continue; }
    if (strcmp(a, "-i") == 0) { interactive = 1; continue; }
    if (strcmp(a, "--workers") == 0) {
      workers = i + 1 < argc ? atoi(argv[i + 1]) : 0;
      if (workers < 1 || workers > 1024) {
        fprintf(stderr, "%s: '--workers' needs a number from 1 to 1024\n", progname);
        lua_pushboolean(L, 0);
        return 1;
      }
      wopt = i++;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { print_usage(); lua_pushboolean(L, 1); return 1; }
    if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (a[0] && i + 1 >= argc) { fprintf(stderr, "%s: '%s' needs argument\n", progname, a); print_usage(); lua_pushboolean(L, 0); return 1; }
      has_e |= a[1] == 'e';
      i++;
      continue;
    }
    if ((a[1] == 'e' || a[1] == 'l') && a[2]) { has_e |= a[1] == 'e'; continue; }
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
    print_usage();
    lua_pushboolean(L, 0);
    return 1;
  }
  if (workers) {  /* the workers run the command without --workers n */
    if (script >= argc) {
      fprintf(stderr, "%s: '--workers' needs a script\n", progname);
      lua_pushboolean(L, 0);
      return 1;
    }
    for (i = wopt; i + 2 < argc; i++) argv[i] = argv[i + 2];
    ok = supervise(L, argv, argc - 2, 1, workers);
    lua_pushboolean(L, ok);
    return 1;
  }
  worker_init(L, rt);
  create_arg_table(L, argv, argc, script);

  /* Second pass: -e and -l in order, each as a task. */
  for (i = 1; i < script && ok; i++) {
    const char *a = argv[i], *val;
    if (strcmp(a, "-v") == 0 || strcmp(a, "-i") == 0) continue;
    val = a[2] ? a + 2 : argv[++i];
    if (a[1] == 'e') {
      ok = load_report(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)")) && run_chunk(L, 0);
    } else {
      const char *eq = strchr(val, '=');  /* -l g=mod */
      lua_getglobal(L, "require");
      lua_pushstring(L, eq ? eq + 1 : val);
      lua_pushcfunction(L, tide_lua_traceback_handler);
      lua_insert(L, -3);
      if (lua_pcall(L, 1, 1, -3) != LUA_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, "tide.traceback");
        report_error(L);
        ok = 0;
      } else {
        lua_pushlstring(L, val, eq ? (size_t)(eq - val) : strlen(val));
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);  /* remove the handler */
    }
  }

  if (ok && script < argc) {
    const char *fname = strcmp(argv[script], "-") == 0 && strcmp(argv[script - 1], "--") != 0 ? NULL : argv[script];
    ok = load_report(L, luaL_loadfile(L, fname));
    if (ok) {
      n = argc - script - 1;
      luaL_checkstack(L, n, "too many arguments to script");
      for (i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
      ok = run_chunk(L, n);
      /* a worker whose script ran (its servers listen) tells its supervisor */
      if (ok && getenv("TIDE_WORKER") != NULL) kill(getppid(), SIGUSR1);
    }
  } else if (ok && script == argc && !has_e && !interactive) {
    if (isatty(0)) {
      ok = repl(L, rt);
    } else {
      ok = load_report(L, luaL_loadfile(L, NULL)) && run_chunk(L, 0);
    }
  }
  if (ok && interactive) ok = repl(L, rt);

  /* What the chunks started goes on until nothing keeps the loop alive,
   * unless a chunk failed: then the program ends now (as lua5.4 and Node
   * do), instead of serving on behind an error. */
  if (ok) {
    tl->running = 1;
    tide_rt_run(rt, TIDE_RUN_DEFAULT);
    tl->running = 0;
  }
  lua_pushboolean(L, ok && tl->reported == 0);
  return 1;
}

int main(int argc, char **argv) {
  tide_rt *rt;
  lua_State *L;
  int status, ok;
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (tide_rt_new(NULL, &rt) != 0) {
    fprintf(stderr, "%s: cannot create the runtime\n", progname);
    return 1;
  }
  L = tide_lua_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return 1;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, rt);
  status = lua_pcall(L, 3, 1, 0);
  ok = status == LUA_OK && lua_toboolean(L, -1);
  if (status != LUA_OK) {
    tide_lua *tl = tide_lua_get(L);
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    /* An error raised by C code in a callback of the loop (a failed
     * allocation as it pushed a value) jumped out of libuv's uv_run, which
     * leaves the loop half-way through a turn (libuv keeps a pointer to
     * its stack frame): closing the state would close handles on it. The
     * loop was running when `running` is still set; end the process now. */
    if (tl != NULL && tl->running) {
      fprintf(stderr, "%s: the error escaped from the event loop: exiting\n", progname);
      fflush(NULL);
      _exit(EXIT_FAILURE);
    }
  }
  tide_lua_closestate(L);
  tide_rt_free(rt);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
