-- proxy.lua — a TCP proxy: each client gets a connection of its own to the
-- target, and bytes flow both ways. Each direction awaits its writes, so a
-- slow side slows the other down instead of filling memory (backpressure);
-- when one side ends its sending half, the proxy ends the other's too
-- (half-close), and a reset on either side closes both.
-- Usage: tide examples/proxy.lua LISTEN_PORT TARGET_HOST:TARGET_PORT   (LISTEN_PORT 0 picks a free port)
local tide = require "tide"

local listen_port = tonumber(arg[1] or "")
local target_host, target_port = (arg[2] or ""):match("^%[?([^%]]+)%]?:(%d+)$")
if not listen_port or not target_host then
  io.stderr:write("usage: tide examples/proxy.lua LISTEN_PORT TARGET_HOST:TARGET_PORT\n")
  os.exit(2)
end
target_port = tonumber(target_port)

-- Copies `from` to `to` until `from` ends, then ends `to`'s sending half.
-- On an error both streams close, which also ends the other direction.
local function pump(from, to)
  local ok = pcall(function()
    while true do
      local data = from:read():await()
      if data == nil then break end
      to:write(data):await()
    end
    to:shutdown():await()
  end)
  if not ok then
    from:close()
    to:close()
  end
end

local server = tide.tcp.serve({ port = listen_port }, function(client)
  local ok, upstream = pcall(function()
    return tide.tcp.connect(target_host, target_port, { timeout = 10 }):await()
  end)
  if not ok then
    io.stderr:write(("proxy: %s\n"):format(tostring(upstream)))
    return                            -- the client is closed
  end
  local up <close> = upstream
  tide.all{ tide.spawn(pump, client, up), tide.spawn(pump, up, client) }:await()
end)

io.stdout:write(("listening on %s:%d\n"):format(server.host, server.port))
io.stdout:flush()
