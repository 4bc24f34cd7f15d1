-- A WebSocket echo server: every text or binary message comes back, same
-- type, on any path. Plain HTTP requests get a short page.
-- Usage: tide examples/ws_echo.lua [PORT [HOST]]   (PORT 0, the default, picks a free port)
local http = require "tide.http"
local websocket = require "tide.websocket"

local server = http.serve({ host = arg[2] or "127.0.0.1", port = tonumber(arg[1]) or 0 }, function(req, res)
  if not websocket.is_upgrade(req) then
    return res:finish("a WebSocket echo server: connect with ws://\n")
  end
  local ws = websocket.accept(req, res, { compression = true })
  if not ws then return end                    -- a bad handshake was answered
  while true do
    local data, kind = ws:receive():await()
    if not data then break end                 -- closed: ws.close_code says why
    ws:send(data, kind):await()                -- same kind: "text" or "binary"
  end
end)
print(("listening on %s:%d"):format(server.host, server.port))
io.stdout:flush()
