-- chat.lua — a line-based chat server: each line a client sends goes to
-- every other client, prefixed with the sender's name. A client leaving,
-- failing, or reading too slowly never disturbs the others: a write that
-- fails, or a client with more than 1 MiB waiting for it, drops only that
-- client.
-- Usage: tide examples/chat.lua [PORT [HOST]]   (PORT 0, the default, picks a free port)
-- Try:   nc 127.0.0.1 PORT   in two terminals; "/nick NAME" renames you.
local tide = require "tide"

local MAX_QUEUE = 1024 * 1024
local clients = {}                    -- conn -> name

local function drop(conn)
  if clients[conn] then
    clients[conn] = nil
    conn:close(0)                     -- now, dropping what it did not read;
  end                                 -- its reader sees the end and leaves
end

-- Sends `line` to every client but `from`, without waiting: one slow
-- client must not hold up the others.
local function broadcast(from, line)
  for conn in pairs(clients) do
    if conn ~= from then
      if conn.write_queued > MAX_QUEUE then
        drop(conn)                    -- it does not read: let it go
      else
        conn:write(line .. "\n"):catch(function() drop(conn) end)
      end
    end
  end
end

local port = tonumber(arg[1] or 0) or error("usage: chat.lua [PORT [HOST]]")
local server = tide.tcp.serve({ host = arg[2] or "127.0.0.1", port = port }, function(conn)
  local host, peer_port = conn:peername()
  local name = ("%s:%d"):format(host, peer_port)
  clients[conn] = name
  conn:write("welcome " .. name .. "\n")
  broadcast(conn, "* " .. name .. " joined")
  while clients[conn] do
    local ok, line = pcall(function() return conn:read_line(4096):await() end)
    if not ok or line == nil then break end  -- gone, reset, or a line too long
    local nick = line:match("^/nick%s+(%S+)$")
    if nick then
      broadcast(conn, "* " .. name .. " is now " .. nick)
      name = nick
      clients[conn] = name
    elseif line ~= "" then
      broadcast(conn, name .. ": " .. line)
    end
  end
  if clients[conn] then
    clients[conn] = nil
    broadcast(conn, "* " .. name .. " left")
  end
end)

io.stdout:write(("listening on %s:%d\n"):format(server.host, server.port))
io.stdout:flush()
