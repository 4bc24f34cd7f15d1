/* signal.c — signals as promises. tide.signal(name, ...) is a promise
 * settled (with the signal's name) the first time one of the signals
 * arrives; its handles are released once it fired or was cancelled.
 * tide.signals(name, ...) is a watcher for repeated signals: w:next() is a
 * promise of the next arrival (arrivals nobody waited for are queued, see
 * ioutil.c's feeds). Also the table of signal names the other bindings
 * share (tide_signal_number, tide_signal_name).
 *
 * Loop liveness: a pending tide.signal promise keeps the loop alive, so a
 * script awaiting SIGINT stays up until it comes (cancel the promise to let
 * go); a watcher keeps the loop alive only while a next() waits.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread and leave its stack as they found it.
 *
 * Ownership: the uv_signal_t handles of one call live in one malloc'd
 * lsigset, freed by the last of their close callbacks. A userdata holds
 * the pointer — the watcher itself, or for tide.signal a box kept in user
 * value 3 of the promise — and its __gc closes handles still open (only
 * when the state closes, as a waiting promise keeps its userdata
 * reachable). Closing clears the userdata's pointer. A pending tide.signal
 * promise is held until a signal comes or it is cancelled.
 */
#include "binding.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define SIGNALS_MT "tide.signals"
#define SIGNAL_BOX_MT "tide.signal.box"

/* ----------------------------------------------------------------- names */

static const struct { const char *name; int num; } signal_names[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
#ifdef SIGIO
  {"SIGIO", SIGIO},
#endif
#ifdef SIGSYS
  {"SIGSYS", SIGSYS},
#endif
  {NULL, 0}
};

/* The number of signal `name` ("SIGINT", or "INT"), 0 when unknown. */
int tide_signal_number(const char *name) {
  int i;
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; signal_names[i].name; i++)
    if (strcmp(signal_names[i].name + 3, name) == 0) return signal_names[i].num;
  return 0;
}

/* The name of signal `signum` ("SIGINT"), NULL when unknown. */
const char *tide_signal_name(int signum) {
  int i;
  for (i = 0; signal_names[i].name; i++)
    if (signal_names[i].num == signum) return signal_names[i].name;
  return NULL;
}

/* [-0, +0, v] The signal at `idx` (a name or a number) that can be
 * awaited: raises for unknown ones, those that cannot be caught and those
 * raised by faults. */
static int check_signal(lua_State *L, int idx) {
  int signum;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    signum = n > 0 && n < 128 && tide_signal_name((int)n) ? (int)n : 0;
    if (signum == 0) return luaL_argerror(L, idx, "unknown signal number");
  } else {
    const char *name = luaL_checkstring(L, idx);
    if ((signum = tide_signal_number(name)) == 0)
      return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", name));
  }
  if (signum == SIGKILL || signum == SIGSTOP)
    return luaL_argerror(L, idx, lua_pushfstring(L, "%s cannot be caught", tide_signal_name(signum)));
  if (signum == SIGSEGV || signum == SIGBUS || signum == SIGFPE || signum == SIGILL)
    return luaL_argerror(L, idx, lua_pushfstring(L, "%s is raised by faults and cannot be awaited",
                                                 tide_signal_name(signum)));
  return signum;
}

/* [-0, +0, v] The signals at 1..top, at least one. */
static int check_signals(lua_State *L, int *signums, int max) {
  int n = lua_gettop(L), i;
  luaL_argcheck(L, n >= 1, 1, "signal name expected");
  luaL_argcheck(L, n <= max, max + 1, "too many signals");
  for (i = 0; i < n; i++) signums[i] = check_signal(L, i + 1);
  return n;
}

/* --------------------------------------------------------------- handles */

#define MAX_SIGNALS 16

/* The handles of one tide.signal or tide.signals call, one per signal. */
typedef struct lsigset {
  tide_rt *rt;
  struct lsigset **box;     /* the userdata's pointer, while open */
  lpromise *lp;             /* tide.signal: the promise, held while pending */
  tide_feed feed;           /* tide.signals: the arrivals */
  int n;                    /* handles */
  int closing;              /* close callbacks to come */
  uv_signal_t h[1];         /* n of them */
} lsigset;

