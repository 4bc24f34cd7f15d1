-- tide.memory — an in-memory transport for tests: connected pairs of
-- streams (tide.stream) with the whole stream API, and controls that make
-- the wire misbehave on purpose.
--
--   local memory = require "tide.memory"
--   local a, b = memory.pair{ chunk = 1 }  -- what a writes, b reads, 1 byte at a time
--
-- Ownership: each end is a tide.stream whose impl.write hands the bytes to
-- the other end's source. A write with no control set goes straight to the
-- peer's source; with `chunk` or `latency`, the bytes go through the end's
-- queue, which a task (the pump, alive only while the queue holds bytes)
-- delivers piece by piece, a turn of the callback queue apart, each piece
-- at its due time on the runtime's clock. A write counts as queued (so it
-- weighs on the writer's high-water mark) until the peer buffered all of
-- it. The ends are kept in a weak table for the controls below.
local tide = require "tide"

local ends = setmetatable({}, { __mode = "k" })  -- stream -> its end

-- A generator of integers in [1, n] from `seed` (xorshift32): the same
-- seed cuts the same pieces on every run, whatever math.random does.
local function generator(seed)
  local x = math.tointeger(seed) or 1
  x = x & 0xffffffff
  if x == 0 then x = 0x9e3779b9 end
  return function(n)
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    return x % n + 1
  end
end

-- Sets the controls of end `e` from `opts` (see configure).
local function set_controls(e, opts)
  if opts.chunk ~= nil then
    local c = opts.chunk
    assert(c == false or c == "random" or (math.type(c) == "integer" and c > 0),
      "chunk must be a positive integer, \"random\" or false")
    e.chunk = c or nil
  end
  if opts.max_chunk ~= nil then
    assert(math.type(opts.max_chunk) == "integer" and opts.max_chunk > 0, "max_chunk must be a positive integer")
    e.max_chunk = opts.max_chunk
  end
  if opts.seed ~= nil or not e.random then e.random = generator(opts.seed or 1) end
  if opts.latency ~= nil then
    assert(type(opts.latency) == "number" and opts.latency >= 0, "latency must be a number >= 0")
    e.latency = opts.latency
  end
end

-- The size of the next piece when `rest` bytes are left to deliver.
local function cut(e, rest)
  local c = e.chunk
  if c == nil then return rest end
  if c == "random" then return e.random(math.min(rest, e.max_chunk)) end
  return math.min(c, rest)
end

-- One turn of the callback queue: lets the reader see each piece alone.
local function turn()
  return tide.resolved():next(function() end):await()
end

local function epipe()
  return tide.error("EPIPE", "broken pipe: the memory stream's peer is gone")
end

