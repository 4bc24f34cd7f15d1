/* watchdog.c — the blocked-loop watchdog (tide.watchdog, TIDE_WATCHDOG):
 * a thread of its own notices when the loop has not turned for a while
 * and prints the Lua stack of the code running at that moment, while it
 * still runs; then the loop goes on.
 *
 * How. The watchdog thread pings the loop with a uv_async every quarter
 * of the limit and waits for the answer; the loop answers as soon as it
 * turns, and an idle loop (blocked in poll) turns at once. A ping left
 * unanswered for longer than the limit means Lua code (or a C function it
 * called) holds the loop. The thread then sets a count hook on the
 * coroutine of the running task and on the main thread (lua_sethook is
 * the one Lua API call made to be called asynchronously, as lua.c does
 * from its signal handler); the hook runs on the loop thread at the next
 * instruction, prints the traceback to stderr and removes itself. One
 * report per stall.
 *
 * Ownership. The watchdog is malloc'd (its async handle closes through
 * libuv, and is freed in the close callback); a userdata in the registry
 * owns it, and its __gc (the state closing, or tide.watchdog(false))
 * stops and joins the thread. The hook finds its watchdog through a
 * thread-local pointer: it runs on the loop thread, which set it. Reading
 * tl->current from the watchdog thread is a race by the letter; it is read
 * only while the loop thread is stuck in that very task.
 */
#include "binding.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char wd_key = 'W';

typedef struct watchdog {
  uv_async_t async;           /* the loop's answer to a ping: must be first */
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  lua_State *main;            /* the main thread of the state */
  tide_lua *tl;
  uint64_t limit_ns;          /* stall length that is reported */
  atomic_uint_fast64_t ping;  /* hrtime of the unanswered ping, 0 when answered */
  atomic_int armed;           /* a hook was set and has not reported yet */
  int stop;                   /* under mu */
} watchdog;

/* The watchdog of the runtime on this (loop) thread, for the hook. */
static _Thread_local watchdog *loop_wd;

/* The hook, on the loop thread: reports the stall once, removes itself. */
static void hook(lua_State *L, lua_Debug *ar) {
  watchdog *wd = loop_wd;
  uint64_t since;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (wd == NULL || !atomic_exchange(&wd->armed, 0)) return;
  since = atomic_load(&wd->ping);
  luaL_traceback(L, L, NULL, 0);
  fprintf(stderr, "tide: watchdog: the loop has not turned for %.0f ms; running now:\n%s\n",
          since ? (double)(uv_hrtime() - since) / 1e6 : 0.0, lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 1);  /* remove the traceback */
}

/* The loop turned: the ping is answered. */
static void async_cb(uv_async_t *a) {
  watchdog *wd = (watchdog *)a;
  atomic_store(&wd->ping, 0);
}

static void close_cb(uv_handle_t *h) { free(h); }

/* The watchdog thread. */
static void run(void *arg) {
  watchdog *wd = arg;
  uint64_t step = wd->limit_ns / 4, reported = 0;
  uv_mutex_lock(&wd->mu);
  while (!wd->stop) {
    uint64_t now = uv_hrtime(), ping = atomic_load(&wd->ping);
    if (ping == 0) {
      uint64_t expected = 0;
      if (atomic_compare_exchange_strong(&wd->ping, &expected, now)) uv_async_send(&wd->async);
    } else if (now - ping > wd->limit_ns && ping != reported) {
      ltask *t;
      reported = ping;
      atomic_store(&wd->armed, 1);
      lua_sethook(wd->main, hook, LUA_MASKCOUNT, 1);
      if ((t = wd->tl->current) != NULL) lua_sethook(tide_task_thread(t), hook, LUA_MASKCOUNT, 1);
    }
    uv_cond_timedwait(&wd->cond, &wd->mu, step);
  }
  uv_mutex_unlock(&wd->mu);
}

/* Stops the watchdog of the box at `idx` (nothing when none runs). */
static void stop(lua_State *L, int idx) {
  watchdog **box = lua_touserdata(L, idx), *wd = *box;
  if (wd == NULL) return;
  *box = NULL;
  uv_mutex_lock(&wd->mu);
  wd->stop = 1;
  uv_cond_signal(&wd->cond);
  uv_mutex_unlock(&wd->mu);
  uv_thread_join(&wd->thread);
  uv_mutex_destroy(&wd->mu);
  uv_cond_destroy(&wd->cond);
  lua_sethook(wd->main, NULL, 0, 0);
  if (loop_wd == wd) loop_wd = NULL;
  uv_close((uv_handle_t *)&wd->async, close_cb);
}

