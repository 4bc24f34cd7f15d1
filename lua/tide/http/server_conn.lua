-- tide.http.server_conn: the connection loop of the HTTP/1.1 server.
--
-- Owns one connection: read a request head with a bounded read, parse it
-- with tide.http.h1, check it, run the handler with a request
-- (tide.http.server_request) and a response (tide.http.server_response),
-- skip a body the handler left, and go on (keep-alive, pipelining in
-- order) until the client closes, a limit or an error ends it, or the
-- server closes. Bad requests get their 4xx and a lingering close; a
-- failing handler gets a 500. A protocol upgrade (req:upgrade, 101) hands
-- the stream to the handler: the loop stops reading after it and closes
-- the stream when it returns.

local tide = require "tide"
local h1 = require "tide.http.h1"

local find, lower =
  string.find, string.lower
local type, tostring, error, pcall, xpcall, setmetatable =
  type, tostring, error, pcall, xpcall, setmetatable
local mtype = math.type
local traceback = debug.traceback

local is_error, now =
  tide.is_error, tide.now
local await = tide.await
local parse_request_head, parse_query = h1.parse_request_head, h1.parse_query

local common = require "tide.http.server_common"
local has_token, send, report =
  common.has_token, common.send, common.report
local cancelled = tide.is_cancelled
local request = require "tide.http.server_request"
local response = require "tide.http.server_response"
request.Request.upgrade = response.upgrade  -- the hand-over changes the response
local request_mt, response_mt = request.request_mt, response.response_mt
local next_piece, body_time_left = request.next_piece, request.body_time_left
local FRESH, FINISHED = response.FRESH, response.FINISHED
local error_response, reset_response = response.error_response, response.reset_response
local tls  -- tide.tls, loaded by the first HTTPS connection

local M = {}

-- Answers with `status` (when nothing was sent yet) and closes the
-- connection gracefully: the write side is shut down, then the rest of
-- what the client sends is read and dropped for a moment, so that the
-- answer is not lost to a reset.
local LINGER_TIME, LINGER_BYTES = 2, 256 * 1024
local function refuse(c, status, message)
  c.broken = true
  local sock = c.sock
  if not pcall(send, c, error_response(c.o, status, message)) then return end
  local p = sock:shutdown()
  if not pcall(await, p) then return end
  local deadline, got = now() + LINGER_TIME, 0
  while got < LINGER_BYTES do
    local left = deadline - now()
    if left <= 0 then return end
    p = sock:read(left)
    local ok, data = pcall(await, p)
    if not ok or not data then return end
    got = got + #data
  end
end

-- Error codes of a stream that mean the peer went away.
local GONE = { EOF = true, ECONNRESET = true, EPIPE = true, ECONNABORTED = true,
  ENOTCONN = true, ETIMEDOUT = true, ECANCELED = true }

-- Decides what follows a read of a request head that did not give one
-- (`ok`, `v` are what pcall of its await returned). Returns the head when
-- a second read (after the idle time) got it; otherwise nil, and the
-- connection closes: the client closed it or stayed idle (quietly), or
-- the head was refused (answered).
local function head_failed(c, first, ok, v)
  if ok then return nil end  -- the end of the stream between requests
  local sock, o = c.sock, c.o
  local e = v
  if is_error(e, "ETIMEDOUT") then
    if sock.read_buffered == 0 then return nil end  -- idle: close quietly
    if not first and o.header_timeout > o.idle_timeout then
      -- The client started a request while the idle time ran out: give
      -- it the rest of the header time.
      local p = sock:read_until("\r\n\r\n", o.head_rest)
      ok, v = pcall(await, p)
      if ok then return v end
      e = v
    end
    if is_error(e, "ETIMEDOUT") then
      refuse(c, 408, "request head not received in time")
      return nil
    end
  end
  if is_error(e, "ELINETOOLONG") then
    -- No end of the head within the limits: is the request line too long
    -- or the field block too large? The bytes are still buffered.
    local p = sock:read_until("\r\n", o.line_check)
    if pcall(await, p) then
      refuse(c, 431, "request header block too large")
    else
      refuse(c, 414, "request line too long")
    end
    return nil
  end
  if is_error(e, "EOF") then
    -- The client ended its side inside a head.
    refuse(c, 400, "incomplete request head")
    return nil
  end
  if type(e) == "table" and GONE[e.code] then return nil end
  error(e, 0)
