-- tide.websocket against raw bytes: every protocol violation gets the
-- close code RFC 6455 asks for (1002, 1007, 1009), then the server drops
-- TCP; bad handshakes get their HTTP answer; each case also with the
-- bytes written one at a time; the server keeps serving throughout.
local tide = require "tide"
local websocket = require "tide.websocket"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local HANDSHAKE = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n\r\n"

-- A client frame: b1 (FIN, RSV, opcode), payload, masked unless told.
local function frame(b1, payload, unmasked, len)
  len = len or #payload
  local head
  if len < 126 then head = string.char(b1, (unmasked and 0 or 128) | len)
  elseif len < 65536 then head = string.pack(">BBI2", b1, (unmasked and 0 or 128) | 126, len)
  else head = string.pack(">BBI8", b1, (unmasked and 0 or 128) | 127, len) end
  if unmasked then return head .. payload end
  return head .. "abcd" .. tide.mask(payload, "abcd")
end

-- Reads server frames until the close frame; returns its code (nil when
-- TCP ended without one) and whether TCP then ended.
local function read_close(s)
  while true do
    local h = s:read_exactly(2, 5):await()
    if not h then return nil end
    local b1, b2 = h:byte(1, 2)
    local len = b2 & 127
    if len == 126 then len = string.unpack(">I2", s:read_exactly(2):await())
    elseif len == 127 then len = string.unpack(">I8", s:read_exactly(8):await()) end
    local payload = len > 0 and s:read_exactly(len):await() or ""
    if b1 & 15 == 8 then
      local code = #payload >= 2 and string.unpack(">I2", payload) or 1005
      local rest = s:read(5):await()
      return code, rest == nil
    end
  end
end

local function send(s, bytes, one_by_one)
  if not one_by_one then return s:write(bytes):await() end
  for i = 1, #bytes do
    s:write(bytes:sub(i, i)):await()
    tide.sleep(0.001):await()
  end
end

local server, echoed
local function start()
  echoed = 0
  server = websocket.serve({ port = 0, max_message = 1000, max_frame = 800, path = "/chat" }, function(ws)
    while true do
      local data, kind = ws:receive():await()
      if not data then break end
      echoed = echoed + 1
      ws:send(data, { binary = kind == "binary" }):await()
    end
  end)
end

-- One connection that sends `bytes` after the handshake; returns the close code.
local function violation(bytes, one_by_one)
  local s <close> = tide.tcp.connect("127.0.0.1", server.port):await()
  send(s, HANDSHAKE, one_by_one)
  assert.truthy(s:read_until("\r\n\r\n"):await():find("^HTTP/1.1 101"))
  send(s, bytes, one_by_one)
  local code, ended = read_close(s)
  assert.is_true(ended, "the server closed TCP")
  return code
end

-- The server still answers.
local function still_serving()
  local ws = websocket.connect("ws://127.0.0.1:" .. server.port .. "/chat"):await()
  ws:send("still here"):await()
  assert.are.equal("still here", ws:receive():await())
  ws:close():await()
end

local CASES = {
  { "RSV1 without an extension", frame(0xC1, "hi"), 1002 },
  { "RSV2", frame(0xA1, "hi"), 1002 },
  { "RSV3", frame(0x91, "hi"), 1002 },
  { "reserved data opcode 3", frame(0x83, ""), 1002 },
  { "reserved control opcode 11", frame(0x8B, ""), 1002 },
  { "a fragmented ping", frame(0x09, "x"), 1002 },
  { "a ping of 126 bytes", frame(0x89, ("p"):rep(126)), 1002 },
  { "a continuation without a start", frame(0x80, "x"), 1002 },
  { "a new message inside a fragmented one", frame(0x01, "a") .. frame(0x81, "b"), 1002 },
  { "an unmasked client frame", frame(0x81, "hello", true), 1002 },
  { "invalid UTF-8", frame(0x81, "\xff"), 1007 },
  { "invalid UTF-8 split across frames", frame(0x01, "\xce") .. frame(0x80, "A"), 1007 },
  { "text ending inside a character", frame(0x01, "a") .. frame(0x80, "\xe2\x82"), 1007 },
  { "a surrogate in text", frame(0x81, "\xed\xa0\x80"), 1007 },
  { "a frame over max_frame", frame(0x82, ("x"):rep(801)), 1009 },
  { "a message over max_message", frame(0x02, ("x"):rep(600)) .. frame(0x80, ("x"):rep(401)), 1009 },
  { "a close with a 1-byte payload", frame(0x88, "\3"), 1002 },
  { "a close with code 1005", frame(0x88, string.pack(">I2", 1005)), 1002 },
  { "a close with code 999", frame(0x88, string.pack(">I2", 999)), 1002 },
  { "a close reason that is not UTF-8", frame(0x88, string.pack(">I2", 1000) .. "\xff"), 1007 },
  { "a 64-bit length with the high bit", string.char(0x82, 255) .. "\128\0\0\0\0\0\0\0abcd", 1002 },
}

