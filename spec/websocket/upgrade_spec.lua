-- The connection hand-over of tide.http that WebSocket stands on, with
-- another protocol: req:upgrade answers 101 and gives the raw stream
-- (bytes the client sent with its head still in it); the client gets the
-- stream of a 101 as res.stream.
local tide = require "tide"
local http = require "tide.http"

describe("tide.http connection hand-over", function()
  local function line_echo_server()
    return http.serve({ port = 0 }, function(req, res)
      if req.headers:get("upgrade") ~= "line-echo" then return res:finish("plain\n") end
      local s = req:upgrade{ { "Upgrade", "line-echo" }, { "Connection", "Upgrade" } }
      while true do
        local line = s:read_line():await()
        if not line then break end
        s:write(line:upper() .. "\n"):await()
      end
    end)
  end

  it("answers 101 and hands over the stream with the bytes sent along with the head", async(function()
    local server = line_echo_server()
    local s <close> = tide.tcp.connect("127.0.0.1", server.port):await()
    s:write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: line-echo\r\nConnection: Upgrade\r\n\r\nfirst\nsecond\n"):await()
    local head = s:read_until("\r\n\r\n"):await()
    assert.truthy(head:find("^HTTP/1.1 101 Switching Protocols\r\n"))
    assert.truthy(head:find("\r\nUpgrade: line%-echo"))
    assert.are.equal("FIRST", s:read_line():await())
    assert.are.equal("SECOND", s:read_line():await())
    s:write("third\n"):await()
    assert.are.equal("THIRD", s:read_line():await())
    s:shutdown():await()
    assert.is_nil(s:read():await())       -- the handler returned: the server closed it
    server:close():await()
  end))

  it("gives the client the stream of a 101", async(function()
    local server = line_echo_server()
    local res = http.request{ url = "http://127.0.0.1:" .. server.port .. "/",
      headers = { Upgrade = "line-echo", Connection = "Upgrade" } }:await()
    assert.are.equal(101, res.status)
    res.stream:write("hi\n"):await()
    assert.are.equal("HI", res.stream:read_line():await())
    res.stream:close()
    -- plain requests on the same server go on as before
    assert.are.equal("plain\n", http.get("http://127.0.0.1:" .. server.port .. "/"):await().body)
    server:close():await()
  end))

  it("refuses fields that would inject a header, before anything is sent", async(function()
    local logged = {}
    local server = http.serve({ port = 0, log = function(m) logged[#logged + 1] = m end }, function(req, res)
      req:upgrade{ ["X-Evil"] = "a\r\nSet-Cookie: b" }
    end)
    local res = http.get("http://127.0.0.1:" .. server.port .. "/"):await()
    assert.are.equal(500, res.status)
    assert.are.equal(1, #logged)
    server:close():await()
  end))

  it("refuses an upgrade once the response started", async(function()
    local server = http.serve({ port = 0, log = function() end }, function(req, res)
      res:write("x")
      local ok, err = pcall(req.upgrade, req, {})
      res:finish(ok and "upgraded?" or tostring(err):match("response was already started") and "refused" or tostring(err))
    end)
    assert.are.equal("xrefused", http.get("http://127.0.0.1:" .. server.port .. "/"):await().body)
    server:close():await()
  end))
end)
