-- tide.redis.resp: the RESP2 codec, free of sockets.
--
-- Owns the encoding of commands (arrays of bulk strings) and a strict,
-- bounded, resumable parser of replies, RESP2 and RESP3 (maps as tables,
-- sets as sequences, booleans, doubles, big numbers as strings, verbatim
-- strings without their format, pushes told apart, attributes dropped). The parser is fed the bytes as
-- they come, in pieces of any size, and hands out whole replies in order;
-- a reply cut anywhere (inside a header, a bulk string, a nested array)
-- waits for the rest without parsing again what it had: arrays under
-- construction are kept on a stack, and a large bulk string is gathered
-- in a list of pieces and joined once. Bad input raises an EPROTO error
-- object; the caller must then drop the connection (the parser is left
-- in an undefined state).
--
-- The common replies go faster: tide.resp (bindings/resp.c) parses as
-- many whole plain replies (simple and bulk strings, integers, arrays of
-- them) or commands as the buffer holds in one C call, and they queue up
-- for next(), next_command() and plain(); it stops before anything else
-- (a reply cut by the end of the bytes, an error reply, RESP3, bad input,
-- a limit passed), which the Lua parser below takes. The Lua parser owns
-- the contract; tide.resp gives the values it would give. Commands are
-- encoded in one C call too (tide.resp_encode).
--
-- Replies map to Lua as tide.redis documents: simple and bulk strings as
-- strings, integers as integers, arrays as tables (sequences), a nil bulk
-- or nil array as nil at the top and as `null` inside an array, error
-- replies as tide error objects whose code is Redis's prefix ("ERR",
-- "WRONGTYPE") and whose `redis` field is true.
--
--   local p = resp.parser()
--   p:feed("$3\r\nbar\r\n:4")
--   print(p:next())        -- true  bar
--   print(p:next())        -- false (waits for more)

local tide = require "tide"

local find, sub, byte, format = string.find, string.sub, string.byte, string.format
local concat = table.concat
local type, tonumber, error, setmetatable = type, tonumber, error, setmetatable
local mtype = math.type
local tide_error = tide.error
local scan, encode_c = tide.resp, tide.resp_encode
local unpack, select = table.unpack, select

-- The sentinel that stands for a nil inside an array.
local null = setmetatable({}, {
  __name = "tide.redis.null",
  __tostring = function() return "redis.null" end,
  __newindex = function() error("redis.null is read-only", 2) end,
})

--[[ Limits of the parser (all optional):
  max_bulk    longest bulk string in bytes (64 MiB)
  max_array   most elements in one array (4 Mi)
  max_depth   deepest nesting of arrays (32)
  max_line    longest header or simple string/error line (64 KiB)
]]
local DEFAULTS = {
  max_bulk = 64 * 1024 * 1024,
  max_array = 4 * 1024 * 1024,
  max_depth = 32,
  max_line = 64 * 1024,
}

-- A bulk string at least this long that has not all come yet is gathered
-- in pieces rather than by joining the buffer with every piece.
local GATHER = 64 * 1024

local function proto(message, ...)
  return error(tide_error("EPROTO", format(message, ...)), 0)
end

-- An error object from the text of an error reply: Redis's prefix is
-- the code.
local function error_value(line)
  local code, message = line:match("^(%u[%u%d_]*) (.*)$")
  if not code then code, message = line:match("^(%u[%u%d_]*)$"), line end
  return tide_error(code or "ERR", message or line, { redis = true })
end

local DOUBLES = { inf = math.huge, ["-inf"] = -math.huge, nan = 0 / 0, ["-nan"] = 0 / 0 }

local Parser = {}
Parser.__index = Parser
Parser.__name = "tide.redis.parser"

local digits = tide.charset("0-9")

-- Parses the decimal integer buf[i..j] of a header line ("-" and 1 to 19
-- digits, within a 64-bit integer); raises when it is not one.
local function header_int(buf, i, j, what)
  local d = byte(buf, i) == 45 and i + 1 or i
  local n = j >= d and j - d <= 18 and digits(buf, d, j) > j and tonumber(sub(buf, i, j))
  if math.type(n) ~= "integer" then  -- 19 digits past 2^63 read as a float
    proto("bad %s %q", what, sub(buf, i, j))
  end
  return n