static void set_close_cb(uv_handle_t *h) {
  lsigset *s = h->data;
  if (--s->closing == 0) free(s);
}

/* Closes the handles of `s` (once); its memory goes with the last close
 * callback. */
static void set_close(lsigset *s) {
  int i;
  if (s->closing > 0) return;
  if (s->box) *s->box = NULL;
  s->box = NULL;
  s->closing = s->n;
  for (i = 0; i < s->n; i++) uv_close((uv_handle_t *)&s->h[i], set_close_cb);
}

/* [-0, +1, e] Pushes a userdata of metatable `mt` pointing to new handles
 * watching the `n` signals with `cb`, once or repeatedly. Only the first
 * handle is referenced: enough to keep the loop alive, and the one a
 * feed references while a promise waits. */
static lsigset *set_new(lua_State *L, const char *mt, const int *signums, int n, uv_signal_cb cb, int once) {
  tide_lua *tl = tide_lua_get(L);
  lsigset **box = lua_newuserdatauv(L, sizeof(lsigset *), 0);
  lsigset *s;
  int i, err = 0;
  *box = NULL;
  luaL_setmetatable(L, mt);
  s = calloc(1, sizeof(lsigset) + sizeof(uv_signal_t) * (size_t)(n - 1));
  if (s == NULL) luaL_error(L, "not enough memory");
  s->rt = tl->rt;
  s->box = box;
  *box = s;
  for (i = 0; i < n; i++) {
    uv_signal_init(tide_rt_loop(tl->rt), &s->h[i]);
    s->h[i].data = s;
    s->n++;
    if (i > 0) uv_unref((uv_handle_t *)&s->h[i]);
  }
  for (i = 0; i < n && err == 0; i++)
    err = once ? uv_signal_start_oneshot(&s->h[i], cb, signums[i]) : uv_signal_start(&s->h[i], cb, signums[i]);
  if (err != 0) {
    set_close(s);
    tide_lua_push_uverror_at(L, err, tide_signal_name(signums[i - 1]));
    lua_error(L);
  }
  return s;
}

/* ----------------------------------------------------------- tide.signal */

static void once_cb(uv_signal_t *h, int signum) {
  lsigset *s = h->data;
  tide_rt *rt = s->rt;
  lua_State *L = s->lp ? tide_op_state(rt, s->lp) : NULL;
  if (L != NULL) {
    lua_pushstring(L, tide_signal_name(signum));
    tide_op_settle(L, s->lp, TIDE_FULFILLED, 1);
  }
  s->lp = NULL;
  set_close(s);
  tide_rt_drain(rt);
}

static void once_cancel(tide_promise *p, void *data) {
  lsigset *s = data;
  lpromise *lp = s->lp;
  (void)p;
  s->lp = NULL;
  set_close(s);
  tide_lp_drop(lp);
}

/* The box of a tide.signal promise's handles: closes them when the state
 * closes (the pending promise keeps the box reachable until then). */
static int box_gc(lua_State *L) {
  lsigset **box = lua_touserdata(L, 1);
  if (*box) set_close(*box);
  return 0;
}

/* tide.signal(name, ...) -> promise fulfilled with the name of the first
 * of the signals to arrive. */
static int l_signal(lua_State *L) {
  int signums[MAX_SIGNALS], n = check_signals(L, signums, MAX_SIGNALS);
  lpromise *lp;
  lsigset *s;
  lua_settop(L, 0);
  lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_OWNER);             /* 1 */
  s = set_new(L, SIGNAL_BOX_MT, signums, n, once_cb, 1);          /* 2 */
  lua_setiuservalue(L, 1, UV_OWNER);  /* the promise keeps the box */
  s->lp = lp;
  tide_lp_hold(L, 1);          /* until a signal comes or it is cancelled */
  tide_promise_on_cancel(&lp->p, once_cancel, s);
  return 1;
}

/* ---------------------------------------------------------- tide.signals */

