-- pool_luv.lua — the Lua + luv peer of tide_pool.lua: libuv's thread pool
-- through luv's uv.new_work (each pool thread runs the dumped function in a
-- Lua state of its own).
-- Usage: lua5.4 pool_luv.lua [SEQ=20000] [BATCH=200000] [SPIN=134217728]
--   pool_seq, pool_batch, pool_speedup: as in tide_pool.lua (same work
--   function, same sizes)
local uv = require "luv"
local SEQ = math.tointeger(tonumber(arg[1]) or 20000)
local BATCH = math.tointeger(tonumber(arg[2]) or 200000)
local SPIN = math.tointeger(tonumber(arg[3]) or 134217728)
local cpus = uv.available_parallelism and uv.available_parallelism() or #uv.cpu_info()

local function trivial(i) return i end
local function spin(n, seed)
  local x = seed
  for _ = 1, n do x = (x * 1103515245 + 12345) & 0x7fffffff end
  return x
end

-- warm the pool up
local w0 = uv.new_work(trivial, function() end)
w0:queue(0)
uv.run()

local left = SEQ
local seq_work
seq_work = uv.new_work(trivial, function()
  left = left - 1
  if left > 0 then seq_work:queue(left) end
end)
local t0 = uv.hrtime()
seq_work:queue(left)
uv.run()
print(string.format("RESULT pool_seq %.0f ops/s", SEQ / ((uv.hrtime() - t0) / 1e9)))

left = BATCH
local batch_work = uv.new_work(trivial, function() left = left - 1 end)
t0 = uv.hrtime()
for i = 1, BATCH do batch_work:queue(i) end
uv.run()
print(string.format("RESULT pool_batch %.0f ops/s", BATCH / ((uv.hrtime() - t0) / 1e9)))

local spin_work = uv.new_work(spin, function() left = left - 1 end)
local function split(parts)
  left = parts
  local s0 = uv.hrtime()
  for i = 1, parts do spin_work:queue(SPIN // parts, i) end
  uv.run()
  return (uv.hrtime() - s0) / 1e9
end
-- warm up: 64 short jobs at once, so every pool thread has loaded `spin`
left = 64
for i = 1, 64 do spin_work:queue(100000, i) end
uv.run()
-- best of 3 each: the least disturbed by other tenants of the machine
local function best(parts) return math.min(split(parts), split(parts), split(parts)) end
local one, all = best(1), best(cpus)
print(string.format("RESULT pool_speedup %.2f x (%d cpus, %.3f s one job, %.3f s split)", one / all, cpus, one, all))
