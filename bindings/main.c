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
  int i, script = argc, has_e = 0, ok = 1, n, interactive = 0;
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
  if (status != LUA_OK) fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
  tide_lua_closestate(L);
  tide_rt_free(rt);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
