/* threads.c — four runtimes on four threads, each serving its own TCP port
 * (port 0: a free one), plus one foreign thread: a "compute service" that
 * answers every runtime's requests and settles their promises through
 * tide_post, the one call that is safe from any thread. Each script asks
 * the service for fifty squares at once, then connects to its own server
 * as a client; the main thread joins everything and prints a line per
 * runtime. Nothing is shared between the runtimes.
 * Usage: threads */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <tide.h>

#define RUNTIMES 4

/* ---------------------------------------------- the foreign thread */

typedef struct request {
  struct request *next;
  tide_rt *rt;          /* whose loop thread settles it */
  tide_promise *p;
  int64_t n, answer;
} request;

static struct {
  uv_mutex_t lock;
  uv_cond_t cond;
  request *head, *tail;
  int stop;
  long answered;        /* read after the join */
} service;

/* On the runtime's loop thread: the answer settles the promise there. */
static void deliver(tide_rt *rt, void *data) {
  request *r = data;
  tide_value v = tide_integer(r->answer);
  (void)rt;
  tide_promise_resolve(r->p, &v, 1);
  free(r);
}

static void service_thread(void *arg) {
  (void)arg;
  for (;;) {
    request *r;
    uv_mutex_lock(&service.lock);
    while (service.head == NULL && !service.stop) uv_cond_wait(&service.cond, &service.lock);
    if ((r = service.head) == NULL) {   /* stopped, and nothing left */
      uv_mutex_unlock(&service.lock);
      return;
    }
    service.head = r->next;
    if (service.head == NULL) service.tail = NULL;
    uv_mutex_unlock(&service.lock);
    r->answer = r->n * r->n;            /* the "work" */
    service.answered++;
    if (tide_post(r->rt, deliver, r) != 0) free(r);  /* runtime gone */
  }
}

/* service.square(n) -> promise of n * n, computed on the foreign thread.
 * The pending promise keeps its runtime's loop running until deliver. */
static int square(tide_rt *rt, lua_State *L, tide_promise *p, void *data) {
  int64_t n = (int64_t)luaL_checkinteger(L, 1);
  request *r = malloc(sizeof *r);
  (void)data;
  if (r == NULL) return UV_ENOMEM;
  r->next = NULL;
  r->rt = rt;
  r->p = p;
  r->n = n;
  uv_mutex_lock(&service.lock);
  if (service.tail) service.tail->next = r; else service.head = r;
  service.tail = r;
  uv_cond_signal(&service.cond);
  uv_mutex_unlock(&service.lock);
  return 0;
}

/* -------------------------------------------------- the runtimes */

static const char script[] =
  "local square = require('service').square\n"
  "local server = tide.tcp.serve({port = 0}, function(conn)\n"
  "  local line = conn:read_line():await()\n"
  "  conn:write(('runtime %d heard %s\\n'):format(ID, line)):await()\n"
  "end)\n"
  "local asks = {}\n"
  "for i = 1, 50 do asks[i] = square(i + ID) end   -- all in flight\n"
  "local sum = 0\n"
  "for _, v in ipairs({tide.all(asks):await()}) do sum = sum + v end\n"
  "local conn = tide.tcp.connect('127.0.0.1', server.port):await()\n"
  "conn:write('hello ' .. ID .. '\\n'):await()\n"
  "local reply = conn:read_line():await()\n"
  "local port = server.port\n"
  "conn:close()\n"
  "server:close()\n"
  "return port, sum, reply\n";

typedef struct {
  int id;
  uv_thread_t thread;
  int ok;
  char report[200];
} worker;

static void script_done(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  worker *w = data;
  int64_t expect = 0, i;
  (void)rt;
  for (i = 1; i <= 50; i++) expect += (i + w->id) * (i + w->id);
  if (state == TIDE_FULFILLED && n == 3 && v[1].u.integer == expect) {
    w->ok = 1;
    snprintf(w->report, sizeof w->report, "runtime %d: port %lld, sum of squares %lld, reply \"%.*s\"",
             w->id, (long long)v[0].u.integer, (long long)v[1].u.integer,
             (int)v[2].u.bytes.len, v[2].u.bytes.data);
  } else {
    snprintf(w->report, sizeof w->report, "runtime %d failed: %.*s", w->id,
             n > 0 && v[0].type == TIDE_BYTES ? (int)v[0].u.bytes.len : 0,
             n > 0 && v[0].type == TIDE_BYTES ? v[0].u.bytes.data : "");
  }
}

/* One runtime, created, run and freed on this thread (its loop thread). */
static void runtime_thread(void *arg) {
  worker *w = arg;
  tide_rt *rt;
  lua_State *L;
  int err;
  if ((err = tide_rt_new(NULL, &rt)) != 0) {
    snprintf(w->report, sizeof w->report, "runtime %d: %s", w->id, uv_strerror(err));
    return;
  }
  if ((err = tide_lua_register_async(rt, "service", "square", square, NULL)) == 0 &&
      (err = tide_lua_state(rt, &L)) == 0) {
    lua_pushinteger(L, w->id);
    lua_setglobal(L, "ID");
    err = tide_dostring(rt, script, script_done, w);
  }
  if (err == 0) tide_rt_run(rt, TIDE_RUN_DEFAULT);
  else snprintf(w->report, sizeof w->report, "runtime %d: %s", w->id, uv_strerror(err));
  tide_rt_free(rt);
}

int main(void) {
  worker workers[RUNTIMES];
  uv_thread_t service_tid;
  int i, failed = 0;
  uv_mutex_init(&service.lock);
  uv_cond_init(&service.cond);
  uv_thread_create(&service_tid, service_thread, NULL);
  for (i = 0; i < RUNTIMES; i++) {
    workers[i].id = i + 1;
    workers[i].ok = 0;
    workers[i].report[0] = '\0';
    uv_thread_create(&workers[i].thread, runtime_thread, &workers[i]);
  }
  for (i = 0; i < RUNTIMES; i++) {
    uv_thread_join(&workers[i].thread);
    printf("%s\n", workers[i].report);
    failed += !workers[i].ok;
  }
  uv_mutex_lock(&service.lock);
  service.stop = 1;
  uv_cond_signal(&service.cond);
  uv_mutex_unlock(&service.lock);
  uv_thread_join(&service_tid);
  printf("the service answered %ld requests\n", service.answered);
  uv_cond_destroy(&service.cond);
  uv_mutex_destroy(&service.lock);
  return failed ? 1 : 0;
}
