-- tide.http.server: the HTTP/1.1 server.
--
-- Owns the server itself: its options, the listener and the accept loop
-- (one task per connection), the server object (counters, close with a
-- grace time) and serve_stream for one connected stream. The parts it
-- runs live beside it, as lua-http splits its layers:
--   tide.http.server_conn      the connection loop: heads, handler, 4xx
--   tide.http.server_request   the request object and its body
--   tide.http.server_response  the response object and error answers
--   tide.http.server_common    what they share (Date, field checks, send)
--
-- The hot path (one keep-alive request) is: one read_until of the head, one
-- parse, the handler, one write of head and body together. Nothing in it
-- creates closures, and no tables but the request (with its headers) and
-- the response.

local tide = require "tide"

local type, tostring, error, pcall, setmetatable, next =
  type, tostring, error, pcall, setmetatable, next
local mtype, huge = math.type, math.huge

local spawn =
  tide.spawn
local await = tide.await

-- Whether `f` can be called: a function or a table with __call.
local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local common = require "tide.http.server_common"
local report =
  common.report
local conn = require "tide.http.server_conn"
local conn_task = conn.conn_task

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
  compress          gzip the bodies given to res:finish when the client
                    accepts gzip: true, or {min_size = bytes (1024), level
                    = 1..9 (6)}; only textual types (text/*, JSON,
                    JavaScript, XML, SVG) and bodies of min_size or more;
                    the answer says Content-Encoding: gzip and Vary:
                    Accept-Encoding. Default false
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
  compress = false,
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
  if o.compress then
    local c = o.compress == true and {} or o.compress
    if type(c) ~= "table" then error("http.serve: compress must be true or a table", 3) end
    local min_size, level = c.min_size or 1024, c.level or 6
    if mtype(min_size) ~= "integer" or min_size < 0 then
      error("http.serve: compress.min_size must be a non-negative integer", 3)
    end
    if mtype(level) ~= "integer" or level < 1 or level > 9 then
      error("http.serve: compress.level must be an integer in 1..9", 3)
    end
    o.compress = { min_size = min_size, level = level }
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
-- Server.

local Server = {}
local server_mt = {
  __name = "tide.http.server",
  __index = Server,
  __tostring = function(s)
    return "tide.http.server: " .. s.host .. ":" .. tostring(s.port)
  end,
  -- A <close> variable closes it as server:close() does (requests in
  -- flight finish; nobody waits for them here).
  __close = function(s) s:close() end,
}

-- Awaits the next connection of `listener`.
local function accept_next(listener) return await(listener:accept()) end

-- The accept loop: one task per connection, until the listener closes.
local function accept_loop(srv, listener, handler)
  while true do
    -- accept() itself may raise (not enough memory): handled as a failed accept
    local ok, sock = pcall(accept_next, listener)
    if not ok then
      if srv.closing then return end
      -- A failure of one accept (EMFILE, ...) must not stop the server:
      -- wait a little and go on.
      report(srv._o, "tide: http accept error: " .. tostring(sock))
      tide.sleep(0.1):await()
    elseif sock then
      -- A task that fails outside conn_task's own pcall (not enough memory,
      -- maybe before conn_task even started) still closes its socket; so
      -- does this loop's end when it fails before the task is set up.
      srv._accepted = sock
      spawn(conn_task, srv, sock, handler):catch(function(e)
        sock:close()
        error(e, 0)
      end)
      srv._accepted = false
    else  -- the listener was closed: by server:close, or a worker told to stop
      if not srv.closing then srv:close() end
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
    _accepted = false,  -- a connection accepted whose task is not set up yet
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
  -- An accept loop that failed (not enough memory, outside its pcall)
  -- closes the server rather than leave it listening with nobody accepting.
  srv._accept:catch(function(e)
    if srv._accepted then srv._accepted:close() end
    if not srv.closing then srv:close() end
    error(e, 0)
  end)
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
M.Request = require("tide.http.server_request").Request
M.Response = require("tide.http.server_response").Response
M.DEFAULTS = DEFAULTS
return M

