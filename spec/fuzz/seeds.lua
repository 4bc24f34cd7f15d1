-- spec/fuzz/seeds.lua — writes the seed inputs of the websocket and tls
-- targets to spec/fuzz/corpus/T/ (run from the top of the tree with the
-- tide binary: build/tide spec/fuzz/seeds.lua websocket|tls). The seeds
-- are committed; this script says how they were made and makes them again
-- after a change of an input's layout (the header of spec/fuzz/T.lua: a
-- mode byte, then the peer's bytes). The TLS seeds hold the random values
-- of the handshake they come from, so each run writes other bytes.
local tide = require "tide"

local pack, char = string.pack, string.char

local target = arg[1] or "websocket"
local dir = "spec/fuzz/corpus/" .. target

local function write_seed(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end

--------------------------------------------------------------------------
-- tls: the bytes each side of real handshakes sent, over memory pairs
-- joined by a relay that keeps a copy.

local function tls_seeds()
  local memory = require "tide.memory"
  local tls = require "tide.tls"
  local cert, key = "spec/fuzz/tls/cert.pem", "spec/fuzz/tls/key.pem"
  -- Copies what `from` reads to `to`, keeping it in `log`, until the end.
  local function relay(from, to, log)
    while true do
      local ok, data = pcall(tide.await, from:read())
      if not ok or data == nil then break end
      log[#log + 1] = data
      pcall(tide.await, to:write(data))
    end
    pcall(function() to:shutdown():await() end)
  end
  local n = 0
  do  -- (the main chunk of the tide binary is a task)
    -- mode bit 1: the client speaks at most TLS 1.2 (see tls.lua).
    for _, v in ipairs{ { "13", 0, nil }, { "12", 2, "TLSv1.2" } } do
      local tag, bit, max = v[1], v[2], v[3]
      local ca, cb = memory.pair()   -- the client on ca
      local sa, sb = memory.pair()   -- the server on sb
      local up, down = {}, {}
      local r1 = tide.spawn(relay, cb, sa, up)
      local r2 = tide.spawn(relay, sa, cb, down)
      local sp = tls.wrap(sb, { server = true, cert = cert, key = key })
      local cp = tls.wrap(ca, { servername = "localhost", ca = cert, max_version = max })
      local c, s = cp:await(), sp:await()
      c:write("ping")
      assert(s:read_exactly(4):await() == "ping")
      s:write("pong")
      assert(c:read_exactly(4):await() == "pong")
      c:shutdown():await()
      s:read_all():await()
      s:close()
      c:close()
      r1:await()
      r2:await()
      local client_bytes, server_bytes = table.concat(up), table.concat(down)
      -- The server's side fed the client's bytes, whole and in pieces of
      -- 16; the client's side fed the server's, whole and in pieces of 64.
      write_seed("client-flight-" .. tag, char(0) .. client_bytes)
      write_seed("client-flight-" .. tag .. "-pieces", char(1 << 3) .. client_bytes)
      write_seed("server-flight-" .. tag, char(1 | bit) .. server_bytes)
      write_seed("server-flight-" .. tag .. "-pieces", char(1 | bit | 3 << 3) .. server_bytes)
      -- The first record alone, the end left open: a handshake in progress.
      local len = string.unpack(">I2", client_bytes, 4)
      write_seed("client-hello-" .. tag .. "-open", char(4) .. client_bytes:sub(1, 5 + len))
      n = n + 5
    end
  end
  write_seed("not-tls", char(0) .. "GET / HTTP/1.1\r\n\r\n")
  write_seed("empty-client", char(1))
  print(n + 2 .. " seeds in " .. dir)
end

if target == "tls" then return tls_seeds() end
assert(target == "websocket", "target: websocket or tls")

-- One frame: b1 holds FIN, RSV1 and the opcode; masked when `key` is set.
local function frame(b1, payload, key)
  local n, head = #payload
  local m = key and 128 or 0
  if n < 126 then head = char(b1, m | n)
  elseif n < 65536 then head = pack(">BBI2", b1, m | 126, n)
  else head = pack(">BBI8", b1, m | 127, n) end
  if key then return head .. key .. tide.mask(payload, key) end
  return head .. payload
end

-- A deflated message body, as RFC 7692 sends it (no trailing 00 00 ff ff).
local function deflated(s)
  local d = tide.zlib.deflate{ window_bits = 15 }
  local out = d:write(s, "sync")
  d:close()
  return out:sub(1, -5)
end

local KEY = "\x12\x34\x56\x78"
local FIN, RSV1 = 0x80, 0x40
local TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0

-- Mode bits (websocket.lua): 1 client, 2 deflate, 4 reset, piece size
-- (1 to 7, or 0 for all at once) in bits 3-5. Each seed is a mode and a
-- function of the masking key (nil when the reader is the client, whose
-- peer sends unmasked frames).
local function z(n) return deflated(("z"):rep(n)) end
local seeds = {
  hello = { 0, function(k) return frame(FIN | TEXT, "hello", k) end },
  binary = { 0, function(k) return frame(FIN | BINARY, "\0\1\2\255", k) end },
  fragments = { 0, function(k)
    return frame(TEXT, "frag", k) .. frame(FIN | PING, "p", k) .. frame(CONT, "men", k)
      .. frame(FIN | CONT, "ted", k)
  end },
  utf8_split = { 1 << 3, function(k) return frame(TEXT, "caf\xC3", k) .. frame(FIN | CONT, "\xA9", k) end },
  close = { 0, function(k) return frame(FIN | CLOSE, pack(">I2", 1000) .. "bye", k) end },
  close_empty = { 0, function(k) return frame(FIN | CLOSE, "", k) end },
  pong = { 0, function(k) return frame(FIN | PONG, "x", k) .. frame(FIN | TEXT, "after", k) end },
  len16 = { 0, function(k) return frame(FIN | BINARY, ("a"):rep(300), k) end },
  len64 = { 0, function(k)
    return char(FIN | BINARY, (k and 128 or 0) | 127) .. pack(">I8", 5) .. (k or "")
      .. (k and tide.mask("abcde", k) or "abcde")
  end },
  too_big = { 0, function(k) return frame(FIN | BINARY, ("b"):rep(700), k) end },
  deflate = { 2, function(k) return frame(FIN | RSV1 | TEXT, deflated("hello hello hello"), k) end },
  deflate_frag = { 6, function(k)
    return frame(RSV1 | BINARY, z(100):sub(1, 3), k) .. frame(FIN | CONT, z(100):sub(4), k)
  end },
  deflate_bomb = { 2, function(k) return frame(FIN | RSV1 | BINARY, z(5000), k) end },
  -- Bit 6: an extension header first (offer or answer), then frames.
  ext_offer = { 64, function(k)
    return "permessage-deflate; client_max_window_bits=9; server_no_context_takeover, x-other\n"
      .. frame(FIN | RSV1 | TEXT, deflated("hello hello hello"), k)
  end },
  ext_window = { 64 | 2 << 3, function(k)
    return "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10\n"
      .. frame(FIN | RSV1 | BINARY, z(3000), k)
  end },
  ext_quoted = { 64, function(k)
    return 'permessage-deflate; client_max_window_bits="12"\n' .. frame(FIN | TEXT, "plain", k)
  end },
  pieces = { 7 << 3, function(k)
    return frame(FIN | TEXT, "all at once", k) .. frame(FIN | CLOSE, pack(">I2", 4000), k)
  end },
}

local n = 0
for name, s in pairs(seeds) do
  for _, client in ipairs{ false, true } do
    write_seed(("%s-%s"):format(name, client and "client" or "server"),
      char(s[1] | (client and 1 or 0)) .. s[2](not client and KEY or nil))
    n = n + 1
  end
end
print(n .. " seeds in " .. dir)
