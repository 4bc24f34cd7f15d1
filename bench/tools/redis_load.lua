-- bench/tools/redis_load.lua — GET/SET round trips of tide.redis against a
-- Redis server: TASKS tasks share one client; each issues DEPTH commands
-- (SET, or GET, of a 3-byte value on its own key), awaits the last, and
-- starts again, for SECONDS seconds after WARMUP seconds.
-- Prints "RESULT redis_<cmd>[_p<DEPTH>] <ops/s> ops/s" for each command.
--
-- Usage: tide bench/tools/redis_load.lua PORT [TASKS [DEPTH [SECONDS [WARMUP [CMDS]]]]]
local redis = require "tide.redis"

local port = assert(tonumber(arg[1]), "usage: redis_load.lua PORT [TASKS [DEPTH [SECONDS [WARMUP [CMDS]]]]]")
local tasks = tonumber(arg[2]) or 50
local depth = tonumber(arg[3]) or 1
local seconds = tonumber(arg[4]) or 5
local warmup = tonumber(arg[5]) or 1
local cmds = arg[6] or "set,get"

local r <close> = redis.connect{ port = port }:await()

local function run(cmd, secs)
  local stop = tide.now() + secs
  local count = 0
  local g = tide.group()
  for i = 1, tasks do
    local key = "key:" .. i
    g:spawn(function()
      local n = 0
      while tide.now() < stop do
        local last
        if cmd == "set" then
          for _ = 1, depth do last = r:set(key, "xxx") end
        else
          for _ = 1, depth do last = r:get(key) end
        end
        last:await()
        n = n + depth
      end
      count = count + n
    end)
  end
  local t0 = tide.hrtime()
  g:wait():await()
  return count / ((tide.hrtime() - t0) / 1e9)
end

for cmd in cmds:gmatch("[^,]+") do
  if warmup > 0 then run(cmd, warmup) end
  local rate = run(cmd, seconds)
  print(("RESULT redis_%s%s %.0f ops/s"):format(cmd, depth > 1 and "_p" .. depth or "", rate))
end
