-- spec/fuzz/seeds.lua — writes the seed inputs of the websocket target to
-- spec/fuzz/corpus/websocket/ (run from the top of the tree with the tide
-- binary: build/tide spec/fuzz/seeds.lua). The seeds are committed; this
-- script says how they were made and makes them again after a change of
-- the input's layout (spec/fuzz/websocket.lua's header: a mode byte, then
-- the peer's bytes).
local tide = require "tide"

local pack, char = string.pack, string.char

local dir = arg[1] or "spec/fuzz/corpus/websocket"

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
  pieces = { 7 << 3, function(k)
    return frame(FIN | TEXT, "all at once", k) .. frame(FIN | CLOSE, pack(">I2", 4000), k)
  end },
}

local n = 0
for name, s in pairs(seeds) do
  for _, client in ipairs{ false, true } do
    local f = assert(io.open(("%s/%s-%s"):format(dir, name, client and "client" or "server"), "wb"))
    f:write(char(s[1] | (client and 1 or 0)), s[2](not client and KEY or nil))
    f:close()
    n = n + 1
  end
end
print(n .. " seeds in " .. dir)
