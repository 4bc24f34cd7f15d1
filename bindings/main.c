/* main.c — the `tide` binary: runs async Lua scripts. It behaves like
 * lua5.4 where it can (script and arguments in `arg`, -e, -l, -, -v, -h,
 * shebang lines), except that every chunk runs as a task, so `await` works
 * at top level, and the process lives on until nothing keeps the loop
 * alive. With no arguments on a terminal it starts a REPL whose prompt
 * runs inside a task.
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

static const char *progname = "tide";

static void print_usage(void) {
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat   execute string 'stat'\n"
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

/* The REPL runs as a task reading tide.stdin, so `await` works at the
 * prompt and background tasks go on between lines. A line that does not
 * compile as an expression is tried as a statement; an incomplete chunk
 * asks for more. */
static const char repl_lua[] =
  "local tide = require 'tide'\n"
  "local function prompt(p) io.stdout:write(p) io.stdout:flush() end\n"
  "local pending\n"
  "prompt('> ')\n"
  "while true do\n"
  "  local line = tide.stdin:read_line():await()\n"
  "  if line == nil then io.stdout:write('\\n') return end\n"
  "  local src = pending and (pending .. '\\n' .. line) or line\n"
  "  local fn, err = load('return ' .. src, '=stdin')\n"
  "  if not fn then fn, err = load(src, '=stdin') end\n"
  "  if not fn and err:find('<eof>$') then\n"
  "    pending = src\n"
  "    prompt('>> ')\n"
  "  else\n"
  "    pending = nil\n"
  "    if not fn then\n"
  "      io.stderr:write(err, '\\n')\n"
  "    else\n"
  "      local res = table.pack(xpcall(fn, debug.traceback))\n"
  "      if not res[1] then io.stderr:write(tostring(res[2]), '\\n')\n"
  "      elseif res.n > 1 then print(table.unpack(res, 2, res.n)) end\n"
  "    end\n"
  "    prompt('> ')\n"
  "  end\n"
  "end\n";

static int repl(lua_State *L) {
  print_version();
  if (!load_report(L, luaL_loadbuffer(L, repl_lua, sizeof(repl_lua) - 1, "=[tide repl]")))
    return 0;
  return run_chunk(L, 0);
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
  int i, script = argc, has_e = 0, ok = 1, n;
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
    if (strcmp(a, "-v") == 0) continue;
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
  } else if (ok && script == argc && !has_e && argc <= 2) {
    if (isatty(0)) {
      ok = repl(L);
    } else {
      ok = load_report(L, luaL_loadfile(L, NULL)) && run_chunk(L, 0);
    }
  }

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
