-- tide.http.client: the HTTP/1.1 client.
--
-- Owns the client side of HTTP/1.1 over tide streams: requests built from
-- a URL and options, a pool of keep-alive connections per host (with one
-- retry of idempotent requests on a connection the server had closed),
-- response heads parsed by tide.http.h1, bodies framed by length, chunked
-- coding or the end of the connection, "progress" events while a body
-- arrives, a streaming mode, redirects, and time limits on connecting and
-- on every wait for the server. https goes over tide.tls.

local tide = require "tide"
local h1 = require "tide.http.h1"
local headers = require "tide.http.headers"
local hio = require "tide.http.io"

local find, sub, lower, match = string.find, string.sub, string.lower, string.match
local concat = table.concat
local type, tostring, error, pcall, setmetatable, next =
  type, tostring, error, pcall, setmetatable, next
local mtype, huge = math.type, math.huge

local spawn, now, is_error, tide_error, resolved =
  tide.spawn, tide.now, tide.is_error, tide.error, tide.resolved
local parse_url, parse_response_head = h1.parse_url, h1.parse_response_head

local json = require "tide.http.json"

local M = {}

--------------------------------------------------------------------------
-- Options.

--[[ Options of http.request (and of the table given to http.get):
  method            "GET" by default
  url               an absolute http:// or https:// URL (required)
  headers           request headers: a tide.http.headers, a map or a list of
                    {name, value} pairs. Host, User-Agent and Content-Length
                    are added unless given.
  body              the request body (nil: none): a string, sent with
                    Content-Length; or, streamed, a function returning the
                    next piece (a string) or nil at the end, called inside
                    the request's task (it may await), or an object with a
                    read() method returning a promise of the next piece or
                    nil (a tide stream, a process's stdout). A streamed
                    body goes out with chunked coding, or as it is when
                    the headers give Content-Length (its size must match)
  stream            true: the promise is fulfilled once the head arrived;
                    read the body with res:read() / res:chunks()
  redirects         redirects to follow (5 for GET and HEAD, 0 otherwise)
  connect_timeout   seconds to connect (10)
  timeout           seconds to wait for the server at each step: the
                    response head, then each piece of the body (30)
  decompress        true (default): ask for gzip and deflate bodies
                    (Accept-Encoding, unless the headers give one) and
                    decode the codings asked for; res.content_encoding
                    then names what was decoded. false: bodies as sent
  max_body          largest body kept in memory (64 MiB; not for stream);
                    larger -> EMSGSIZE
  max_header_size   largest response head in bytes (64 KiB)
  max_headers       most response header fields (100)
  tls               https: the options of a tide.tls context (ca, verify,
                    cert, key, alpn, ...) or {context = ctx}; the default
                    verifies the server against the system's certificates
]]
local DEFAULTS = {
  connect_timeout = 10,
  timeout = 30,
  max_body = 64 * 1024 * 1024,
  max_header_size = 64 * 1024,
  max_headers = 100,
}
local KNOWN = {
  method = true, url = true, headers = true, body = true, stream = true,
  redirects = true, connect_timeout = true, timeout = true, max_body = true, decompress = true,
  max_header_size = true, max_headers = true, tls = true,
}

local TOKEN = headers.TOKEN
local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, TRACE = true,
  PUT = true, DELETE = true }
local USER_AGENT = "tide/" .. tostring(tide.version)
local tls  -- tide.tls, loaded with the first request that uses TLS

-- Pool of idle connections: "host:port" -> list of connections.
local MAX_IDLE_PER_HOST = 16
local IDLE_REUSE = 4  -- seconds an idle connection may be reused
local pools = {}

local function check_positive(o, k, level)
  local v = o[k]
  if type(v) ~= "number" or v ~= v or v <= 0 then
    error("http.request: " .. k .. " must be a positive number", level + 1)
  end
end