static int box_gc(lua_State *L) {
  stop(L, 1);
  return 0;
}

/* [-0, +1, m] Pushes the registry box of the watchdog (made when absent). */
static watchdog **push_box(lua_State *L) {
  return tide_lua_singleton(L, &wd_key, sizeof(watchdog *), box_gc);
}

/* [-0, +0, m] Starts (or with `seconds` <= 0 stops) the watchdog of the
 * state of `L`: stalls longer than `seconds` are reported. Returns 0 or a
 * libuv error. */
int tide_watchdog_set(lua_State *L, double seconds) {
  tide_lua *tl = tide_lua_get(L);
  watchdog **box = push_box(L), *wd;
  int err;
  stop(L, -1);
  lua_pop(L, 1);  /* remove the box: the registry keeps it */
  if (seconds <= 0) return 0;
  if ((wd = calloc(1, sizeof(*wd))) == NULL) return UV_ENOMEM;
  wd->tl = tl;
  wd->main = tl->L;
  wd->limit_ns = (uint64_t)(seconds * 1e9);
  if (wd->limit_ns < 4000000) wd->limit_ns = 4000000;  /* 4 ms at least */
  if ((err = uv_async_init(tide_rt_loop(tl->rt), &wd->async, async_cb)) != 0) {
    free(wd);
    return err;
  }
  uv_unref((uv_handle_t *)&wd->async);  /* never keeps the loop alive */
  uv_mutex_init(&wd->mu);
  uv_cond_init(&wd->cond);
  if ((err = uv_thread_create(&wd->thread, run, wd)) != 0) {
    uv_mutex_destroy(&wd->mu);
    uv_cond_destroy(&wd->cond);
    uv_close((uv_handle_t *)&wd->async, close_cb);
    return err;
  }
  loop_wd = wd;
  *box = wd;
  return 0;
}

int tide_lua_watchdog(tide_rt *rt, unsigned ms) {
  lua_State *L;
  int err;
  if (rt == NULL) return UV_EINVAL;
  if ((err = tide_lua_state(rt, &L)) != 0) return err;
  return tide_watchdog_set(L, ms / 1000.0);
}

/* Parses a duration: "200ms", "0.2s", "0.2" (seconds). Returns seconds, or
 * -1 when it is not one. */
double tide_watchdog_parse(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  if (strcmp(end, "ms") == 0) return v / 1000;
  if (*end == '\0' || strcmp(end, "s") == 0) return v;
  return -1;
}

/* tide.watchdog(seconds | false): reports every stall of the loop longer
 * than `seconds` with the Lua stack running then; false stops it. */
static int l_watchdog(lua_State *L) {
  double seconds = 0;
  int err;
  if (lua_type(L, 1) == LUA_TSTRING) {
    if ((seconds = tide_watchdog_parse(lua_tostring(L, 1))) < 0)
      return luaL_argerror(L, 1, "a duration such as 0.2 or \"200ms\" expected");
  } else if (!(lua_isboolean(L, 1) && !lua_toboolean(L, 1))) {
    seconds = tide_lua_checkseconds(L, 1);
    luaL_argcheck(L, seconds > 0, 1, "seconds > 0 (or false to stop) expected");
  }
  if ((err = tide_watchdog_set(L, seconds)) != 0) {
    tide_lua_push_uverror(L, err);
    return lua_error(L);
  }
  return 0;
}

/* [-0, +0, m] Adds tide.watchdog to the module table on top, and starts
 * the watchdog when TIDE_WATCHDOG says so ("200ms"). */
int tide_open_watchdog(lua_State *L) {
  const char *env = getenv("TIDE_WATCHDOG");
  lua_pushcfunction(L, l_watchdog);
  lua_setfield(L, -2, "watchdog");
  if (env != NULL && *env != '\0') {
    double seconds = tide_watchdog_parse(env);
    if (seconds < 0) fprintf(stderr, "tide: TIDE_WATCHDOG=%s: a duration such as 200ms expected\n", env);
    else if (seconds > 0) tide_watchdog_set(L, seconds);
  }
  return 0;
}