end

-- tostring(e), or a description of `e` when its __tostring fails: what a
-- handler raises is logged whatever it is.
local function describe(e)
  local ok, s = pcall(tostring, e)
  if ok and type(s) == "string" then return s end
  return "(a " .. type(e) .. " error value that tostring refuses)"
end

-- What the message handler of the handler's xpcall keeps: the error
-- value itself and, for errors that are not the client's, its traceback.
local function capture(e)
  if type(e) == "table" and (e.status or cancelled(e)) then return { e } end
  return { e, traceback(describe(e), 2) }
end

-- Logs a failed handler with its traceback.
local function log_handler_error(o, req, e, tb)
  report(o, "tide: http handler error: " .. req.method .. " " .. req.target .. ": " ..
    (tb or describe(e)))
end

-- Handles the failure of the handler of the request of `c`: error `e`
-- with traceback `tb` (nil for errors that carry a status). Answers 500,
-- or the error's status, when nothing was sent yet. Returns true when
-- the connection can go on.
local function handler_failed(c, res, e, tb)
  if cancelled(e) then error(e, 0) end
  -- A handler that failed because its connection did: nothing to say.
  if c.dead then return false end
  local st = type(e) == "table" and e.status
  if c.broken and not st and type(e) == "table" and GONE[e.code] then return false end
  if not (mtype(st) == "integer" and st >= 400 and st <= 599) then
    st = nil
    c.srv.errors = c.srv.errors + 1
    log_handler_error(c.o, c.req, e, tb)
  end
  -- Once the head is out the response cannot be mended: close.
  if res._state ~= FRESH then return false end
  if st then
    refuse(c, st, e.message)
    return false
  end
  if c.broken then
    refuse(c, 500)
    return false
  end
  reset_response(res)
  res:error(500)
  return true
end

-- Skips the unread body of the request of `c` so that the next request
-- can be read. Returns whether it could.
local function skip_rest(c)
  while next_piece(c, 65536) do end
end
local function skip_body(c)
  if c.req.body_kind == "length" then
    local left = c.left
    if left > c.o.max_body then return false end
    local ok, t = pcall(body_time_left, c)
    if not ok then return false end
    local p = c.sock:read_exactly(left, t)
    return (pcall(await, p))
  end
  return (pcall(skip_rest, c))
end

