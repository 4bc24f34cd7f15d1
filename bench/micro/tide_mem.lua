-- tide_mem.lua — memory per suspended task in tide.
-- Usage: tide tide_mem.lua [N=100000]   (the `tide` binary)
--   mem_task:     N tasks, each suspended in await two calls deep on one
--                 shared pending promise: collectgarbage("count") delta / N
--                 after a full collection (the task object, its coroutine
--                 and stack, the runtime's bookkeeping)
--   mem_task_own: the same, each task awaiting a pending promise of its own
--                 (tide.promise(), made inside the task)
-- Memory the Lua allocator does not see (none today: the bindings keep
-- their state in userdata) would not be counted.
local N = math.tointeger(tonumber(arg and arg[1]) or 100000)

local function deep2(p) return (p:await()) end
local function deep1(p) local v = deep2(p) return v end  -- not a tail call

local function measure(figure, body)
  collectgarbage("collect"); collectgarbage("collect")
  local before = collectgarbage("count")
  local release = body()
  tide.spawn(function() end):await()   -- FIFO queue: every task is suspended now
  collectgarbage("collect"); collectgarbage("collect")
  local after = collectgarbage("count")
  print(string.format("RESULT %s %.0f B", figure, (after - before) * 1024 / N))
  release()
end

measure("mem_task", function()
  local gate = tide.promise()
  local last
  for _ = 1, N do last = tide.spawn(deep1, gate) end
  return function() gate:resolve(true); last:await() end
end)

measure("mem_task_own", function()
  local gates = {}
  local function own() local p = tide.promise(); gates[#gates + 1] = p; return deep1(p) end
  local last
  for _ = 1, N do last = tide.spawn(own) end
  return function()
    for i = 1, #gates do gates[i]:resolve(true) end
    last:await()
  end
end)
