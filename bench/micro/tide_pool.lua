-- tide_pool.lua — tide's thread pool from Lua: tide.work(fn, ...).
-- Usage: tide tide_pool.lua [SEQ=20000] [BATCH=200000] [SPIN=134217728]
--   (the `tide` binary). Prints "SKIP ..." when tide.work does not exist.
--   pool_seq:     SEQ x tide.work(trivial, i):await(), one job at a time: a
--                 round trip loop -> worker -> loop per job, arguments and
--                 results marshalled
--   pool_batch:   BATCH jobs submitted at once, until the last settled
--   pool_speedup: SPIN iterations of an LCG (the same function as the luv
--                 peer) as one job, then split into one job per CPU
--                 submitted at once; time(one) / time(split), each the
--                 best of 3 runs
-- Wall time from tide.hrtime().
if type(tide.work) ~= "function" then
  print("SKIP tide.work is not there yet")
  return
end
local SEQ = math.tointeger(tonumber(arg[1]) or 20000)
local BATCH = math.tointeger(tonumber(arg[2]) or 200000)
local SPIN = math.tointeger(tonumber(arg[3]) or 134217728)
local cpus = tonumber(os.getenv("BENCH_CPUS")) or 2

local function trivial(i) return i end
local function spin(n, seed)
  local x = seed
  for _ = 1, n do x = (x * 1103515245 + 12345) & 0x7fffffff end
  return x
end
local function secs(t0) return (tide.hrtime() - t0) / 1e9 end

-- warm up: short jobs at once, so every worker has loaded both functions
do
  local ps = {}
  for i = 1, 64 do ps[i] = tide.work(spin, 100000, i) end
  for i = 1, 64 do ps[i]:await() end
  tide.work(trivial, 0):await()
end

local t0 = tide.hrtime()
for i = 1, SEQ do tide.work(trivial, i):await() end
print(string.format("RESULT pool_seq %.0f ops/s", SEQ / secs(t0)))

local done, left = tide.promise(), BATCH
local function one_done()
  left = left - 1
  if left == 0 then done:resolve() end
end
t0 = tide.hrtime()
for i = 1, BATCH do tide.work(trivial, i):next(one_done) end
done:await()
print(string.format("RESULT pool_batch %.0f ops/s", BATCH / secs(t0)))

local function split(parts)
  local ps = {}
  local s0 = tide.hrtime()
  for i = 1, parts do ps[i] = tide.work(spin, SPIN // parts, i) end
  for i = 1, parts do ps[i]:await() end
  return secs(s0)
end
-- best of 3 each: the least disturbed by other tenants of the machine
local function best(parts) return math.min(split(parts), split(parts), split(parts)) end
local one, all = best(1), best(cpus)
print(string.format("RESULT pool_speedup %.2f x (%d cpus, %.3f s one job, %.3f s split)", one / all, cpus, one, all))
