-- tide.redis: a Redis client (RESP2, and RESP3 with protocol = 3).
--
-- Owns the client side of RESP2 over a tide stream (TCP, TLS through
-- tide.tls, or any stream a `transport` function gives): connecting with
-- AUTH, SELECT and CLIENT SETNAME, commands as promises with their
-- replies mapped to Lua (tide.redis.resp), automatic pipelining, explicit
-- pipelines and MULTI/EXEC transactions, pub/sub subscriptions and
-- blocking commands on connections of their own, a time limit on replies
-- and reconnection.
--
-- One connection carries the commands of every task. A command is
-- encoded (one C call, tide.resp_encode) and written at once; the stream
-- holds the small writes of a turn of the loop together (docs/io.md,
-- "Writing"), so commands issued by many tasks before they yield leave in
-- one system call. Replies come back in order: a FIFO of waiting entries
-- (a promise, or a batch of an explicit pipeline) matches them, the plain
-- replies of a read in one loop over what tide.resp parsed in one call. A reader task reads while replies are
-- awaited and sleeps on a promise otherwise, so an idle client keeps no
-- process alive.
--
--   local redis = require "tide.redis"
--   local r <close> = redis.connect("redis://127.0.0.1:6379/0"):await()
--   r:set("k", "v"):await()
--   print(r:get("k"):await())
--
-- See docs/redis.md.

local tide = require "tide"
local resp = require "tide.redis.resp"

local find, upper, lower, format, gsub = string.find, string.upper, string.lower,
  string.format, string.gsub
local concat = table.concat
local type, tostring, tonumber, error, pcall, select, setmetatable, getmetatable, pairs =
  type, tostring, tonumber, error, pcall, select, setmetatable, getmetatable, pairs
local mtype, min = math.type, math.min

local promise, spawn, now, sleep, tide_error, Error =
  tide.promise, tide.spawn, tide.now, tide.sleep, tide.error, tide.Error
local encode, null = resp.encode, resp.null
local encode_c = tide.resp_encode

local M = { null = null, resp = resp }

--------------------------------------------------------------------------
-- Options.

--[[ Options of redis.connect (a table, or a URL string that fills one:
     redis://[[username]:password@]host[:port][/db][?option=value&...],
     rediss:// for TLS; options in the query string are the numeric and
     boolean ones below):
  url               a URL as above; other options given with it win
  host              "127.0.0.1"
  port              6379
  username          ACL user name (AUTH username password)
  password          AUTH password
  db                database number to SELECT (0)
  name              a name for CLIENT SETNAME
  tls               true or a table of tide.tls options (ca, verify, ...,
                    servername) to connect over TLS
  transport         a function returning a stream, or a promise of one,
                    called at each connection instead of connecting to
                    host:port (tests, Unix sockets, tunnels)
  connect_timeout   seconds to connect and to run AUTH/SELECT (10)
  timeout           seconds a reply may take while commands wait for one:
                    past it the connection is dropped as dead (ETIMEDOUT).
                    nil (default): no limit
  protocol          2 (RESP2, default) or 3 (RESP3: HELLO 3 on connecting;
                    maps come as tables, doubles as floats, booleans)
  reconnect         false, or {attempts = 3, delay = 0.05, max_delay = 2}:
                    see docs/redis.md, "Reconnection"
  max_bulk, max_array, max_depth, max_line
                    limits of the reply parser (tide.redis.resp)
]]
local DEFAULTS = {
  host = "127.0.0.1", port = 6379, connect_timeout = 10,
}
local RECONNECT = { attempts = 3, delay = 0.05, max_delay = 2 }
local KNOWN = {
  url = true, host = true, port = true, username = true, password = true, db = true,
  name = true, tls = true, transport = true, connect_timeout = true, timeout = true,
  reconnect = true, protocol = true, max_bulk = true, max_array = true, max_depth = true, max_line = true,
}

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parses a redis:// or rediss:// URL into `o`. Raises on a bad one.
local function parse_url(url, o, level)
  local scheme, rest = url:match("^(rediss?)://(.*)$")
  if not scheme then error("redis.connect: not a redis:// or rediss:// URL: " .. url, level + 1) end
  local query
  rest, query = rest:match("^([^?]*)%??(.*)$")
  local userinfo, hostport, path = rest:match("^([^@/]*)@([^/]*)(.*)$")
  if not userinfo then hostport, path = rest:match("^([^/]*)(.*)$") end
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    if user then
      if user ~= "" then o.username = unescape(user) end
      o.password = unescape(pass)
    elseif userinfo ~= "" then
      o.password = unescape(userinfo)  -- redis://secret@host: a password alone
    end
  end
  local host, port = hostport:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host then error("redis.connect: bad host in URL: " .. url, level + 1) end
  if host ~= "" then o.host = host end
  if port ~= "" then o.port = tonumber(port) end
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db then error("redis.connect: bad database in URL: " .. url, level + 1) end
    o.db = tonumber(db)
  end
  if scheme == "rediss" and o.tls == nil then o.tls = true end
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    k, v = unescape(k), unescape(v)
    if not KNOWN[k] or k == "url" or k == "transport" or k == "tls" then
      error("redis.connect: unknown option '" .. k .. "' in URL", level + 1)
    end
    o[k] = tonumber(v) or (v == "true" and true) or (v == "false" and false) or v
  end