end

-- Makes a parser with the given limits (see above).
local function parser(limits)
  local self = setmetatable({
    buf = "", pos = 1,          -- unparsed bytes are buf[pos..]
    stack = {}, depth = 0,      -- arrays being filled: {t, n, i}
    parts = nil, have = 0, need = 0,  -- a large bulk being gathered
    q = false, qi = 0, qn = 0, qcmd = false,  -- replies parsed ahead by tide.resp
  }, Parser)
  for k, v in pairs(DEFAULTS) do
    local l = limits and limits[k]
    if l ~= nil then
      if mtype(l) ~= "integer" or l <= 0 then error("resp.parser: " .. k .. " must be a positive integer", 2) end
      v = l
    end
    self[k] = v
  end
  return self
end

-- Adds bytes that came from the server.
function Parser:feed(data)
  local parts = self.parts
  if parts then
    parts[#parts + 1] = data
    self.have = self.have + #data
    if self.have >= self.need then
      self.buf, self.pos, self.parts = concat(parts), 1, nil
    end
    return
  end
  local buf, pos = self.buf, self.pos
  if pos > #buf then
    self.buf = data
  else
    self.buf = sub(buf, pos) .. data
  end
  self.pos = 1
end

-- Bytes fed and not yet parsed into a whole reply.
function Parser:buffered()
  if self.parts then return self.have end
  return #self.buf - self.pos + 1
end

-- Parses in one call (tide.resp, bindings/resp.c) as many whole plain
-- replies (or commands) as the buffer holds, from where the Lua parser
-- stands: they queue up in self.q[self.qi + 1 .. self.qn] and next() or
-- next_command() hands them out. Returns the queue, or nil when the next
-- reply is not one tide.resp takes whole (cut by the end of the buffer,
-- an error reply, a RESP3 type, bad input): this file's parser, which
-- owns the protocol's contract, takes it.
local function refill(self, commands)
  local q, n, pos = scan(self.buf, self.pos, null, self.max_bulk, self.max_array,
    self.max_depth, self.max_line, commands)
  if n == 0 then return nil end
  self.pos, self.q, self.qi, self.qn, self.qcmd = pos, q, 0, n, commands
  return q
end

-- For clients that take replies in batches: the plain replies (simple
-- and bulk strings, integers, arrays of them; no error reply, no RESP3
-- push) parsed ahead in one call, as the table q and the range i..n of
-- it that holds them, a nil reply as `null`; they are taken out of the
-- parser. Returns nil when the next reply is not one of them: next()
-- takes it.
function Parser:plain()
  local q = self.q
  if not q then
    if self.depth > 0 or self.parts or self.pos > #self.buf then return nil end
    q = refill(self, false)
    if not q then return nil end
  elseif self.qcmd then
    return nil  -- commands queued by next_command(): next() hands them out
  end
  self.q = false
  return q, self.qi + 1, self.qn
end

-- Returns true and the next whole reply, or false when it has not all
-- come yet; a RESP3 push comes as true, the push's table, true. Raises
-- an EPROTO error object on bad input.
function Parser:next()
  local q = self.q
  if not q and self.depth == 0 and not self.parts and self.pos <= #self.buf then q = refill(self, false) end
  if q then
    local i = self.qi + 1
    local v = q[i]
    if i == self.qn then self.q = false else self.qi = i end
    if v == null then v = nil end  -- a nil bulk string or array at the top
    return true, v
  end
  if self.parts then return false end
  local buf, pos = self.buf, self.pos
  local stack, depth = self.stack, self.depth
  local len = #buf
  while true do
    local t = byte(buf, pos)
    if t == nil then
      self.pos, self.depth = pos, depth
      return false
    end
    local e = find(buf, "\r\n", pos, true)
    if not e then
      if len - pos >= self.max_line then proto("line longer than %d bytes", self.max_line) end
      self.pos, self.depth = pos, depth
      return false
    end
    if e - pos > self.max_line then proto("line longer than %d bytes", self.max_line) end
    local value, n
    if t == 36 or t == 33 or t == 61 then  -- $ bulk string, RESP3 ! blob error, = verbatim
      n = header_int(buf, pos + 1, e - 1, "bulk length")
      if n < 0 then
        if n ~= -1 then proto("bad bulk length %d", n) end
        if depth > 0 then value = null end
        pos = e + 2
      else
        if n > self.max_bulk then proto("bulk string of %d bytes, more than %d", n, self.max_bulk) end
        local stop = e + 2 + n  -- where its "\r\n" starts
        if stop + 1 > len then
          self.pos, self.depth = pos, depth
          if n >= GATHER then
            self.parts, self.have, self.need = { sub(buf, pos) }, len - pos + 1, stop + 2 - pos
            self.buf, self.pos = "", 1
          end
          return false
        end
        if byte(buf, stop) ~= 13 or byte(buf, stop + 1) ~= 10 then
          proto("bulk string of %d bytes not followed by CRLF", n)
        end
        value = sub(buf, e + 2, stop - 1)
        pos = stop + 2
        if t == 33 then
          value = error_value(value)
        elseif t == 61 then
          if n < 4 or byte(value, 4) ~= 58 then proto("verbatim string without its format") end
          value = sub(value, 5)
        end
      end
    elseif t == 43 then  -- + simple string
      value = sub(buf, pos + 1, e - 1)
      pos = e + 2
    elseif t == 58 then  -- : integer
      value = header_int(buf, pos + 1, e - 1, "integer")
      pos = e + 2
    elseif t == 45 then  -- - error
      value = error_value(sub(buf, pos + 1, e - 1))
      pos = e + 2
    elseif t == 42 or t == 37 or t == 126 or t == 62 or t == 124 then
      -- * array; RESP3: % map, ~ set, > push, | attribute
      n = header_int(buf, pos + 1, e - 1, "aggregate length")
      pos = e + 2
      if n < 0 then
        if n ~= -1 or t ~= 42 then proto("bad aggregate length %d", n) end
        if depth > 0 then value = null end
      elseif n > self.max_array then
        proto("aggregate of %d elements, more than %d", n, self.max_array)
      elseif n == 0 and t ~= 124 then
        value = {}
        if t == 62 and depth == 0 then self.pos, self.depth = pos, 0; return true, value, true end
      elseif n == 0 then
        goto continue  -- an empty attribute
      else
        if depth >= self.max_depth then proto("arrays nested deeper than %d", self.max_depth) end
        if t == 37 or t == 124 then n = 2 * n end
        depth = depth + 1
        stack[depth] = { {}, n, 0, t }
        goto continue
      end
    elseif t == 95 then  -- RESP3 _ null
      if e ~= pos + 1 then proto("bad null") end
      if depth > 0 then value = null end
      pos = e + 2
    elseif t == 35 then  -- RESP3 # boolean
      local b = sub(buf, pos + 1, e - 1)
      if b == "t" then value = true elseif b == "f" then value = false else proto("bad boolean %q", b) end
      pos = e + 2
    elseif t == 44 then  -- RESP3 , double
      local d = sub(buf, pos + 1, e - 1)
      value = DOUBLES[d] or (find(d, "^[-+]?%d+%.?%d*[eE]?[-+]?%d*$") and tonumber(d))
      if not value then proto("bad double %q", d) end
      value = value + 0.0
      pos = e + 2
    elseif t == 40 then  -- RESP3 ( big number, as a string
      value = sub(buf, pos + 1, e - 1)
      if not find(value, "^%-?%d+$") then proto("bad big number %q", value) end
      pos = e + 2
    else
      proto("unknown reply type %q", sub(buf, pos, pos))
    end
    -- A value is complete: it is the reply, or the next element of the
    -- innermost aggregate, which may complete aggregates in turn.
    while true do
      if depth == 0 then
        self.pos, self.depth = pos, 0
        return true, value
      end
      local f = stack[depth]
      local i = f[3] + 1
      f[1][i] = value
      if i < f[2] then f[3] = i; break end
      value = f[1]
      stack[depth] = nil
      depth = depth - 1
      local kind = f[4]
      if kind then  -- RESP3 aggregates
        if kind == 37 then
          local map = {}
          for j = 1, f[2], 2 do
            local k = value[j]
            if k == null or type(k) == "table" then k = j end  -- unusable keys keep their place
            map[k] = value[j + 1]
          end
          value = map
        elseif kind == 124 then
          goto continue  -- attributes are dropped: the reply follows them
        elseif kind == 62 and depth == 0 then
          self.pos, self.depth = pos, 0
          return true, value, true
        end
      end
    end
    ::continue::
  end
end

-- `v` when it is a command: a list of strings; raises EPROTO otherwise.
local function command(v)
  if type(v) ~= "table" then proto("a command must be an array of bulk strings") end
  for i = 1, #v do
    if type(v[i]) ~= "string" then proto("a command must be an array of bulk strings") end
  end
  return v
end

-- For servers: returns true and the next command as a list of strings,
-- or false when it has not all come yet. A command is an array of bulk
-- strings, or an inline command (a line of words, as telnet sends). The
-- parser should be made with max_depth = 1. Raises EPROTO on bad input.
function Parser:next_command()
  local q = self.q
  if not q and self.depth == 0 and not self.parts and self.pos <= #self.buf then q = refill(self, true) end
  if q then
    local i = self.qi + 1
    local v = q[i]
    if i == self.qn then self.q = false else self.qi = i end
    if not self.qcmd then v = command(v ~= null and v or nil) end  -- queued by next()
    return true, v
  end
  if self.parts then return false end
  local buf, pos = self.buf, self.pos
  local t = byte(buf, pos)
  if t == nil or t == 42 or self.depth > 0 then
    local done, v = self:next()
    if not done then return false end
    return true, command(v)
  end
  local e = find(buf, "\n", pos, true)
  if not e then
    if #buf - pos >= self.max_line then proto("inline command longer than %d bytes", self.max_line) end
    return false
  end
  if e - pos > self.max_line then proto("inline command longer than %d bytes", self.max_line) end
  local line = sub(buf, pos, byte(buf, e - 1) == 13 and e - 2 or e - 1)
  self.pos = e + 1
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  return true, words
end

-- "$<n>\r\n" for each length, made once.
local LEN = setmetatable({}, { __index = function(t, n)
  local v = "$" .. n .. "\r\n"
  if n < 65536 then t[n] = v end
  return v
end })

-- Raises the error of argument `a`, the `i`th of a command, which is
-- neither a string nor a number.
local function bad_argument(a, i, level)
  local ta = type(a)
  error(format("bad argument #%d to redis command (string or number expected, got %s)",
    i, ta == "table" and (a == null and "redis.null" or "table") or ta), level + 1)
end

-- The bytes of one command: an array of bulk strings, made in one call
-- (tide.resp_encode). `args` is a list of `n` strings or numbers
-- (integers as they are, floats with 17 digits); anything else raises,
-- naming the argument.
local function encode(args, n, level)
  local bytes, i = encode_c(unpack(args, 1, n))
  if not bytes then bad_argument(args[i], i, (level or 1) + 1) end
  return bytes
end

-- A bulk string reply: "$<#s>\r\n<s>\r\n" (for servers).
local function bulk(s)
  return LEN[#s] .. s .. "\r\n"
end

-- The same for up to three arguments given as values, without a table
-- (the common commands: GET k, SET k v, INCR k).
local function encode3(n, a, b, c, level)
  local bytes, i
  if n == 1 then bytes, i = encode_c(a)
  elseif n == 2 then bytes, i = encode_c(a, b)
  else bytes, i = encode_c(a, b, c) end
  if not bytes then bad_argument(select(i, a, b, c), i, (level or 1) + 1) end
  return bytes
end

return {
  parser = parser,
  encode = encode,
  encode3 = encode3,
  bulk = bulk,
  null = null,
  Parser = Parser,
  DEFAULTS = DEFAULTS,
}
