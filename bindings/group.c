/* group.c — task groups (tide.group): tasks that succeed or fail together.
 * A group waits for all its children; when one fails, the others are
 * cancelled and the group fails with that error. Written in Lua on the
 * public API (spawn, next, cancel), loaded once per state; nothing here
 * touches the C stack of the other bindings.
 *
 * Stack discipline: tide_open_group leaves the stack as it found it.
 * Ownership: a group is a plain Lua table; its children are tasks (which
 * hold themselves while they run) and its `done` promise.
 */
#include "binding.h"

static const char group_lua[] =
  "local tide = ...\n"
  "local Group = {}\n"
  "Group.__index = Group\n"
  "Group.__name = 'tide.group'\n"
  "\n"
  "local function finish(g)\n"
  "  if g.pending == 0 and g.done:state() == 'pending' then\n"
  "    if g.failed ~= nil then g.done:reject(g.failed) else g.done:resolve(g.results) end\n"
  "  end\n"
  "end\n"
  "\n"
  "function Group:spawn(fn, ...)\n"
  "  if self.done:state() ~= 'pending' or self.failed ~= nil then\n"
  "    error('tide.group: the group has finished or failed', 2)\n"
  "  end\n"
  "  local t = tide.spawn(fn, ...)\n"
  "  local i = #self.tasks + 1\n"
  "  self.tasks[i] = t\n"
  "  self.pending = self.pending + 1\n"
  "  t:next(function(...)\n"
  "    self.results[i] = table.pack(...)\n"
  "    self.pending = self.pending - 1\n"
  "    finish(self)\n"
  "  end, function(err)\n"
  "    self.pending = self.pending - 1\n"
  "    if self.failed == nil and err ~= tide.Cancelled then\n"
  "      self.failed = err\n"
  "      self:cancel()\n"
  "    end\n"
  "    finish(self)\n"
  "  end)\n"
  "  return t\n"
  "end\n"
  "\n"
  "function Group:cancel()\n"
  "  for _, t in ipairs(self.tasks) do t:cancel() end\n"
  "  if self.failed == nil then self.failed = tide.Cancelled end\n"
  "  finish(self)\n"
  "end\n"
  "\n"
  "function Group:wait()\n"
  "  if self.pending == 0 then finish(self) end\n"
  "  return self.done\n"
  "end\n"
  "\n"
  "Group.__close = function(self) if self.pending > 0 then self:cancel() end end\n"
  "Group.__tostring = function(self)\n"
  "  return string.format('tide.group (%d running)', self.pending)\n"
  "end\n"
  "\n"
  "return function()\n"
  "  return setmetatable({ tasks = {}, results = {}, pending = 0, done = tide.promise() }, Group)\n"
  "end\n";

/* [-0, +0, m] Adds tide.group to the module table at the top. */
int tide_open_group(lua_State *L) {
  if (luaL_loadbuffer(L, group_lua, sizeof(group_lua) - 1, "=[tide.group]") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "group");
  return 0;
}
