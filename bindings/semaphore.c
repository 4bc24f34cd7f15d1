/* semaphore.c — tide.semaphore: a count of permits that tasks acquire and
 * release, handed out in the order asked for (FIFO). acquire gives a
 * permit object, released by its <close> variable or by permit:release()
 * (once); s:release() gives one back without the object. Written in Lua
 * on the public API and the waiting lists of sync.c, loaded once per state
 * as group.c's part is.
 *
 * No permit leaks through cancellation: a waiting acquire is a waiter
 * (sync.c), which cancelling or a time limit rejects and the semaphore
 * then skips; a permit handed to a waiter whose task is cancelled at that
 * moment is still returned by its await (task.c), to be released by its
 * <close> variable; a cancelled task acquires nothing.
 *
 * Stack discipline: tide_open_semaphore leaves the stack as it found it.
 * Ownership: a semaphore is a plain Lua table; a permit is a table that
 * points to its semaphore.
 */
#include "binding.h"

static const char semaphore_lua[] =
  "local tide, W = ...\n"
  "local waiter, cancel_due, new, push, shift, count = W.waiter, W.cancel_due, W.new, W.push, W.shift, W.count\n"
  "local check_timeout = W.check_timeout\n"
  "local error, setmetatable, math_type = error, setmetatable, math.type\n"
  "local resolved, rejected, Cancelled = tide.resolved, tide.rejected, tide.Cancelled\n"
  "\n"
  "local Semaphore, Permit = {}, {}\n"
  "Permit.__index = Permit\n"
  "Permit.__name = \"tide.permit\"\n"
  "\n"
  "local function permit(s) return setmetatable({ _s = s, _held = true }, Permit) end\n"
  "\n"
  "-- Gives one permit back: to the oldest waiter, else to the count.\n"
  "local function give_back(s, level)\n"
  "  local w = shift(s._waiters)\n"
  "  if w then w[1]:resolve(permit(s)); return end\n"
  "  if s._free >= s._limit then error(\"tide.semaphore: released more than acquired\", level + 1) end\n"
  "  s._free = s._free + 1\n"
  "end\n"
  "\n"
  "--- permit:release(): gives the permit back; later calls do nothing.\n"
  "function Permit:release()\n"
  "  if self._held then\n"
  "    self._held = false\n"
  "    give_back(self._s, 2)\n"
  "  end\n"
  "end\n"
  "Permit.__close = Permit.release\n"
  "\n"
  "function Semaphore:acquire(timeout)\n"
  "  if timeout ~= nil then check_timeout(timeout) end\n"
  "  if cancel_due() then return rejected(Cancelled) end\n"
  "  if self._free > 0 then          -- then nobody waits: release serves waiters first\n"
  "    self._free = self._free - 1\n"
  "    return resolved(permit(self))\n"
  "  end\n"
  "  local p = waiter(timeout)\n"
  "  push(self._waiters, { p })\n"
  "  return p\n"
  "end\n"
  "\n"
  "function Semaphore:release() give_back(self, 2) end\n"
  "\n"
  "local mt = W.class(\"tide.semaphore\", Semaphore, {\n"
  "  available = function(s) return s._free end,\n"
  "  limit = function(s) return s._limit end,\n"
  "  waiters = function(s) return count(s._waiters) end,\n"
  "})\n"
  "mt.__tostring = function(s)\n"
  "  return string.format(\"tide.semaphore (%d of %d available)\", s._free, s._limit)\n"
  "end\n"
  "\n"
  "return function(n)\n"
  "  if math_type(n) ~= \"integer\" or n < 0 then\n"
  "    error(\"tide.semaphore: the count must be an integer >= 0\", 2)\n"
  "  end\n"
  "  return setmetatable({ _limit = n, _free = n, _waiters = new() }, mt)\n"
  "end\n";

/* [-0, +0, m] Adds tide.semaphore to the module table at the top. */
int tide_open_semaphore(lua_State *L) {
  tide_lua_open_part(L, semaphore_lua, sizeof(semaphore_lua) - 1, "=[tide.semaphore]", "semaphore");
  return 0;
}
