-- tide.websocket: WebSocket (RFC 6455) connections, servers and clients,
-- with permessage-deflate (RFC 7692) on tide.zlib.
--
-- A connection owns its stream: frames are read in the task that calls
-- receive() (or close(), when nobody receives), so no task runs behind the
-- application's back and a connection nobody reads holds the peer back
-- through TCP. Control frames are handled where they are read: pings are
-- answered, pongs settle ping() promises, a close frame is answered and
-- ends the connection. Sending writes whole frames to the stream, so
-- writes of several tasks never interleave inside a frame.
--
-- A connection `c` (private fields):
--   stream, client (masks its frames), o (options)
--   read, read_exactly, write              the stream's methods, looked up once
--   buf, pos   bytes read and not parsed yet: c.buf from c.pos on
--   state      "open", "closing" (our close frame went out), "closed"
--   reading    frames are being read now (by a receive or a pump)
--   receiving  a receive is in progress; deadline, rdl its time limit
--   boundary   the reader waits for a frame's first bytes (a timeout is safe)
--   pump, receiver_waiting, inbox          ping() and close() reading while
--                                          nobody receives (see receive_task)
--   parts, np, size, opcode, rsv1, carry   the message being reassembled
--   pings      list of {data, promise} waiting for their pong
--   closed_p   promise fulfilled once the connection is fully closed
--   failed     this side failed the connection (the server then lingers)
--   deflater, inflater, agreed             permessage-deflate, when agreed

local tide = require "tide"
local hs = require "tide.websocket.handshake"

local byte, char, sub, pack, unpack, lower, format =
  string.byte, string.char, string.sub, string.pack, string.unpack,
  string.lower, string.format
local concat = table.concat
local type, tostring, error, pcall, setmetatable, next, random =
  type, tostring, error, pcall, setmetatable, next, math.random
local utf8len = utf8.len
local mask = tide.mask
local await, spawn, tide_error, timeout, resolved = tide.await, tide.spawn, tide.error,
  tide.timeout, tide.resolved
local pstate = tide.resolved().state

local M = {}

--[[ Options of connections (accept, serve and connect), with defaults:
  max_frame         17 MiB    largest frame payload read (1009 past it): a
                              16 MiB message, with room for compressed data
                              that came out larger than it went in
  max_message       16 MiB    largest message read, after inflating (1009)
  close_timeout     5 s       how long close() waits for the peer's close frame
                              and then for the end of TCP
  ping_interval     nil       seconds between keep-alive pings (off by default)
  ping_timeout      20 s      a keep-alive ping without its pong fails the
                              connection (1011) after this long
  compression       false     permessage-deflate: true or a table of
                              server_no_context_takeover, client_no_context_takeover,
                              server_max_window_bits, client_max_window_bits,
                              level (zlib, default 6), threshold (bytes, default 0)
  handshake_timeout 10 s      (serve, connect) the opening handshake
]]
local DEFAULTS = {
  max_frame = 17 * 1024 * 1024,
  max_message = 16 * 1024 * 1024,
  close_timeout = 5,
  ping_interval = false,
  ping_timeout = 20,
  compression = false,
  handshake_timeout = 10,
}
M.DEFAULTS = DEFAULTS

local OPTIONS = {
  max_frame = "number", max_message = "number", close_timeout = "number",
  ping_interval = "number", ping_timeout = "number", compression = "table",
  handshake_timeout = "number",
}

local function options(opts, extra, level)
  if opts ~= nil and type(opts) ~= "table" then error("websocket: options must be a table", level + 1) end
  local o = {}
  for k, v in next, DEFAULTS do o[k] = v end
  for k, v in next, opts or {} do
    local t = OPTIONS[k]
    if t then
      if k == "compression" and v == true then v = {} end
      if v ~= false and type(v) ~= t then
        error(format("websocket: option '%s' must be a %s", k, t), level + 1)
      end
      if t == "number" and v and not (v > 0) then
        error(format("websocket: option '%s' must be positive", k), level + 1)
      end
    elseif not (extra and extra[k]) then
      error("websocket: unknown option '" .. tostring(k) .. "'", level + 1)
    end
    o[k] = v
  end
  return o
end

--------------------------------------------------------------------------
-- Frames.

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local KIND = { [OP_TEXT] = "text", [OP_BINARY] = "binary" }
local DEFLATE_TAIL = "\0\0\255\255"