describe("tide.websocket protocol", function()
  for _, one in ipairs{ false, true } do
    local how = one and " (bytes one at a time)" or ""
    for _, case in ipairs(CASES) do
      it("answers " .. case[1] .. " with " .. case[3] .. how, async(function()
        start()
        assert.are.equal(case[3], violation(case[2], one))
        still_serving()
        server:close():await()
      end, 20))
    end

    it("reassembles fragments with a ping between them and UTF-8 split across frames" .. how, async(function()
      start()
      local s <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      send(s, HANDSHAKE, one)
      s:read_until("\r\n\r\n"):await()
      send(s, frame(0x01, "x\xce") .. frame(0x89, "ping!") .. frame(0x00, "\xba") .. frame(0x80, "y"), one)
      assert.are.equal("\x8a\x05ping!", s:read_exactly(7):await())   -- the pong first
      assert.are.equal("\x81\x04x\xce\xbay", s:read_exactly(6):await())
      send(s, frame(0x88, string.pack(">I2", 4000) .. "bye"), one)
      assert.are.equal("\x88\x05" .. string.pack(">I2", 4000) .. "bye", s:read_exactly(7):await())
      assert.is_nil(s:read(5):await())                               -- the server closed TCP
      server:close():await()
    end, 20))

    it("refuses a handshake without a key with 400" .. how, async(function()
      start()
      local s <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      send(s, (HANDSHAKE:gsub("Sec%-WebSocket%-Key: [^\r]*\r\n", "")), one)
      assert.truthy(s:read_line():await():find("^HTTP/1.1 400"))
      still_serving()
      server:close():await()
    end, 20))

    it("refuses version 8 with 426 and the version it speaks" .. how, async(function()
      start()
      local s <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      send(s, (HANDSHAKE:gsub("Version: 13", "Version: 8")), one)
      local head = s:read_until("\r\n\r\n"):await()
      assert.truthy(head:find("^HTTP/1.1 426"))
      assert.truthy(head:find("Sec%-WebSocket%-Version: 13"))
      still_serving()
      server:close():await()
    end, 20))
  end

  it("answers a plain request and a POST handshake without upgrading", async(function()
    start()
    local http = require "tide.http"
    local base = "http://127.0.0.1:" .. server.port .. "/chat"
    assert.are.equal(426, http.get(base):await().status)
    assert.are.equal(404, http.get("http://127.0.0.1:" .. server.port .. "/other"):await().status)
    still_serving()
    server:close():await()
  end))

  describe("the client", function()
    -- A raw server: answers the handshake, then sends `bytes`.
    local function raw_server(bytes, accept)
      return tide.tcp.serve({ port = 0 }, function(s)
        local head = s:read_until("\r\n\r\n"):await()
        local key = head:match("Sec%-WebSocket%-Key: ([^\r]+)")
        local hs = require "tide.websocket.handshake"
        s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. (accept or hs.accept_key(key)) .. "\r\n\r\n" .. bytes):await()
        s:read_all():await()
      end)
    end

    it("fails on a masked server frame with 1002", async(function()
      local srv = raw_server(frame(0x81, "hi"))
      local ws = websocket.connect("ws://127.0.0.1:" .. srv.port .. "/"):await()
      assert.is_nil(ws:receive():await())
      assert.are.equal(1002, ws.close_code)
      srv:close():await()
    end))

    it("reads frames that came with the 101 in one segment", async(function()
      local srv = raw_server(string.char(0x81, 2) .. "hi" .. string.char(0x88, 2) .. string.pack(">I2", 1000))
      local ws = websocket.connect("ws://127.0.0.1:" .. srv.port .. "/"):await()
      assert.are.equal("hi", ws:receive():await())
      assert.is_nil(ws:receive():await())
      assert.are.equal(1000, ws.close_code)
      srv:close():await()
    end))

    it("rejects a wrong Sec-WebSocket-Accept with EPROTO", async(function()
      local srv = raw_server("", "d3Jvbmc=")
      local ok, err = pcall(tide.await, websocket.connect("ws://127.0.0.1:" .. srv.port .. "/"))
      assert.is_false(ok)
      assert.are.equal("EPROTO", err.code)
      srv:close():await()
    end))

    it("rejects a server that does not upgrade, with its status", async(function()
      local http = require "tide.http"
      local srv = http.serve({ port = 0 }, function(req, res) res.status = 403; res:finish("no") end)
      local ok, err = pcall(tide.await, websocket.connect("ws://127.0.0.1:" .. srv.port .. "/"))
      assert.is_false(ok)
      assert.are.equal("EPROTO", err.code)
      assert.are.equal(403, err.status)
      srv:close():await()
    end))
  end)
end)