end

local function check_seconds(o, k, level)
  local v = o[k]
  if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge) then
    error("redis.connect: " .. k .. " must be a positive number of seconds", level + 1)
  end
end

-- Checks and completes the options of a connection. Raises on misuse.
local function check_options(opts, level)
  if type(opts) == "string" then opts = { url = opts } end
  if type(opts) ~= "table" then error("redis.connect: options must be a URL or a table", level + 1) end
  local o = {}
  for k in pairs(opts) do
    if not KNOWN[k] then error("redis.connect: unknown option '" .. tostring(k) .. "'", level + 1) end
  end
  if opts.url ~= nil then
    if type(opts.url) ~= "string" then error("redis.connect: url must be a string", level + 1) end
    parse_url(opts.url, o, level + 1)
  end
  for k, v in pairs(opts) do if k ~= "url" then o[k] = v end end
  for k, v in pairs(DEFAULTS) do if o[k] == nil then o[k] = v end end
  if mtype(o.port) ~= "integer" or o.port < 1 or o.port > 65535 then
    error("redis.connect: port must be an integer in 1..65535", level + 1)
  end
  if type(o.host) ~= "string" then error("redis.connect: host must be a string", level + 1) end
  if o.db ~= nil and (mtype(o.db) ~= "integer" or o.db < 0) then
    error("redis.connect: db must be a non-negative integer", level + 1)
  end
  for _, k in ipairs{ "username", "password", "name" } do
    if o[k] ~= nil and type(o[k]) ~= "string" then error("redis.connect: " .. k .. " must be a string", level + 1) end
  end
  if o.transport ~= nil and type(o.transport) ~= "function" then
    error("redis.connect: transport must be a function", level + 1)
  end
  if o.tls ~= nil and o.tls ~= false and o.tls ~= true and type(o.tls) ~= "table" then
    error("redis.connect: tls must be true or a table of tide.tls options", level + 1)
  end
  if o.protocol ~= nil and o.protocol ~= 2 and o.protocol ~= 3 then
    error("redis.connect: protocol must be 2 or 3", level + 1)
  end
  check_seconds(o, "connect_timeout", level + 1)
  check_seconds(o, "timeout", level + 1)
  local rc = o.reconnect
  if rc == nil or rc == true then
    o.reconnect = RECONNECT
  elseif rc ~= false then
    if type(rc) ~= "table" then error("redis.connect: reconnect must be false or a table", level + 1) end
    local r = {}
    for k, v in pairs(RECONNECT) do
      local x = rc[k]
      if x == nil then x = v end
      if type(x) ~= "number" or x ~= x or x < 0 or (k == "attempts" and mtype(x) ~= "integer") then
        error("redis.connect: reconnect." .. k .. " must be a non-negative number", level + 1)
      end
      r[k] = x
    end
    o.reconnect = r
  end
  o.limits = { max_bulk = o.max_bulk, max_array = o.max_array, max_depth = o.max_depth, max_line = o.max_line }
  resp.parser(o.limits)  -- checks them
  return o
