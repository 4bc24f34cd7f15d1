-- Fuzz script for tide.websocket's frame reader (see lua_target.c): the
-- input is what the peer sends on a connection whose handshake is done,
-- read by receive() until the connection ends. The first byte picks how:
--   bit 0      the side reading: server (the peer's frames must be masked)
--              or client (they must not be)
--   bit 1      permessage-deflate agreed (RSV1 frames are inflated)
--   bit 2      with deflate: the peer's context is reset after each
--              message (no_context_takeover), else kept
--   bits 3-5   the size of the pieces the bytes arrive in: 1 to 7 bytes
--              (the first 48 pieces; the rest comes at once), or (0) all
--              at once
--   bit 6      the input starts with a Sec-WebSocket-Extensions value, up
--              to the first "\n": a client's offer, which the server
--              negotiates (handshake.negotiate_server), or a server's
--              answer, which the client checks (handshake.accept_client);
--              what they agree on (window bits, context takeover) replaces
--              bits 1 and 2
-- Each input runs in its own tide.run on the virtual clock, over a
-- tide.memory pair: the connection is tide.websocket.new on one end, the
-- other end writes the rest of the input and shuts down. Small limits
-- (max_frame, max_message), so that they are hit.
--
-- Each piece costs a turn of the loop, which under the sanitizers costs
-- more than parsing it: bytes fed one at a time throughout made the
-- inputs the fuzzer keeps (more pieces, more hits of the same lines: new
-- features) ten times slower than the others. 48 pieces reach every place
-- a frame's header can be cut at, in the first frames.
--
-- The contract (docs/websocket.md): the negotiation gives an answer and
-- the agreed parameters or nil (server), the agreed parameters or nil and
-- a reason (client). receive() gives data and "text" or
-- "binary" (text valid UTF-8, at most max_message bytes), and then nil
-- once the connection ended, with close_code saying why: the peer's code
-- (a valid one, 1005 when its close frame had none), 1006 when the bytes
-- ended without a close frame, or 1002, 1007, 1009 for what the reader
-- refused. 1011 (the reader failed on an error of its own), any error
-- raised by receive, a connection still open once every byte is read and
-- a rejection left unhandled (a write of the connection, say) are
-- findings.
local tide = require "tide"
local memory = require "tide.memory"
local ws = require "tide.websocket"
local hs = require "tide.websocket.handshake"

local byte, sub = string.byte, string.sub
local utf8len = utf8.len
local fuzz_feature = rawget(_G, "fuzz_feature")

local MAX_FRAME, MAX_MESSAGE = 600, 512
local MAX_PIECES = 48

-- Receives must end well within this much virtual time: the reader waits
-- on nothing but the bytes, which are all there.
local RECEIVE_TIMEOUT = 60

-- Close codes a peer may send (section 7.4.1), and those the reader gives
-- of its own: 1005 (no code in the close frame), 1006 (no close frame).
local function peer_code(code)
  return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
    or (code >= 3000 and code <= 4999)
end
local OWN = { [1002] = true, [1005] = true, [1006] = true, [1007] = true, [1009] = true }

local function options()
  local o = {}
  for k, v in pairs(ws.DEFAULTS) do o[k] = v end
  o.max_frame, o.max_message, o.close_timeout = MAX_FRAME, MAX_MESSAGE, 1
  return o
end

-- Writes `input` to `b` in pieces of `size` bytes (0: at once), each
-- delivered alone: the reader takes it before the next is written (a
-- write of a memory pair goes straight to the peer's buffer; a turn of
-- the callback queue, as tide.memory's own pieces, lets the woken reader
-- run). Then shuts `b` down.
local function ignore() end

local function feed(b, input, size)
  local i, n, len = 1, 0, #input
  while i <= len do
    n = n + 1
    local last = size == 0 or n >= MAX_PIECES
    local j = last and len or i + size - 1
    b:write(sub(input, i, j))
    i = j + 1
    if not last then
      tide.resolved():next(ignore):await()
      -- The session may have ended meanwhile (the connection failed).
      if b.closed then return end
    end
  end
  b:shutdown()
end

-- What the opening handshake agreed on, from the extension header `value`
-- (see bit 6); nil: no compression.
local function negotiate(client, value)
  if client then
    local want = { client_max_window_bits = true }
    local a, why = hs.accept_client(value, want)
    if not a then
      assert(type(why) == "string", "refused without a reason")
      return nil
    end
    return a
  end
  local answer, a = hs.negotiate_server(value, {})
  if answer == nil then
    assert(a == nil, "parameters agreed without an answer")
    return nil
  end
  assert(type(answer) == "string" and type(a) == "table", "answer without parameters")
  -- The client must accept the answer the server gives.
  local back = hs.accept_client(answer, { client_max_window_bits = true })
  assert(back, "the client refuses the server's answer " .. answer)
  assert(back.inflate_bits == a.deflate_bits, "the answer says other window bits")
  return a
end

local function session(mode, input)
  local unhandled = tide.stats().unhandled
  local client = mode & 1 == 1
  local agreed
  if mode & 64 ~= 0 then
    local e = input:find("\n", 1, true) or #input + 1
    agreed = negotiate(client, sub(input, 1, e - 1))
    input = sub(input, e + 1)
  elseif mode & 2 ~= 0 then
    local reset = mode & 4 ~= 0
    agreed = { deflate_bits = 15, inflate_bits = 15, deflate_reset = reset, inflate_reset = reset }
  end
  local piece = (mode >> 3) & 7
  local _clock <close> = tide.virtual_clock()
  local a, b = memory.pair()
  local c = ws.new(a, options(), client, agreed)
  local feeder = tide.spawn(feed, b, input, piece)
  local n = 0
  while true do
    local ok, data, kind = pcall(tide.await, c:receive(RECEIVE_TIMEOUT))
    if not ok then error(data, 0) end  -- no error is documented here
    if data == nil then break end
    n = n + 1
    assert(kind == "text" or kind == "binary", "message of kind " .. tostring(kind))
    assert(type(data) == "string" and #data <= MAX_MESSAGE, "message past max_message")
    assert(kind ~= "text" or utf8len(data), "text message that is not UTF-8")
    assert(n <= #input, "more messages than bytes")
  end
  local code = c.close_code
  assert(math.type(code) == "integer", "closed without a close code")
  assert(OWN[code] or peer_code(code), "close code " .. code)
  assert(not (c.failed and code == 1011), "the reader failed: " .. tostring(c.close_reason))
  assert(type(c.close_reason) == "string", "closed without a reason")
  -- zlib is not instrumented: the reason tells the fuzzer how an input
  -- ended (see lua_target.c), when it is the reader's (a peer's close
  -- frame says what the input says), without its numbers (an opcode, a
  -- close code from the input): each would count as new.
  if fuzz_feature and (c.failed or code == 1005 or code == 1006) then
    fuzz_feature(code .. c.close_reason:gsub("%d+", "#"))
  end
  assert(c.state == "closed", "receive gave nil on a connection " .. tostring(c.state))
  feeder:cancel()  -- the connection may end before every byte went in
  a:close()
  b:close()
  -- A run that never waited on the loop returns with the handles it
  -- closed (the streams' timers) still closing: they finish in the next
  -- turn of the loop, and each run would leave its own (2.7 KB a run).
  tide.sleep(0):await()
  assert(tide.stats().unhandled == unhandled, "a rejection went unhandled (printed above)")
end

return function(data)
  local mode = byte(data, 1) or 0
  tide.run(session, mode, sub(data, 2))
end
