-- tide_tcp_echo.lua — the plain twin of tide_tls_echo.lua: the same handler
-- over tide.tcp (the same code as examples/echo.lua), the baseline of the
-- TLS echo goal. Usage: tide bench/peers/tide_tcp_echo.lua PORT
local tide = require "tide"

local port = tonumber(arg[1])
if not port then error("usage: tide_tcp_echo.lua PORT") end

local server = tide.tcp.serve({ host = "127.0.0.1", port = port }, function(s)
  while true do
    local d = s:read():await()
    if not d then break end
    s:write(d):await()
  end
end)

io.stdout:write(("listening on %s:%d\n"):format(server.host, server.port))
io.stdout:flush()
