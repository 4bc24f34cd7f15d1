-- tide_timers.lua — many one-shot timers in tide.
-- Usage: tide tide_timers.lua [N=100000]   (the `tide` binary)
--   timers:      N x tide.sleep(0.001):next(cb), all started at once, timed
--                until the last callback ran (each timer is a promise and a
--                libuv timer, closed when it fired)
--   timers_task: N x tide.timer(0.001, fn), the same as delayed tasks (each
--                also a coroutine)
-- Wall time from tide.hrtime().
local N = math.tointeger(tonumber(arg and arg[1]) or 100000)

local function report(figure, ns)
  print(string.format("RESULT %s %.0f timers/s", figure, N / (ns / 1e9)))
end

local function run(figure, start)
  local done, count = tide.promise(), 0
  local function cb()
    count = count + 1
    if count == N then done:resolve() end
  end
  collectgarbage("collect")
  local t0 = tide.hrtime()
  for _ = 1, N do start(cb) end
  done:await()
  report(figure, tide.hrtime() - t0)
end

run("timers", function(cb) tide.sleep(0.001):next(cb) end)
run("timers_task", function(cb) tide.timer(0.001, cb) end)