-- The bytes of a frame header: `b1` holds FIN, RSV1 and the opcode.
local function frame_head(b1, len, key)
  if key then
    if len < 126 then return char(b1, 128 | len) .. key end
    if len < 65536 then return pack(">BBI2", b1, 254, len) .. key end
    return pack(">BBI8", b1, 255, len) .. key
  end
  if len < 126 then return char(b1, len) end
  if len < 65536 then return pack(">BBI2", b1, 126, len) end
  return pack(">BBI8", b1, 127, len)
end

local function new_key()
  return pack("<I4", random(0, 0xffffffff))
end

-- Writes one frame; returns the stream's write promise.
local function write_frame(c, b1, payload)
  local s, n = c.stream, #payload
  if c.client then
    local key = new_key()
    if n <= 16384 then return c.write(s, frame_head(b1, n, key) .. mask(payload, key)) end
    return c.write(s, { frame_head(b1, n, key), mask(payload, key) })
  end
  if n <= 16384 then return c.write(s, frame_head(b1, n) .. payload) end
  return c.write(s, { frame_head(b1, n), payload })
end

-- Codes a close frame may carry (section 7.4): 1000-1003, 1007-1014 and
-- 3000-4999. 1005, 1006 and 1015 are never sent.
local function valid_code(code)
  return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
    or (code >= 3000 and code <= 4999)
end

--------------------------------------------------------------------------
-- Connections.

local Conn = {}
local conn_mt = {
  __name = "tide.websocket",
  __index = Conn,
  __tostring = function(c)
    return format("tide.websocket (%s, %s)", c.client and "client" or "server", c.state)
  end,
}

-- Closes the stream of a connection the server failed: the write side
-- first, then what the client still sends is read and dropped for a
-- moment, so that the close frame is not lost to a reset (a socket closed
-- with unread bytes sends RST, which can overtake what was written).
local LINGER_TIME, LINGER_BYTES = 2, 256 * 1024
local function linger_close(c)
  local s = c.stream
  if not s.closed and pcall(function() return await(s:shutdown()) end) then
    local deadline, got = tide.now() + LINGER_TIME, 0
    while got < LINGER_BYTES do
      local left = deadline - tide.now()
      if left <= 0 then break end
      local ok, data = pcall(await, s:read(left))
      if not ok or not data then break end
      got = got + #data
    end
  end
  if not s.closed then s:close(0) end
  c.closed_p:resolve()
end

-- Ends the connection: closes the stream (queued frames go out first, for
-- at most close_timeout), settles the pings, fulfils closed_p.
local function finish(c, code, reason)
  if c.state == "closed" and c.stream_closed then return end
  c.state = "closed"
  if c.close_code == nil then c.close_code, c.close_reason = code or 1006, reason or "" end
  local lingering = false
  if not c.stream_closed then
    c.stream_closed = true
    if c.failed and not c.client then
      lingering = true
      spawn(linger_close, c)
    else
      c.stream:close(c.o.close_timeout)
    end
  end
  for i = 1, #c.pings do
    c.pings[i][2]:reject(tide_error("EPIPE", "the WebSocket closed before the pong"))
    c.pings[i] = nil
  end
  if c.keepalive then c.keepalive:cancel(); c.keepalive = nil end
  if c.deflater then c.deflater:close() end
  if c.inflater then c.inflater:close() end
  if not lingering then c.closed_p:resolve() end
end

-- Fails the connection (section 7.1.7): sends a close frame with `code`
-- when none went out yet, and drops TCP. receive() then gives nil;
-- close_code and close_reason say why.
local function fail(c, code, reason)
  if c.state == "closed" then return end
  c.close_code, c.close_reason = code, reason
  c.error, c.failed = reason, true
  if c.state == "open" and code ~= 1006 then
    local p = write_frame(c, 128 | OP_CLOSE, pack(">I2", code) .. sub(reason, 1, 123))
    p:catch(function() end)
  end
  finish(c)
end

