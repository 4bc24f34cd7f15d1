/* async_fn.c — a host-provided async function: host.hash(text, rounds)
 * returns a promise at once, computes on a host thread of its own, and the
 * thread settles the promise through tide_post (the one call safe from any
 * thread). Lua awaits it like any other promise: several run in parallel,
 * tide.timeout cancels one that is too slow (its cancel hook tells the
 * thread to stop), and misuse raises at once.
 * Usage: async_fn */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <tide.h>

typedef struct {
  tide_rt *rt;
  tide_promise *p;        /* NULL once Lua cancelled the call */
  uv_thread_t thread;
  atomic_int stop;        /* set by the cancel hook, read by the thread */
  lua_Integer rounds;
  uint64_t hash;
  char text[64];
} job;

/* The host thread: FNV-1a over `text`, `rounds` times (or until stopped). */
static void job_thread(void *arg);

/* Back on the loop thread: settle the promise, unless Lua cancelled it. */
static void job_done(tide_rt *rt, void *data) {
  job *j = data;
  uv_thread_join(&j->thread);  /* it has finished: it posted this */
  if (j->p != NULL) {
    char hex[17];
    tide_value v[2];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)j->hash);
    v[0] = tide_string(hex);
    v[1] = tide_integer(j->rounds);
    tide_promise_resolve(j->p, v, 2);
  } else {
    printf("host: job '%s' stopped early\n", j->text);
  }
  tide_rt_release(rt);  /* the hold taken for the thread */
  free(j);
}

static void job_thread(void *arg) {
  job *j = arg;
  uint64_t h = 14695981039346656037u;
  lua_Integer r;
  const char *s;
  for (r = 0; r < j->rounds && !atomic_load(&j->stop); r++)
    for (s = j->text; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  j->hash = h;
  if (tide_post(j->rt, job_done, j) != 0) abort();  /* the runtime outlives the hold */
}

/* Lua cancelled the call (tide.timeout, task:cancel): the promise is
 * rejected for us; never touch it again, and tell the thread to stop. */
static void job_cancel(tide_promise *p, void *data) {
  job *j = data;
  (void)p;
  j->p = NULL;
  atomic_store(&j->stop, 1);
}

/* host.hash(text, rounds) -> promise of (hex, rounds). */
static int hash_fn(tide_rt *rt, lua_State *L, tide_promise *p, void *data) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  lua_Integer rounds = luaL_checkinteger(L, 2);
  job *j;
  int err;
  (void)data;
  luaL_argcheck(L, len < sizeof j->text, 1, "at most 63 bytes");
  luaL_argcheck(L, rounds > 0, 2, "rounds must be positive");
  if ((j = calloc(1, sizeof *j)) == NULL) return UV_ENOMEM;
  memcpy(j->text, text, len + 1);
  j->rt = rt;
  j->p = p;
  j->rounds = rounds;
  atomic_init(&j->stop, 0);
  tide_promise_on_cancel(p, job_cancel, j);
  /* A cancelled call no longer keeps the loop alive: hold it until the
   * thread has posted back, so the post is never dropped. */
  tide_rt_hold(rt);
  if ((err = uv_thread_create(&j->thread, job_thread, j)) != 0) {
    tide_rt_release(rt);
    free(j);
    return err;  /* Lua gets the error; p is not ours any more */
  }
  return 0;
}

static const char script[] =
  "local host = require 'host'\n"
  "local t0 = tide.hrtime()\n"
  "local a, b = host.hash('alpha', 3000000), host.hash('beta', 3000000)  -- in parallel\n"
  "local ha, hb = tide.all{a, b}:await()\n"
  "print(('alpha %s, beta %s'):format(ha, hb))\n"
  "assert(ha ~= hb and #ha == 16, 'two different hashes')\n"
  "local ok, err = pcall(function()\n"
  "  return tide.timeout(host.hash('slow', math.maxinteger), 0.05):await()\n"
  "end)\n"
  "print('too slow:', ok, err.code)\n"
  "print('misuse:', pcall(host.hash, 'x', -1))\n"
  "return 'done'\n";

static void done(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  (void)rt;
  (void)n;
  *(int *)data = state == TIDE_FULFILLED;
  if (state == TIDE_REJECTED)
    fprintf(stderr, "async_fn: %.*s\n", (int)v[0].u.bytes.len, v[0].u.bytes.data);
}

int main(void) {
  tide_rt *rt;
  int ok = 0, err;
  if ((err = tide_rt_new(NULL, &rt)) != 0 ||
      (err = tide_lua_register_async(rt, "host", "hash", hash_fn, NULL)) != 0 ||
      (err = tide_dostring(rt, script, done, &ok)) != 0) {
    fprintf(stderr, "async_fn: %s\n", uv_strerror(err));
    return 1;
  }
  tide_rt_run(rt, TIDE_RUN_DEFAULT);  /* until the script and every thread are done */
  tide_rt_free(rt);
  return ok ? 0 : 1;
}
