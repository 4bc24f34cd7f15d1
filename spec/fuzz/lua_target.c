/* lua_target.c — a libFuzzer target that hands each input to a Lua
 * function: the script FUZZ_SCRIPT (a path, set by the Makefile) returns a
 * function(data), run with the real modules of lua/ and the tide C module
 * linked in (libtide.a, opened through package.preload).
 *
 * The script owns the contract of what it drives: it catches the errors the
 * parser documents (nil returns, EPROTO error objects) and lets anything
 * else escape. An error that escapes is a finding: it is printed and the
 * process aborts, so libFuzzer saves the input. Crashes, sanitizer reports,
 * leaks and timeouts are findings as well, as for any target. To fuzz past
 * a finding not fixed yet, FUZZ_KNOWN=text makes an escaping error whose
 * message holds text count as clean.
 *
 * Coverage. libFuzzer sees the C code compiled with coverage, not the Lua
 * interpreter (Debian's liblua5.4) nor the Lua code it runs, so by itself
 * it would mutate blindly through the parsers. A line hook gives it the Lua
 * side: each (source, line) pair and each step from one line to the next
 * bumps a byte of lua_counters, which libFuzzer reads as extra coverage
 * features (the counters are cleared before each input). Code that is not
 * instrumented either (OpenSSL, zlib) is blind to the fuzzer as well; a
 * script can name the outcome it saw with the global fuzz_feature(text),
 * which bumps the counter of that text (an error message, say), so that
 * an input that gets further into such code counts as new.
 *
 * Ownership: one lua_State per process, made on the first input and kept
 * (closing and reopening it per input would cost more than the parsing);
 * the stack is reset after each input. At exit (atexit, which runs before
 * LeakSanitizer's own check, registered earlier) the state is closed, so
 * that what tide or the modules allocated and did not free shows up as a
 * leak then.
 *
 * Leaks, and the cost of finding them per input. libFuzzer counts the
 * mallocs and frees of each input and, when an input leaves more mallocs
 * than frees, runs it again and then runs LeakSanitizer over the whole
 * process, which takes milliseconds. Lua frees garbage later, in the
 * collections of later inputs, so every input looks like a leak unless a
 * full collection ends it; but a full collection walks every object of
 * the state, the loaded modules included, and costs more than most inputs
 * (the websocket target spent two thirds of its time sweeping the heap).
 * So the Lua targets run by default without the per-input check (run.sh
 * passes -detect_leaks=0 to them) and without forced collections (Lua's
 * incremental collector bounds the memory as in any program), and leaks
 * are still found, at exit: closing the state frees everything Lua owns,
 * and LeakSanitizer reports what is left. What is lost is the input: a
 * leak at exit names the allocation, not the input that made it. To find
 * that input, replay the corpus with FUZZ_GC_EVERY=1 (a full collection
 * after each input, as the per-input check needs) and -detect_leaks=1.
 * FUZZ_GC_EVERY=n collects after every n-th input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef FUZZ_ROOT
#error "FUZZ_ROOT: the source tree (its lua/ holds the modules)"
#endif
#ifndef FUZZ_SCRIPT
#error "FUZZ_SCRIPT: the Lua script that returns the function to fuzz"
#endif

int luaopen_tide(lua_State *L);

static lua_State *state;
static int fn_ref = LUA_NOREF;
static unsigned long gc_every, inputs;  /* FUZZ_GC_EVERY; inputs run */

#define NCOUNTERS (1 << 16)
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_counters[NCOUNTERS];
static uintptr_t last_line;

/* The source of the function running in each call frame, cached: asking
 * lua_getinfo for it on every line cost more than the rest of the hook
 * and the parsing together (the resp target ran three times as fast
 * without the hook, and the lookup was half of the hook's cost). A frame
 * is its CallInfo, ar->i_ci (opaque here; the field is in lua.h). A call
 * hook drops a frame's entry whenever a function starts in it, which is
 * the only way a frame gets another function (a call, a tail call, the
 * body of a new coroutine, a frame reused after an error), so an entry
 * found for a frame is its current function's. Direct-mapped: a clash
 * costs a lookup, not a wrong source. */
