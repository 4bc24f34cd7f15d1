-- echo.lua — a TCP echo server: every byte a client sends comes back to it.
-- One task per connection; each awaits its reads and writes, so a client
-- that does not read what it gets back is simply not read from any more
-- (backpressure), and its memory stays bounded.
-- Usage: tide examples/echo.lua [PORT [HOST]]   (PORT 0, the default, picks a free port)
local tide = require "tide"

local port = tonumber(arg[1] or 0) or error("usage: echo.lua [PORT [HOST]]")
local server = tide.tcp.serve({ host = arg[2] or "127.0.0.1", port = port }, function(conn)
  while true do
    local data = conn:read():await()
    if data == nil then break end     -- the client is done
    conn:write(data):await()
  end
end)                                  -- the connection closes when the handler returns

io.stdout:write(("listening on %s:%d\n"):format(server.host, server.port))
io.stdout:flush()
