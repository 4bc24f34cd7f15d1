-- luv_echo.lua — Lua 5.4 + luv (plain libuv callbacks) echo server, a peer
-- of tide's echo benchmark.
-- Usage: lua5.4 luv_echo.lua PORT   (listens on 127.0.0.1:PORT, backlog 1024)
local uv = require "luv"
local port = tonumber(arg[1])
if not port or port <= 0 or port > 65535 then
  io.stderr:write("usage: lua5.4 luv_echo.lua PORT\n")
  os.exit(2)
end
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(1024, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:nodelay(true)
  local function on_read(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    -- try_write first; what the kernel did not take is queued, and reading
    -- pauses until it is written (backpressure)
    local sent = client:try_write(data) or 0
    if sent < #data then
      client:read_stop()
      client:write(data:sub(sent + 1), function(werr)
        if werr then client:close() return end
        if not client:is_closing() then client:read_start(on_read) end
      end)
    end
  end
  client:read_start(on_read)
end))
for _, name in ipairs {"sigterm", "sigint"} do
  local sig = uv.new_signal()
  sig:start(name, function() uv.stop() end)
  sig:unref()
end
uv.run()