-- Handles one connection: requests one after the other until the client
-- closes, a limit or an error ends it, or the server closes.
local function serve_conn(srv, c, handler)
  local o = c.o
  if o.tls_context then  -- HTTPS: a client whose handshake fails is dropped quietly
    tls = tls or require "tide.tls"
    local ok, s = pcall(await, tls.wrap(c.sock, {
      server = true, context = o.tls_context, handshake_timeout = o.header_timeout }))
    if not ok then
      if cancelled(s) then error(s, 0) end
      return
    end
    c.sock, c.write = s, s.write
  end
  local sock = c.sock
  local h1_limits, max_request_line, max_header_size, max_body =
    o.h1_limits, o.max_request_line, o.max_header_size, o.max_body
  local small_head = max_request_line < max_header_size and max_request_line or max_header_size
  local head_first, head_idle = o.head_first, o.head_idle
  local read_until = sock.read_until  -- stream methods are looked up through a C function
  local first, empty = true, 0
  while true do
    -- Between requests a connection is idle: a closing server ends it. A
    -- new one still reads its first request (within header_timeout): its
    -- client connected before the close and gets an answer (with
    -- Connection: close), not a reset.
    c.idle = not first
    if srv.closing and not first then return end
    local p = read_until(sock, "\r\n\r\n", first and head_first or head_idle)
    local ok, head = pcall(await, p)
    if not ok or not head then
      head = head_failed(c, first, ok, head)
      if not head then return end
    end
    if head == "" then
      -- Two empty lines before a request line: ignored, as any number of
      -- them (RFC 9112 section 2.2), up to the size of a head; the
      -- parser skips a last odd one.
      empty = empty + 4
      if empty > max_header_size then return refuse(c, 400, "too many empty lines") end
      goto continue
    end
    empty = 0
    c.idle = false
    first = false
    srv.requests = srv.requests + 1

    -- Parse and check the head into the request object: the constructor
    -- sizes it for the fields it will hold. A malformed head raises EPROTO
    -- out of serve_conn: conn_task answers it (no pcall per request).
    c.parsing = true
    local req = parse_request_head(head, h1_limits, {
      method = false, target = false, path = false, version = false,
      headers = false, body_kind = false, content_length = false, _c = c,
    })
    c.parsing = false
    if #head > small_head then
      local le = find(head, "\r\n", 1, true) or #head + 1
      if le - 1 > max_request_line then
        return refuse(c, 414, "request line too long")
      end
      if #head - le - 1 > max_header_size then
        return refuse(c, 431, "request header block too large")
      end
    end
    local version, kind = req.version, req.body_kind
    local index = req.headers._index
    local q = req.query
    if q then
      local decoded = parse_query(q)
      if not decoded then return refuse(c, 400, "invalid percent-encoding in query") end
      req.raw_query = q
      req.query = decoded
    end
    local close = version == "1.0"
    if index.connection then
      local v = lower(req.headers:get_joined("connection"))
      if close then
        close = not has_token(v, "keep-alive")
      else
        close = has_token(v, "close")
      end
    end
    local continue = false
    if index.expect then
      local v = lower(req.headers:get_joined("expect"))
      if v ~= "100-continue" then return refuse(c, 417, "unsupported expectation") end
      continue = version == "1.1" and kind ~= "none"
    end
    if kind == "none" then
      c.done, c.left = true, 0
    else
      if kind == "length" and req.content_length > max_body then
        return refuse(c, 413, "request body larger than " .. max_body .. " bytes")
      end
      c.done, c.left = false, req.content_length
    end
    c.req, c.close, c.continue, c.started = req, close, continue, false
    c.received, c.deadline, c.chunks = 0, nil, nil
    setmetatable(req, request_mt)

    local res = setmetatable({ status = 200, _state = FRESH, _c = c, n = 0,
      false, false, false }, response_mt)
    c.res = res

    -- Run the handler.
    local failure
    ok, failure = xpcall(handler, capture, req, res)
    if not ok then
      -- capture itself failed (not enough memory): the error is bare
      if type(failure) ~= "table" then failure = { failure } end
      if not handler_failed(c, res, failure[1], failure[2]) then return end
    elseif res._state ~= FINISHED then
      res:finish()
    end
    if c.close or c.broken then return end
    if not c.done and not skip_body(c) then return end
    -- The request is over: its objects go while the connection waits.
    c.req, c.res = false, false
    ::continue::
  end
end

-- The task of one connection: serves it, then closes the stream and
-- forgets the connection.
local function conn_task(srv, sock, handler)
  local c = { sock = sock, srv = srv, o = srv._o, task = tide.current(), write = sock.write,
    idle = true, broken = false, dead = false, req = false, res = false, left = 0,
    received = 0, done = true, close = false, continue = false, deadline = false,
    chunks = false, started = false, parsing = false }
  srv._conns[c] = true
  srv.connections = srv.connections + 1
  local ok, err = pcall(serve_conn, srv, c, handler)
  if not ok and c.parsing and is_error(err, "EPROTO") then
    refuse(c, err.status, err.message)  -- a malformed request head
    ok = true
  end
  c.req = false
  srv._conns[c] = nil
  srv.connections = srv.connections - 1
  -- A cancelled task raises at every await: the close is awaited in a
  -- shield, so that server:close() settles once the socket is closed.
  local p = c.sock:close()
  tide.shield(pcall, await, tide.timeout(p, 15))
  if not ok and not cancelled(err) and not (type(err) == "table" and GONE[err.code]) then
    report(srv._o, "tide: http connection error: " .. tostring(err))
  end
  if srv.closing and srv.connections == 0 and srv._closed then
    srv._closed:resolve()
  end
end

M.conn_task, M.serve_conn, M.report = conn_task, serve_conn, report
return M
