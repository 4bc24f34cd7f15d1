-- tide.tls: TLS streams over any stream, on OpenSSL.
--
-- Owns the pumping between a transport (any tide stream: tcp, pipe, the
-- in-memory pair, another TLS stream) and an OpenSSL session of tide.ssl
-- (bindings/tls.c), which holds the TLS state in memory BIOs. A TLS
-- stream is a tide.stream (tide.stream(impl)): reads, writes, limits,
-- shutdown and close behave as on a TCP connection. Writes are encrypted
-- as they come and go to the transport, whose backpressure they inherit;
-- a reader task per stream decrypts what the transport reads and pushes
-- it to the stream, waiting while the stream's buffer is full.
--
--   local tls = require "tide.tls"
--   local s <close> = tls.connect("example.com", 443):await()
--   s:write("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
--   print(s:read_all():await())
--
-- See docs/tls.md.

local tide = require "tide"
local ssl = tide.ssl

local pairs, type, error, pcall, tostring = pairs, type, error, pcall, tostring
local setmetatable, rawget = setmetatable, rawget
local concat, sort = table.concat, table.sort

-- Seconds a handshake may take when not told otherwise.
local HANDSHAKE_TIMEOUT = 10

local function ignore() end

-- The options that make a context (tide.ssl.context), as opposed to the
-- options of the connection (host, port, timeout, ...).
local CONTEXT_KEYS = {
  cert = true, key = true, ca = true, verify = true, verify_client = true, alpn = true,
  min_version = true, max_version = true, ciphers = true, ciphersuites = true, sni = true,
}

-- Contexts made from options, by their options: loading the system's
-- certificates costs milliseconds, so connections with the same settings
-- share one context.
local cache = setmetatable({}, { __mode = "v" })

-- A stable text of the options `opts` (those in `only`, when given): for
-- the cache of contexts, and for pools of TLS connections (tide.http). nil
-- when a value has no such text (a table other than the alpn list).
local function options_key(opts, only)
  local parts = {}
  for k, v in pairs(opts) do
    if not only or only[k] then
      if type(v) == "table" then
        if k ~= "alpn" then return nil end
        v = concat(v, "\0")
      end
      parts[#parts + 1] = tostring(k) .. "=" .. tostring(v)
    end
  end
  sort(parts)
  return concat(parts, "\1")
end

local context

-- [options] -> tide.ssl context: opts.context when given, else one made
-- from the context options in `opts` (shared with equal options).
local function get_context(opts)
  if opts.context ~= nil then return opts.context end
  local key = options_key(opts, CONTEXT_KEYS)
  local ctx = key and cache[key]
  if ctx == nil then
    ctx = context(opts)
    if key then cache[key] = ctx end
  end
  return ctx
end

--[[ tls.context(opts) -> a context, to share between connections.
  cert, key      certificate chain and private key: file names or PEM text
  ca             trusted certificates: a file, a hashed directory or PEM
                 text (default: OpenSSL's default paths, SSL_CERT_FILE and
                 SSL_CERT_DIR)
  verify         a client verifies the server (default true)
  verify_client  a server asks for a client certificate: true (required),
                 "optional", false (default)
  alpn           protocols to offer (client) or accept (server), in order
  min_version    "TLSv1.2" (default) or "TLSv1.3"; max_version likewise
  ciphers        the TLS 1.2 cipher list; ciphersuites: TLS 1.3's
  sni            server: server name -> context or options, chosen by the
                 name the client asks for ("*.example.com" matches one
                 label); options tables inherit every option but cert and
                 key
]]
function context(opts)
  if type(opts) ~= "table" then error("tls.context: options table expected", 2) end
  local o = opts
  if opts.sni then
    o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.sni = {}
    for name, sub in pairs(opts.sni) do
      if type(sub) == "table" then
        local copy = {}
        for k in pairs(CONTEXT_KEYS) do
          if sub[k] ~= nil then copy[k] = sub[k]
          elseif k ~= "cert" and k ~= "key" and k ~= "sni" then copy[k] = opts[k] end
        end
        sub = ssl.context(copy)
      end
      o.sni[name] = sub
    end
  end
  return ssl.context(o)
end

-- The next bytes of `transport` (nil at the end); raises its errors, and
-- "attempt to use a closed stream" when it was closed meanwhile.
local function read(transport, timeout)
  return transport:read(timeout):await()
end

-- Raises ETIMEDOUT for a handshake that took too long.
local function timed_out()
  error(tide.error("ETIMEDOUT", "TLS handshake timed out"), 0)
end

-- Runs the handshake of `sess` over `transport` until done; raises an
-- ETLS error (after sending the alert) or ETIMEDOUT.
local function handshake(transport, sess, timeout)
  local deadline = timeout and tide.now() + timeout
  local done, out, alert = sess:handshake()
  while true do
    if done == nil then
      if #alert > 0 then transport:write(alert):catch(ignore) end
      error(out, 0)
    end
    if #out > 0 then transport:write(out):catch(ignore) end  -- a failure shows on the read
    if done then return end
    local left = deadline and deadline - tide.now()
    if left and left <= 0 then timed_out() end
    local ok, data = pcall(read, transport, left)
    if not ok then
      if tide.is_error(data, "ETIMEDOUT") then timed_out() end
      error(data, 0)
    end
    if data == nil then
      error(tide.error("ETLS", "handshake failed: the peer closed the connection"), 0)
    end
    done, out, alert = sess:handshake(data)
  end
end

-- The reader task of a TLS stream: transport -> session -> source.
local function pump(transport, sess, source)
  while not source.closed do
    local ok, data = pcall(read, transport)
    if not ok or data == nil then  -- an error, or the end (with or without close_notify)
      source:finish(data)
      return
    end
    local plain, out, eof = sess:decrypt(data)
    if plain == nil then  -- out is the error, eof the alert
      if #eof > 0 then transport:write(eof):catch(ignore) end
      source:finish(out)
      transport:close()
      return
    end
    if #out > 0 then transport:write(out):catch(ignore) end
    if #plain > 0 then source:push(plain):await() end
    if eof then
      source:finish()
      return
    end
  end
end

-- Encrypts `data` and writes its records to `transport`.
local function send_records(transport, sess, data)
  return transport:write(sess:encrypt(data))
end

-- The TLS stream over `transport` once `sess` finished its handshake.
local function open(transport, sess, opts)
  local info = sess:info()
  local impl = {
    kind = "tls",
    alpn = info.alpn,
    version = info.version,
    cipher = info.cipher,
    servername = info.servername,
    transport = transport,
  }
  function impl.write(data)
    local ok, p = pcall(send_records, transport, sess, data)
    if ok then return p end
    -- The session took `data` but its records were lost (not enough
    -- memory): the connection cannot go on; closing it tells the peer.
    transport:close()
    error(p, 0)
  end
  function impl.shutdown()  -- close_notify, then the transport's own end
    transport:write(sess:close_notify()):catch(ignore)
    return transport:shutdown()
  end
  function impl.close()
    if not transport.closed then
      transport:write(sess:close_notify()):catch(ignore)
      transport:close()
    end
  end
  function impl.peer_certificate() return sess:peer_certificate() end
  function impl.peername() return transport:peername() end
  function impl.sockname() return transport:sockname() end
  local stream, source = tide.stream(impl, opts)
  -- Records that came with the end of the handshake.
  local plain, out = sess:decrypt()
  if plain == nil then error(out, 0) end
  if #out > 0 then transport:write(out):catch(ignore) end
  if #plain > 0 then source:push(plain) end
  -- The session decrypts the transport's reads in C when both are tide
  -- streams; otherwise a task pumps them.
  if not sess:attach(transport, stream) then tide.spawn(pump, transport, sess, source) end
  return stream
end

-- Handshakes over `transport` and returns the TLS stream; closes the
-- transport when the handshake fails.
local function establish(transport, ctx, server, servername, timeout, opts)
  local sess = ctx:session(server, servername)
  local ok, err = pcall(handshake, transport, sess, timeout)
  if not ok then
    transport:close()
    sess:free()
    error(err, 0)
  end
  return open(transport, sess, opts)
end

-- Raises at once for a bad number of seconds (nil and false allowed).
local function check_seconds(v, name, level)
  if v and (type(v) ~= "number" or v ~= v or v < 0 or v == math.huge) then
    error(("tls: option '%s' must be a non-negative number of seconds"):format(name), level + 1)
  end
end

-- Raises at once unless `s` looks like a stream.
local function check_stream(s, level)
  local ok, r, w = pcall(function() return s.read, s.write end)
  if not ok or type(r) ~= "function" or type(w) ~= "function" then
    error("tls.wrap: stream expected, got " .. type(s), level + 1)
  end
end

-- The stream limits of `opts` (high_water, low_water, read_buffer).
local function limits(opts)
  return { high_water = opts.high_water, low_water = opts.low_water, read_buffer = opts.read_buffer }
end

--[[ tls.wrap(stream, opts) -> promise of a TLS stream over `stream` (STARTTLS).
  server             true: the server side (needs cert and key)
  servername         client: the name to send (SNI) and to verify
  handshake_timeout  seconds (default 10; false: none)
  context            a tls.context, or its options inline
]]
local server_context

local function wrap(stream, opts)
  opts = opts or {}
  check_stream(stream, 2)
  check_seconds(opts.handshake_timeout, "handshake_timeout", 2)
  if not opts.server and opts.servername == nil and opts.verify ~= false then
    error("tls.wrap: a client needs 'servername' (the name to verify), or verify = false", 2)
  end
  local ctx = opts.server and server_context(opts) or get_context(opts)
  local timeout = opts.handshake_timeout
  if timeout == nil then timeout = HANDSHAKE_TIMEOUT end
  return tide.spawn(establish, stream, ctx, opts.server and true or false,
                    not opts.server and opts.servername or nil, timeout or nil, limits(opts))
end

--[[ tls.connect(host, port [, opts]) -> promise of a TLS stream to host:port.
  servername   the name to send and verify (default: host; an IP address
               is checked against the certificate's IP addresses)
  timeout      seconds for the connection and the handshake together
  and the context options, or context =; and the tcp options.
]]
local function connect(host, port, opts)
  opts = opts or {}
  if type(host) ~= "string" then error("tls.connect: host must be a string", 2) end
  if math.type(port) ~= "integer" or port < 1 or port > 65535 then
    error("tls.connect: port must be an integer in 1..65535", 2)
  end
  check_seconds(opts.timeout, "timeout", 2)
  check_seconds(opts.handshake_timeout, "handshake_timeout", 2)
  local ctx = get_context(opts)
  return tide.spawn(function()
    local deadline = opts.timeout and tide.now() + opts.timeout
    local conn = tide.tcp.connect(host, port, {
      timeout = opts.timeout, nodelay = opts.nodelay, keepalive = opts.keepalive,
    }):await()
    local left = deadline and deadline - tide.now()
    if left == nil then left = opts.handshake_timeout or HANDSHAKE_TIMEOUT end
    return establish(conn, ctx, false, opts.servername or host, left, limits(opts))
  end)
end

-- The tcp options of listen/serve options.
local function tcp_opts(opts)
  return {
    host = opts.host, port = opts.port, backlog = opts.backlog, reuseport = opts.reuseport,
    ipv6only = opts.ipv6only, nodelay = opts.nodelay, keepalive = opts.keepalive,
  }
end

-- A server's context: it must have a certificate.
function server_context(opts)
  if opts.context == nil and (opts.cert == nil or opts.key == nil) then
    error("tls server: options 'cert' and 'key' (or 'context') expected", 3)
  end
  return get_context(opts)
end

--[[ tls.serve(opts, handler) -> server: as tide.tcp.serve, handler(tls_stream)
  runs in a task per connection once its handshake succeeded; a client
  whose handshake fails (or takes longer than handshake_timeout, default
  10 s) is dropped. Options: host, port, backlog, ..., the context
  options (cert, key, ...) or context =, handshake_timeout.
]]
local function serve(opts, handler)
  if type(handler) ~= "function" then error("tls.serve: handler function expected", 2) end
  local ctx = server_context(opts)
  local timeout = opts.handshake_timeout
  if timeout == nil then timeout = HANDSHAKE_TIMEOUT end
  local lim = limits(opts)
  return tide.tcp.serve(tcp_opts(opts), function(conn)
    local ok, s = pcall(establish, conn, ctx, true, nil, timeout or nil, lim)
    if not ok then
      if tide.is_cancelled(s) then error(s, 0) end
      return  -- a failed handshake is the client's problem
    end
    local stream <close> = s
    return handler(stream)
  end)
end

local Listener = {}
Listener.__index = function(self, k)
  local m = rawget(Listener, k)
  if m ~= nil then return m end
  return self.server[k]  -- host, port, closed
end
Listener.__name = "tide.tls.server"

-- The accept loop of tls.listen: each client handshakes in a task of its
-- own, and those that succeed wait in the queue for accept().
local function accept_loop(self)
  while true do
    local ok, conn = pcall(tide.await, self.server:accept())
    if not ok or conn == nil then break end
    tide.spawn(function()
      local done, s = pcall(establish, conn, self.ctx, true, nil, self.timeout, self.limits)
      if not done then return end
      if self.ready.closed or not pcall(tide.await, self.ready:put(s)) then s:close() end
    end)
  end
  self.ready:close()
end

-- server:accept([timeout]) -> promise of the next client whose handshake
-- succeeded (clients that fail theirs are dropped; handshakes run side by
-- side); nil once closed.
function Listener:accept(timeout)
  return self.ready:get(timeout)
end

function Listener:close(...)
  self.ready:close()
  return self.server:close(...)
end
Listener.__close = Listener.close
function Listener:__tostring() return "tide.tls.server: " .. tostring(self.server) end

-- tls.listen(opts) -> server with accept() and close(); options as serve.
local function listen(opts)
  local ctx = server_context(opts)
  check_seconds(opts.handshake_timeout, "handshake_timeout", 2)
  local timeout = opts.handshake_timeout
  if timeout == nil then timeout = HANDSHAKE_TIMEOUT end
  local self = setmetatable({
    server = tide.tcp.listen(tcp_opts(opts)), ctx = ctx, timeout = timeout or nil,
    limits = limits(opts), ready = tide.queue{ max = opts.backlog or 128 },
  }, Listener)
  tide.spawn(accept_loop, self)
  return self
end

return {
  context = context,
  connect = connect,
  wrap = wrap,
  serve = serve,
  listen = listen,
  openssl_version = ssl.openssl_version,
  options_key = options_key,
}
