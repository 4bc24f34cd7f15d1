-- promise_lua.lua — the plain lua5.4 peer of tide_promise.lua: what the
-- same figures cost with the smallest promise Lua can have. It measures
-- the interpreter's own floor for this work, not a rival: a promise here
-- is one table with a metatable; `next` stores the callback in it (no
-- derived promise, no error handler, no chaining, no adoption, no
-- events); `resolve` moves the callbacks to a FIFO array; a loop then
-- calls them (never synchronously, as in tide and Node). tide does all of
-- that work and more per step, so its rate stays below this one.
-- Usage: lua5.4 promise_lua.lua [N=1000000]
--   promise_batch, promise_seq: as in tide_promise.lua
-- CPU time from os.clock() (plain lua5.4 has no wall clock).
local N = math.tointeger(tonumber(arg and arg[1]) or 1000000)

local function report(figure, secs)
  print(string.format("RESULT %s %.0f ops/s", figure, N / secs))
end

local queue, first, last = {}, 1, 0   -- callback, value, callback, value...

local Promise = {}
Promise.__index = Promise

local function promise() return setmetatable({}, Promise) end

function Promise:next(cb)
  if self.settled then
    queue[last + 1], queue[last + 2] = cb, self.value
    last = last + 2
  else
    self[#self + 1] = cb
  end
end

function Promise:resolve(value)
  self.settled, self.value = true, value
  for i = 1, #self do
    queue[last + 1], queue[last + 2] = self[i], value
    last = last + 2
  end
end

local function drain()
  while first <= last do
    local cb, value = queue[first], queue[first + 1]
    queue[first], queue[first + 1] = nil, nil
    first = first + 2
    cb(value)
  end
end

-- batch
local count = 0
local function cb() count = count + 1 end
collectgarbage("collect")
local t0 = os.clock()
for i = 1, N do
  local p = promise()
  p:next(cb)
  p:resolve(i)
end
drain()
assert(count == N)
report("promise_batch", os.clock() - t0)

-- sequential
local k = 0
local step
step = function()
  k = k + 1
  if k == N then return end
  local p = promise()
  p:next(step)
  p:resolve(k)
end
collectgarbage("collect")
t0 = os.clock()
step()
drain()
assert(k == N)
report("promise_seq", os.clock() - t0)
