-- Fuzz script for TLS records through tide.tls (see lua_target.c): the
-- input is what the peer of a TLS stream sends, from the first byte of
-- the handshake on. The first byte of the input picks how:
--   bit 0      the side fuzzed: server (the input is a client's flight:
--              ClientHello and what follows) or client (the input is a
--              server's answer to the ClientHello, which it cannot have
--              seen: ServerHello, certificates and so on)
--   bit 1      client: at most TLS 1.2 (the server's certificate then
--              travels in clear and gets verified), else 1.2 or 1.3
--   bit 2      the peer's end is left open after the bytes (the handshake
--              then waits until its timeout), else shut down
--   bits 3-5   the size of the pieces the bytes arrive in: 16 << (n - 1)
--              bytes (16 to 1024), or (0) all at once
-- Each input runs in its own tide.run on the virtual clock: tls.wrap over
-- one end of a tide.memory pair, the other end writing the rest of the
-- input. The certificate is spec/fuzz/tls/cert.pem (self-signed for
-- localhost, valid 2000-2100; its key beside it), which the client trusts.
--
-- The contract (docs/tls.md): the handshake fails with an ETLS error
-- object (OpenSSL's reason), or ETIMEDOUT when the bytes stop before it is
-- done, and closes the stream it was given. Anything else raised, a
-- handshake that ends otherwise, a rejection left unhandled, a process
-- crash or hang is a finding. A handshake cannot succeed from bytes that
-- did not see the other side's random and key share, but if one did, the
-- stream would be read to its end (reads may fail with ETLS).
local tide = require "tide"
local memory = require "tide.memory"
local tls = require "tide.tls"

local byte, sub = string.byte, string.sub

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/fuzz"
local CERT, KEY = here .. "/tls/cert.pem", here .. "/tls/key.pem"

-- Seconds of virtual time a handshake gets: bytes that stop short end in
-- ETIMEDOUT after this, at once in real time.
local HANDSHAKE_TIMEOUT = 5

-- Contexts are made once: loading a key and certificates costs more than
-- a handshake.
local server_ctx = tls.context{ cert = CERT, key = KEY }
local client_ctx = tls.context{ ca = CERT }
local client12_ctx = tls.context{ ca = CERT, max_version = "TLSv1.2" }

-- OpenSSL is not instrumented: its reasons tell the fuzzer how far an
-- input got (see lua_target.c).
local feature = rawget(_G, "fuzz_feature") or function() end

-- An error the handshake documents, or raises it on.
local function expected(e)
  if tide.is_error(e, "ETLS") or tide.is_error(e, "ETIMEDOUT") then
    assert(type(e.message) == "string", "error without a message")
    feature(e.message)
    return
  end
  error(e, 0)
end

local function session(mode, input)
  local unhandled = tide.stats().unhandled
  local client = mode & 1 == 1
  local piece = (mode >> 3) & 7
  local _clock <close> = tide.virtual_clock()
  local a, b = memory.pair{ chunk = piece > 0 and 16 << (piece - 1) or false }
  local opts = { handshake_timeout = HANDSHAKE_TIMEOUT }
  if client then
    opts.servername = "localhost"
    opts.context = mode & 2 ~= 0 and client12_ctx or client_ctx
  else
    opts.server, opts.context = true, server_ctx
  end
  local p = tls.wrap(a, opts)
  b:write(input)
  if mode & 4 == 0 then b:shutdown() end
  local ok, s = pcall(tide.await, p)
  if ok then
    -- Not reachable from bytes made blind; read what comes, if it did.
    local done, e = pcall(function() return s:read_all{ max = 1 << 16 }:await() end)
    if not done then expected(e) end
    s:close()
  else
    expected(s)
    assert(a.closed, "a failed handshake left its stream open")  -- docs/tls.md, wrap
  end
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
