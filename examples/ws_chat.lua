-- A WebSocket chat room: every text message a client sends goes to every
-- connected client, prefixed with the sender's number; joins and leaves
-- are announced. Slow clients do not hold the room back: each client has
-- a queue of its own, drained by a task of its own (at most 256 messages
-- queued; a client further behind is dropped with 1008).
-- Usage: tide examples/ws_chat.lua [PORT [HOST]]   (PORT 0, the default, picks a free port)
local tide = require "tide"
local websocket = require "tide.websocket"

local clients, next_id = {}, 0

local function broadcast(text)
  for ws, q in pairs(clients) do
    if q.size >= 256 then
      clients[ws] = nil
      q:close()
      ws:close(1008, "too far behind")
    else
      q:put(text)
    end
  end
end

local server = websocket.serve({ host = arg[2] or "127.0.0.1", port = tonumber(arg[1]) or 0 }, function(ws)
  next_id = next_id + 1
  local me = "#" .. next_id
  local q = tide.queue()
  clients[ws] = q
  local writer = tide.spawn(function()            -- this client's outbox
    while true do
      local text = q:get():await()
      if not text or ws.state ~= "open" then break end
      ws:send(text):await()
    end
  end)
  broadcast(me .. " joined")
  while true do
    local data, kind = ws:receive():await()
    if not data then break end
    if kind == "text" then broadcast(me .. ": " .. data) end
  end
  clients[ws] = nil
  q:close()
  writer:cancel()
  broadcast(me .. " left")
end)
print(("listening on %s:%d"):format(server.host, server.port))
io.stdout:flush()
