-- spec/redis/server.lua — starts a redis-server on a free port of
-- 127.0.0.1 for integration specs, without persistence; stop() kills it.
local tide = require "tide"

local M = {}

local function free_port()
  local function pick()
    local s = tide.tcp.listen{ host = "127.0.0.1", port = 0 }
    local port = s.port
    s:close()
    return port
  end
  if tide.current() then return pick() end
  return tide.run(pick)
end

-- Returns {port =, url =, stop = fn}, or nil and a reason when there is no
-- redis-server. `args` are more arguments of redis-server.
function M.start(args)
  if not os.execute("command -v redis-server >/dev/null 2>&1") then
    return nil, "redis-server is not installed"
  end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local port = free_port()
  local cmd = ("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes "
    .. "--dir %s --pidfile %s/redis.pid --logfile %s/redis.log %s"):format(port, dir, dir, dir, args or "")
  assert(os.execute(cmd))
  local ready = false
  for _ = 1, 100 do
    if os.execute(("redis-cli -p %d ping >/dev/null 2>&1"):format(port)) then ready = true; break end
    os.execute("sleep 0.05")
  end
  assert(ready, "redis-server did not start")
  return {
    port = port,
    url = "redis://127.0.0.1:" .. port,
    dir = dir,
    stop = function()
      os.execute(("kill $(cat %s/redis.pid) 2>/dev/null; sleep 0.1; rm -rf %s"):format(dir, dir))
    end,
  }
end

M.free_port = free_port
return M