-- Checks and completes the options of a request. Raises on misuse.
local function check_options(opts, level)
  if type(opts) ~= "table" then error("http.request: options must be a table", level + 1) end
  for k in next, opts do
    if not KNOWN[k] then error("http.request: unknown option '" .. tostring(k) .. "'", level + 1) end
  end
  local o = {}
  for k, v in next, opts do o[k] = v end
  for k, v in next, DEFAULTS do if o[k] == nil then o[k] = v end end
  o.method = o.method or "GET"
  if type(o.method) ~= "string" or not find(o.method, TOKEN) then
    error("http.request: invalid method " .. tostring(o.method), level + 1)
  end
  local url, err = parse_url(o.url)
  if not url then error("http.request: " .. err .. ": " .. tostring(o.url), level + 1) end
  o.parsed = url
  if o.tls ~= nil then
    if type(o.tls) ~= "table" then error("http.request: tls must be a table of TLS options", level + 1) end
    tls = tls or require "tide.tls"
    o.tls_key = tls.options_key(o.tls) or tostring(o.tls)  -- connections are pooled by it
  end
  local body = o.body
  if type(body) == "function" then
    o.body, o.body_source = nil, body
  elseif body ~= nil and type(body) ~= "string" then
    local ok, read = pcall(function() return body.read end)
    if not ok or type(read) ~= "function" then
      error("http.request: body must be a string, a function or an object with a read method", level + 1)
    end
    o.body, o.body_source = nil, function() return read(body):await() end
  end
  if o.headers ~= nil then
    o.headers = headers.new(o.headers)  -- a copy: redirects change it
  else
    o.headers = headers.new()
  end
  if o.redirects == nil then
    o.redirects = (o.method == "GET" or o.method == "HEAD") and 5 or 0
  elseif mtype(o.redirects) ~= "integer" or o.redirects < 0 then
    error("http.request: redirects must be a non-negative integer", level + 1)
  end
  check_positive(o, "connect_timeout", level + 1)
  check_positive(o, "timeout", level + 1)
  check_positive(o, "max_body", level + 1)
  check_positive(o, "max_header_size", level + 1)
  check_positive(o, "max_headers", level + 1)
  o.limits = { max_headers = o.max_headers, max_line = o.max_header_size }
  o.head_opts = { max = o.max_header_size, timeout = o.timeout }
  o.chunk_limits = {
    max_body = o.stream and huge or o.max_body,
    max_headers = o.max_headers,
    max_line = o.max_header_size,
  }
  return o
end

local function ignore() end

local function proto_error(message)
  return tide_error("EPROTO", message)
end

--------------------------------------------------------------------------
-- Connections and the pool.

-- Connections are pooled per scheme, host, port and TLS settings.
local function pool_key(url, o)
  local key = url.scheme .. "://" .. url.host .. ":" .. url.port
  if url.scheme == "https" and o.tls then key = key .. "#" .. o.tls_key end
  return key
end