-- The pump of end `e`: delivers its queue to the peer, then ends.
local function pump(e)
  local dst = e.peer.src
  while e.queue[1] do
    local item = table.remove(e.queue, 1)
    local wait = item.due - tide.now()
    if wait > 0 then tide.sleep(wait):await() end
    if item.fin then
      if not e.peer.finished then e.peer.finished = true; dst:finish() end
    else
      local data, i = item.data, 1
      while i <= #data and not e.failed and not dst.closed do
        if e.chunk then turn() end
        local n = cut(e, #data - i + 1)
        local accepted = dst:push(data:sub(i, i + n - 1))
        i = i + n
        accepted:await()  -- the peer's read buffer has room again
      end
    end
    if e.failed or (not item.fin and dst.closed) then
      item.done:reject(e.failed or epipe())
    else
      item.done:resolve()
    end
  end
  e.pump = nil
end

-- Queues `item` ({data = ...} or {fin = true}) on end `e` and returns the
-- promise settled once it is delivered.
local function enqueue(e, item)
  item.due = tide.now() + e.latency
  item.done = tide.promise()
  e.queue[#e.queue + 1] = item
  if not e.pump then e.pump = tide.spawn(pump, e) end
  return item.done
end

local break_end  -- below

local function new_end(name, opts)
  local e = { name = name, queue = {}, latency = 0, max_chunk = 16 }
  set_controls(e, opts)
  e.impl = {
    kind = "memory",
    write = function(data)
      if e.failed then return tide.rejected(e.failed) end
      if e.peer.src.closed or e.peer.failed then return tide.rejected(epipe()) end
      if e.chunk or e.latency > 0 or e.pump then return enqueue(e, { data = data }) end
      local ok, p = pcall(e.peer.src.push, e.peer.src, data)
      if ok then return p end
      -- The peer lost the bytes (not enough memory as it took them): the
      -- connection breaks on both ends, as a socket's would.
      for _, x in ipairs{ e, e.peer } do break_end(x, p, p) end
      error(p, 0)
    end,
    shutdown = function()
      if e.failed then return tide.rejected(e.failed) end
      if e.latency > 0 or e.pump then return enqueue(e, { fin = true }) end
      if not e.peer.finished then e.peer.finished = true; e.peer.src:finish() end
    end,
    close = function()
      -- Writes went out before close is called: the end follows at once.
      if e.pump then e.pump:cancel(); e.pump = nil end
      for _, item in ipairs(e.queue) do item.done:reject(epipe()) end
      e.queue = {}
      if not e.peer.finished then e.peer.finished = true; e.peer.src:finish() end
    end,
    peername = function() return "memory", e.peer.name end,
    sockname = function() return "memory", e.name end,
  }
  return e
end

--[[ memory.pair([opts]) -> a, b: two connected streams.
  opts.chunk       deliver each write in pieces of this many bytes (1 to
                   exercise reassembly), or "random": sizes 1..max_chunk
  opts.max_chunk   the largest random piece (default 16)
  opts.seed        seed of the random pieces (default 1)
  opts.latency     seconds each write takes to reach the peer (on the
                   runtime's clock: virtual time under a virtual clock)
  opts.high_water, opts.low_water, opts.read_buffer   the streams' limits
The controls apply to both directions; memory.configure changes one. ]]
local function pair(opts)
  opts = opts or {}
  assert(type(opts) == "table", "opts must be a table")
  local limits = { high_water = opts.high_water, low_water = opts.low_water, read_buffer = opts.read_buffer }
  local ea, eb = new_end(1, opts), new_end(2, opts)
  ea.peer, eb.peer = eb, ea
  local a, b
  a, ea.src = tide.stream(ea.impl, limits)
  b, eb.src = tide.stream(eb.impl, limits)
  ends[a], ends[b] = ea, eb
  return a, b
end

local function end_of(s)
  local e = ends[s]
  if e == nil then error("not a stream of tide.memory", 3) end
  return e
end

-- Ends end `e` in error: pending deliveries fail, its reads reject with
-- `read_err`, its writes with `write_err`.
function break_end(e, read_err, write_err)
  if not e.failed then
    e.failed = write_err
    if e.pump then e.pump:cancel(); e.pump = nil end
    for _, item in ipairs(e.queue) do item.done:reject(write_err) end
    e.queue = {}
  end
  if not e.finished then e.finished = true; e.src:finish(read_err) end
end

-- memory.configure(s, opts): sets the controls (chunk, max_chunk, seed,
-- latency) of what `s` writes from now on.
local function configure(s, opts)
  assert(type(opts) == "table", "opts must be a table")
  set_controls(end_of(s), opts)
end

-- memory.reset(s): the connection of `s` is reset: on both ends, reads
-- reject with ECONNRESET and writes with EPIPE (a write's failure shows,
-- as on a socket, on the stream's next operation). Bytes an end received
-- are still read first (as on Linux); bytes still on the wire (latency,
-- pieces not delivered yet) are lost. Every write made before the reset
-- counts as sent, even one the stream was still gathering.
local function reset(s)
  local e = end_of(s)
  e.src:flush(); e.peer.src:flush()
  for _, x in ipairs{ e, e.peer } do
    break_end(x, tide.error("ECONNRESET", "connection reset by peer"),
      tide.error("EPIPE", "broken pipe: the connection was reset"))
  end
end

-- memory.fail(s, err): injects `err` (an error object, or a code such as
-- "EIO") into `s`: its reads reject with it, and so do its writes. The peer sees nothing until it writes
-- (EPIPE: nobody reads any more) or reads (nothing more comes).
local function fail(s, err)
  local e = end_of(s)
  if type(err) == "string" then err = tide.error(err, "injected error") end
  assert(tide.is_error(err), "err must be an error object or an error code")
  e.src:flush(); e.peer.src:flush()  -- the writes made before it go out first
  break_end(e, err, err)
end

-- A network of named in-memory servers: what a protocol module that
-- connects by itself (a client with reconnection) is given in tests
-- instead of tide.tcp.connect.
local Network = { __name = "tide.memory.network" }
Network.__index = Network
local Server = { __name = "tide.memory.server" }
Server.__index = Server

-- net:serve(name, handler [, opts]) -> server: runs handler(conn) in a new
-- task for each connection to `name`, and closes conn when it returns. A
-- handler's error is printed on stderr and kept in server.errors. opts are
-- those of memory.pair for the connections' server ends.
function Network:serve(name, handler, opts)
  assert(type(name) == "string", "name must be a string")
  assert(type(handler) == "function", "handler must be a function")
  assert(self.servers[name] == nil, "address in use: " .. name)
  local server = setmetatable({ name = name, net = self, handler = handler, opts = opts or {},
    handlers = {}, conns = setmetatable({}, { __mode = "k" }), errors = {}, connections = 0 }, Server)
  self.servers[name] = server
  return server
end

-- net:connect(name [, opts]) -> promise of the client end of a new pair
-- (opts as for memory.pair, plus timeout); ECONNREFUSED when nothing
-- serves `name`. With opts.latency the connection takes that long, and
-- fails with ETIMEDOUT after opts.timeout seconds when that is shorter
-- (as tide.tcp.connect's timeout).
function Network:connect(name, opts)
  opts = opts or {}
  local timeout = opts.timeout
  assert(timeout == nil or (type(timeout) == "number" and timeout >= 0), "timeout must be a number >= 0")
  local net = self
  return tide.spawn(function()
    local latency = opts.latency or 0
    if timeout and latency > timeout then
      tide.sleep(timeout):await()
      error(tide.error("ETIMEDOUT", "connecting to " .. name .. " timed out"), 0)
    end
    if latency > 0 then tide.sleep(latency):await() end
    local server = net.servers[name]
    if server == nil then error(tide.error("ECONNREFUSED", "connection refused: " .. name), 0) end
    local a, b = pair(opts)
    if next(server.opts) then configure(b, server.opts) end
    server.conns[a], server.conns[b] = true, true
    server.connections = server.connections + 1
    local task = tide.spawn(function()
      local ok, err = pcall(server.handler, b)
      if not ok and not tide.is_cancelled(err) then
        server.errors[#server.errors + 1] = err
        io.stderr:write("tide.memory: error in connection handler: ", tostring(err), "\n")
      end
      b:close()
      server.connections = server.connections - 1
      server.handlers[b] = nil
    end)
    server.handlers[b] = task
    return a
  end)
end

-- server:close() -> promise settled once its handlers returned: stops
-- accepting at once and cancels the handlers running.
function Server:close()
  if self.net.servers[self.name] == self then self.net.servers[self.name] = nil end
  local tasks = {}
  for _, task in pairs(self.handlers) do tasks[#tasks + 1] = task; task:cancel() end
  return tide.settled(tasks)
end
Server.__close = Server.close

-- server:reset_all(): resets every connection it has (memory.reset).
function Server:reset_all()
  for s in pairs(self.conns) do
    if not s.closed then reset(s) end
  end
end

-- memory.network() -> a new network without servers.
local function network()
  return setmetatable({ servers = {} }, Network)
end

return { pair = pair, configure = configure, reset = reset, fail = fail, network = network }
