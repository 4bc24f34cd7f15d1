-- tide_tls_echo.lua — the TLS echo server of the tls section of `make bench`:
-- examples/echo.lua over tide.tls (one task per connection, read then
-- write, each awaited). Its plain twin is tide_tcp_echo.lua.
-- Usage: tide bench/peers/tide_tls_echo.lua CERT KEY PORT   (127.0.0.1 only)
local tide = require "tide"
local tls = require "tide.tls"

local cert, key, port = arg[1], arg[2], tonumber(arg[3])
if not (cert and key and port) then error("usage: tide_tls_echo.lua CERT KEY PORT") end

local server = tls.serve({ host = "127.0.0.1", port = port, cert = cert, key = key }, function(s)
  while true do
    local d = s:read():await()
    if not d then break end
    s:write(d):await()
  end
end)

io.stdout:write(("listening on %s:%d\n"):format(server.host, server.port))
io.stdout:flush()
