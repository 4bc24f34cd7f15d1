-- spec/http/fakestream.lua — an in-memory pair of connected streams with
-- the methods of tide's streams as docs/io.md describes them (read,
-- read_until, read_exactly, write, shutdown, close, read_buffered), for
-- unit specs of the HTTP server and client without sockets. Bytes written
-- on one end arrive on the other at once; reads wait on a promise;
-- timeouts reject with ETIMEDOUT.
local tide = require "tide"

local Stream = {}
Stream.__index = Stream

-- Tries to satisfy the waiting read of `s` from its buffer.
local function pump(s)
  local w = s.waiting
  if not w then return end
  if w.p:state() ~= "pending" then s.waiting = nil; return end
  local buf = s.buf
  local result, err, done
  if w.kind == "read" then
    if #buf > 0 then
      local n = math.min(#buf, w.max or #buf)
      result, s.buf, done = buf:sub(1, n), buf:sub(n + 1), true
    elseif s.eof then
      done = true
    end
  elseif w.kind == "until" then
    local b, e = buf:find(w.delim, 1, true)
    if b and b - 1 <= w.max then
      result, s.buf, done = buf:sub(1, b - 1), buf:sub(e + 1), true
    elseif #buf >= w.max + #w.delim then
      err, done = tide.error("ELINETOOLONG", "data before the delimiter too long"), true
    elseif s.eof then
      if #buf == 0 then
        done = true
      else
        err, done, s.buf = tide.error("EOF", "stream ended before the delimiter"), true, ""
      end
    end
  elseif w.kind == "exactly" then
    if #buf >= w.n then
      result, s.buf, done = buf:sub(1, w.n), buf:sub(w.n + 1), true
    elseif s.eof then
      if #buf == 0 then
        done = true
      else
        err, done, s.buf = tide.error("EOF", "stream ended inside the bytes"), true, ""
      end
    end
  end
  s.read_buffered = #s.buf
  if done then
    s.waiting = nil
    if err then w.p:reject(err) else w.p:resolve(result) end
  end
end

local function wait(s, w, timeout)
  assert(not s.waiting, "fakestream: two reads at once")
  if s.closed then return tide.rejected(tide.error("EBADF", "closed")) end
  w.p = tide.promise()
  s.waiting = w
  pump(s)
  if w.p:state() ~= "pending" or not timeout then return w.p end
  local p = w.p
  tide.sleep(timeout):next(function()
    if p:state() == "pending" then
      s.waiting = nil
      p:reject(tide.error("ETIMEDOUT", "timed out"))
    end
  end)
  return p
end

function Stream:read(opts)
  if type(opts) == "table" then
    return wait(self, { kind = "read", max = opts.max }, opts.timeout)
  end
  return wait(self, { kind = "read" }, opts)
end

function Stream:read_until(delim, opts)
  local max, timeout = 65536, nil
  if type(opts) == "table" then
    max, timeout = opts.max or max, opts.timeout
  elseif opts then
    max = opts
  end
  return wait(self, { kind = "until", delim = delim, max = max }, timeout)
end

function Stream:read_exactly(n, timeout)
  return wait(self, { kind = "exactly", n = n }, timeout)
end

function Stream:write(data)
  if self.closed or self.wshut then return tide.rejected(tide.error("EPIPE", "broken pipe")) end
  local peer = self.peer
  if type(data) == "table" then data = table.concat(data) end
  peer.buf = peer.buf .. data
  peer.read_buffered = #peer.buf
  self.written[#self.written + 1] = data
  pump(peer)
  return tide.resolved()
end

function Stream:shutdown()
  self.wshut = true
  self.peer.eof = true
  pump(self.peer)
  return tide.resolved()
end

function Stream:close()
  if not self.closed then
    self.closed = true
    self.peer.eof = true
    pump(self.peer)
    local w = self.waiting
    if w and w.p:state() == "pending" then w.p:reject(tide.error("ECANCELED", "closed")) end
  end
  return tide.resolved()
end


-- Everything written on this end so far, as one string.
function Stream:output() return table.concat(self.written) end

local function new()
  return setmetatable({ buf = "", read_buffered = 0, eof = false, closed = false, written = {} },
    Stream)
end

return {
  -- Returns two connected ends.
  pair = function()
    local a, b = new(), new()
    a.peer, b.peer = b, a
    return a, b
  end,
}
