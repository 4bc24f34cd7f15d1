-- luv_http.lua — Lua 5.4 + luv (plain libuv callbacks) hello-world HTTP
-- server, a peer of tide's HTTP benchmark. Like uv_http.c it counts
-- requests by their blank line ("\r\n\r\n") and answers each with the same
-- keep-alive 200 "Hello, World!"; pipelined requests read together are
-- answered in one write.
-- Usage: lua5.4 luv_http.lua PORT   (listens on 127.0.0.1:PORT, backlog 1024)
local uv = require "luv"
local port = tonumber(arg[1])
if not port or port <= 0 or port > 65535 then
  io.stderr:write("usage: lua5.4 luv_http.lua PORT\n")
  os.exit(2)
end
local MAX_HEAD = 8192
local response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: 13\r\n\r\nHello, World!"
local find, sub, rep = string.find, string.sub, string.rep

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(1024, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:nodelay(true)
  local pending = ""
  local function on_read(rerr, data)
    if rerr or not data then client:close() return end
    if pending ~= "" then data = pending .. data end
    local n, init = 0, 1
    while true do
      local _, e = find(data, "\r\n\r\n", init, true)
      if not e then break end
      n, init = n + 1, e + 1
    end
    pending = init <= #data and sub(data, init) or ""
    if #pending > MAX_HEAD then client:close() return end
    if n > 0 then
      local out = n == 1 and response or rep(response, n)
      local sent = client:try_write(out) or 0
      if sent < #out then
        client:read_stop()
        client:write(sub(out, sent + 1), function(werr)
          if werr then client:close() return end
          if not client:is_closing() then client:read_start(on_read) end
        end)
      end
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
