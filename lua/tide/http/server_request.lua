-- tide.http.server_request: the request object of the HTTP/1.1 server.
--
-- Owns what a handler reads of a request: the fields the parser filled
-- (method, target, path, query, headers, ...) and the body, read with its
-- limits and time limits, 100-continue sent first when the client waits
-- for it. The connection (tide.http.server_conn) makes one per request
-- and keeps the state of the body in its connection table (below).

local tide = require "tide"
local h1 = require "tide.http.h1"
local headers = require "tide.http.headers"
local hio = require "tide.http.io"

local concat = table.concat
local type, error, pcall, rawset =
  type, error, pcall, rawset
local mtype = math.type

local spawn, resolved, is_error, now, tide_error, timeout =
  tide.spawn, tide.resolved, tide.is_error, tide.now, tide.error, tide.timeout
local await, pstate = tide.await, tide.resolved().state

local json = require "tide.http.json"

local common = require "tide.http.server_common"
local request_error =
  common.request_error

local M = {}

--------------------------------------------------------------------------
-- Connections hold the state of the request in progress.
--
-- A connection `c` is one table per connection (private):
--   sock, srv, o (the options), task, write (sock.write, looked up once)
--   idle      waiting for the head of a request (server:close may end it)
--   broken    the stream is out of step (a body half read): close after
--             this request
--   dead      a write failed: nothing more can be sent
--   req, res  the request in progress and its response
--   left      body bytes not read yet ("length" bodies)
--   received  body bytes read so far
--   done      the body was read to its end (true for no body)
--   close     the connection closes after this response
--   continue  the client waits for "100 Continue" before its body
--   deadline  when the body must have arrived (set by the first read)
--   chunks    the chunked-body iterator, once reading started
--   started   the response head was sent
-- Requests of one connection are handled one after the other, so this
-- state lives in the connection rather than in each request object.

--------------------------------------------------------------------------
-- Request.

local Request = {}
local request_mt = {
  __name = "tide.http.request",
  __index = function(req, k)
    if k == "query" then
      -- No query string: an empty table, made on first use.
      local q = {}
      rawset(req, "query", q)
      return q
    end
    return Request[k]
  end,
  __tostring = function(req)
    return "tide.http.request: " .. req.method .. " " .. req.target
  end,
}

-- The connection of `req`, which must be the request in progress.
local function current(req, what)
  local c = req._c
  if c.req ~= req then error(what .. ": the request is over", 3) end
  return c
end

-- Sends "100 Continue" if the client waits for it before its body.
local function send_continue(c)
  c.continue = false
  if c.started then return end
  local p = c.write(c.sock, "HTTP/1.1 100 Continue\r\n\r\n")
  if pstate(p) == "pending" then p = timeout(p, c.o.send_timeout) end
  local ok, err = pcall(await, p)
  if not ok then
    c.broken, c.dead = true, true
    error(err, 0)
  end
end

-- Seconds left for the body of the request of `c`, starting the clock on
-- first use.
local function body_time_left(c)
  local d = c.deadline
  if not d then
    d = now() + c.o.body_timeout
    c.deadline = d
  end
  local left = d - now()
  if left <= 0 then
    c.broken = true
    error(request_error(408, "ETIMEDOUT", "request body not received in time"), 0)
  end
  return left
end

-- Raises the failure `e` of a body read as the error the handler sees,
-- and marks the connection broken: a body half read leaves the stream out
-- of step.
local function body_failed(c, e)
  c.broken = true
  if is_error(e, "ETIMEDOUT") then
    e = request_error(408, "ETIMEDOUT", "request body not received in time")
  elseif is_error(e, "EOF") then
    e = request_error(400, "EOF", "connection closed inside the request body")
  elseif type(e) == "table" and e.status == 413 then
    e = request_error(413, "EMSGSIZE", e.message)
  end
  error(e, 0)
end

