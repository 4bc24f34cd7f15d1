-- mem_coro.lua — the plain lua5.4 peer of tide_mem.lua: a bare coroutine
-- suspended at a yield two calls deep, kept alive in an array.
-- Usage: lua5.4 mem_coro.lua [N=100000]
--   mem_task: collectgarbage("count") delta / N after a full collection
local N = math.tointeger(tonumber(arg and arg[1]) or 100000)
local function deep2() return (coroutine.yield()) end
local function deep1() local v = deep2() return v end  -- not a tail call
collectgarbage("collect"); collectgarbage("collect")
local before = collectgarbage("count")
local cos = {}
for i = 1, N do
  local co = coroutine.create(deep1)
  coroutine.resume(co)
  cos[i] = co
end
collectgarbage("collect"); collectgarbage("collect")
local after = collectgarbage("count")
print(string.format("RESULT mem_task %.0f B", (after - before) * 1024 / N))
