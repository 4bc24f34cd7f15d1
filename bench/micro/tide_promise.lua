-- tide_promise.lua — promise create + resolve + callback in tide.
-- Usage: tide tide_promise.lua [N=1000000]   (the `tide` binary: the main
-- chunk is a task, so it can await)
--   promise_batch: N x (tide.promise() + p:next(cb) + p:resolve(i)) queued
--                  in one loop, timed until the last callback ran (N
--                  callbacks in flight at once: allocation and GC heavy)
--   promise_seq:   the same N steps, each callback making the next (one
--                  promise alive at a time)
-- Wall time from tide.hrtime(). Prints "RESULT <figure> <value> ops/s".
local N = math.tointeger(tonumber(arg and arg[1]) or 1000000)

local function report(figure, ns)
  print(string.format("RESULT %s %.0f ops/s", figure, N / (ns / 1e9)))
end

do
  -- batch
  local done, count = tide.promise(), 0
  local function cb()
    count = count + 1
    if count == N then done:resolve() end
  end
  collectgarbage("collect")
  local t0 = tide.hrtime()
  for i = 1, N do
    local p = tide.promise()
    p:next(cb)
    p:resolve(i)
  end
  done:await()
  report("promise_batch", tide.hrtime() - t0)

  -- sequential
  local done2, k = tide.promise(), 0
  local step
  step = function()
    k = k + 1
    if k == N then done2:resolve() return end
    local p = tide.promise()
    p:next(step)
    p:resolve(k)
  end
  collectgarbage("collect")
  t0 = tide.hrtime()
  step()
  done2:await()
  report("promise_seq", tide.hrtime() - t0)
end
