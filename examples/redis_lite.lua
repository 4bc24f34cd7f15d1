-- A small in-memory Redis server: strings with expiry, counters and
-- pub/sub, enough for redis-cli and redis-benchmark (-t ping,set,get,incr).
-- Pipelined requests are answered in one write per batch; keys with a
-- time to live expire when touched, and a sweep every second drops the
-- ones nobody touches.
--
-- Usage: tide examples/redis_lite.lua [PORT]     (default: a free port)
--   redis-cli -p PORT set greeting hello EX 10
--   redis-benchmark -p PORT -t set,get -P 16 -q
local tide = require "tide"
local resp = require "tide.redis.resp"

local upper, tonumber, tostring, concat = string.upper, tonumber, tostring, table.concat
local mtype, next = math.type, next
local now = tide.now

local port = tonumber(arg and arg[1]) or 0

local data = {}      -- key -> string value
local expires = {}   -- key -> deadline on tide.now()'s clock
local channels = {}  -- channel -> {[subscriber] = true}

-- Replies.
local OK, PONG, NIL, ZERO, ONE = "+OK\r\n", "+PONG\r\n", "$-1\r\n", ":0\r\n", ":1\r\n"
local bulk = resp.bulk
local function int(n) return ":" .. n .. "\r\n" end
local function err(msg) return "-" .. msg .. "\r\n" end
local SYNTAX = err("ERR syntax error")
local NOT_INT = err("ERR value is not an integer or out of range")
local function arity(name) return err("ERR wrong number of arguments for '" .. name:lower() .. "' command") end

-- The live value of `k`, dropping it when its time is up.
local function lookup(k)
  local v = data[k]
  if v ~= nil then
    local d = expires[k]
    if d and d <= now() then
      data[k], expires[k] = nil, nil
      return nil
    end
  end
  return v
end

local function integer(s)
  if s and s:find("^%-?%d+$") and #s < 20 then return tonumber(s) end
end

local commands = {}

function commands.PING(c) return c[2] and bulk(c[2]) or PONG end
function commands.ECHO(c) return c[2] and bulk(c[2]) or arity("ECHO") end

function commands.GET(c)
  if #c ~= 2 then return arity("GET") end
  local v = lookup(c[2])
  return v and bulk(v) or NIL
end

function commands.SET(c)
  local n = #c
  if n < 3 then return arity("SET") end
  local k, ttl, nx, xx = c[2], nil, false, false
  local i = 4
  while i <= n do
    local o = upper(c[i])
    if (o == "EX" or o == "PX") and i < n then
      local t = integer(c[i + 1])
      if not t or t <= 0 then return err("ERR invalid expire time in 'set' command") end
      ttl = o == "EX" and t or t / 1000
      i = i + 2
    elseif o == "NX" then nx, i = true, i + 1
    elseif o == "XX" then xx, i = true, i + 1
    else return SYNTAX end
  end
  if nx or xx then
    local exists = lookup(k) ~= nil
    if (nx and exists) or (xx and not exists) then return NIL end
  end
  data[k] = c[3]
  expires[k] = ttl and now() + ttl or nil
  return OK
end

function commands.DEL(c)
  if #c < 2 then return arity("DEL") end
  local n = 0
  for i = 2, #c do
    if lookup(c[i]) ~= nil then n = n + 1 end
    data[c[i]], expires[c[i]] = nil, nil
  end
  return int(n)
end

function commands.EXISTS(c)
  if #c < 2 then return arity("EXISTS") end
  local n = 0
  for i = 2, #c do if lookup(c[i]) ~= nil then n = n + 1 end end
  return int(n)
end

local function add(c, by)
  local v = lookup(c[2])
  local x = 0
  if v ~= nil then
    x = integer(v)
    if not x then return NOT_INT end
  end
  x = x + by
  if mtype(x) ~= "integer" then return NOT_INT end
  data[c[2]] = tostring(x)
  return int(x)
end
function commands.INCR(c) return #c == 2 and add(c, 1) or arity("INCR") end
function commands.DECR(c) return #c == 2 and add(c, -1) or arity("DECR") end
function commands.INCRBY(c)
  if #c ~= 3 then return arity("INCRBY") end
  local by = integer(c[3])
  return by and add(c, by) or NOT_INT
end

function commands.EXPIRE(c)
  if #c ~= 3 then return arity("EXPIRE") end
  local t = integer(c[3])
  if not t then return NOT_INT end
  if lookup(c[2]) == nil then return ZERO end
  if t <= 0 then data[c[2]], expires[c[2]] = nil, nil else expires[c[2]] = now() + t end
  return ONE
end

local function ttl(c, scale)
  if #c ~= 2 then return arity("TTL") end
  if lookup(c[2]) == nil then return int(-2) end
  local d = expires[c[2]]
  if not d then return int(-1) end
  return int(math.floor((d - now()) * scale + 0.5))
