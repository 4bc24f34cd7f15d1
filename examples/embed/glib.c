/* glib.c — tide inside a GLib main loop, the way a GTK application holds
 * it: a GSource polls tide's backend fd and asks tide how long it may
 * sleep, and dispatching it runs one non-blocking tide turn. The script
 * talks to the "application" through host functions: ui.status(text) is
 * plain; ui.ask(question) is async, answered later from a GLib timeout on
 * the same thread. A GLib timer ticks beside it, to show that neither side
 * blocks the other. The main loop quits when the script ends.
 * Usage: glib */
#include <stdio.h>

#include <glib.h>
#include <lauxlib.h>
#include <lua.h>
#include <tide.h>

/* ------------------------------------------------ tide as a GSource */

typedef struct {
  GSource source;
  tide_rt *rt;
  gpointer fd_tag;
} TideSource;

static gboolean tide_source_prepare(GSource *source, gint *timeout) {
  TideSource *ts = (TideSource *)source;
  *timeout = tide_rt_backend_timeout(ts->rt);  /* -1: only the fd can wake it */
  return *timeout == 0;
}

static gboolean tide_source_check(GSource *source) {
  TideSource *ts = (TideSource *)source;
  return (g_source_query_unix_fd(source, ts->fd_tag) & G_IO_IN) != 0 ||
         tide_rt_backend_timeout(ts->rt) == 0;
}

static gboolean tide_source_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
  TideSource *ts = (TideSource *)source;
  (void)cb;
  (void)data;
  tide_rt_run(ts->rt, TIDE_RUN_NOWAIT);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs tide_source_funcs = {
  tide_source_prepare, tide_source_check, tide_source_dispatch, NULL, NULL, NULL
};

/* Attaches runtime `rt` to `ctx`; returns the source (unref it when done). */
static GSource *tide_source_new(tide_rt *rt, GMainContext *ctx) {
  TideSource *ts = (TideSource *)g_source_new(&tide_source_funcs, sizeof(TideSource));
  ts->rt = rt;
  ts->fd_tag = g_source_add_unix_fd(&ts->source, tide_rt_backend_fd(rt), G_IO_IN);
  g_source_attach(&ts->source, ctx);
  return &ts->source;
}

/* ------------------------------------------------------ the application */

typedef struct {
  GMainLoop *loop;
  int ticks;
  int failed;
} App;

static App app;

/* ui.status(text): shows a status line (printed here). */
static int ui_status(lua_State *L) {
  printf("status: %s\n", luaL_checkstring(L, 1));
  fflush(stdout);
  return 0;
}

typedef struct {
  tide_promise *p;
  char *question;
} Question;

/* The "user" answers 30 ms later, from a GLib timeout. */
static gboolean answer_later(gpointer data) {
  Question *q = data;
  char *answer = g_strdup_printf("yes to '%s'", q->question);
  tide_value v = tide_string(answer);
  tide_promise_resolve(q->p, &v, 1);  /* copied: answer may go now */
  g_free(answer);
  g_free(q->question);
  g_free(q);
  return G_SOURCE_REMOVE;
}

/* ui.ask(question) -> promise of the answer. */
static int ui_ask(tide_rt *rt, lua_State *L, tide_promise *p, void *data) {
  Question *q = g_new(Question, 1);
  (void)rt;
  (void)data;
  q->question = g_strdup(luaL_checkstring(L, 1));  /* raises before keeping p */
  q->p = p;
  g_timeout_add(30, answer_later, q);
  return 0;
}

static gboolean tick(gpointer data) {
  (void)data;
  app.ticks++;
  return G_SOURCE_CONTINUE;
}

static void script_done(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  (void)rt;
  (void)data;
  if (state == TIDE_REJECTED) {
    fprintf(stderr, "glib: script failed: %.*s\n", (int)v[0].u.bytes.len, v[0].u.bytes.data);
    app.failed = 1;
  } else if (n > 0 && v[0].type == TIDE_BYTES) {
    printf("script returned: %.*s\n", (int)v[0].u.bytes.len, v[0].u.bytes.data);
  }
  g_main_loop_quit(app.loop);
}

static const char script[] =
  "local ui = require 'ui'\n"
  "ui.status('starting')\n"
  "local a, b = ui.ask('save?'), ui.ask('quit?')  -- both in flight\n"
  "ui.status(a:await())\n"
  "ui.status(b:await())\n"
  "tide.sleep(0.1):await()\n"
  "return 'done after ' .. tostring(tide.now() > 0)\n";

int main(void) {
  tide_rt *rt;
  GSource *source;
  guint ticker;
  int err;
  if ((err = tide_rt_new(NULL, &rt)) != 0 ||
      (err = tide_lua_register(rt, "ui", "status", ui_status)) != 0 ||
      (err = tide_lua_register_async(rt, "ui", "ask", ui_ask, NULL)) != 0 ||
      (err = tide_dostring(rt, script, script_done, NULL)) != 0) {
    fprintf(stderr, "glib: %s\n", uv_strerror(err));
    return 1;
  }
  app.loop = g_main_loop_new(NULL, FALSE);
  source = tide_source_new(rt, NULL);
  ticker = g_timeout_add(10, tick, NULL);
  g_main_loop_run(app.loop);
  printf("glib ticked %s while tide ran\n", app.ticks >= 5 ? "on" : "NOT");
  g_source_remove(ticker);
  g_source_destroy(source);
  g_source_unref(source);
  g_main_loop_unref(app.loop);
  tide_rt_free(rt);
  return app.failed || app.ticks < 5;
}