static void watch_cb(uv_signal_t *h, int signum) {
  lsigset *s = h->data;
  tide_lua *tl = tide_lua_of(s->rt);
  int top;
  if (tl == NULL) return;
  top = lua_gettop(tl->L);
  lua_pushstring(tl->L, tide_signal_name(signum));
  tide_feed_push(tl->L, &s->feed);
  tide_stack_check(tl->L, top, 0);
  tide_rt_drain(s->rt);
}

/* [-0, +0, v] The open watcher at `idx`. */
static lsigset *check_watcher(lua_State *L, int idx) {
  lsigset **box = luaL_checkudata(L, idx, SIGNALS_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed signal watcher");
  return *box;
}

/* tide.signals(name, ... [, {queue = 64}]) -> watcher of repeated
 * arrivals of the signals. */
static int l_signals(lua_State *L) {
  int signums[MAX_SIGNALS], n;
  lua_Integer queue = 64;
  lsigset *s;
  if (lua_gettop(L) > 0 && lua_istable(L, lua_gettop(L))) {  /* options last */
    queue = tide_opt_int(L, -1, "queue", queue, 0, LUA_MAXINTEGER);
    lua_pop(L, 1);  /* remove the options */
  }
  n = check_signals(L, signums, MAX_SIGNALS);
  lua_settop(L, 0);
  s = set_new(L, SIGNALS_MT, signums, n, watch_cb, 0);
  tide_feed_init(L, &s->feed, (uv_handle_t *)&s->h[0], 1, queue);
  return 1;
}

/* w:next([timeout]) -> promise of the name of the next arrival; fulfilled
 * with nothing when the watcher closes first. */
static int w_next(lua_State *L) {
  return tide_feed_lnext(L, &check_watcher(L, 1)->feed);
}

/* [-0, +0, m] Closes the watcher at 1, settling its waiting promises when
 * `settle`; nothing when already closed. */
static void watcher_close(lua_State *L, int settle) {
  lsigset **box = luaL_checkudata(L, 1, SIGNALS_MT);
  lsigset *s = *box;
  if (s == NULL) return;
  tide_feed_close(L, &s->feed, settle);
  set_close(s);
}

/* w:close(): stops watching; waiting next() promises get nothing. */
static int w_close(lua_State *L) { watcher_close(L, 1); return 0; }
static int w_gc(lua_State *L) { watcher_close(L, 0); return 0; }

/* Methods, then the fields signals (the list of names), queued, dropped
 * and errors. */
static int w_index(lua_State *L) {
  lsigset *s = *(lsigset **)luaL_checkudata(L, 1, SIGNALS_MT);
  const char *key = tide_lua_index_key(L);
  int i;
  if (key == NULL || s == NULL) return 1;
  if (strcmp(key, "signals") == 0) {
    lua_createtable(L, s->n, 0);
    for (i = 0; i < s->n; i++) {
      lua_pushstring(L, tide_signal_name(s->h[i].signum));
      lua_rawseti(L, -2, i + 1);
    }
    return 1;
  }
  tide_feed_field(L, &s->feed, key);
  return 1;
}

static int w_tostring(lua_State *L) {
  lsigset **box = luaL_checkudata(L, 1, SIGNALS_MT);
  if (*box) lua_pushfstring(L, "tide.signals (%s%s): %p", tide_signal_name((*box)->h[0].signum),
                            (*box)->n > 1 ? ", ..." : "", (void *)box);
  else lua_pushfstring(L, "tide.signals (closed): %p", (void *)box);
  return 1;
}

static const luaL_Reg watcher_methods[] = {
  {"next", w_next},
  {"close", w_close},
  {NULL, NULL}
};

static const luaL_Reg watcher_meta[] = {
  {"__gc", w_gc},
  {"__close", w_close},
  {"__tostring", w_tostring},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.signal and tide.signals to the module table at
 * the top. */
int tide_open_signal(lua_State *L) {
  luaL_newmetatable(L, SIGNAL_BOX_MT);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);  /* remove the box metatable */
  tide_lua_newclass(L, SIGNALS_MT, watcher_meta, watcher_methods, w_index);
  lua_pushcfunction(L, l_signal);
  lua_setfield(L, -2, "signal");
  lua_pushcfunction(L, l_signals);
  lua_setfield(L, -2, "signals");
  return 0;
}