end
function commands.TTL(c) return ttl(c, 1) end
function commands.PTTL(c) return ttl(c, 1000) end

function commands.DBSIZE()
  local n = 0
  for k in next, data do if lookup(k) ~= nil then n = n + 1 end end
  return int(n)
end
function commands.FLUSHALL() data, expires = {}, {}; return OK end
commands.FLUSHDB = commands.FLUSHALL
function commands.SELECT(c) return c[2] == "0" and OK or err("ERR DB index is out of range") end
-- redis-cli and redis-benchmark ask these first; nothing to tell.
function commands.COMMAND() return "*0\r\n" end
function commands.CONFIG() return "*0\r\n" end

function commands.PUBLISH(c)
  if #c ~= 3 then return arity("PUBLISH") end
  local subs = channels[c[2]]
  local n = 0
  if subs then
    local msg = "*3\r\n$7\r\nmessage\r\n" .. bulk(c[2]) .. bulk(c[3])
    for sub in next, subs do
      sub.conn:write(msg)
      n = n + 1
    end
  end
  return int(n)
end

-- SUBSCRIBE and UNSUBSCRIBE change the connection's state: `sub` holds
-- its channels.
local function subscribe(c, sub)
  if #c < 2 then return arity("SUBSCRIBE") end
  local out = {}
  for i = 2, #c do
    local ch = c[i]
    if not sub.channels[ch] then
      sub.channels[ch], sub.count = true, sub.count + 1
      local subs = channels[ch]
      if not subs then subs = {}; channels[ch] = subs end
      subs[sub] = true
    end
    out[#out + 1] = "*3\r\n$9\r\nsubscribe\r\n" .. bulk(ch) .. int(sub.count)
  end
  return concat(out)
end

local function unsubscribe(c, sub)
  local list = {}
  if #c > 1 then
    for i = 2, #c do list[#list + 1] = c[i] end
  else
    for ch in next, sub.channels do list[#list + 1] = ch end
  end
  if #list == 0 then return "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n" end
  local out = {}
  for _, ch in ipairs(list) do
    if sub.channels[ch] then
      sub.channels[ch], sub.count = nil, sub.count - 1
      local subs = channels[ch]
      subs[sub] = nil
      if next(subs) == nil then channels[ch] = nil end
    end
    out[#out + 1] = "*3\r\n$11\r\nunsubscribe\r\n" .. bulk(ch) .. int(sub.count)
  end
  return concat(out)
end

-- Commands a subscribed connection may send.
local SUBSCRIBED = { SUBSCRIBE = true, UNSUBSCRIBE = true, PING = true, QUIT = true }

local names = setmetatable({}, { __mode = "k" })  -- "get" -> "GET"

local function serve(conn)
  local parser = resp.parser{ max_depth = 1, max_bulk = 512 * 1024 * 1024 }
  local sub = { conn = conn, channels = {}, count = 0 }
  local ok, e = pcall(function()
    while true do
      local chunk = conn:read():await()
      if chunk == nil then return end
      parser:feed(chunk)
      local out, n = {}, 0
      while true do
        local done, c = parser:next_command()
        if not done then break end
        local first = c[1]
        if first then
          local name = names[first]
          if not name then name = upper(first); names[first] = name end
          local reply
          if sub.count > 0 and not SUBSCRIBED[name] then
            reply = err("ERR only (UN)SUBSCRIBE / PING / QUIT are allowed in this context")
          elseif name == "SUBSCRIBE" then
            reply = subscribe(c, sub)
          elseif name == "UNSUBSCRIBE" then
            reply = unsubscribe(c, sub)
          elseif name == "QUIT" then
            n = n + 1; out[n] = OK
            conn:write(out)
            return
          elseif sub.count > 0 and name == "PING" then
            reply = "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
          else
            local f = commands[name]
            reply = f and f(c) or err("ERR unknown command '" .. first .. "'")
          end
          n = n + 1
          out[n] = reply
        end
      end
      if n > 0 then conn:write(out):await() end
    end
  end)
  unsubscribe({}, sub)
  if not ok then
    if tide.is_error(e, "EPROTO") then
      conn:write(err("ERR Protocol error: " .. e.message))
    elseif not tide.is_error(e) then
      error(e, 0)
    end
  end
end

-- Drops the keys whose time is up that nobody touched.
tide.interval(1, function()
  local t = now()
  for k, d in next, expires do
    if d <= t then data[k], expires[k] = nil, nil end
  end
end)

local server = tide.tcp.serve({ host = "127.0.0.1", port = port }, serve)
print(("listening on %s:%d"):format(server.host, server.port))
io.stdout:flush()
