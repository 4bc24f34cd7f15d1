-- tide.http.server: the HTTP/1.1 server.
--
-- Owns the server side of HTTP/1.1 over tide streams: the accept loop, one
-- task per connection that reads request heads with a bounded read, parses
-- them with tide.http.h1, calls the handler and writes the response; the
-- request object (body reading with limits and time limits, 100-continue)
-- and the response object (headers, Content-Length or chunked framing,
-- HEAD); keep-alive, pipelining (requests of one connection are handled in
-- order), the rejection of bad requests with the right 4xx and a lingering
-- close, the 500 answer to a failing handler, and the graceful close.
--
-- The hot path (one keep-alive request) is: one read_until of the head, one
-- parse, the handler, one write of head and body together. Nothing in it
-- creates closures, and no tables but the request (with its headers) and
-- the response.

local tide = require "tide"
local h1 = require "tide.http.h1"
local headers = require "tide.http.headers"
local hio = require "tide.http.io"

local find, byte, lower, format =
  string.find, string.byte, string.lower, string.format
local concat = table.concat
local type, tostring, tonumber, error, pcall, xpcall, setmetatable, rawset, next =
  type, tostring, tonumber, error, pcall, xpcall, setmetatable, rawset, next
local mtype, huge = math.type, math.huge
local ostime, osdate = os.time, os.date
local traceback = debug.traceback

local spawn, resolved, is_error, now, tide_error, timeout =
  tide.spawn, tide.resolved, tide.is_error, tide.now, tide.error, tide.timeout
local await, pstate = tide.await, tide.resolved().state
local parse_request_head, parse_query = h1.parse_request_head, h1.parse_query
local reasons = h1.reasons

local json = require "tide.http.json"

-- Whether `f` can be called: a function or a table with __call.
local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local M = {}

--------------------------------------------------------------------------
-- Options.

--[[ Options of http.serve (every limit has a default):
  host              address to bind ("127.0.0.1")
  port              port to bind (0: any free port; read server.port)
  backlog           listen backlog (1024)
  max_request_line  longest request line in bytes (8 KiB); longer -> 414
  max_header_size   largest header block (field lines) in bytes (16 KiB);
                    larger -> 431
  max_headers       most header fields (100); more -> 431
  max_body          largest request body in bytes (1 MiB); larger -> 413.
                    Checked against Content-Length before the handler runs
                    and while a chunked body is read. math.huge lifts it.
  header_timeout    seconds to receive a whole request head, from the
                    connection's start or the previous response (10);
                    expiry -> 408 (a connection that sent nothing of it is
                    closed quietly)
  idle_timeout      seconds a keep-alive connection may wait for the next
                    request (5); expiry closes it quietly
  body_timeout      seconds to receive a whole request body (30), counted
                    from the first read; expiry -> 408
  send_timeout      seconds a write may wait for the peer to read (30);
                    expiry closes the connection
  log               function(message) that receives the report of a failed
                    handler (message and traceback); default: stderr
  error_body        function(status, message) -> body [, content_type]: the
                    body of the server's own error answers (400, 404 from
                    res:error, 408, 413, 431, 500, ...), so that an API
                    answers in one format; content_type defaults to
                    "application/json" when the body starts with "{" or
                    "[", else "text/plain; charset=utf-8". Default: the
                    reason phrase and the message as plain text.
  tls               serve HTTPS: the options of a tide.tls context (cert,
                    key, ...; alpn defaults to {"http/1.1"}) or {context =
                    ctx}; the handshake must end within header_timeout
]]
local DEFAULTS = {
  host = "127.0.0.1",
  port = 0,
  backlog = 1024,
  max_request_line = 8 * 1024,
  max_header_size = 16 * 1024,
  max_headers = 100,
  max_body = 1024 * 1024,
  header_timeout = 10,
  idle_timeout = 5,
  body_timeout = 30,
  send_timeout = 30,
  log = false,
  error_body = false,
  tls = false,
}
local LIMITS = { "max_request_line", "max_header_size", "max_headers", "max_body" }
local TIMES = { "header_timeout", "idle_timeout", "body_timeout", "send_timeout" }

-- Returns the options of a server: `opts` checked and completed with the
-- defaults. Raises on a bad option (misuse is an error at once).
local tls  -- tide.tls, loaded by the first server with the tls option

