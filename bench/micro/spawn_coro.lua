-- spawn_coro.lua — the plain lua5.4 peer of tide_spawn.lua: the same
-- figures done with bare coroutines (no runtime, no queue, no promise).
-- Usage: lua5.4 spawn_coro.lua [N=1000000]
--   spawn_await:       N x (coroutine.create(f) + resume), the body yields
--                      at once (create + resume + yield; the coroutine is
--                      then garbage)
--   spawn_await_batch: N/10 coroutines created and resumed (each yields),
--                      then each resumed again to its end
-- CPU time from os.clock() (plain lua5.4 has no wall clock).
local N = math.tointeger(tonumber(arg and arg[1]) or 1000000)
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local function report(figure, secs, n)
  print(string.format("RESULT %s %.0f ops/s", figure, n / secs))
end

local function f() yield() end

collectgarbage("collect")
local t0 = os.clock()
for _ = 1, N do
  resume(create(f))
end
report("spawn_await", os.clock() - t0, N)

local M = N // 10
local cos = {}
collectgarbage("collect")
t0 = os.clock()
for i = 1, M do
  local co = create(f)
  resume(co)
  cos[i] = co
end
for i = 1, M do
  resume(cos[i])
end
report("spawn_await_batch", os.clock() - t0, M)