-- Frames are parsed from c.buf, from position c.pos on: what the stream
-- gave in one read, which for small frames holds the whole frame (one read
-- per message, and the payload unmasked straight out of it).
--
-- need(c, n) makes sure `n` bytes are buffered from c.pos on and returns
-- the buffer and the position; nil when the stream ended before any of
-- them. A stream that ends inside them raises EOF, a read error raises
-- it: the reader ends the connection with 1006 (see ended). What is
-- missing past BIG comes in one read_exactly, so that a large frame is
-- copied once, not once per TCP segment.
local BIG = 4096
local function need(c, n)
  local buf, pos = c.buf, c.pos
  local have = #buf - pos + 1
  if have >= n then return buf, pos end
  if have > 0 then buf = sub(buf, pos) else buf = "" end
  local s, dl = c.stream, c.rdl
  while true do
    local missing = n - #buf
    local t
    if dl then
      t = dl - tide.now()
      if t < 0 then t = 0 end
    end
    local more
    if missing > BIG then
      more = await(c.read_exactly(s, missing, t))
    else
      more = await(c.read(s, t))
    end
    if more == nil then
      c.buf, c.pos = "", 1
      if buf == "" then return nil end
      error(tide_error("EOF", "the connection ended inside a frame"), 0)
    end
    buf = buf .. more
    if #buf >= n then
      c.buf, c.pos = buf, 1
      return buf, 1
    end
  end
end

-- Checks that `s` is UTF-8 but for an incomplete sequence at its end;
-- returns that tail ("" when none), or nil when `s` is invalid.
local function utf8_prefix(s)
  local n, pos = utf8len(s)
  if n then return "" end
  local len = #s
  if pos < len - 2 then return nil end
  local b = byte(s, pos)
  local width = b >= 0xC2 and b <= 0xDF and 2 or b >= 0xE0 and b <= 0xEF and 3
    or b >= 0xF0 and b <= 0xF4 and 4 or nil
  if not width or len - pos + 1 >= width then return nil end
  for i = pos + 1, len do
    local x = byte(s, i)
    local lo, hi = 0x80, 0xBF
    if i == pos + 1 then
      if b == 0xE0 then lo = 0xA0 elseif b == 0xED then hi = 0x9F
      elseif b == 0xF0 then lo = 0x90 elseif b == 0xF4 then hi = 0x8F end
    end
    if x < lo or x > hi then return nil end
  end
  return sub(s, pos)
end
M.utf8_prefix = utf8_prefix

-- Handles the peer's close frame `payload`.
local function got_close(c, payload)
  local code, reason = 1005, ""
  if #payload == 1 then return fail(c, 1002, "close frame with a 1-byte payload") end
  if #payload >= 2 then
    code = unpack(">I2", payload)
    reason = sub(payload, 3)
    if not valid_code(code) then return fail(c, 1002, "invalid close code " .. code) end
    if not utf8len(reason) then return fail(c, 1007, "close reason is not UTF-8") end
  end
  c.close_code, c.close_reason = code, reason
  if c.state == "open" then
    c.state = "closing"
    local p = write_frame(c, 128 | OP_CLOSE, code == 1005 and "" or pack(">I2", code) .. reason)
    p:catch(function() end)
  end
  if c.client then
    -- The server closes TCP first (section 7.1.1): wait for its end a while.
    c.stream:read_all{ max = 1 << 20, timeout = c.o.close_timeout }:catch(function() end):await()
  end
  finish(c)
end