#define NFRAMES 256
static struct frame_source {
  const void *ci;
  const char *source;
} frames[NFRAMES];

/* The hook runs on every line: it is not instrumented itself (its
 * comparisons of pointers would reach libFuzzer as hints, its branches as
 * coverage, and cost a fifth of a resp run), nor checked by ASan (its
 * indexes are reduced modulo the arrays' sizes). */
#define HOOK_CODE __attribute__((no_sanitize("coverage", "address", "undefined")))

HOOK_CODE static struct frame_source *frame_of(const void *ci) {
  uintptr_t h = (uintptr_t)ci;
  return &frames[((h >> 4) ^ (h >> 12)) % NFRAMES];
}

/* The hook: on a call, forgets the frame's source; on a line, counts the
 * line (its chunk's source string, which lives as long as the function's
 * prototype, and its number) and the edge from the line before. */
HOOK_CODE static void line_hook(lua_State *L, lua_Debug *ar) {
  uintptr_t here;
  struct frame_source *f = frame_of(ar->i_ci);
  if (ar->event != LUA_HOOKLINE) {  /* LUA_HOOKCALL or LUA_HOOKTAILCALL */
    if (f->ci == ar->i_ci) f->ci = NULL;
    return;
  }
  if (f->ci != ar->i_ci) {
    if (!lua_getinfo(L, "S", ar)) return;
    f->ci = ar->i_ci;
    f->source = ar->source;
  }
  here = ((uintptr_t)f->source * 31u) ^ ((uintptr_t)ar->currentline * 2654435761u);
  lua_counters[here % NCOUNTERS]++;
  lua_counters[((here >> 3) ^ (last_line * 40503u)) % NCOUNTERS]++;
  last_line = here;
}

/* fuzz_feature(text): one more feature, the text's hash (FNV-1a). */
static int fuzz_feature(lua_State *L) {
  size_t len, i;
  const char *s = luaL_checklstring(L, 1, &len);
  uint32_t h = 2166136261u;
  for (i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  lua_counters[h % NCOUNTERS]++;
  return 0;
}

/* [-0, +1, -] A traceback for the error on top, as lua.c's msghandler. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);  /* an error object */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void die(lua_State *L, const char *what) {
  fprintf(stderr, "fuzz: %s: %s\n", what, lua_tostring(L, -1));
  abort();
}

/* At exit: closes the state, so that LeakSanitizer sees what it left. */
static void close_state(void) {
  if (state != NULL) {
    lua_close(state);
    state = NULL;
  }
}

/* Makes the state, points package.path at lua/, preloads tide and runs
 * the script, whose function it keeps in the registry. */
static lua_State *open_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, FUZZ_ROOT "/lua/?.lua;" FUZZ_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_tide);
  lua_setfield(L, -2, "tide");
  lua_pop(L, 2);  /* remove preload and package */
  lua_register(L, "fuzz_feature", fuzz_feature);
  lua_pushcfunction(L, msghandler);
  if (luaL_loadfile(L, FUZZ_SCRIPT) != LUA_OK) die(L, "loading " FUZZ_SCRIPT);
  if (lua_pcall(L, 0, 1, 1) != LUA_OK) die(L, "running " FUZZ_SCRIPT);
  if (!lua_isfunction(L, -1)) {
    lua_pushliteral(L, FUZZ_SCRIPT " must return a function");
    die(L, "running " FUZZ_SCRIPT);
  }
  fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* pops the function */
  lua_settop(L, 0);
  lua_sethook(L, line_hook, LUA_MASKLINE | LUA_MASKCALL, 0);
  {
    const char *every = getenv("FUZZ_GC_EVERY");
    gc_every = every ? strtoul(every, NULL, 10) : 0;
  }
  atexit(close_state);
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state ? state : (state = open_state());
  lua_pushcfunction(L, msghandler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
  lua_pushlstring(L, (const char *)data, size);
  last_line = 0;
  if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
    const char *known = getenv("FUZZ_KNOWN"), *msg = lua_tostring(L, -1);
    if (known == NULL || *known == '\0' || msg == NULL || strstr(msg, known) == NULL)
      die(L, "unexpected error");
  }
  lua_settop(L, 0);
  if (gc_every > 0 && ++inputs % gc_every == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