-- Reads the next piece of the body of the request of `c` (at most `max`
-- bytes), or nil at its end. Runs in a task (the caller's, or one
-- spawned by req:read).
local function next_piece(c, max)
  if c.done then return nil end
  if c.broken then error(tide_error("EPIPE", "the connection of this request failed"), 0) end
  if c.continue then send_continue(c) end
  local data, ok
  if c.req.body_kind == "chunked" then
    local chunks = c.chunks
    if not chunks then
      local req = c.req
      req.trailers = headers.new()
      chunks = h1.chunks(hio.chunk_reader(c.sock, body_time_left, c), c.o.chunk_limits,
        req.trailers)
      c.chunks = chunks
    end
    ok, data = pcall(chunks)
    if not ok then body_failed(c, data) end
    if not data then
      c.done = true
      return nil
    end
  else
    local left = c.left
    ok, data = pcall(hio.read_some, c.sock, left < max and left or max, body_time_left(c))
    if not ok then body_failed(c, data) end
    if data == nil then
      body_failed(c, tide_error("EOF", "connection closed inside the request body"))
    end
    left = left - #data
    c.left = left
    if left == 0 then c.done = true end
  end
  c.received = c.received + #data
  return data
end

-- Reads the whole body of the request of `c` into one string, refusing
-- more than `max` bytes (task body).
local function read_body(c, max)
  local limit = c.o.max_body
  if max and max < limit then limit = max end
  if c.req.body_kind == "length" then
    local left = c.left
    if c.received + left > limit then
      c.broken = true
      error(request_error(413, "EMSGSIZE", "request body larger than " .. limit .. " bytes"), 0)
    end
    if c.received == 0 then
      -- The common case: one exact read.
      if c.continue then send_continue(c) end
      local p = c.sock:read_exactly(left, body_time_left(c))
      local ok, data = pcall(await, p)
      if not ok then body_failed(c, data) end
      if data == nil then
        body_failed(c, tide_error("EOF", "connection closed inside the request body"))
      end
      c.left, c.done, c.received = 0, true, left
      return data
    end
  end
  local parts, n, size = {}, 0, 0
  while true do
    local data = next_piece(c, 65536)
    if not data then break end
    size = size + #data
    if size > limit then
      c.broken = true
      error(request_error(413, "EMSGSIZE", "request body larger than " .. limit .. " bytes"), 0)
    end
    n = n + 1
    parts[n] = data
  end
  return concat(parts)
end

--- req:body([max]) -> promise of the whole body as a string ("" when the
-- request has none). `max` lowers the server's max_body for this call; a
-- larger body rejects with an error whose status is 413. The body deadline
-- (body_timeout) gives 408. After req:read() it returns what is left.
function Request:body(max)
  if max ~= nil and (type(max) ~= "number" or max < 0) then
    error("req:body: max must be a non-negative number", 2)
  end
  local c = current(self, "req:body")
  if c.done then return resolved("") end
  return spawn(read_body, c, max)
end

--- req:json([max]) -> promise of the body decoded as JSON (lua-cjson; JSON
-- null is http.null). Malformed JSON rejects with an EPROTO error with
-- status 400: left unhandled in the handler, it is answered with a 400.
-- Errors of the body as for req:body().
function Request:json(max)
  return self:body(max):next(function(body)
    return json.decode(body, "the request body")
  end)
end

--- req:read([max]) -> promise of the next piece of the body (a string of at
-- most `max` bytes, 64 KiB by default), or nil at its end. Errors as for
-- req:body().
function Request:read(max)
  if max == nil then
    max = 65536
  elseif mtype(max) ~= "integer" or max < 1 then
    error("req:read: max must be a positive integer", 2)
  end
  local c = current(self, "req:read")
  if c.done then return resolved(nil) end
  return spawn(next_piece, c, max)
end

--- req:chunks([max]) -> iterator over the pieces of the body, for a
-- generic for inside a task: `for data in req:chunks() do ... end`.
function Request:chunks(max)
  if max ~= nil and (mtype(max) ~= "integer" or max < 1) then
    error("req:chunks: max must be a positive integer", 2)
  end
  max = max or 65536
  local c = current(self, "req:chunks")
  return function()
    if c.req ~= self or c.done then return nil end
    return next_piece(c, max)
  end
end

M.Request, M.request_mt, M.next_piece = Request, request_mt, next_piece
M.body_time_left = body_time_left
return M