local function check_options(opts)
  if mtype(opts) == "integer" then opts = { port = opts } end
  if type(opts) ~= "table" then
    error("http.serve: options must be a table or a port number", 3)
  end
  local o = {}
  for k, v in next, DEFAULTS do
    if opts[k] == nil then o[k] = v else o[k] = opts[k] end
  end
  for k in next, opts do
    if DEFAULTS[k] == nil then error("http.serve: unknown option '" .. tostring(k) .. "'", 3) end
  end
  if type(o.host) ~= "string" then error("http.serve: host must be a string", 3) end
  if o.error_body ~= false and type(o.error_body) ~= "function" then
    error("http.serve: error_body must be a function", 3)
  end
  if o.log ~= false and type(o.log) ~= "function" then
    error("http.serve: log must be a function", 3)
  end
  if mtype(o.port) ~= "integer" or o.port < 0 or o.port > 65535 then
    error("http.serve: port must be an integer in 0..65535", 3)
  end
  if o.tls then
    if type(o.tls) ~= "table" then error("http.serve: tls must be a table of TLS options", 3) end
    tls = tls or require "tide.tls"
    local t = { alpn = { "http/1.1" } }
    for k, v in next, o.tls do t[k] = v end
    if t.context == nil and (t.cert == nil or t.key == nil) then
      error("http.serve: tls needs cert and key (or context)", 3)
    end
    o.tls_context = t.context or tls.context(t)
  end
  for _, k in next, LIMITS do
    local v = o[k]
    if type(v) ~= "number" or v ~= v or v < 1 then
      error("http.serve: " .. k .. " must be a positive number", 3)
    end
  end
  for _, k in next, TIMES do
    local v = o[k]
    if type(v) ~= "number" or v ~= v or v <= 0 or v == huge then
      error("http.serve: " .. k .. " must be a positive number of seconds", 3)
    end
  end
  -- What the wire layer takes: the request-target bound and the longest
  -- field line (any line longer than the whole block is already refused).
  o.h1_limits = {
    max_target = o.max_request_line,
    max_headers = o.max_headers,
    max_line = o.max_header_size,
  }
  o.chunk_limits = {
    max_body = o.max_body,
    max_headers = o.max_headers,
    max_line = o.max_header_size,
  }
  -- The bounded reads of a head (request line and field lines): the first
  -- of a connection, the next ones (idle time first), and the rest of a
  -- head that started while the idle time ran out.
  local max_head = o.max_request_line + o.max_header_size
  o.head_first = { max = max_head, timeout = o.header_timeout }
  o.head_idle = { max = max_head, timeout = o.idle_timeout }
  o.head_rest = { max = max_head, timeout = o.header_timeout > o.idle_timeout
    and o.header_timeout - o.idle_timeout or 0 }
  o.line_check = { max = o.max_request_line }
  return o
end

--------------------------------------------------------------------------
-- Small helpers.

-- The Date header line, recomputed once per second. Built by hand so that
-- it never depends on the C locale.
local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local date_time, date_line = -1, ""
local function current_date_line()
  local t = ostime()
  if t ~= date_time then
    local d = osdate("!*t", t)
    date_time = t
    date_line = format("Date: %s, %02d %s %d %02d:%02d:%02d GMT\r\n",
      DAYS[d.wday], d.day, MONTHS[d.month], d.year, d.hour, d.min, d.sec)
  end
  return date_line
end

-- "HTTP/1.1 200 OK\r\n" for every status a response may have (nil for
-- anything else).
local status_lines = {}
for status = 200, 599 do
  status_lines[status] = "HTTP/1.1 " .. status .. " " .. (reasons[status] or "") .. "\r\n"
end

-- Lowercased names of response header names already checked as tokens.
local TOKEN = "^[!#$%%&'*+%-.^_`|~0-9A-Za-z]+$"
local checked_names, checked_n = {}, 0
local function check_header_name(name, level)
  local lname = checked_names[name]
  if lname then return lname end
  if type(name) ~= "string" then
    error("header name must be a string, got " .. type(name), level + 1)
  end
  if not find(name, TOKEN) then
    error(format("invalid header name %q (must be an RFC 9110 token)", name), level + 1)
  end
  lname = lower(name)
  if checked_n >= 512 then checked_names, checked_n = {}, 0 end
  checked_names[name], checked_n = lname, checked_n + 1
  return lname
