/* sync.c — what tide.queue, tide.semaphore and tide.event share: waiter
 * promises, their time limits, and the loader of their Lua parts.
 *
 * A waiter is a pending promise that a Lua part (queue.c, semaphore.c,
 * event.c) keeps in a list and settles by hand (p:resolve) when its turn
 * comes. It has a cancel hook, so cancelling it (task:cancel of the task
 * that awaits it, tide.timeout around it) rejects it with tide.Cancelled
 * like any operation; the Lua parts skip the waiters that are no longer
 * pending, so nothing they hand out (an item, a permit) goes to a waiter
 * nobody waits for. A waiter with a time limit carries its own timer and
 * is rejected with an ETIMEDOUT error when it fires: there is one promise
 * whose state is the truth, where a tide.timeout around it could time out
 * in the same turn as the item was handed over and drop the item.
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; the timer
 * callback runs on the main thread tl->L and leaves its stack as it found
 * it. Ownership: a waiter is held (tide_lp_hold) while it is pending, as
 * every promise with a producer is (the runtime retains it when it is
 * cancelled). Settling it by hand runs its cancel hook first (stop_producer
 * in promise.c), as cancelling it does: the hook stops the timer and
 * queues the drop of the hold, which must outlive the rejection that
 * follows the hook; the queued drop also comes after a timer callback
 * queued already. A timeout drops the hold itself.
 */
#include "binding.h"

#include <math.h>
#include <stddef.h>

enum { W_NONE, W_RUNNING, W_STOPPED };

typedef struct waiter {
  lpromise lp;            /* must be first */
  tide_promise sleep;     /* the time limit, while timing != W_NONE */
  tide_listener timer;    /* listens to `sleep` */
  unsigned char timing;   /* W_NONE, W_RUNNING, or W_STOPPED with its call queued */
  tide_job drop;          /* queued by the cancel hook: drops the hold */
} waiter;

static void waiter_drop_cb(tide_rt *rt, tide_job *job) {
  waiter *w = (waiter *)((char *)job - offsetof(waiter, drop));
  (void)rt;
  tide_lp_drop(&w->lp);
}

/* The cancel hook of every waiter: cancelled, or settled by hand. Stops
 * the timer (when its call is queued already, the call finds it stopped)
 * and queues the drop of the waiter's hold. */
static void waiter_cancel(tide_promise *p, void *data) {
  waiter *w = (waiter *)p;
  (void)data;
  if (w->timing == W_RUNNING) {
    if (tide_listener_remove(&w->timer) == 0) {  /* it had not fired */
      tide_promise_cancel(&w->sleep);            /* takes it off the schedule */
      tide_promise_dispose(&w->sleep);           /* frees the rejection's copy */
      w->timing = W_NONE;
    } else {
      w->timing = W_STOPPED;
    }
  }
  tide_job_queue(p->rt, &w->drop, waiter_drop_cb);
}

/* The time limit of a waiter is up: reject it with ETIMEDOUT (which
 * removes its cancel hook) and drop its hold, unless the hook stopped the
 * timer meanwhile (the hook's queued job drops the hold). */
static void waiter_timer_cb(tide_listener *l, tide_promise *src) {
  waiter *w = (waiter *)((char *)l - offsetof(waiter, timer));
  tide_lua *tl = tide_lua_of(src->rt);
  int stopped = w->timing == W_STOPPED;
  lua_State *L;
  tide_promise_dispose(&w->sleep);
  w->timing = W_NONE;
  if (tl == NULL || stopped) return;  /* the Lua side is gone, or stopped */
  L = tl->L;
  tide_lua_push_error(L, "ETIMEDOUT", "timed out");
  tide_op_settle(L, &w->lp, TIDE_REJECTED, 1);  /* drops the hold taken when it began to wait */
}

/* [-0, +0, v] The time limit at index 1: seconds, or a table with field
 * timeout; -1 for nil (none). Raises for anything else. */
static double opt_timeout(lua_State *L) {
  double seconds;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "timeout");
    lua_replace(L, 1);
  }
  if (lua_isnoneornil(L, 1)) return -1;
  seconds = lua_tonumber(L, 1);
  if (!lua_isnumber(L, 1) || !(seconds >= 0 && seconds < HUGE_VAL))
    luaL_error(L, "timeout must be a finite number of seconds >= 0");
  return seconds;
}

/* check_timeout(timeout): raises unless `timeout` is a valid time limit
 * (for operations that answer at once and make no waiter). */
static int l_check_timeout(lua_State *L) {
  opt_timeout(L);
  return 0;
}

/* waiter([timeout]) -> a pending promise that cancellation rejects; with
 * `timeout` (seconds, or a table with field timeout; nil for none), it is
 * rejected with an ETIMEDOUT error once that time has passed. */
