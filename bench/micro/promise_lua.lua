-- promise_lua.lua — the plain lua5.4 peer of tide_promise.lua: what the
-- same figures cost with the smallest promise that keeps tide's rules.
-- It measures the interpreter's own floor for this work, not a rival: a
-- promise is one table with a metatable; `next` returns a new promise
-- that the callback's result settles (the callback runs under pcall, so
-- an error rejects it instead of escaping); `resolve` moves the callbacks
-- to a FIFO array that a loop then calls (never synchronously, as in tide
-- and Node). No adoption, events, cancellation, unhandled-rejection
-- report or C API: tide does all of that besides, so its rate stays
-- below this one.
local N = math.tointeger(tonumber(arg and arg[1]) or 1000000)

local function report(figure, secs)
  print(string.format("RESULT %s %.0f ops/s", figure, N / secs))
end

local queue, first, last = {}, 1, 0   -- handler, value, derived, ...
local pcall = pcall

local Promise = {}
Promise.__index = Promise

local function promise() return setmetatable({}, Promise) end

local function settle(p, ok, value)
  p.settled, p.ok, p.value = true, ok, value
  for i = 1, #p, 2 do
    queue[last + 1], queue[last + 2], queue[last + 3] = p[i], p, p[i + 1]
    last = last + 3
  end
end

function Promise:next(cb)
  local d = promise()
  if self.settled then
    queue[last + 1], queue[last + 2], queue[last + 3] = cb, self, d
    last = last + 3
  else
    self[#self + 1] = cb
    self[#self + 1] = d
  end
  return d
end

function Promise:resolve(value) settle(self, true, value) end

local function drain()
  while first <= last do
    local cb, src, d = queue[first], queue[first + 1], queue[first + 2]
    queue[first], queue[first + 1], queue[first + 2] = nil, nil, nil
    first = first + 3
    if src.ok then
      settle(d, pcall(cb, src.value))
    else
      settle(d, false, src.value)
    end
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
