/* queue.c — tide.queue: a FIFO of values between tasks, bounded or not.
 * put waits while the queue is full, get while it is empty; close wakes
 * the getters (nil once drained) and fails the putters. Written in Lua on
 * the public API and the waiting lists of sync.c, loaded once per state
 * as group.c's part is: nothing here touches the C stack of the other
 * bindings.
 *
 * Nothing is lost to cancellation: a waiting get or put is a waiter
 * (sync.c), which cancelling or a time limit rejects and the queue then
 * skips; an item handed to a waiter whose task is cancelled at that moment
 * is still returned by its await (task.c); and a cancelled task takes
 * nothing: its get and put give a promise rejected with tide.Cancelled.
 *
 * Stack discipline: tide_open_queue leaves the stack as it found it.
 * Ownership: a queue is a plain Lua table; its items and waiters are in
 * its fields.
 */
#include "binding.h"

static const char queue_lua[] =
  "local tide, W = ...\n"
  "local waiter, cancel_due, new, push, shift, count = W.waiter, W.cancel_due, W.new, W.push, W.shift, W.count\n"
  "local check_timeout = W.check_timeout\n"
  "local error, type, setmetatable, math_type = error, type, setmetatable, math.type\n"
  "local resolved, rejected, Cancelled = tide.resolved, tide.rejected, tide.Cancelled\n"
  "local DONE = resolved()\n"
  "\n"
  "local Queue = {}\n"
  "\n"
  "-- Appends item `v`.\n"
  "local function append(q, v)\n"
  "  local t = q._tail + 1\n"
  "  q._items[t], q._tail, q._n = v, t, q._n + 1\n"
  "end\n"
  "\n"
  "function Queue:put(v, timeout)\n"
  "  if v == nil then error(\"tide.queue: put of nil\", 2) end\n"
  "  if self._closed then error(\"tide.queue: put on a closed queue\", 2) end\n"
  "  if timeout ~= nil then check_timeout(timeout) end\n"
  "  if cancel_due() then return rejected(Cancelled) end\n"
  "  local g = shift(self._getters)\n"
  "  if g then g[1]:resolve(v); return DONE end\n"
  "  if self._n < self._max then append(self, v); return DONE end\n"
  "  local p = waiter(timeout)\n"
  "  push(self._putters, { p, v })\n"
  "  return p\n"
  "end\n"
  "\n"
  "function Queue:get(timeout)\n"
  "  if timeout ~= nil then check_timeout(timeout) end\n"
  "  if cancel_due() then return rejected(Cancelled) end\n"
  "  local w\n"
  "  if self._n > 0 then\n"
  "    local h = self._head\n"
  "    local v = self._items[h]\n"
  "    self._items[h], self._head, self._n = nil, h + 1, self._n - 1\n"
  "    w = shift(self._putters)           -- a place is free: the next putter's item\n"
  "    if w then append(self, w[2]); w[1]:resolve() end\n"
  "    return resolved(v)\n"
  "  end\n"
  "  w = shift(self._putters)             -- max = 0: a putter waits with its item\n"
  "  if w then w[1]:resolve(); return resolved(w[2]) end\n"
  "  if self._closed then return DONE end\n"
  "  local p = waiter(timeout)\n"
  "  push(self._getters, { p })\n"
  "  return p\n"
  "end\n"
  "\n"
  "function Queue:close()\n"
  "  if self._closed then return end\n"
  "  self._closed = true\n"
  "  for g in shift, self._getters do g[1]:resolve() end\n"
  "  for w in shift, self._putters do\n"
  "    w[1]:reject(tide.error(\"EPIPE\", \"the queue was closed\"))\n"
  "  end\n"
  "end\n"
  "\n"
  "local mt = W.class(\"tide.queue\", Queue, {\n"
  "  size = function(q) return q._n end,\n"
  "  max = function(q) if q._max < math.huge then return q._max end end,\n"
  "  closed = function(q) return q._closed end,\n"
  "  getters = function(q) return count(q._getters) end,\n"
  "  putters = function(q) return count(q._putters) end,\n"
  "})\n"
  "mt.__len = function(q) return q._n end\n"
  "mt.__close = Queue.close\n"
  "mt.__tostring = function(q)\n"
  "  return string.format(\"tide.queue (%d items%s)\", q._n, q._closed and \", closed\" or \"\")\n"
  "end\n"
  "\n"
  "return function(opts)\n"
  "  local max = math.huge\n"
  "  if opts ~= nil then\n"
  "    if type(opts) ~= \"table\" then error(\"tide.queue: options must be a table\", 2) end\n"
  "    if opts.max ~= nil then\n"
  "      max = opts.max\n"
  "      if math_type(max) ~= \"integer\" or max < 0 then\n"
  "        error(\"tide.queue: max must be an integer >= 0\", 2)\n"
  "      end\n"
  "    end\n"
  "  end\n"
  "  return setmetatable({ _items = {}, _head = 1, _tail = 0, _n = 0, _max = max,\n"
  "    _closed = false, _getters = new(), _putters = new() }, mt)\n"
  "end\n";

/* [-0, +0, m] Adds tide.queue to the module table at the top. */
int tide_open_queue(lua_State *L) {
  tide_lua_open_part(L, queue_lua, sizeof(queue_lua) - 1, "=[tide.queue]", "queue");
  return 0;
}