-- Reads frames until a whole data message; returns data, kind, or nil once
-- the connection closed (when the peer or a protocol violation closed it).
local function read_message(c)
  local o = c.o
  local server = not c.client
  local max_frame, max_message = o.max_frame, o.max_message
  while c.state ~= "closed" do
    c.boundary = true  -- a timeout here leaves the connection usable
    local buf, pos = need(c, 2)
    c.boundary = false
    if not buf then finish(c, 1006, "the connection ended without a close frame") return nil end
    local b1, b2 = byte(buf, pos, pos + 1)
    local fin, rsv, op = b1 >= 128, b1 & 0x70, b1 & 0x0f
    local masked, len = b2 >= 128, b2 & 0x7f
    local ctl = op >= 8
    if rsv ~= 0 and (rsv ~= 0x40 or not c.inflater or ctl or op == OP_CONT) then
      return fail(c, 1002, "reserved bits set")
    end
    if (op > 2 and op < 8) or op > 10 then return fail(c, 1002, "reserved opcode " .. op) end
    if ctl and (not fin or len > 125) then
      return fail(c, 1002, "fragmented or oversized control frame")
    end
    if masked ~= server then
      return fail(c, 1002, server and "unmasked client frame" or "masked server frame")
    end
    local hl = 2
    if len == 126 then
      buf, pos = need(c, 4)
      len, hl = unpack(">I2", buf, pos + 2), 4
    elseif len == 127 then
      buf, pos = need(c, 10)
      len, hl = unpack(">i8", buf, pos + 2), 10
      if len < 0 then return fail(c, 1002, "frame length with the high bit set") end
    end
    if len > max_frame then
      return fail(c, 1009, "frame larger than " .. max_frame .. " bytes")
    end
    if masked then hl = hl + 4 end
    buf, pos = need(c, hl + len)
    local first, last = pos + hl, pos + hl + len - 1
    local payload
    if masked then
      payload = mask(buf, sub(buf, first - 4, first - 1), 0, first, last)
    elseif first == 1 and last == #buf then
      payload = buf
    else
      payload = sub(buf, first, last)
    end
    if last == #buf then
      c.buf, c.pos = "", 1  -- all of it taken: let a large buffer go
    else
      c.pos = last + 1
    end

    if ctl then
      if op == OP_PING then
        if c.state == "open" then
          write_frame(c, 128 | OP_PONG, payload):catch(function() end)
        end
      elseif op == OP_PONG then
        -- A pong answers the ping with its payload and every earlier one.
        local pings = c.pings
        for i = 1, #pings do
          if pings[i][1] == payload then
            for j = 1, i do pings[j][2]:resolve(payload) end
            table.move(pings, i + 1, #pings + i, 1)
            break
          end
        end
      else
        got_close(c, payload)
        return nil
      end
    else
      if op == OP_CONT then
        if not c.opcode then return fail(c, 1002, "continuation frame without a message") end
      else
        if c.opcode then return fail(c, 1002, "new message inside a fragmented one") end
        c.opcode, c.rsv1, c.size, c.np, c.carry = op, rsv ~= 0, 0, 0, ""
      end
      local size = c.size + len
      -- Compressed data is bounded on the wire by the larger of the two
      -- limits (it may come out a little larger than it went in), and
      -- once inflated by max_message.
      if size > max_message and (not c.rsv1 or size > max_frame) then
        c.opcode = nil
        return fail(c, 1009, "message larger than " .. max_message .. " bytes")
      end
      c.size = size
      local text = c.opcode == OP_TEXT and not c.rsv1
      if fin and c.np == 0 then
        -- The common case: a message in one frame.
        local kind = c.opcode
        c.opcode = nil
        if c.rsv1 then
          local ok, data = pcall(c.inflater.write, c.inflater, payload .. DEFLATE_TAIL, max_message)
          if not ok then
            if type(data) == "table" and data.code == "EMSGSIZE" then
              return fail(c, 1009, "message larger than " .. max_message .. " bytes")
            end
            return fail(c, 1007, "bad compressed data")
          end
          if c.inflater.done then c.inflater:reset() end
          if c.agreed.inflate_reset then c.inflater:reset() end
          payload = data
          text = kind == OP_TEXT
        end
        if text and not utf8len(payload) then
          return fail(c, 1007, "text message is not UTF-8")
        end
        return payload, KIND[kind]
      end
      if text then
        local tail = utf8_prefix(c.carry .. payload)
        if not tail then
          c.opcode = nil
          return fail(c, 1007, "text message is not UTF-8")
        end
        c.carry = tail
      end
      local np = c.np + 1
      c.np = np
      c.parts[np] = payload
      if fin then
        local parts = c.parts
        local data = concat(parts, "", 1, np)
        for i = 1, np do parts[i] = nil end
        local kind = c.opcode
        c.opcode, c.np = nil, 0
        if c.rsv1 then
          local ok
          ok, data = pcall(c.inflater.write, c.inflater, data .. DEFLATE_TAIL, max_message)
          if not ok then
            if type(data) == "table" and data.code == "EMSGSIZE" then
              return fail(c, 1009, "message larger than " .. max_message .. " bytes")
            end
            return fail(c, 1007, "bad compressed data")
          end
          if c.inflater.done or c.agreed.inflate_reset then c.inflater:reset() end
          if kind == OP_TEXT and not utf8len(data) then
            return fail(c, 1007, "text message is not UTF-8")
          end
        elseif text and c.carry ~= "" then
          return fail(c, 1007, "text message ends inside a UTF-8 sequence")
        end
        return data, KIND[kind]
      end
    end
  end
  return nil
end

-- After an error `e` raised while reading: a stream error (the peer
-- reset, the stream ended inside a frame) ends the connection with 1006
-- and gives nil; a cancellation is raised on; anything else is a bug,
-- failing the connection with 1011 and raised on.
local function ended(c, e)
  if tide.is_cancelled(e) then error(e, 0) end
  if c.boundary and tide.is_error(e, "ETIMEDOUT") then
    c.boundary = false
    error(e, 0)  -- receive's timeout, between frames: nothing was lost
  end
  if tide.is_error(e) then
    finish(c, 1006, tostring(e))
    return nil
  end
  fail(c, 1011, "internal error")
  error(e, 0)
end

-- Reads in the calling task, one reader at a time.
local function reading(c, fn)
  c.reading = true
  local ok, a, b = pcall(fn, c)
  c.reading = false
  if not ok then return ended(c, a) end
  return a, b
end

-- Messages a ping or close read while no receive() waited are kept in
-- c.inbox for the next receive; a running pump (c.pump) reads on behalf of
-- ping() and close() and hands the stream back once a receive waits.
local function receive_task(c)
  while true do
    local inbox = c.inbox
    if inbox[1] then
      local m = table.remove(inbox, 1)
      return m[1], m[2]
    end
    if c.state == "closed" then
      -- A failing server lingers a moment before TCP closes: the stream
      -- stays the connection's until then.
      pcall(await, c.closed_p)
      return nil
    end
    local pump = c.pump
    if not pump then
      c.rdl = c.deadline
      local ok, data, kind = pcall(reading, c, read_message)
      c.rdl = false
      if not ok then error(data, 0) end
      if data == nil then pcall(await, c.closed_p) end
      return data, kind
    end
    c.receiver_waiting = true
    local dl = c.deadline
    local ok, err = pcall(await, dl and timeout(pump, math.max(dl - tide.now(), 0), { shield = true }) or pump)
    c.receiver_waiting = false
    if not ok and tide.is_error(err, "ETIMEDOUT") then error(err, 0) end
  end
end

local function receive_call(c)
  local ok, a, b = pcall(receive_task, c)
  c.receiving, c.deadline = false, false
  if not ok then error(a, 0) end
  return a, b
end

--- c:receive([timeout]) -> promise of `data, kind` ("text" or "binary") of
-- the next message, or nil once the connection is closed (close_code says
-- why). One receive at a time. `timeout` rejects with ETIMEDOUT when no
-- message came in time; the connection stays usable, unless the time ran
-- out inside a frame (the connection then ends with 1006).
local current = tide.current
function Conn:receive(t)
  if self.receiving then error("websocket: a receive is already in progress", 2) end
  if t ~= nil then
    if type(t) ~= "number" or not (t >= 0) or t == math.huge then
      error("websocket: receive timeout must be a number of seconds", 2)
    end
  end
  local dl = t and tide.now() + t or false
  if not self.inbox[1] then
    if self.state == "closed" then return resolved(nil) end
    if not self.pump and current() then
      -- The common case: read right here, in the caller's task.
      self.receiving, self.reading, self.rdl = true, true, dl
      local ok, a, b = pcall(read_message, self)
      self.receiving, self.reading, self.rdl = false, false, false
      if not ok then
        ok, a = pcall(ended, self, a)
        if not ok then return tide.rejected(a) end
      end
      if a == nil then pcall(await, self.closed_p) end
      return resolved(a, b)
    end
  end
  self.receiving, self.deadline = true, dl
  -- Called from a task: read right here, no task of its own.
  if tide.current() then
    local ok, a, b = pcall(receive_call, self)
    if not ok then return tide.rejected(a) end
    return resolved(a, b)
  end
  return spawn(receive_call, self)
end

-- Reads frames while nobody receives, until `p` settles or a receive
-- waits; data messages go to the inbox. `keep` (close) reads to the end.
local function pump_loop(c, p, keep)
  while c.state ~= "closed" and pstate(p) == "pending" and (keep or not c.receiver_waiting) do
    local d, k = read_message(c)
    if d then
      if keep then
        if #c.inbox < 64 then c.inbox[#c.inbox + 1] = { d, k } end
      else
        c.inbox[#c.inbox + 1] = { d, k }
      end
    end
  end
end

local function pump_task(c, p, keep)
  reading(c, function() return pump_loop(c, p, keep) end)
  c.pump = false
end

-- Starts a pump when nobody reads the connection.
local function pump(c, p, keep)
  if not c.reading and not c.pump then c.pump = spawn(pump_task, c, p, keep) end
end

--- c:send(data [, opts]) -> promise fulfilled once the frames are queued
-- under the stream's high-water mark (await it for backpressure). opts is
-- "text" or "binary" (the kind receive gave, for an echo), or a table:
-- binary (default false: text, which must be UTF-8), fragment (bytes per
-- frame: the message goes out in several frames), compress (default true
-- when permessage-deflate was agreed).
function Conn:send(data, opts)
  if type(data) ~= "string" then error("websocket: send needs a string", 2) end
  local binary, fragment, compress = false, nil, true
  if opts == "binary" then
    binary = true
  elseif opts ~= nil and opts ~= "text" then
    if type(opts) ~= "table" then error("websocket: send options must be a table", 2) end
    binary, fragment = opts.binary or false, opts.fragment
    if opts.compress == false then compress = false end
    if fragment ~= nil and (math.type(fragment) ~= "integer" or fragment < 1) then
      error("websocket: fragment must be a positive integer", 2)
    end
  end
  if not binary and not utf8len(data) then error("websocket: text must be UTF-8 (send binary)", 2) end
  if self.state ~= "open" then
    return tide.rejected(tide_error("EPIPE", "the WebSocket is closed"))
  end
  local op = binary and OP_BINARY or OP_TEXT
  local rsv1 = 0
  local d = self.deflater
  if d and compress and #data >= (self.o.compression.threshold or 0) then
    data = d:write(data, "sync")
    if sub(data, -4) == DEFLATE_TAIL then
      data = sub(data, 1, -5)  -- without the 00 00 ff ff of the sync flush
    elseif data == "" then
      data = "\0"  -- nothing new since the last flush: an empty block (RFC 7692 7.2.3.6)
    end
    if self.agreed.deflate_reset then d:reset() end
    rsv1 = 0x40
  end
  if not fragment or #data <= fragment then
    return write_frame(self, 128 | rsv1 | op, data)
  end
  local p
  local n = #data
  for i = 1, n, fragment do
    local last = i + fragment > n
    local b1 = (last and 128 or 0) | (i == 1 and (rsv1 | op) or OP_CONT)
    p = write_frame(self, b1, sub(data, i, i + fragment - 1))
  end
  return p
end

--- c:ping([data]) -> promise of the pong's payload. The pong is read by
-- whoever reads the connection (receive); rejected with EPIPE when the
-- connection closes first.
function Conn:ping(data)
  data = data or ""
  if type(data) ~= "string" or #data > 125 then
    error("websocket: ping data must be a string of at most 125 bytes", 2)
  end
  if self.state ~= "open" then
    return tide.rejected(tide_error("EPIPE", "the WebSocket is closed"))
  end
  local p = tide.promise()
  self.pings[#self.pings + 1] = { data, p }
  write_frame(self, 128 | OP_PING, data):catch(function() end)
  pump(self, p)
  return p
end

local function close_task(c, code, reason)
  if c.state == "open" then
    c.state = "closing"
    local payload = code and (pack(">I2", code) .. reason) or ""
    write_frame(c, 128 | OP_CLOSE, payload):catch(function() end)
  end
  local p = c.closed_p
  pump(c, p, true)
  local ok, err = pcall(await, timeout(p, c.o.close_timeout, { shield = true }))
  if not ok then
    if tide.is_cancelled(err) then
      finish(c, 1006, "close cancelled")
      error(err, 0)
    end
    finish(c, 1006, "no close frame from the peer in time")
  end
  await(c.closed_p)
  return c.close_code, c.close_reason
end

--- c:close([code [, reason]]) -> promise fulfilled with the close code and
-- reason once the closing handshake is over (or close_timeout passed; the
-- code is then 1006). Closing again gives the same outcome.
function Conn:close(code, reason)
  if code ~= nil and (math.type(code) ~= "integer" or not valid_code(code)) then
    error("websocket: invalid close code " .. tostring(code), 2)
  end
  reason = reason or ""
  if type(reason) ~= "string" or #reason > 123 or not utf8len(reason) then
    error("websocket: the reason must be UTF-8 text of at most 123 bytes", 2)
  end
  if code == nil then code = 1000 end
  if self.closing_p then return self.closing_p end
  if self.state == "closed" then
    self.closing_p = resolved(self.close_code, self.close_reason)
    return self.closing_p
  end
  self.closing_p = spawn(close_task, self, code, reason)
  return self.closing_p
end

conn_mt.__close = function(c) if c.state ~= "closed" then c:close(1001) end end

-- Sends keep-alive pings every ping_interval; a missing pong fails the
-- connection.
local function keepalive(c)
  local o = c.o
  while c.state == "open" do
    tide.sleep(o.ping_interval):await()
    if c.state ~= "open" then break end
    local ok, err = pcall(await, timeout(c:ping(), o.ping_timeout))
    if not ok then
      if tide.is_cancelled(err) then error(err, 0) end
      if c.state == "open" then fail(c, 1011, "keep-alive ping timed out") end
    end
  end
end

--- new(stream, opts) -> a connection over a stream whose handshake is done.
-- opts: client (true: mask frames), protocol, extensions, agreed (the
-- permessage-deflate parameters), and the connection options.
local function new(stream, o, client, agreed)
  local c = setmetatable({
    stream = stream, o = o, client = client or false, state = "open", reading = false,
    parts = {}, np = 0, size = 0, opcode = nil, rsv1 = false, carry = "",
    pings = {}, inbox = {}, receiving = false, deadline = false, rdl = false, boundary = false, receiver_waiting = false, pump = false,
    closed_p = tide.promise(), close_code = nil, close_reason = nil,
    agreed = agreed, stream_closed = false,
    read_exactly = stream.read_exactly, read = stream.read, write = stream.write,  -- looked up once
    buf = "", pos = 1,
  }, conn_mt)
  if agreed then
    local z = o.compression or {}
    c.deflater = tide.zlib.deflate{ window_bits = agreed.deflate_bits, level = z.level,
      mem_level = z.mem_level }
    c.inflater = tide.zlib.inflate{ window_bits = agreed.inflate_bits }
  end
  if o.ping_interval then c.keepalive = spawn(keepalive, c) end
  return c
end
M.new = new

--------------------------------------------------------------------------
-- Server.

-- The subprotocol to answer: the first of the server's list the client
-- offers (or what a function picks).
local function pick_protocol(offered, protocols)
  if type(protocols) == "function" then return protocols(offered) end
  if not protocols then return nil end
  for _, mine in ipairs(protocols) do
    for _, theirs in ipairs(offered) do
      if mine == theirs then return mine end
    end
  end
  return nil
end

--- websocket.is_upgrade(req) -> whether a tide.http request asks for a WebSocket.
function M.is_upgrade(req)
  return hs.has_token(req.headers:get_joined("upgrade"), "websocket")
end

--- websocket.accept(req, res [, opts]) -> the connection, or nil and the
-- reason after answering a bad handshake (400, 405 or 426). Call it from
-- an http.serve handler; the handler then owns the connection until it
-- returns (the HTTP server closes the TCP connection then: close the
-- WebSocket first). opts: protocols (the server's subprotocols in order
-- of preference, or a function(offered) returning one or nil), headers
-- (extra response fields, a map), and the connection options.
local ACCEPT_OPTS = { protocols = true, headers = true }
function M.accept(req, res, opts)
  local o = options(opts, ACCEPT_OPTS, 2)
  local status, message, extra = hs.check_request(req)
  if status then
    res.status = status
    if extra then res:set_header(extra[1], extra[2]) end
    res:set_header("Connection", "close")
    res:set_header("Content-Type", "text/plain")
    res:finish(message .. "\n")
    return nil, message
  end
  local h = req.headers
  local fields = {
    { "Upgrade", "websocket" }, { "Connection", "Upgrade" },
    { "Sec-WebSocket-Accept", hs.accept_key(h:get("sec-websocket-key")) },
  }
  local protocol = pick_protocol(hs.list(h, "sec-websocket-protocol"), o.protocols)
  if protocol then fields[#fields + 1] = { "Sec-WebSocket-Protocol", protocol } end
  local ext, agreed = nil, nil
  if o.compression then
    local offers = h:get_all("sec-websocket-extensions")
    if #offers > 0 then ext, agreed = hs.negotiate_server(concat(offers, ", "), o.compression) end
  end
  if ext then fields[#fields + 1] = { "Sec-WebSocket-Extensions", ext } end
  for k, v in next, o.headers or {} do fields[#fields + 1] = { k, v } end
  local stream = req:upgrade(fields)
  local c = new(stream, o, false, agreed)
  c.protocol, c.extensions = protocol, ext
  return c
end

--- websocket.serve(opts, handler) -> an http server that accepts
-- WebSockets on `opts.path` (any path when nil) and runs handler(conn, req)
-- for each; other requests get 426 (or 404 off the path). The connection
-- is closed (1000) when the handler returns. opts: host, port, path, tls,
-- protocols, and the connection options; handshake_timeout bounds the
-- request head.
local SERVE_OPTS = { host = true, port = true, path = true, tls = true, protocols = true,
  headers = true, backlog = true, log = true }
function M.serve(opts, handler)
  if type(opts) == "number" then opts = { port = opts } end
  local o = options(opts, SERVE_OPTS, 2)
  if type(handler) ~= "function" then error("websocket.serve: handler must be a function", 2) end
  local http = require "tide.http"
  local accept_opts = {}
  for k in next, OPTIONS do accept_opts[k] = o[k] end
  accept_opts.protocols, accept_opts.headers = o.protocols, o.headers
  return http.serve({ host = o.host, port = o.port, tls = o.tls, backlog = o.backlog, log = o.log,
    header_timeout = o.handshake_timeout }, function(req, res)
    if o.path and req.path ~= o.path then
      res.status = 404
      res:set_header("Connection", "close")
      return res:finish("not found\n")
    end
    local c = M.accept(req, res, accept_opts)
    if not c then return end
    local ok, err = pcall(handler, c, req)
    if c.state ~= "closed" then pcall(await, c:close(ok and 1000 or 1011)) end
    if not ok then error(err, 0) end
  end)
end

--------------------------------------------------------------------------
-- Client.

local CONNECT_OPTS = { protocols = true, headers = true, timeout = true, tls = true }

local function connect_task(url, o)
  local scheme, rest = url:match("^([wW][sS][sS]?)://(.*)$")
  if not scheme then error(tide_error("EINVAL", "not a ws:// or wss:// URL: " .. url), 0) end
  local http_url = (lower(scheme) == "wss" and "https://" or "http://") .. rest
  local key = hs.new_key()
  local hdrs = {
    { "Upgrade", "websocket" }, { "Connection", "Upgrade" },
    { "Sec-WebSocket-Key", key }, { "Sec-WebSocket-Version", "13" },
  }
  if o.protocols then hdrs[#hdrs + 1] = { "Sec-WebSocket-Protocol", concat(o.protocols, ", ") } end
  if o.compression then hdrs[#hdrs + 1] = { "Sec-WebSocket-Extensions", hs.offer_client(o.compression) } end
  if o.headers then
    if o.headers[1] then
      for _, f in ipairs(o.headers) do hdrs[#hdrs + 1] = f end
    else
      for k, v in next, o.headers do hdrs[#hdrs + 1] = { k, v } end
    end
  end
  local http = require "tide.http"
  local t = o.timeout or o.handshake_timeout
  local res = http.request{ url = http_url, headers = hdrs, tls = o.tls, redirects = 0,
    connect_timeout = t, timeout = t }:await()
  local function refuse(msg)
    if res.stream then res.stream:close(0) end
    error(tide_error("EPROTO", "WebSocket handshake failed: " .. msg, { status = res.status }), 0)
  end
  if res.status ~= 101 then refuse("the server answered " .. res.status) end
  local h = res.headers
  if not hs.has_token(h:get_joined("upgrade"), "websocket") then refuse("no Upgrade: websocket") end
  if not hs.has_token(h:get_joined("connection"), "upgrade") then refuse("no Connection: Upgrade") end
  if h:get("sec-websocket-accept") ~= hs.accept_key(key) then refuse("wrong Sec-WebSocket-Accept") end
  local protocol = h:get("sec-websocket-protocol")
  if protocol then
    local offered = false
    for _, p in ipairs(o.protocols or {}) do if p == protocol then offered = true end end
    if not offered then refuse("the server chose a subprotocol that was not offered: " .. protocol) end
  end
  local ext = h:get_all("sec-websocket-extensions")
  local agreed
  if #ext > 0 then
    local err
    agreed, err = hs.accept_client(concat(ext, ", "), o.compression)
    if not agreed then refuse(err) end
  end
  local c = new(res.stream, o, true, agreed)
  c.protocol, c.extensions = protocol, ext[1]
  return c
end

--- websocket.connect(url [, opts]) -> promise of a connection. `url` is
-- ws://host[:port]/path or wss://... opts: protocols (a list offered),
-- headers (extra request fields), timeout (connect and handshake, default
-- handshake_timeout), tls (tide.tls options for wss), and the connection
-- options. A refused handshake rejects with EPROTO (err.status holds the
-- HTTP status).
function M.connect(url, opts)
  if type(url) ~= "string" then error("websocket.connect: url must be a string", 2) end
  local o = options(opts, CONNECT_OPTS, 2)
  local t = o.timeout or o.handshake_timeout
  return timeout(spawn(connect_task, url, o), t + 1)
end

M.Conn = Conn
M.methods = Conn
M.mt = conn_mt
return M
