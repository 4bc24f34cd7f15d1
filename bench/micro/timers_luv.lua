-- timers_luv.lua — the Lua + luv peer of tide_timers.lua: N one-shot 1 ms
-- luv timers started at once, timed until the last fired and was closed.
-- Usage: lua5.4 timers_luv.lua [N=100000]
local uv = require "luv"
local N = math.tointeger(tonumber(arg and arg[1]) or 100000)
local fired = 0
local function on_fire(t)
  fired = fired + 1
  t:close()
end
local t0 = uv.hrtime()
for _ = 1, N do
  local t = uv.new_timer()
  t:start(1, 0, function() on_fire(t) end)
end
uv.run()
assert(fired == N, "not every timer fired")
print(string.format("RESULT timers %.0f timers/s", N / ((uv.hrtime() - t0) / 1e9)))
