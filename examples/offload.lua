-- offload.lua — CPU-heavy work on the thread pool while the loop stays
-- responsive. Counting primes runs in the workers' own Lua states, split
-- into one job per worker; a ticker keeps printing on the loop meanwhile,
-- and a progress bar is drawn from the jobs' "progress" events.
--
-- Usage: tide examples/offload.lua [limit] [jobs]
--   limit  count the primes below it (default 3000000)
--   jobs   how many jobs to split the range into (default: one per worker)
local tide = require "tide"

local limit = math.tointeger(tonumber(arg[1])) or 3000000
local njobs = math.tointeger(tonumber(arg[2])) or tide.pool_size()
assert(limit and limit >= 2, "limit: a whole number >= 2")
assert(njobs and njobs >= 1, "jobs: a whole number >= 1")

-- Runs on a worker, so it may use only globals and its arguments (no
-- upvalues): `require "tide"` there gives the worker-side table, whose
-- progress() sends an event to the caller's promise.
local function count_primes(lo, hi)
  local tide = require "tide"  -- luacheck: ignore 431 (the worker's own table)
  local count, step = 0, (hi - lo) // 20 + 1
  for n = lo, hi - 1 do
    if n == 2 or n == 3 then
      count = count + 1
    elseif n > 3 and n % 2 == 1 and n % 3 ~= 0 then
      local prime, d = true, 5
      while d * d <= n do
        if n % d == 0 or n % (d + 2) == 0 then prime = false; break end
        d = d + 6
      end
      if prime then count = count + 1 end
    end
    if (n - lo) % step == 0 then tide.progress(n - lo) end
  end
  tide.progress(hi - lo)
  return count
end

-- The bar: one line redrawn in place (\r) while the jobs report.
local done, total = {}, limit
local function draw()
  local sum = 0
  for i = 1, njobs do sum = sum + (done[i] or 0) end
  local width = 30
  local filled = sum * width // total
  io.write(string.format("\r[%s%s] %3d%%", string.rep("#", filled),
    string.rep(".", width - filled), sum * 100 // total))
  io.flush()
end

local ticks = 0
local ticker = tide.interval(0.1, function(i)
  ticks = i
  io.write(string.format("\r%-40s\n", "tick " .. i .. ": the loop is free"))
  draw()
end)

local t0 = tide.hrtime()
local jobs = {}
for i = 1, njobs do
  local lo = (i - 1) * limit // njobs
  local hi = i * limit // njobs
  jobs[i] = tide.work(count_primes, lo, hi)
  jobs[i]:on("progress", function(n)
    done[i] = n
    draw()
  end)
end

local count = 0
for i = 1, njobs do count = count + jobs[i]:await() end
ticker:cancel()
draw()
io.write("\n")
print(string.format("%d primes below %d: %d jobs on %d workers, %.2f s, %d ticks meanwhile",
  count, limit, njobs, tide.pool_size(), (tide.hrtime() - t0) / 1e9, ticks))