end

--------------------------------------------------------------------------
-- Connecting: a stream, then AUTH, SELECT and CLIENT SETNAME.

local function remaining(deadline)
  local left = deadline - now()
  if left <= 0 then error(tide_error("ETIMEDOUT", "timed out connecting to redis"), 0) end
  return left
end

-- Opens a stream to the server of `o` and runs the commands that set the
-- connection up. Returns the stream and its parser. Raises what failed.
local function establish(o)
  local deadline = now() + o.connect_timeout
  local s
  if o.transport then
    s = o.transport()
    if tide.is_promise(s) then s = tide.timeout(s, remaining(deadline)):await() end
  elseif o.tls then
    local tls = require "tide.tls"
    local topts = { timeout = remaining(deadline) }
    if type(o.tls) == "table" then for k, v in pairs(o.tls) do topts[k] = v end end
    s = tls.connect(o.host, o.port, topts):await()
  else
    s = tide.tcp.connect(o.host, o.port, { timeout = remaining(deadline) }):await()
  end
  local parser = resp.parser(o.limits)
  local setup = {}
  if o.protocol == 3 then
    local hello = { "HELLO", "3" }
    if o.password then
      hello[3], hello[4], hello[5] = "AUTH", o.username or "default", o.password
    end
    if o.name then hello[#hello + 1] = "SETNAME"; hello[#hello + 1] = o.name end
    setup[1] = hello
  else
    if o.password then
      setup[#setup + 1] = o.username and { "AUTH", o.username, o.password } or { "AUTH", o.password }
    end
    if o.name then setup[#setup + 1] = { "CLIENT", "SETNAME", o.name } end
  end
  if o.db and o.db ~= 0 then setup[#setup + 1] = { "SELECT", o.db } end
  if #setup > 0 then
    local ok, err = pcall(function()
      local out = {}
      for i, c in ipairs(setup) do out[i] = encode(c, #c) end
      s:write(out)
      for _ = 1, #setup do
        local done, v = parser:next()
        while not done do
          local data = s:read(remaining(deadline)):await()
          if data == nil then error(tide_error("ECONNRESET", "connection closed by the server during setup"), 0) end
          parser:feed(data)
          done, v = parser:next()
        end
        if getmetatable(v) == Error then error(v, 0) end
      end
    end)
    if not ok then s:close(0); error(err, 0) end
  end
  return s, parser
end

--------------------------------------------------------------------------
-- The client.

local Client = {}
local mt = { __name = "tide.redis.client" }

local function closed_error()
  return tide_error("ECONNABORTED", "redis client closed")
end

-- Entries waiting for replies: a promise (one reply), or a batch table
-- {p =, n =, i =, res =, finish =} collecting `n` replies, a key of
-- `batches` (a table lookup tells them apart without a call to type()).
local batches = setmetatable({}, { __mode = "k" })
local function reject_entry(e, err)
  if type(e) == "table" then e.p:reject(err) else e:reject(err) end
end

-- Stops the reply-timeout watchdog (below) unless it is the one calling.
local function stop_watchdog(self)
  local w = self.watcher
  if w and w ~= tide.current() then w:cancel() end
  self.watcher, self.watching = false, false
end

-- The connection of generation `gen` is gone with `err`: rejects what
-- waited for its replies and decides what comes next.
local function lost(self, gen, err)
  if self.gen ~= gen then return end
  stop_watchdog(self)
  self.gen = gen + 1
  local s = self.stream
  self.stream, self.parser = false, false
  if s then s:close(0) end
  local pending = self.pending
  self.pending = { first = 1, last = 0 }
  local idle = self.idle
  if idle then self.idle = false; idle:resolve() end
  for i = pending.first, pending.last do reject_entry(pending[i], err) end
  if self.state ~= "closed" then
    if self.opts.reconnect then
      self.state = "down"
    else
      self.state, self.broken = "broken", err
    end
  end
end

-- Reads replies on the connection of generation `gen` while some are
-- awaited; matches them to the waiting entries in order.
local function reader(self, gen, s, parser)
  local pending = self.pending
  local ok, err = pcall(function()
    while true do
      if pending.first > pending.last then
        -- Empty: start the indices again, so the FIFO keeps to the array
        -- part of its table instead of sliding through the hash part; no
        -- reply is due, so no timer either.
        pending.first, pending.last = 1, 0
        if self.watcher then stop_watchdog(self) end
        local w = promise()
        self.idle = w
        w:await()
        if self.gen ~= gen then return end
      end
      local data = s:read():await()
      if data == nil then
        error(tide_error("ECONNRESET", "connection closed by the server"), 0)
      end
      self.progress = now()
      parser:feed(data)
      while true do
        -- Plain replies parsed ahead in one call (no error, no push): the
        -- common case, matched without looking at them.
        local q, from, to = parser:plain()
        if q then
          local first = pending.first
          for k = from, to do
            local v = q[k]
            local e = pending[first]
            if e == nil then
              pending.first = first  -- what lost() rejects starts there
              error(tide_error("EPROTO", "a reply nobody asked for"), 0)
            end
            if not batches[e] then
              pending[first] = nil
              first = first + 1
              if v == null then v = nil end
              e:resolve(v)
            else
              local j = e.i + 1
              e.i = j
              e.res[j] = v
              if j == e.n then
                pending[first] = nil
                first = first + 1
                e.finish(e)  -- settles a promise: its callbacks run later
              end
            end
          end
          pending.first = first
          goto next_reply
        end
        local done, v, push = parser:next()
        if not done then break end
        if push then goto next_reply end  -- RESP3 pushes (tracking...) are not replies
        local first = pending.first
        local e = pending[first]
        if e == nil then error(tide_error("EPROTO", "a reply nobody asked for"), 0) end
        if not batches[e] then
          pending[first] = nil
          pending.first = first + 1
          if type(v) == "table" and getmetatable(v) == Error then e:reject(v) else e:resolve(v) end
        else
          local i = e.i + 1
          e.i = i
          if v == nil then v = null end
          e.res[i] = v
          if i == e.n then
            pending[first] = nil
            pending.first = first + 1
            e.finish(e)
          end
        end
        ::next_reply::
      end
    end
  end)
  if not ok then lost(self, gen, err) end
end

-- Drops the connection when a reply takes longer than the `timeout`
-- option while commands wait; runs while some do, on whichever
-- connection the client has.
local function watchdog(self, timeout)
  while self.state == "ready" and self.pending.first <= self.pending.last do
    local left = self.progress + timeout - now()
    if left <= 0 then
      lost(self, self.gen, tide_error("ETIMEDOUT", format("no reply from redis in %g s", timeout)))
      break
    end
    sleep(left):await()
  end
  self.watcher, self.watching = false, false
end

-- Queues entry `e` for the next reply and writes `bytes`, on the ready
-- connection.
local function put(self, bytes, e)
  local pending = self.pending
  local last = pending.last + 1
  if last == pending.first then  -- nothing was waiting
    self.progress = now()
    local idle = self.idle
    if idle then
      -- The connection was idle: a server that closed it meanwhile shows
      -- as the end of the stream already read ahead.
      local probe = self.stream:read()
      if probe:state() == "pending" then
        probe:cancel()
      else
        local gen = self.gen
        local ok, data = probe:result()
        lost(self, gen, ok and data == nil and tide_error("ECONNRESET", "connection closed by the server")
          or ok and tide_error("EPROTO", "bytes nobody asked for") or data)
        return false
      end
      self.idle = false
      idle:resolve()
    end
    if self.opts.timeout and not self.watching then
      self.watching = true
      self.watcher = spawn(watchdog, self, self.opts.timeout)
    end
  end
  pending.last = last
  pending[last] = e
  self.stream_write(self.stream, bytes)
  return true
end

local connect_loop

-- Sends the command bytes `bytes` whose replies entry `e` awaits: now on
-- the ready connection, or once connected.
local function send(self, bytes, e, level)
  local st = self.state
  if st == "ready" and put(self, bytes, e) then return end
  st = self.state
  if st == "closed" then error("attempt to use a closed redis client", level + 1) end
  if st == "broken" then reject_entry(e, self.broken); return end
  local backlog = self.backlog
  backlog[#backlog + 1] = bytes
  backlog[#backlog + 1] = e
  if st == "down" then
    self.state = "connecting"
    spawn(connect_loop, self)
  end
end

-- The connection is up: starts its reader and sends what waited.
local function ready(self, s, parser)
  self.gen = self.gen + 1
  -- the stream's write method, looked up once (a stream's methods are
  -- found by a C __index)
  self.stream, self.parser, self.state, self.stream_write = s, parser, "ready", s.write
  spawn(reader, self, self.gen, s, parser)
  local backlog = self.backlog
  self.backlog = {}
  for i = 1, #backlog, 2 do
    if self.state ~= "ready" or not put(self, backlog[i], backlog[i + 1]) then
      send(self, backlog[i], backlog[i + 1], 1)
    end
  end
end

-- Connects again after a loss, as the `reconnect` option says; commands
-- wait in the backlog meanwhile.
function connect_loop(self)
  local rc = self.opts.reconnect
  local delay, err = rc.delay, nil
  for attempt = 1, rc.attempts + 1 do
    if attempt > 1 then
      sleep(delay):await()
      delay = min(delay * 2, rc.max_delay)
    end
    if self.state == "closed" then return end
    local ok, s, parser = pcall(establish, self.opts)
    if self.state == "closed" then
      if ok then s:close(0) end
      return
    end
    if ok then
      self.reconnects = self.reconnects + 1
      return ready(self, s, parser)
    end
    err = s
  end
  self.state = "down"
  local backlog = self.backlog
  self.backlog = {}
  for i = 2, #backlog, 2 do reject_entry(backlog[i], err) end
end

local function new(o)
  return setmetatable({
    opts = o, state = "down", gen = 0, stream = false, parser = false,
    pending = { first = 1, last = 0 }, backlog = {}, idle = false, progress = 0, stream_write = false,
    watching = false, watcher = false, broken = false, reconnects = 0, spare = {},
  }, mt)
end

-- redis.connect(url_or_opts) -> promise of a connected client.
local function connect_checked(o)
  return spawn(function()
    local self = new(o)
    ready(self, establish(o))
    return self
  end)
end

function M.connect(opts)
  return connect_checked(check_options(opts, 2))
end

-- The commands that block the connection they run on: they run on
-- connections of their own.
local BLOCKING = {
  BLPOP = true, BRPOP = true, BRPOPLPUSH = true, BLMOVE = true, BLMPOP = true,
  BZPOPMIN = true, BZPOPMAX = true, BZMPOP = true, WAIT = true, WAITAOF = true,
}
local SUBSCRIBING = { SUBSCRIBE = true, PSUBSCRIBE = true, SSUBSCRIBE = true, MONITOR = true }
-- What each command name needs: false (nothing special), "block", "sub".
local routes = {}
local function route(name)
  local r = routes[name]
  if r == nil then
    local u = upper(name)
    r = BLOCKING[u] and "block" or SUBSCRIBING[u] and "sub" or false
    if u == "XREAD" or u == "XREADGROUP" then r = "xread" end
    routes[name] = r
  end
  return r
end

local blocking_call

-- r:call(name, ...) -> promise of the reply.
function Client:call(name, ...)
  local r = routes[name]  -- only names, strings, are keys
  if r == nil then
    if type(name) ~= "string" then error("bad argument #1 to 'call' (command name expected)", 2) end
    r = route(name)
  end
  local bytes
  if r then
    if r == "sub" then error("redis: use r:subscribe() and r:psubscribe() for " .. name, 2) end
    local args, n = { name, ... }, select("#", ...) + 1
    if r == "block" then return blocking_call(self, args, n) end
    for i = 2, n do  -- XREAD blocks only with BLOCK
      if type(args[i]) == "string" and upper(args[i]) == "BLOCK" then return blocking_call(self, args, n) end
    end
    bytes = encode(args, n, 2)
  else
    bytes = encode_c(name, ...)  -- the common case: one call, no table
    if not bytes then encode({ name, ... }, select("#", ...) + 1, 2) end  -- raises, naming the argument
  end
  local p = promise()
  send(self, bytes, p, 2)
  return p
end

-- Runs a blocking command on a connection of its own, taken from the
-- client's spare ones or made for it (no reply timeout, no reconnection).
function blocking_call(self, args, n)
  if self.state == "closed" then error("attempt to use a closed redis client", 3) end
  local bytes = encode(args, n, 3)  -- raises on bad arguments
  return spawn(function()
    local spare = self.spare
    local c = spare[#spare]
    if c then
      spare[#spare] = nil
    else
      local o = {}
      for k, v in pairs(self.opts) do o[k] = v end
      o.timeout, o.reconnect = nil, false
      c = new(o)
      ready(c, establish(o))
    end
    local p = promise()
    send(c, bytes, p, 1)
    local ok, v = pcall(tide.await, p)
    if ok and c.state == "ready" and #spare < 4 and self.state ~= "closed" then
      spare[#spare + 1] = c
    else
      c:close()  -- cancelled or failed: the connection may still be blocked
    end
    if not ok then error(v, 0) end
    return v
  end)
end

-- A batch of commands collected by fn(b) with b:call(...) and the sugar.
local Batch = {}
local batch_mt = { __name = "tide.redis.batch" }
function Batch:call(...)
  local n = select("#", ...)
  local parts = self.parts
  parts[#parts + 1] = encode({ ... }, n, 2)
  return #parts
end

local function collect(fn, level)
  if type(fn) ~= "function" then error("bad argument #1 (function expected)", level + 1) end
  local b = setmetatable({ parts = {} }, batch_mt)
  fn(b)
  return b.parts
end

-- r:pipeline(fn) -> promise of the replies of the commands fn(p) issued
-- on p, in a table {n = count, ...}: nil replies as redis.null, error
-- replies as error objects (not raised).
function Client:pipeline(fn)
  local parts = collect(fn, 2)
  local n = #parts
  local p = promise()
  if n == 0 then p:resolve({ n = 0 }); return p end
  local e = { p = p, n = n, i = 0, res = { n = n }, finish = function(e) e.p:resolve(e.res) end }
  batches[e] = true
  send(self, concat(parts), e, 2)
  return p
end

local MULTI, EXEC = encode({ "MULTI" }, 1), encode({ "EXEC" }, 1)

local function finish_tx(e)
  local res, n = e.res, e.n
  local result = res[n]
  if getmetatable(result) == Error then
    -- EXECABORT: tell which queued commands were refused.
    local errors = {}
    for i = 2, n - 1 do if getmetatable(res[i]) == Error then errors[#errors + 1] = res[i] end end
    result.errors = errors
    if errors[1] then result.message = result.message .. " (" .. tostring(errors[1]) .. ")" end
    return e.p:reject(result)
  end
  if getmetatable(res[1]) == Error then return e.p:reject(res[1]) end
  if result == null then return e.p:resolve(nil) end  -- WATCH: a watched key changed
  e.p:resolve(result)
end

-- r:transaction(fn) -> promise of EXEC's replies (a table, error replies
-- as error objects), or nil when a WATCHed key changed; rejected when
-- Redis refused a command (EXECABORT, with .errors).
function Client:transaction(fn)
  local parts = collect(fn, 2)
  local n = #parts
  local p = promise()
  local e = { p = p, n = n + 2, i = 0, res = {}, finish = finish_tx }
  batches[e] = true
  send(self, MULTI .. concat(parts) .. EXEC, e, 2)
  return p
end

-- r:duplicate() -> promise of a new client with the same options.
function Client:duplicate()
  return connect_checked(self.opts)
end

-- r:close(): closes the connection at once; commands still waiting for a
-- reply reject with ECONNABORTED. Closing again does nothing.
function Client:close()
  if self.state == "closed" then return end
  self.state = "closed"
  local backlog = self.backlog
  self.backlog = {}
  lost(self, self.gen, closed_error())
  for i = 2, #backlog, 2 do reject_entry(backlog[i], closed_error()) end
  for _, c in ipairs(self.spare) do c:close() end
  self.spare = {}
end

-- r:quit() -> promise fulfilled once the server said goodbye: the
-- replies of earlier commands come first.
function Client:quit()
  local p = self:call("QUIT")
  return p:finally(function() self:close() end)
end

function Client:status()
  return self.state
end

mt.__close = Client.close
mt.__tostring = function(self)
  local o = self.opts
  return format("tide.redis.client: %s:%d (%s)", o.transport and "transport" or o.host,
    o.port, self.state)
end

--------------------------------------------------------------------------
-- Command sugar: r:get(k) is r:call("GET", k); r:client_setname(x) is
-- r:call("CLIENT", "SETNAME", x).

local function sugar(methods, key)
  if type(key) ~= "string" or not find(key, "^%a[%w_]*$") then return nil end
  local cmd, subcmd = key:match("^(%a%w*)_(.+)$")
  local f
  if cmd then
    cmd, subcmd = upper(cmd), upper(subcmd)
    f = function(self, ...) return self:call(cmd, subcmd, ...) end
  else
    cmd = upper(key)
    f = function(self, ...) return self:call(cmd, ...) end
  end
  methods[key] = f
  return f
end

-- Methods are found in the methods table without a call; a name it
-- lacks becomes a command there once.
mt.__index = Client
batch_mt.__index = Batch
setmetatable(Client, { __index = sugar })
setmetatable(Batch, { __index = sugar })

--------------------------------------------------------------------------
-- Pub/sub: a subscription owns a connection of its own.

local Sub = {}
Sub.__index = Sub
Sub.__name = "tide.redis.subscription"

local function sub_end(self, err)
  if self.closed then return end
  self.closed = true
  self.err = err or false
  self.stream:close(0)
  self.queue:close()
  for _, w in ipairs(self.waiters) do
    if err then w.p:reject(err) else w.p:resolve() end
  end
  self.waiters = {}
end

-- Reads what the server pushes: messages go to the queue, confirmations
-- settle the subscribe/unsubscribe calls in order.
local function sub_reader(self)
  local s, parser = self.stream, self.parser
  local ok, err = pcall(function()
    while true do
      local done, v = parser:next()
      while not done do
        local data = s:read():await()
        if data == nil then
          if self.closed then return end
          error(tide_error("ECONNRESET", "connection closed by the server"), 0)
        end
        parser:feed(data)
        done, v = parser:next()
      end
      if getmetatable(v) == Error then error(v, 0) end
      if type(v) ~= "table" or type(v[1]) ~= "string" then
        error(tide_error("EPROTO", "unexpected reply in subscribed mode"), 0)
      end
      local kind = lower(v[1])
      if kind == "message" then
        self.queue:put({ kind = kind, channel = v[2], data = v[3] })
      elseif kind == "pmessage" then
        self.queue:put({ kind = kind, pattern = v[2], channel = v[3], data = v[4] })
      elseif kind == "pong" then
        -- an answer to a PING
      else
        local set = (kind == "subscribe" or kind == "unsubscribe") and self.channels or self.patterns
        if kind == "subscribe" or kind == "psubscribe" then set[v[2]] = true
        elseif v[2] ~= null then set[v[2]] = nil end
        local w = self.waiters[1]
        if w then
          w.left = w.left - 1
          if w.left == 0 then table.remove(self.waiters, 1); w.p:resolve(v[3]) end
        end
        if v[3] == 0 then return sub_end(self) end
      end
    end
  end)
  if not ok then sub_end(self, err) end
end

local function sub_send(self, cmd, list, level)
  if self.closed then error("attempt to use a closed redis subscription", level + 1) end
  local args, n = { cmd }, #list
  for i = 1, n do args[i + 1] = list[i] end
  local p = promise()
  if n == 0 then p:resolve(); return p end
  self.waiters[#self.waiters + 1] = { p = p, left = n }
  self.stream:write(encode(args, n + 1, level + 1))
  return p
end

local function names(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  return list
end

-- sub:subscribe(ch, ...), sub:psubscribe(pattern, ...) -> promise
-- fulfilled once the server confirmed them.
function Sub:subscribe(...) return sub_send(self, "SUBSCRIBE", { ... }, 2) end
function Sub:psubscribe(...) return sub_send(self, "PSUBSCRIBE", { ... }, 2) end
-- sub:unsubscribe([ch, ...]), sub:punsubscribe([pattern, ...]): none
-- named means all of them. Once nothing is subscribed the subscription
-- ends: next() gives nil after the messages already queued.
function Sub:unsubscribe(...)
  local list = select("#", ...) > 0 and { ... } or names(self.channels)
  return sub_send(self, "UNSUBSCRIBE", list, 2)
end
function Sub:punsubscribe(...)
  local list = select("#", ...) > 0 and { ... } or names(self.patterns)
  return sub_send(self, "PUNSUBSCRIBE", list, 2)
end

-- sub:next([timeout]) -> promise of the next message {kind =, channel =,
-- data =, pattern =}, nil once the subscription ended; rejected with the
-- error that ended it when the connection was lost.
function Sub:next(timeout)
  return self.queue:get(timeout):next(function(v)
    if v == nil and self.err then error(self.err, 0) end
    return v
  end)
end

-- for msg in sub:messages() do ... end: next() until the end (raises the
-- error that ended it).
function Sub:messages()
  return function() return self:next():await() end
end

function Sub:close()
  if not self.closed then sub_end(self) end
end
Sub.__close = Sub.close
Sub.__tostring = function(self)
  return format("tide.redis.subscription: %d channels, %d patterns",
    #names(self.channels), #names(self.patterns))
end

local function subscribe(self, cmd, list)
  if self.state == "closed" then error("attempt to use a closed redis client", 3) end
  if #list == 0 then error("redis: " .. lower(cmd) .. " needs at least one name", 3) end
  for i, v in ipairs(list) do
    if type(v) ~= "string" then error(format("bad argument #%d to '%s' (string expected)", i, lower(cmd)), 3) end
  end
  local o = self.opts
  return spawn(function()
    local s, parser = establish(o)
    local sub = setmetatable({
      stream = s, parser = parser, queue = tide.queue(), channels = {}, patterns = {},
      waiters = {}, closed = false, err = false,
    }, Sub)
    local p = sub_send(sub, cmd, list, 1)
    spawn(sub_reader, sub)
    p:await()
    return sub
  end)
end

-- r:subscribe(ch, ...), r:psubscribe(pattern, ...) -> promise of a
-- subscription on a connection of its own, once the server confirmed.
function Client:subscribe(...) return subscribe(self, "SUBSCRIBE", { ... }) end
function Client:psubscribe(...) return subscribe(self, "PSUBSCRIBE", { ... }) end

M.Client, M.mt, M.Subscription = Client, mt, Sub
M.parse_options = function(opts) return check_options(opts, 2) end
return M
