-- Fuzz script for tide.redis.resp (see lua_target.c): the first byte picks
-- how the rest is fed and read. Its low bit: replies (next) or commands
-- (next_command, as a server reads them); the other bits (b >> 1) % 8 + 1
-- is the size of the pieces the bytes are fed in, so that replies split
-- at every place (the first 64 pieces: the rest comes at once, as each
-- piece costs a copy of what is buffered and a pass of the parser, and
-- inputs of kilobytes fed a byte at a time made the run four times
-- slower). Small limits, so that they are hit. The parser's contract
-- is values, false while a reply is incomplete, or an EPROTO error object;
-- anything else raised escapes, and is a finding.
local resp = require "tide.redis.resp"

local byte, sub = string.byte, string.sub

local limits = { max_bulk = 4096, max_array = 256, max_depth = 8, max_line = 512 }
local MAX_PIECES = 64

local function walk(v, depth)
  assert(depth <= limits.max_depth + 1, "reply nested deeper than max_depth")
  if type(v) == "table" then
    for _, x in pairs(v) do walk(x, depth + 1) end
  end
end

return function(data)
  local b = byte(data, 1) or 0
  local commands = b % 2 == 1
  local step = (b >> 1) % 8 + 1
  local p = resp.parser(limits)
  local ok, e = pcall(function()
    local i, n, len = 2, 0, #data
    while i <= len do
      n = n + 1
      local j = n < MAX_PIECES and i + step - 1 or len
      p:feed(sub(data, i, j))
      i = j + 1
      while true do
        local done, v
        if commands then done, v = p:next_command() else done, v = p:next() end
        if not done then break end
        walk(v, 0)
      end
    end
  end)
  if not ok and not (type(e) == "table" and e.code == "EPROTO") then
    error(e, 0)
  end
end