static int l_waiter(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  double seconds = opt_timeout(L);
  waiter *w;
  int err;
  lua_settop(L, 0);
  w = (waiter *)tide_lp_new(L, sizeof(waiter), LP_PLAIN, UV_EVENTS);
  if (seconds >= 0) {
    tide_promise_init(tl->rt, &w->sleep, NULL);
    if ((err = tide_sleep(tl->rt, &w->sleep, tide_lua_ms(seconds))) != 0) {
      tide_lua_push_uverror(L, err);
      return lua_error(L);
    }
  }
  tide_lp_hold(L, 1);  /* while it waits */
  tide_promise_on_cancel(&w->lp.p, waiter_cancel, NULL);
  if (seconds < 0) return 1;
  w->timing = W_RUNNING;
  tide_promise_listen(&w->sleep, &w->timer, waiter_timer_cb);
  return 1;
}

/* cancel_due() -> whether the running task has a cancellation that its
 * next await raises (cancelled, outside shields): such a task takes
 * nothing from a queue or semaphore. */
static int l_cancel_due(lua_State *L) {
  lua_pushboolean(L, tide_task_cancel_due(L));
  return 1;
}

/* The waiting lists of the Lua parts, run with (waiter, cancel_due,
 * check_timeout): its
 * table W is the helpers table each part gets. */
static const char waitlist_lua[] =
  "local waiter, cancel_due, check_timeout = ...\n"
  "-- A waiting list: entries {promise, value} oldest first, in l[h..t].\n"
  "-- Entries whose promise is no longer pending (cancelled, timed out) are\n"
  "-- skipped when met, and purged once they could pile up.\n"
  "local W = { waiter = waiter, cancel_due = cancel_due, check_timeout = check_timeout }\n"
  "\n"
  "function W.new() return { h = 1, t = 0, purge = 16 } end\n"
  "\n"
  "-- Drops the entries that no longer wait.\n"
  "local function purge(l)\n"
  "  local j = 0\n"
  "  for i = l.h, l.t do\n"
  "    local e = l[i]\n"
  "    l[i] = nil\n"
  "    if e[1]:state() == \"pending\" then j = j + 1; l[j] = e end\n"
  "  end\n"
  "  l.h, l.t = 1, j\n"
  "  l.purge = j < 8 and 16 or 2 * j\n"
  "end\n"
  "\n"
  "function W.push(l, e)\n"
  "  local t = l.t + 1\n"
  "  l[t], l.t = e, t\n"
  "  if t - l.h >= l.purge then purge(l) end\n"
  "end\n"
  "\n"
  "-- Takes off the oldest entry that still waits, or returns nil.\n"
  "function W.shift(l)\n"
  "  for i = l.h, l.t do\n"
  "    local e = l[i]\n"
  "    l[i] = nil\n"
  "    if e[1]:state() == \"pending\" then\n"
  "      l.h = i + 1\n"
  "      return e\n"
  "    end\n"
  "  end\n"
  "  l.h, l.t = 1, 0\n"
  "  return nil\n"
  "end\n"
  "\n"
  "-- The number of entries that still wait.\n"
  "function W.count(l)\n"
  "  purge(l)\n"
  "  return l.t\n"
  "end\n"
  "\n"
  "-- A metatable for the objects of a Lua part: methods from `methods`,\n"
  "-- read-only fields computed by `fields[k](obj)`.\n"
  "function W.class(name, methods, fields)\n"
  "  return {\n"
  "    __name = name,\n"
  "    __index = function(o, k)\n"
  "      local m = methods[k]\n"
  "      if m ~= nil then return m end\n"
  "      local f = fields[k]\n"
  "      if f then return f(o) end\n"
  "    end,\n"
  "  }\n"
  "end\n"
  "\n"
  "return W\n";

/* [-0, +1, e] Pushes the helpers table W of the Lua parts, made once per
 * state and kept in registry["tide.sync"]. */
static void push_helpers(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "tide.sync") == LUA_TTABLE) return;
  lua_pop(L, 1);  /* remove the nil */
  if (luaL_loadbuffer(L, waitlist_lua, sizeof(waitlist_lua) - 1, "=[tide.sync]") != LUA_OK)
    lua_error(L);
  lua_pushcfunction(L, l_waiter);
  lua_pushcfunction(L, l_cancel_due);
  lua_pushcfunction(L, l_check_timeout);
  lua_call(L, 3, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.sync");
}

/* [-0, +0, e] Runs the Lua part `src` (named `name` in tracebacks) with
 * the module table at the top and the helpers table W (the waiting lists
 * and waiter) as arguments, and stores what it returns as module[field]. */
void tide_lua_open_part(lua_State *L, const char *src, size_t len, const char *name,
                        const char *field) {
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, src, len, name) != LUA_OK) lua_error(L);
  lua_pushvalue(L, top);                   /* the module */
  push_helpers(L);
  lua_call(L, 2, 1);
  lua_setfield(L, top, field);
  tide_stack_check(L, top, 0);
}
