-- tide_spawn.lua — tasks in tide: spawn + await.
-- Usage: tide tide_spawn.lua [N=1000000]   (the `tide` binary: the main
-- chunk is a task, so it can await)
--   spawn_await:       N x tide.spawn(f):await() from the main task, where f
--                      returns at once: a task is made (coroutine + task
--                      object), started from the queue, finishes, and wakes
--                      the awaiting main task. One task alive at a time.
--   spawn_await_batch: N tasks spawned at once, each awaiting one shared
--                      pending promise (start, suspend); then the promise is
--                      resolved and the main task awaits the last of them
--                      (resume, finish). N tasks alive at once.
-- CPU time from os.clock(), the clock of the plain lua5.4 peer
-- (spawn_coro.lua), so the two figures compare like for like.
local N = math.tointeger(tonumber(arg and arg[1]) or 1000000)

local function report(figure, secs, n)
  print(string.format("RESULT %s %.0f ops/s", figure, n / secs))
end

local function f() end

collectgarbage("collect")
local t0 = os.clock()
for _ = 1, N do
  tide.spawn(f):await()
end
report("spawn_await", os.clock() - t0, N)

-- a tenth of N at once keeps the memory in line with the peers'
local M = N // 10
local gate = tide.promise()
local function waiter() gate:await() end
collectgarbage("collect")
t0 = os.clock()
local last
for _ = 1, M do
  last = tide.spawn(waiter)
end
tide.spawn(f):await()   -- the queue is FIFO: every waiter is suspended now
gate:resolve()
last:await()
report("spawn_await_batch", os.clock() - t0, M)