-- Takes an idle connection to `key` that is still fresh, or nil.
local function pool_take(key)
  local list = pools[key]
  if not list then return nil end
  local t = now()
  while #list > 0 do
    local conn = list[#list]
    list[#list] = nil
    if t - conn.since <= IDLE_REUSE then
      -- A read that answers at once finds the end of the stream (the
      -- server closed the connection) or bytes nobody asked for: either
      -- way the connection cannot carry a request.
      local p = conn.sock:read()
      if p:state() == "pending" then
        p:cancel()
        return conn
      end
    end
    conn.sock:close()
  end
  return nil
end

-- Returns a connection whose exchange ended cleanly to the pool.
local function pool_put(conn)
  local list = pools[conn.key]
  if not list then
    list = {}
    pools[conn.key] = list
  end
  if #list >= MAX_IDLE_PER_HOST then
    conn.sock:close()
    return
  end
  conn.since = now()
  list[#list + 1] = conn
end

local function conn_close(conn)
  if not conn.closed then
    conn.closed = true
    conn.sock:close()
  end
end

--- Closes every idle pooled connection.
function M.close_idle()
  for key, list in next, pools do
    for i = 1, #list do list[i].sock:close() end
    pools[key] = nil
  end
end

-- Raises the failure `e` of a read or write, with a clear message for a
-- timeout.
local function io_failed(e, what)
  if is_error(e, "ETIMEDOUT") then
    error(tide_error("ETIMEDOUT", what .. " timed out"), 0)
  end
  error(e, 0)
end

-- Awaits `p`, turning a timeout into a clear message.
local function await_io(p, what)
  local ok, v = pcall(p.await, p)
  if not ok then io_failed(v, what) end
  return v
end

-- Calls a function that reads the body, as await_io.
local function await_io_call(fn, a, b, c)
  local ok, v = pcall(fn, a, b, c)
  if not ok then io_failed(v, "reading the response body") end
  return v
end

-- The time each read of a body may wait.
local function read_timeout(o)
  return o.timeout
end

--------------------------------------------------------------------------
-- Response bodies.

local Response = {}
local response_mt = {
  __name = "tide.http.client.response",
  __index = Response,
  __tostring = function(r)
    return "tide.http.client.response: " .. r.status .. " " .. r.reason
  end,
}

-- The content codings the client decodes, as zlib's inflate formats
-- ("auto": zlib or gzip; servers send both for "deflate").
local DECODABLE = { gzip = "gzip", ["x-gzip"] = "gzip", deflate = "auto" }

-- The inflate stream for a response with Content-Encoding `ce`, when the
-- request asked for that coding (`accept`: the Accept-Encoding it sent),
-- or nil: the body is left as sent.
local function decoder(ce, accept)
  if ce == nil or accept == nil then return nil end
  ce = lower(match(ce, "^%s*(.-)%s*$"))
  local format = DECODABLE[ce]
  if not format or not find(lower(accept), ce == "x-gzip" and "gzip" or ce, 1, true) then return nil end
  return tide.zlib.inflate{ format = format }, ce
end

-- Decodes a piece of a compressed body; checks its end. `data` nil: the
-- body ended. Returns what came out ("" while nothing did).
local function decode(st, data)
  local z = st.inflate
  if data == nil then
    if not z.done then error(proto_error("compressed response body ended early"), 0) end
    return nil
  end
  if z.done then error(proto_error("bytes after the end of the compressed response body"), 0) end
  local out = z:write(data, st.max_body ~= huge and st.max_body - st.decoded or nil)
  st.decoded = st.decoded + #out
  return out
end

-- Reads the next piece of the body of `res` as it came (decoded, maybe
-- ""), or nil at its end (then the connection goes back to the pool when
-- it can be reused).
local function body_piece(res)
  local st = res._st
  if st.done then return nil end
  if st.failed then error(st.failed, 0) end
  local conn, o = st.conn, st.o
  local ok, data = pcall(function()
    local kind = st.kind
    if kind == "chunked" then
      return st.chunks()
    elseif kind == "length" then
      local left = st.left
      if left == 0 then return nil end
      local d = await_io_call(hio.read_some, conn.sock, left < 65536 and left or 65536, o.timeout)
      if not d then error(proto_error("connection closed inside the response body"), 0) end
      st.left = left - #d
      return d
    else -- "close"
      return await_io(conn.sock:read(o.timeout), "reading the response body")
    end
  end)
  if ok and st.inflate then  -- a compressed body: what the caller gets is decoded
    local raw = data
    ok, data = pcall(decode, st, raw)
    if ok and raw ~= nil and data == nil then data = "" end
    if ok then st.raw = raw end
  end
  if not ok then
    local e = data
    st.failed = e
    conn_close(conn)
    if st.done_p then st.done_p:reject(e) end
    error(e, 0)
  end
  if data then
    st.received = st.received + #(st.raw or data)
    if st.received > st.max_body and not st.inflate then
      local e = tide_error("EMSGSIZE", "response body larger than " .. st.max_body .. " bytes")
      st.failed = e
      conn_close(conn)
      if st.done_p then st.done_p:reject(e) end
      error(e, 0)
    end
    local target = st.done_p or st.progress
    if target then target:emit("progress", st.received, st.total) end
    if st.kind ~= "length" or st.left > 0 then return data end
    if st.inflate and not st.inflate.done then  -- the length ended inside it
      local e = proto_error("compressed response body ended early")
      st.failed = e
      conn_close(conn)
      if st.done_p then st.done_p:reject(e) end
      error(e, 0)
    end
  end
  -- The end of the body.
  st.done = true
  if st.reusable then pool_put(conn) else conn_close(conn) end
  if st.done_p then st.done_p:resolve(st.received, res.trailers) end
  return data
end

-- The next piece of the body of `res` that is not empty, or nil at its end.
local function next_piece(res)
  local d
  repeat d = body_piece(res) until d ~= ""
  return d
end

--- res:read() -> promise of the next piece of the body, or nil at its end
-- (stream mode).
function Response:read()
  local st = self._st
  if not st or st.done then return resolved(nil) end
  return spawn(next_piece, self)
end

--- res:chunks() -> iterator over the pieces of the body inside a task:
-- `for data in res:chunks() do ... end` (stream mode).
function Response:chunks()
  return function()
    local st = self._st
    if not st or st.done then return nil end
    return next_piece(self)
  end
end

--- res:json(): the body decoded as JSON (lua-cjson; JSON null is
-- http.null). Malformed JSON raises an EPROTO error (with status 400). In
-- stream mode, read the body first (res.done) and decode it yourself.
function Response:json()
  local body = self.body
  if type(body) ~= "string" then
    error("res:json: no body to decode (stream mode reads it with res:read())", 2)
  end
  return json.decode(body, "the response body")
end

--- res:close(): drops the rest of the body and closes the connection
-- (stream mode); harmless once the body was read.
function Response:close()
  local st = self._st
  if st and not st.done then
    st.done = true
    st.failed = tide_error("ECANCELED", "response closed")
    conn_close(st.conn)
    if st.done_p then st.done_p:reject(st.failed) end
  end
end

--------------------------------------------------------------------------
-- One exchange: a request written, a response head read.

-- Whether the connection may carry another exchange after this response.
local function reusable(head)
  if head.body_kind == "close" then return false end
  local v = head.headers:get_joined("connection")
  v = v and lower(v) or ""
  if find(v, "close", 1, true) then return false end
  if head.version == "1.0" and not find(v, "keep-alive", 1, true) then return false end
  if head.status == 101 then return false end
  return true
end

-- Whether the request itself asked to close the connection.
local function asked_close(hdrs)
  local v = hdrs:get_joined("connection")
  return v ~= nil and find(lower(v), "close", 1, true) ~= nil
end

-- Builds the bytes of a request: its head, and its body when it is a
-- string. A streamed body (`source`) keeps the Content-Length the headers
-- give, else goes chunked; returns that length too (nil: chunked).
local function request_bytes(method, url, hdrs, body, source, decompress)
  local h = hdrs:clone()
  local length
  if not h:has("host") then h:set("Host", url.authority) end
  if not h:has("user-agent") then h:set("User-Agent", USER_AGENT) end
  if decompress and not h:has("accept-encoding") then h:set("Accept-Encoding", "gzip, deflate") end
  h:remove("transfer-encoding")
  if source then
    local v = h:get("content-length")
    length = v and match(v, "^%d+$") and tonumber(v)
    if v and not length then
      error(tide_error("EINVAL", "invalid Content-Length '" .. v .. "' for a streamed body"), 0)
    end
    if not length then h:set("Transfer-Encoding", "chunked") end
  elseif body then
    h:set("Content-Length", tostring(#body))
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    h:set("Content-Length", "0")
  end
  local head = h1.request_head(method, url.target, h)
  if body then return head .. body end
  return head, length
end

-- Writes `data` on `conn`, waiting at most o.timeout when the connection
-- pushes back.
local function send(conn, data, o)
  local w = conn.sock:write(data)
  if w:state() == "pending" then w = tide.timeout(w, o.timeout) end
  await_io(w, "sending the request")
end

-- Sends a streamed body: the pieces `source` gives, framed as chunks, or
-- as they are when `length` (Content-Length) was announced.
local function send_streamed(conn, source, length, o)
  local sent = 0
  while true do
    local piece = source()
    if piece == nil then break end
    if type(piece) ~= "string" then
      error(tide_error("EINVAL", "the body source gave a " .. type(piece) .. ", not a string"), 0)
    end
    sent = sent + #piece
    if length and sent > length then
      error(tide_error("EINVAL", "the streamed body is longer than its Content-Length " .. length), 0)
    end
    if #piece > 0 then send(conn, length and piece or h1.chunk(piece), o) end
  end
  if length and sent < length then
    error(tide_error("EINVAL", "the streamed body ended after " .. sent ..
      " bytes, short of its Content-Length " .. length), 0)
  end
  if not length then send(conn, h1.last_chunk, o) end
end

-- Reads response heads on `conn` until a final one (1xx interim answers
-- are skipped). Returns the parsed head.
local function read_final_head(conn, method, o)
  local interim, skipped = false, 0
  while true do
    local p = conn.sock:read_until("\r\n\r\n", o.head_opts)
    local ok, block = pcall(p.await, p)
    if not ok then
      local e = block
      -- A byte of the response came: the request must not be retried.
      if (type(e) == "table" and type(e.partial) == "string" and e.partial ~= "")
          or (conn.sock.read_buffered or 0) > 0 then
        conn.got_bytes = true
      end
      if is_error(e, "ELINETOOLONG") then
        error(proto_error("response head larger than " .. o.max_header_size .. " bytes"), 0)
      elseif is_error(e, "ETIMEDOUT") then
        error(tide_error("ETIMEDOUT", "waiting for the response head timed out"), 0)
      end
      error(e, 0)
    end
    if block == nil then
      error(tide_error("EOF", "connection closed before the response head"), 0)
    end
    conn.got_bytes = true
    if interim then
      -- Empty lines after an interim response are skipped: two of them
      -- read as an empty block, a last odd one starts the next.
      while sub(block, 1, 2) == "\r\n" do block = sub(block, 3) end
    end
    if interim and block == "" then
      skipped = skipped + 4
      if skipped > o.max_header_size then
        error(proto_error("too many empty lines after an interim response"), 0)
      end
    else
      local head = parse_response_head(block, o.limits, method)  -- raises EPROTO
      if head.status >= 200 or head.status == 101 then return head end
      interim = true
    end
  end
end

-- Connects to the host of `url`.
local function connect(url, o)
  local p
  if url.scheme == "https" then
    tls = tls or require "tide.tls"
    local t = { alpn = { "http/1.1" } }
    for k, v in next, o.tls or t do t[k] = v end
    t.timeout = o.connect_timeout
    p = tls.connect(url.host, url.port, t)
  else
    p = tide.tcp.connect(url.host, url.port, { timeout = o.connect_timeout })
  end
  local ok, sock = pcall(p.await, p)
  if not ok then
    if is_error(sock, "ETIMEDOUT") then
      error(tide_error("ETIMEDOUT", "connecting to " .. url.authority .. " timed out"), 0)
    end
    error(sock, 0)
  end
  return { sock = sock, key = pool_key(url, o) }
end

-- Errors that show a reused connection had been closed by the server.
local STALE = { EOF = true, ECONNRESET = true, EPIPE = true, ECONNABORTED = true }

-- Sends the request on a pooled or new connection and reads the final
-- head. Returns conn, head.
-- A streamed body can be sent once only: it gets a new connection, which
-- cannot turn out to be stale, and no retry.
local function exchange(o, method, url, hdrs, body, source)
  local key = pool_key(url, o)
  local bytes, length = request_bytes(method, url, hdrs, body, source, o.decompress ~= false)
  local attempt = 0
  while true do
    attempt = attempt + 1
    local conn = not source and pool_take(key)
    local reused = conn and true
    if not conn then conn = connect(url, o) end
    conn.got_bytes = false  -- of this response: set by read_final_head
    local ok, head = pcall(function()
      send(conn, bytes, o)
      if source then send_streamed(conn, source, length, o) end
      return read_final_head(conn, method, o)
    end)
    if ok then return conn, head end
    conn_close(conn)
    local e = head
    if not (reused and attempt == 1 and not conn.got_bytes and IDEMPOTENT[method]
        and type(e) == "table" and STALE[e.code]) then
      error(e, 0)
    end
  end
end

-- Resolves a Location value against the URL it came from.
local function remove_dot_segments(path)
  local out = {}
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      if #out > 1 then out[#out] = nil end
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  local last = match(path, "[^/]*$")
  if last == "." or last == ".." then out[#out + 1] = "" end
  local r = concat(out, "/")
  if sub(r, 1, 1) ~= "/" then r = "/" .. r end
  return r
end

local function resolve_location(base, loc)
  if find(loc, "^%a[%w+.%-]*:") then return loc end
  local origin = base.scheme .. "://" .. base.authority
  if sub(loc, 1, 2) == "//" then return base.scheme .. ":" .. loc end
  local path, query = match(loc, "^([^?#]*)(.*)$")
  if sub(loc, 1, 1) == "/" then
    return origin .. remove_dot_segments(path) .. query
  end
  if path == "" then
    -- Only a query or fragment: same path.
    if sub(query, 1, 1) == "?" then return origin .. base.path .. query end
    return origin .. base.target
  end
  local dir = match(base.path, "^(.*/)") or "/"
  return origin .. remove_dot_segments(dir .. path) .. query
end

-- Reads and drops a small body (of a redirect) so that the connection can
-- be reused; closes the connection when the body is too big or broken.
local function discard_body(res)
  local ok = pcall(function()
    local n = 0
    while true do
      local d = next_piece(res)
      if not d then return end
      n = n + #d
      if n > 64 * 1024 then error("too big") end
    end
  end)
  if not ok then res:close() end
end

--------------------------------------------------------------------------
-- The request task.

local function run_request(o, progress)
  local method, url, hdrs, body, source = o.method, o.parsed, o.headers, o.body, o.body_source
  local redirects = 0
  while true do
    local conn, head = exchange(o, method, url, hdrs, body, source)
    if head.status == 101 then
      -- Switching Protocols (the request asked with Upgrade): the connection
      -- leaves the pool and is the caller's, as `res.stream`, with what the
      -- server sent after the head still buffered in it.
      return setmetatable({ status = 101, reason = head.reason, version = head.version,
        headers = head.headers, url = url.scheme .. "://" .. url.authority .. url.target,
        redirects = redirects, body = "", stream = conn.sock }, response_mt)
    end
    local res = setmetatable({
      status = head.status,
      reason = head.reason,
      version = head.version,
      headers = head.headers,
      transfer_codings = head.transfer_codings,
      url = url.scheme .. "://" .. url.authority .. url.target,
      redirects = redirects,
    }, response_mt)
    local st = {
      conn = conn,
      o = o,
      kind = head.body_kind,
      left = head.content_length,
      total = head.content_length,
      received = 0,
      reusable = reusable(head) and not asked_close(hdrs),
      done = head.body_kind == "none",
      max_body = o.stream and huge or o.max_body,
    }
    if st.kind == "length" and st.total > st.max_body then
      conn_close(conn)
      error(tide_error("EMSGSIZE", "response body larger than " .. st.max_body .. " bytes"), 0)
    end
    if st.kind == "none" and st.total == nil then st.total = 0 end
    if not st.done and o.decompress ~= false then
      st.inflate, res.content_encoding = decoder(head.headers:get("content-encoding"), hdrs:get("accept-encoding") or "gzip, deflate")
      st.decoded = 0
    end
    res._st = st
    if st.kind == "chunked" then
      res.trailers = headers.new()
      st.chunks = h1.chunks(hio.chunk_reader(conn.sock, read_timeout, o), o.chunk_limits,
        res.trailers)
    end
    if st.done then
      if st.reusable then pool_put(conn) else conn_close(conn) end
    end

    local status = head.status
    local loc = head.headers:get("location")
    local to_get = status == 303 and method ~= "HEAD" or (status == 301 or status == 302) and method == "POST"
    if source and not to_get then
      loc = nil  -- a streamed body was used up: the redirect is the answer
    end
    if loc and redirects < o.redirects and (status == 301 or status == 302 or status == 303
        or status == 307 or status == 308) then
      discard_body(res)
      local next_url, err = parse_url(resolve_location(url, loc))
      if not next_url then
        error(proto_error("bad redirect location '" .. loc .. "': " .. err), 0)
      end
      if to_get then
        method, body, source = "GET", nil, nil
        hdrs:remove("content-type")
        hdrs:remove("content-length")
      end
      if next_url.authority ~= url.authority or next_url.scheme ~= url.scheme then
        hdrs:remove("authorization")
        hdrs:remove("cookie")
      end
      hdrs:remove("host")
      url = next_url
      redirects = redirects + 1
    elseif loc and o.redirects > 0 and redirects >= o.redirects and status >= 301 and status <= 308
        and status ~= 304 and status ~= 305 and status ~= 306 then
      res:close()
      error(tide_error("ETOOMANYREDIRECTS", "more than " .. o.redirects .. " redirects"), 0)
    else
      if o.stream then
        st.done_p = tide.promise()
        -- Reading the body raises its errors already: res.done need not be
        -- awaited, so its rejection is never reported as unhandled.
        st.done_p:catch(ignore)
        res.done = st.done_p
        if st.done then st.done_p:resolve(0, res.trailers) end
        return res
      end
      st.progress = progress
      local parts, n = {}, 0
      while true do
        local d = next_piece(res)
        if not d then break end
        n = n + 1
        parts[n] = d
      end
      res.body = concat(parts)
      res._st = nil
      return res
    end
  end
end

local function request_task(o)
  return run_request(o, tide.current())
end

--[[ http.request(opts) -> promise of the response (a task: cancellable).
The response: status (integer), reason, version ("1.1"/"1.0"), headers (a
tide.http.headers), body (a string; nil in stream mode), trailers (chunked
bodies), url (the final URL, parsed), redirects (how many were followed).
While the body arrives the promise emits "progress" (bytes received, total
or nil when the length is unknown). In stream mode the promise is fulfilled
with the head; read the body with res:read() or res:chunks(); res.done is a
promise fulfilled with the byte count at the end of the body, emitting the
same "progress" events. ]]
function M.request(opts)
  local o = check_options(opts, 2)
  return spawn(request_task, o)
end

--- http.get(url [, opts]) -> promise of the response; opts as for request.
function M.get(url, opts)
  local o = {}
  if opts ~= nil then
    if type(opts) ~= "table" then error("http.get: options must be a table", 2) end
    for k, v in next, opts do o[k] = v end
  end
  o.url = url
  o.method = o.method or "GET"
  return spawn(request_task, check_options(o, 2))
end

M.DEFAULTS = DEFAULTS
M.Response = Response
M.resolve_location = resolve_location
return M
