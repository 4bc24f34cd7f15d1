-- tide.websocket between tide's own client and server: the connection's
-- methods, compression parameters and limits, keep-alive, wss over
-- tide.tls; and the pieces with no socket: the handshake helpers,
-- tide.mask and tide.zlib.
local tide = require "tide"
local websocket = require "tide.websocket"
local hs = require "tide.websocket.handshake"

local function echo(opts)
  return websocket.serve(opts or { port = 0 }, function(ws)
    while true do
      local data, kind = ws:receive():await()
      if not data then break end
      ws:send(data, { binary = kind == "binary" }):await()
    end
  end)
end

describe("tide.websocket", function()
  describe("handshake helpers", function()
    it("computes the accept key of RFC 6455's example", function()
      assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", hs.accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
    end)

    it("parses extension offers and refuses malformed ones", function()
      local e = hs.parse_extensions('permessage-deflate; client_max_window_bits; server_max_window_bits="10", x-foo')
      assert.are.equal(2, #e)
      assert.are.equal(true, e[1].params.client_max_window_bits)
      assert.are.equal("10", e[1].params.server_max_window_bits)
      assert.is_nil(hs.parse_extensions("permessage-deflate; a=1; a=2"))
    end)

    it("negotiates permessage-deflate as a server", function()
      local v, a = hs.negotiate_server("permessage-deflate; client_max_window_bits", {})
      assert.are.equal("permessage-deflate", v)
      assert.are.equal(15, a.inflate_bits)
      v, a = hs.negotiate_server("permessage-deflate; server_max_window_bits=10; client_no_context_takeover", {})
      assert.are.equal("permessage-deflate; client_no_context_takeover; server_max_window_bits=10", v)
      assert.are.equal(10, a.deflate_bits)
      assert.is_true(a.inflate_reset)
      -- unknown parameters and window 8 skip the offer; the next one wins
      v = hs.negotiate_server("permessage-deflate; foo, permessage-deflate; server_max_window_bits=8, permessage-deflate", {})
      assert.are.equal("permessage-deflate", v)
      assert.is_nil(hs.negotiate_server("x-other", {}))
    end)

    it("checks a server's answer as a client", function()
      assert.truthy(hs.accept_client("permessage-deflate", {}))
      assert.is_nil(hs.accept_client("x-other", {}))
      assert.is_nil(hs.accept_client("permessage-deflate; foo=1", {}))
      assert.is_nil(hs.accept_client("permessage-deflate", nil))
    end)

    it("carries an incomplete UTF-8 character to the next fragment", function()
      assert.are.equal("", websocket.utf8_prefix("abc"))
      assert.are.equal("\xe2\x82", websocket.utf8_prefix("a\xe2\x82"))
      assert.is_nil(websocket.utf8_prefix("a\xe2\x41"))
      assert.is_nil(websocket.utf8_prefix("\xed\xa0"))   -- a surrogate's start
      assert.is_nil(websocket.utf8_prefix("\xff"))
    end)
  end)

  describe("tide.mask", function()
    it("masks and unmasks, from any offset and start", function()
      local data = ("0123456789"):rep(13)
      local m = tide.mask(data, "\1\2\3\4")
      assert.are_not.equal(data, m)
      assert.are.equal(data, tide.mask(m, "\1\2\3\4"))
      assert.are.equal(tide.mask(data, "abcd"):sub(6), tide.mask(data:sub(6), "abcd", 5))
      assert.are.equal(tide.mask(data:sub(3), "abcd"), tide.mask(data, "abcd", 0, 3))
      assert.has_error(function() tide.mask("x", "abc") end)
    end)
  end)

  describe("tide.zlib", function()
    it("deflates and inflates in raw, zlib and gzip formats", function()
      local text = ("tide, a runtime "):rep(500)
      for _, fmt in ipairs{ "raw", "zlib", "gzip" } do
        local d = tide.zlib.deflate{ format = fmt }
        local packed = d:write(text, "finish")
        assert.is_true(#packed < #text / 10)
        local i = tide.zlib.inflate{ format = fmt == "raw" and "raw" or "auto" }
        assert.are.equal(text, i:write(packed))
        assert.is_true(i.done)
      end
    end)

    it("bounds what an inflate returns", function()
      local packed = tide.zlib.deflate():write(("\0"):rep(1 << 20), "finish")
      local ok, err = pcall(function() return tide.zlib.inflate():write(packed, 1000) end)
      assert.is_false(ok)
      assert.are.equal("EMSGSIZE", err.code)
    end)

    it("raises EPROTO on malformed data", function()
      local ok, err = pcall(function() return tide.zlib.inflate{ format = "zlib" }:write("not zlib at all") end)
      assert.is_false(ok)
      assert.are.equal("EPROTO", err.code)
    end)
  end)

  describe("connections", function()
    it("sends and receives text, binary, fragmented and empty messages", async(function()
      local server = echo()
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/"):await()
      for _, m in ipairs{ { "", false }, { "héllo", false }, { "\0\1\2", true } } do
        ws:send(m[1], { binary = m[2] }):await()
        local d, k = ws:receive():await()
        assert.are.equal(m[1], d)
        assert.are.equal(m[2] and "binary" or "text", k)
      end
      ws:send(("€"):rep(1000), { fragment = 7 }):await()
      assert.are.equal(("€"):rep(1000), ws:receive():await())
      assert.has_error(function() ws:send("\xff") end)
      assert.are.equal(1000, ws:close():await())
      assert.is_nil(ws:receive():await())
      local _, err = pcall(tide.await, ws:send("late"))
      assert.are.equal("EPIPE", err.code)
      server:close():await()
    end))

    it("keeps messages a ping read for the next receive", async(function()
      local server = websocket.serve({ port = 0 }, function(ws)
        ws:send("first"):await()
        ws:send("second"):await()
        ws:receive():await()
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/"):await()
      assert.are.equal("p", ws:ping("p"):await())
      assert.are.equal("first", ws:receive():await())
      assert.are.equal("second", ws:receive():await())
      ws:close():await()
      server:close():await()
    end))

    it("times out a receive between messages and stays usable", async(function()
      local server = websocket.serve({ port = 0 }, function(ws)
        tide.sleep(0.3):await()
        ws:send("late"):await()
        ws:receive():await()
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/"):await()
      local ok, err = pcall(tide.await, ws:receive(0.05))
      assert.is_false(ok)
      assert.are.equal("ETIMEDOUT", err.code)
      assert.are.equal("open", ws.state)
      assert.are.equal("late", ws:receive(5):await())
      ws:close():await()
      server:close():await()
    end))

    it("agrees on subprotocols", async(function()
      local server = websocket.serve({ port = 0, protocols = { "b", "a" } }, function(ws)
        ws:send(tostring(ws.protocol)):await()
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/", { protocols = { "a", "b" } }):await()
      assert.are.equal("b", ws.protocol)
      assert.are.equal("b", ws:receive():await())
      ws:close():await()
      ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/", { protocols = { "c" } }):await()
      assert.is_nil(ws.protocol)
      ws:close():await()
      server:close():await()
    end))

    it("compresses with every parameter combination", async(function()
      local combos = {
        {}, { server_no_context_takeover = true }, { client_no_context_takeover = true },
        { server_max_window_bits = 9, client_max_window_bits = 10 },
        { server_no_context_takeover = true, client_no_context_takeover = true, level = 1 },
      }
      local server = echo{ port = 0, compression = true }
      for _, z in ipairs(combos) do
        local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/", { compression = z }):await()
        assert.truthy(ws.extensions)
        for i = 1, 5 do
          local m = ("message %d "):format(i):rep(300)
          ws:send(m):await()
          assert.are.equal(m, ws:receive():await())
        end
        local big = tide.mask(("x"):rep(200000), "k3y!")
        ws:send(big, { binary = true, fragment = 3000 }):await()
        assert.is_true(big == ws:receive():await())
        ws:close():await()
      end
      server:close():await()
    end, 30))

    it("fails a message that inflates past max_message with 1009", async(function()
      local server = echo{ port = 0, compression = true, max_message = 10000 }
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/", { compression = true }):await()
      ws:send(("\0"):rep(1 << 20), { binary = true }):await()   -- a few KiB on the wire
      assert.is_nil(ws:receive():await())
      assert.are.equal(1009, ws.close_code)
      server:close():await()
    end))

    it("closes from the server side with a code and reason", async(function()
      local server = websocket.serve({ port = 0 }, function(ws)
        assert.are.equal(4321, ws:close(4321, "done here"):await())
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/"):await()
      assert.is_nil(ws:receive():await())
      assert.are.equal(4321, ws.close_code)
      assert.are.equal("done here", ws.close_reason)
      server:close():await()
    end))

    it("times out a close the peer never answers with 1006", async(function()
      local srv = tide.tcp.serve({ port = 0 }, function(s)
        local head = s:read_until("\r\n\r\n"):await()
        s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. hs.accept_key(head:match("Key: ([^\r]+)")) .. "\r\n\r\n"):await()
        tide.sleep(5):await()
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. srv.port .. "/", { close_timeout = 0.2 }):await()
      assert.are.equal(1006, ws:close():await())
      srv:close(0):await()
    end))

    it("fails a connection whose keep-alive pings go unanswered", async(function()
      local srv = tide.tcp.serve({ port = 0 }, function(s)
        local head = s:read_until("\r\n\r\n"):await()
        s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. hs.accept_key(head:match("Key: ([^\r]+)")) .. "\r\n\r\n"):await()
        s:read_all():await()
      end)
      local ws = websocket.connect("ws://127.0.0.1:" .. srv.port .. "/",
        { ping_interval = 0.1, ping_timeout = 0.2, close_timeout = 0.2 }):await()
      assert.is_nil(ws:receive():await())
      assert.are.equal(1011, ws.close_code)
      srv:close(0):await()
    end))

    it("runs over TLS (wss)", async(function()
      local ok, certs = pcall(require, "tls.certs")
      if not ok then return pending("spec/tls/certs.lua not found") end
      local server = echo{ port = 0, tls = { cert = certs.path("localhost.pem"), key = certs.path("localhost.key") } }
      local ws = websocket.connect("wss://localhost:" .. server.port .. "/",
        { tls = { ca = certs.path("ca.pem") } }):await()
      assert.are.equal("tls", ws.stream.kind)
      ws:send("secret"):await()
      assert.are.equal("secret", ws:receive():await())
      ws:close():await()
      server:close():await()
    end, 30))

    it("refuses bad arguments at once", function()
      assert.has_error(function() websocket.connect("ws://x", { nope = 1 }) end)
      assert.has_error(function() websocket.serve({ port = 0, max_frame = -1 }, function() end) end)
      assert.has_error(function() websocket.serve({ port = 0 }) end)
    end)
  end)
end)
