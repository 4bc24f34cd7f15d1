/* event.c — tide.event: a flag tasks wait for. set wakes every waiter and
 * lets later waits through at once until clear. Written in Lua on the
 * public API and the waiting lists of sync.c, loaded once per state as
 * group.c's part is.
 *
 * Stack discipline: tide_open_event leaves the stack as it found it.
 * Ownership: an event is a plain Lua table; its waiters are in its fields.
 */
#include "binding.h"

static const char event_lua[] =
  "local tide, W = ...\n"
  "local waiter, new, push, shift, count = W.waiter, W.new, W.push, W.shift, W.count\n"
  "local check_timeout = W.check_timeout\n"
  "local setmetatable = setmetatable\n"
  "local DONE = tide.resolved()\n"
  "\n"
  "local Event = {}\n"
  "\n"
  "function Event:set()\n"
  "  if self._set then return end\n"
  "  self._set = true\n"
  "  for w in shift, self._waiters do w[1]:resolve() end\n"
  "end\n"
  "\n"
  "function Event:clear() self._set = false end\n"
  "\n"
  "function Event:is_set() return self._set end\n"
  "\n"
  "function Event:wait(timeout)\n"
  "  if timeout ~= nil then check_timeout(timeout) end\n"
  "  if self._set then return DONE end\n"
  "  local p = waiter(timeout)\n"
  "  push(self._waiters, { p })\n"
  "  return p\n"
  "end\n"
  "\n"
  "local mt = W.class(\"tide.event\", Event, {\n"
  "  waiters = function(e) return count(e._waiters) end,\n"
  "})\n"
  "mt.__tostring = function(e) return e._set and \"tide.event (set)\" or \"tide.event (clear)\" end\n"
  "\n"
  "return function() return setmetatable({ _set = false, _waiters = new() }, mt) end\n";

/* [-0, +0, m] Adds tide.event to the module table at the top. */
int tide_open_event(lua_State *L) {
  tide_lua_open_part(L, event_lua, sizeof(event_lua) - 1, "=[tide.event]", "event");
  return 0;
}
