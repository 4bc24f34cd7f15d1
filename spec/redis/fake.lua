-- spec/redis/fake.lua — a scripted Redis server over tide.stream(impl),
-- for unit specs of tide.redis without sockets.
--
--   local srv = fake.server(function(cmd, conn) return "+OK\r\n" end, {chunk = 1})
--   local r = redis.connect{ transport = srv.transport }:await()
--
-- Each call of `srv.transport` is a new connection. The client's writes are
-- parsed as commands (arrays of bulk strings) and handed in order to
-- `handler(cmd, conn, srv)`, which returns the bytes of the reply (nil:
-- no reply). Replies go out in order from a task of the connection, cut in
-- pieces of `chunk` bytes (default: whole) with a turn of the loop between
-- pieces, so a reader sees them split. `conn:kill([err])` ends the
-- connection after what was queued (with `err`: a read error), and
-- `srv.writes` counts the client's writes, `srv.commands` lists every
-- command seen. A reply given as {bytes, delay = s} goes out `s` seconds
-- late, holding up the replies after it as a real server would.
local tide = require "tide"
local resp = require "tide.redis.resp"

local M = {}

function M.server(handler, opts)
  opts = opts or {}
  local srv = { connections = {}, commands = {}, writes = 0, refuse = false }
  function srv.transport()
    if srv.refuse then
      return tide.rejected(tide.error("ECONNREFUSED", "connection refused"))
    end
    local parser = resp.parser()
    local out = tide.queue()
    local conn = { n = #srv.connections + 1, closed = false }
    local stream, src
    function conn:kill(err) out:put({ kill = true, err = err or false }) end
    function conn:send(bytes) out:put(bytes) end
    stream, src = tide.stream{
      kind = "fake",
      write = function(data)
        srv.writes = srv.writes + 1
        parser:feed(data)
        while true do
          local done, cmd = parser:next()
          if not done then break end
          srv.commands[#srv.commands + 1] = cmd
          local reply = handler(cmd, conn, srv)
          if reply then out:put(reply) end
        end
      end,
      close = function() conn.closed = true; out:close() end,
    }
    tide.spawn(function()
      while true do
        local item = out:get():await()
        if item == nil then return end
        if type(item) == "table" and item.kill then
          src:finish(item.err or nil)
          return
        end
        if type(item) == "table" then  -- {bytes, delay = seconds}
          tide.sleep(item.delay):await()
          item = item[1]
        end
        local chunk = opts.chunk or #item
        for i = 1, #item, chunk do
          if src.closed then return end
          src:push(item:sub(i, i + chunk - 1))
          if chunk < #item then tide.sleep(0):await() end
        end
      end
    end)
    srv.connections[conn.n] = conn
    return stream
  end
  return srv
end

-- A handler that acts as a tiny Redis: GET, SET, INCR, PING, AUTH, SELECT.
function M.memory()
  local data = {}
  return function(cmd)
    local name = cmd[1]:upper()
    if name == "PING" then return "+PONG\r\n"
    elseif name == "SET" then data[cmd[2]] = cmd[3]; return "+OK\r\n"
    elseif name == "GET" then
      local v = data[cmd[2]]
      return v and ("$" .. #v .. "\r\n" .. v .. "\r\n") or "$-1\r\n"
    elseif name == "INCR" then
      local v = (tonumber(data[cmd[2]]) or 0) + 1
      data[cmd[2]] = tostring(v)
      return ":" .. v .. "\r\n"
    elseif name == "AUTH" or name == "SELECT" then return "+OK\r\n"
    end
    return "-ERR unknown command '" .. name .. "'\r\n"
  end
end

return M
