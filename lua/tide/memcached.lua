-- tide.memcached — a client for memcached's text protocol, written on the
-- protocol kit (a stream's read_line and read_exactly, tide.error): an
-- example of a line-based protocol in one page (docs/testing.md).
--
--   local mc = memcached.connect("127.0.0.1", 11211):await()
--   mc:set("k", "v"):await(); print(mc:get("k"):await())   -- v  0
--
-- Commands from many tasks are pipelined: each writes at once, and each
-- reads its reply after the one before it (self.last), so replies match.
-- A command cancelled in the middle of its reply leaves the connection out
-- of step: close it.
-- Error replies (ERROR, CLIENT_ERROR, SERVER_ERROR) reject with an error of
-- code "EMEMCACHED" whose `kind` is the reply's first word.
local tide = require "tide"

local Client = { __name = "tide.memcached" }
Client.__index = Client

-- The next reply line; raises on an error reply or the end of the stream.
local function line(self)
  local l = self.conn:read_line{ timeout = self.timeout }:await()
  if l == nil then error(tide.error("EPROTO", "memcached closed the connection"), 0) end
  local kind, msg = l:match("^(%u*_?ERROR)%s*(.*)$")
  if kind then error(tide.error("EMEMCACHED", msg ~= "" and msg or kind, { kind = kind }), 0) end
  return l
end

-- Writes the command about `key` (and its data block) at once; returns a
-- task of parse(), which reads the reply once the command before is done.
function Client:command(key, cmd, data, parse)
  assert(type(key) == "string" and #key > 0 and #key <= 250 and not key:find("[%s%c]"), "invalid key")
  local before = self.last
  self.conn:write(data and { cmd, "\r\n", data, "\r\n" } or { cmd, "\r\n" })
  self.last = tide.spawn(function()
    if before then pcall(tide.await, before) end  -- its outcome is its caller's
    return parse()
  end)
  return self.last
end

-- get(key) -> value, flags; nil on a miss.
function Client:get(key)
  return self:command(key, "get " .. key, nil, function()
    local value, flags, l = nil, nil, line(self)
    while l ~= "END" do
      local f, n = l:match("^VALUE %S+ (%d+) (%d+)$")
      if not n then error(tide.error("EPROTO", "unexpected reply: " .. l), 0) end
      value, flags = self.conn:read_exactly(n + 2, self.timeout):await():sub(1, -3), tonumber(f)
      l = line(self)
    end
    return value, flags
  end)
end

-- set/add/replace/append/prepend(key, value [, {flags =, exptime =}]) -> whether stored.
for _, verb in ipairs{ "set", "add", "replace", "append", "prepend" } do
  Client[verb] = function(self, key, value, o)
    local cmd = ("%s %s %d %d %d"):format(verb, key, o and o.flags or 0, o and o.exptime or 0, #value)
    return self:command(key, cmd, value, function() return line(self) == "STORED" end)
  end
end

-- delete(key) -> whether it was there; incr/decr(key [, n]) -> the new value, nil on a miss.
function Client:delete(k) return self:command(k, "delete " .. k, nil, function() return line(self) == "DELETED" end) end
function Client:incr(k, n) return self:command(k, ("incr %s %d"):format(k, n or 1), nil, function() return math.tointeger(line(self)) end) end
function Client:decr(k, n) return self:command(k, ("decr %s %d"):format(k, n or 1), nil, function() return math.tointeger(line(self)) end) end

-- Protocol code ends here: what follows makes clients.
function Client:close() return self.conn:close() end
Client.__close = Client.close

--[[ memcached.new(conn [, opts]) -> client over any stream.
  opts.timeout   seconds each reply may take (ETIMEDOUT) ]]
local function new(conn, opts)
  return setmetatable({ conn = conn, timeout = opts and opts.timeout }, Client)
end

-- memcached.connect(host, port [, opts]) -> promise of a client
-- (opts.timeout also limits the connect).
local function connect(host, port, opts)
  return tide.tcp.connect(host, port, opts):next(function(conn) return new(conn, opts) end)
end

return { new = new, connect = connect, methods = Client, mt = Client }