end

local function check_header_value(name, value, level)
  local t = type(value)
  if t == "number" then
    value = tostring(value)
  elseif t ~= "string" then
    error(format("value of header %q must be a string, got %s", name, t), level + 1)
  end
  if find(value, "[%z\r\n]") then
    error(format("invalid value for header %q (CR, LF or NUL)", name), level + 1)
  end
  return value
end

-- Whether the comma-separated list `v` (lowercase) holds the token `tok`.
local function has_token(v, tok)
  local i = 1
  while true do
    local s, e = find(v, tok, i, true)
    if not s then return false end
    local before, after = byte(v, s - 1), byte(v, e + 1)
    if (not before or before == 44 or before == 32 or before == 9)
      and (not after or after == 44 or after == 32 or after == 9) then
      return true
    end
    i = e + 1
  end
end

-- An error of the request (the client's fault): answered with `status`,
-- never logged as a server error.
local function request_error(status, code, message)
  return tide_error(code, message, { status = status })
end

-- Whether an error is tide.Cancelled.
local cancelled = tide.is_cancelled

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

--------------------------------------------------------------------------
-- Response.

local Response = {}
local response_mt = {
  __name = "tide.http.response",
  __index = Response,
  __tostring = function(res)
    return "tide.http.response: " .. tostring(res.status)
  end,
}

-- Response states.
local FRESH, STREAMING, FINISHED = 0, 1, 2

-- Layout (private): the fields the handler set live in the response's own
-- array part, three slots each as in tide.http.headers ([3i-2] name,
-- [3i-1] lowercased name, [3i] value), `_n` of them. Fields the server
-- owns are noted when set: `_length` (Content-Length), `_date` (Date),
-- `_conn_close` (Connection holding "close"), `_te` (Transfer-Encoding).
-- Streaming: `_chunked` (chunked coding), `_sent` (body bytes sent).

-- Values of response fields already checked (no CR, LF or NUL).
local checked_values, checked_values_n = {}, 0

-- Checks a field for a response; returns the lowercased name and the
-- value as a string.
local function check_field(name, value, level)
  local lname = checked_names[name] or check_header_name(name, level + 1)
  if checked_values[value] then return lname, value end
  value = check_header_value(name, value, level + 1)
  if #value <= 64 then
    if checked_values_n >= 512 then checked_values, checked_values_n = {}, 0 end
    checked_values[value], checked_values_n = true, checked_values_n + 1
  end
  return lname, value
end

-- Notes a field the server owns.
local OWNED = { ["content-length"] = true, ["transfer-encoding"] = true,
  ["connection"] = true, ["date"] = true }
local function note_owned(res, lname, value)
  if lname == "content-length" then
    if not find(value, "^%d+$") or #value > 15 then
      error("invalid Content-Length " .. format("%q", value), 4)
    end
    res._length = tonumber(value)
  elseif lname == "date" then
    res._date = true
  elseif lname == "connection" then
    res._conn_close = has_token(lower(value), "close")
  else
    res._te = true
  end
end

-- Removes the fields named `lname` from position `from` on.
local function remove_fields(res, lname, from)
  local n, j = res._n, from - 1
  for i = from, n do
    local k = 3 * i
    if res[k - 1] ~= lname then
      j = j + 1
      local kj = 3 * j
      res[kj - 2], res[kj - 1], res[kj] = res[k - 2], res[k - 1], res[k]
    end
  end
  for k = 3 * j + 1, 3 * n do res[k] = nil end
  res._n = j
end

--- res:set_header(name, value): sets a header of the response, replacing
-- any field of that name. Raises on an invalid name or a value holding CR,
-- LF or NUL, and once the head was sent. Returns res.
function Response:set_header(name, value)
  local lname
  lname, value = check_field(name, value, 2)
  if self._state ~= FRESH then error("res:set_header: the head was already sent", 2) end
  if OWNED[lname] then note_owned(self, lname, value) end
  local n = self._n
  for i = 1, n do
    local k = 3 * i
    if self[k - 1] == lname then
      self[k - 2], self[k] = name, value
      if i < n then remove_fields(self, lname, i + 1) end
      return self
    end
  end
  local k = 3 * n
  self[k + 1], self[k + 2], self[k + 3] = name, lname, value
  self._n = n + 1
  return self
end

--- res:add_header(name, value): adds a field even if the name is present
-- (Set-Cookie). Returns res.
function Response:add_header(name, value)
  local lname
  lname, value = check_field(name, value, 2)
  if self._state ~= FRESH then error("res:add_header: the head was already sent", 2) end
  if OWNED[lname] and lname ~= "connection" then
    return self:set_header(name, value)  -- never two framings or dates
  end
  if lname == "connection" then note_owned(self, lname, value) end
  local n = self._n
  local k = 3 * n
  self[k + 1], self[k + 2], self[k + 3] = name, lname, value
  self._n = n + 1
  return self
end

--- res:get_header(name) -> the first value of a field set so far, or nil.
function Response:get_header(name)
  local lname = lower(name)
  for i = 1, self._n do
    if self[3 * i - 1] == lname then return self[3 * i] end
  end
  return nil
end

--- res:remove_header(name): removes the fields of that name set so far.
function Response:remove_header(name)
  if self._state ~= FRESH then error("res:remove_header: the head was already sent", 2) end
  local lname = lower(name)
  if lname == "content-length" then self._length = nil
  elseif lname == "date" then self._date = nil
  elseif lname == "connection" then self._conn_close = nil
  elseif lname == "transfer-encoding" then self._te = nil end
  remove_fields(self, lname, 1)
end

-- Writes `data` to connection `c`; waits (bounded by send_timeout) only
-- when the stream applies backpressure.
local function send(c, data)
  local p = c.write(c.sock, data)
  if pstate(p) == "fulfilled" then return end
  if pstate(p) == "pending" then p = timeout(p, c.o.send_timeout) end
  local ok, err = pcall(await, p)
  if not ok then
    c.broken, c.dead = true, true
    error(err, 0)
  end
end

-- Decides whether the connection stays open after this response and
-- returns the Connection field to send ("" for none).
local function connection_line(res, c)
  local close = c.close or c.srv.closing or c.broken or res._conn_close
  if not close and not c.done then
    -- A body nobody read: it can be skipped after the response, unless the
    -- client still waits for 100 Continue (it may never send it) or it is
    -- too large to be worth reading.
    if c.continue then
      close = true
    elseif c.req.body_kind == "length" and c.left > c.o.max_body then
      close = true
    end
  end
  c.close = close
  if close then return "Connection: close\r\n" end
  if c.req.version == "1.0" then return "Connection: keep-alive\r\n" end
  return ""
end

-- The field lines the handler set, without the framing the server owns
-- (Content-Length, Transfer-Encoding, Connection).
local NOT_SENT = { ["content-length"] = true, ["transfer-encoding"] = true,
  ["connection"] = true }
local function user_fields(res)
  local n = res._n
  if n == 0 then return "" end
  if n == 1 and not NOT_SENT[res[2]] then return res[1] .. ": " .. res[3] .. "\r\n" end
  local buf, m = {}, 0
  for i = 1, n do
    local k = 3 * i
    if not NOT_SENT[res[k - 1]] then
      buf[m + 1], buf[m + 2], buf[m + 3], buf[m + 4] = res[k - 2], ": ", res[k], "\r\n"
      m = m + 4
    end
  end
  return concat(buf)
end

-- The status line of `res`, checking the status and the reason.
local function status_line(res)
  local status = res.status
  if mtype(status) ~= "integer" or status < 200 or status > 599 then
    error("res.status must be an integer in 200..599, got " .. tostring(status), 3)
  end
  local reason = res.reason
  if reason == nil then return status_lines[status] end
  if type(reason) ~= "string" or find(reason, "[%z\1-\8\10-\31\127]") then
    error("res.reason must be a string without control characters", 3)
  end
  return "HTTP/1.1 " .. status .. " " .. reason .. "\r\n"
end

-- "Content-Length: n\r\n" per length, for the lengths seen recently.
local length_lines, length_lines_n = {}, 0
local function length_line(n)
  local line = length_lines[n]
  if line then return line end
  line = "Content-Length: " .. n .. "\r\n"
  if length_lines_n >= 1024 then length_lines, length_lines_n = {}, 0 end
  length_lines[n], length_lines_n = line, length_lines_n + 1
  return line
end

-- Whether a response with this status has no body at all.
local function bodiless(status)
  return status == 204 or status == 304
end

-- res:finish once the head is out (after res:write).
local function finish_streaming(res, c, body)
  res._state = FINISHED
  if c.req.method == "HEAD" or bodiless(res.status) then return end
  if res._chunked then
    if body ~= "" then
      send(c, h1.chunk(body) .. "0\r\n\r\n")
    else
      send(c, "0\r\n\r\n")
    end
    return
  end
  local length = res._length
  if body ~= "" then
    res._sent = res._sent + #body
    if length and res._sent > length then
      c.broken = true
      error("res:finish: more bytes than the Content-Length", 3)
    end
    send(c, body)
  end
  if length and res._sent < length then
    c.broken = true
    error("res:finish: fewer bytes than the Content-Length", 3)
  end
end

--- res:finish([body]): sends the response with `body` (a string, "" by
-- default) and ends it; after res:write(), sends `body` as the last piece.
-- The head carries Content-Length (none for 204 and 304) and Date. For
-- HEAD requests the body is not sent. Returns once the bytes were handed
-- to the connection (waiting only under backpressure).
function Response:finish(body)
  if body == nil then
    body = ""
  elseif type(body) ~= "string" then
    error("res:finish: body must be a string, got " .. type(body), 2)
  end
  local c = self._c
  local state = self._state
  if state ~= FRESH then
    if state == FINISHED then error("res:finish: the response is already finished", 2) end
    return finish_streaming(self, c, body)
  end
  local req = c.req
  local status = self.status
  local line = self.reason == nil and status_lines[status] or status_line(self)
  local length = self._length
  if length and length ~= #body and not (req.method == "HEAD" and body == "") then
    error("res:finish: Content-Length " .. length .. " does not match the body (" ..
      #body .. " bytes)", 2)
  end
  if self._te then error("res:finish: Transfer-Encoding is set by the server", 2) end
  if body ~= "" and bodiless(status) then
    error("res:finish: a " .. status .. " response has no body", 2)
  end
  -- Every check is done: from here on the response is sent.
  local fields = user_fields(self)
  local date = self._date and "" or (ostime() == date_time and date_line or current_date_line())
  self._state = FINISHED
  c.started = true
  local conn = ""
  if c.close or not c.done or c.broken or self._conn_close or c.srv.closing
    or req.version ~= "1.1" then
    conn = connection_line(self, c)
  end
  local out
  if status == 204 or status == 304 then
    out = line .. fields .. date .. conn .. "\r\n"
  elseif req.method == "HEAD" then
    out = line .. fields .. date .. length_line(length or #body) .. conn .. "\r\n"
  else
    out = line .. fields .. date .. length_line(#body) .. conn .. "\r\n" .. body
  end
  local p = c.write(c.sock, out)
  if pstate(p) ~= "fulfilled" then
    -- Backpressure or a failure: the slow path.
    if pstate(p) == "pending" then p = timeout(p, c.o.send_timeout) end
    local ok, err = pcall(await, p)
    if not ok then
      c.broken, c.dead = true, true
      error(err, 0)
    end
  end
end

--- res:write(chunk): sends a piece of the body. The first call sends the
-- head: with Content-Length when the handler set one, otherwise with
-- chunked transfer coding (close-delimited for HTTP/1.0 clients). Returns
-- once the bytes were handed to the connection (waiting under
-- backpressure).
function Response:write(data)
  if type(data) ~= "string" then
    error("res:write: data must be a string, got " .. type(data), 2)
  end
  local c = self._c
  local state = self._state
  if state == FINISHED then error("res:write: the response is already finished", 2) end
  local req = c.req
  if state == FRESH then
    local line = status_line(self)
    local status = self.status
    if self._te then error("res:write: Transfer-Encoding is set by the server", 2) end
    local fields = user_fields(self)
    local framing = ""
    local length = self._length
    if bodiless(status) then
      if data ~= "" then error("res:write: a " .. status .. " response has no body", 2) end
    elseif length then
      if #data > length and req.method ~= "HEAD" then
        error("res:write: more bytes than the Content-Length", 2)
      end
      self._sent = 0
      framing = length_line(length)
    elseif req.version == "1.1" then
      self._chunked = true
      framing = "Transfer-Encoding: chunked\r\n"
    else
      -- An HTTP/1.0 client: the body ends when the connection closes.
      c.close = true
      self._sent = 0
    end
    self._state = STREAMING
    c.started = true
    local conn = connection_line(self, c)
    local date = self._date and "" or current_date_line()
    local head = line .. fields .. date .. framing .. conn .. "\r\n"
    if req.method == "HEAD" or bodiless(status) or data == "" then
      send(c, head)
      return
    end
    if self._chunked then
      send(c, head .. h1.chunk(data))
      return
    end
    self._sent = #data
    send(c, head .. data)
    return
  end
  if data == "" or req.method == "HEAD" or bodiless(self.status) then return end
  if self._chunked then
    send(c, h1.chunk(data))
    return
  end
  self._sent = self._sent + #data
  if self._length and self._sent > self._length then
    c.broken = true
    error("res:write: more bytes than the Content-Length", 2)
  end
  send(c, data)
end

--- res:started() -> whether the head was sent.
function Response:started()
  return self._state ~= FRESH
end

--------------------------------------------------------------------------
-- Connections.

-- A short plain-text answer to a request the server refuses; the
-- connection closes after it.
-- Reports a server problem: through the server's log option, or on
-- stderr.
local function report(o, msg)
  if o.log then o.log(msg) else io.stderr:write(msg, "\n") end
end

-- The body and content type of an error answer with `status` and
-- `message` (a string or nil): the server's error_body option, or the
-- reason phrase and the message as plain text. A failing error_body is
-- reported and the plain text is used.
local function error_body(o, status, message)
  local t = type(message)
  if t == "number" then
    message = tostring(message)
  elseif t ~= "string" then
    message = nil  -- a message that is not text is left out
  end
  if o.error_body then
    local ok, body, ctype = pcall(o.error_body, status, message)
    if ok and type(body) == "string" and (ctype == nil or type(ctype) == "string") then
      if not ctype then
        local b = byte(body, 1)
        ctype = (b == 123 or b == 91) and "application/json" or "text/plain; charset=utf-8"
      end
      if not find(ctype, "[%z\r\n]") then return body, ctype end
    end
    report(o, "tide: http error_body failed: " ..
      (ok and "it must return a string and an optional content type" or tostring(body)))
  end
  return (reasons[status] or "Error") .. (message and (": " .. message) or "") .. "\n",
    "text/plain; charset=utf-8"
end

local function error_response(o, status, message)
  local body, ctype = error_body(o, status, message)
  return status_lines[status] .. current_date_line() ..
    "Content-Type: " .. ctype .. "\r\nContent-Length: " .. #body ..
    "\r\nConnection: close\r\n\r\n" .. body
end

--- res:error(status [, message]): answers with the server's error format
-- (the error_body option; plain text by default) and ends the response;
-- the connection stays open. `status` is an integer in 400..599.
function Response:error(status, message)
  if mtype(status) ~= "integer" or status < 400 or status > 599 then
    error("res:error: status must be an integer in 400..599, got " .. tostring(status), 2)
  end
  if self._state ~= FRESH then error("res:error: the head was already sent", 2) end
  local body, ctype = error_body(self._c.o, status, message)
  self.status = status
  self:set_header("Content-Type", ctype)
  return self:finish(body)
end

--- res:json(value [, status]): sends `value` encoded as JSON (lua-cjson)
-- with Content-Type application/json, and ends the response. Raises at
-- once when `value` cannot be encoded (a function, a cycle, ...).
function Response:json(value, status)
  if status ~= nil then
    if mtype(status) ~= "integer" or status < 200 or status > 599 then
      error("res:json: status must be an integer in 200..599, got " .. tostring(status), 2)
    end
  end
  local body = json.encode(value, 2)
  if status then self.status = status end
  self:set_header("Content-Type", "application/json")
  return self:finish(body)
end

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

-- Empties a response before the server answers in the handler's place.
local function reset_response(res)
  for k = 1, 3 * res._n do res[k] = nil end
  res._n, res.status, res.reason = 0, 200, nil
  res._length, res._date, res._conn_close, res._te = nil, nil, nil, nil
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
    c.idle = true
    if srv.closing then return end
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
    -- sizes it for the fields it will hold.
    local req, status, reason = parse_request_head(head, h1_limits, {
      method = false, target = false, path = false, version = false,
      headers = false, body_kind = false, content_length = false, _c = c,
    })
    if not req then return refuse(c, status, reason) end
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

    local res = setmetatable({ status = 200, _state = FRESH, _c = c, _n = 0,
      false, false, false }, response_mt)
    c.res = res

    -- Run the handler.
    ok, status = xpcall(handler, capture, req, res)
    if not ok then
      if not handler_failed(c, res, status[1], status[2]) then return end
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
    chunks = false, started = false }
  srv._conns[c] = true
  srv.connections = srv.connections + 1
  local ok, err = pcall(serve_conn, srv, c, handler)
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

--------------------------------------------------------------------------
-- Server.

local Server = {}
local server_mt = {
  __name = "tide.http.server",
  __index = Server,
  __tostring = function(s)
    return "tide.http.server: " .. s.host .. ":" .. tostring(s.port)
  end,
}

-- The accept loop: one task per connection, until the listener closes.
local function accept_loop(srv, listener, handler)
  while true do
    local p = listener:accept()
    local ok, sock = pcall(await, p)
    if not ok then
      if srv.closing then return end
      -- A failure of one accept (EMFILE, ...) must not stop the server:
      -- wait a little and go on.
      report(srv._o, "tide: http accept error: " .. tostring(sock))
      tide.sleep(0.1):await()
    elseif sock then
      spawn(conn_task, srv, sock, handler)
    elseif srv.closing then
      return
    end
  end
end

--[[ Starts a server: listens at once and returns the server object.
  opts: a table of the options above (or a port number)
  handler(req, res): called in the connection's task for each request;
    it may await. When it returns without finishing the response, the
    response is finished with what was written.
Returns a server with fields host, port (the bound port), connections
(open connections), requests (requests read so far), errors (handler
failures) and the method close. ]]
local function new_server(o, port, listener)
  return setmetatable({
    host = o.host,
    port = port,
    connections = 0,
    requests = 0,
    errors = 0,
    closing = false,
    _o = o,
    _conns = {},
    _listener = listener,
  }, server_mt)
end

function M.serve(opts, handler)
  local o = check_options(opts)
  if not callable(handler) then
    error("http.serve: handler must be a function (or a callable table, such as a router)", 2)
  end
  local listener = tide.tcp.listen { host = o.host, port = o.port, backlog = o.backlog }
  local srv = new_server(o, listener.port, listener)
  srv._accept = spawn(accept_loop, srv, listener, handler)
  return srv
end

--- server.serve_stream(stream, opts, handler): serves HTTP/1.1 on one
-- already connected stream (a pipe, a socket accepted elsewhere) in the
-- current task, until the connection ends; closes the stream. `opts` takes
-- the limits and timeouts of http.serve (host, port and backlog are
-- ignored). Returns the number of requests read.
function M.serve_stream(stream, opts, handler)
  local o = check_options(opts or {})
  if not callable(handler) then
    error("server.serve_stream: handler must be a function (or a callable table, such as a router)", 2)
  end
  local srv = new_server(o, nil, nil)
  conn_task(srv, stream, handler)
  return srv.requests
end

-- Forced end of a close with a time limit: cancels every connection.
local function force_close(srv, seconds, closed)
  tide.sleep(seconds):await()
  if closed:state() ~= "pending" then return end
  for c in next, srv._conns do
    if c.task then c.task:cancel() end
  end
end

--- server:close([seconds]) -> promise fulfilled when every connection has
-- finished. Stops accepting at once, closes idle keep-alive connections,
-- lets requests in flight finish (their responses carry Connection: close).
-- With `seconds`, connections still open after that long are cancelled.
-- Calling it again returns the same promise.
function Server:close(seconds)
  if seconds ~= nil and (type(seconds) ~= "number" or seconds < 0) then
    error("server:close: seconds must be a non-negative number", 2)
  end
  if self._closed then return self._closed end
  self.closing = true
  local closed = tide.promise()
  self._closed = closed
  if self._listener then self._listener:close() end
  for c in next, self._conns do
    if c.idle and c.task then c.task:cancel() end
  end
  if self.connections == 0 then
    closed:resolve()
  elseif seconds then
    spawn(force_close, self, seconds, closed)
  end
  return closed
end

M.Server = Server
M.Request = Request
M.Response = Response
M.DEFAULTS = DEFAULTS
return M
