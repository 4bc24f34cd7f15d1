-- Fuzz script for the C primitives tide.fields and tide.charset (see
-- lua_target.c). The first four bytes are parameters, the rest the subject:
--   byte 1      fields: init (1 + b % 8)
--   byte 2      fields: max_fields (b, or unlimited when 255)
--   byte 3      fields: max_line (b * 4, or unlimited when 255)
--   byte 4      charset: the length of its spec, taken from the subject's
--               start (b % 16); span's i and j come from bytes 1 and 2 as
--               signed offsets
-- A clean result or a documented error (nil, pos, why) is fine; the results
-- are checked against the contract in fields.c and charset.c.
local tide = require "tide"

local byte, sub, lower = string.byte, string.sub, string.lower
local fields, charset = tide.fields, tide.charset

local function signed(b) return b >= 128 and b - 256 or b end

return function(data)
  local b1, b2, b3, b4 = byte(data, 1, 4)
  if not b4 then return end
  local s = sub(data, 5)

  local init = 1 + b1 % 8
  local max_fields = b2 ~= 255 and b2 or nil
  local max_line = b3 ~= 255 and b3 * 4 or nil
  local t, n, index = fields(s, init, max_fields, max_line)
  if t then
    assert(math.type(n) == "integer" and n >= 0)
    if max_fields then assert(n <= max_fields) end
    for k = 1, n do
      local name, low, value = t[3 * k - 2], t[3 * k - 1], t[3 * k]
      assert(type(name) == "string" and #name > 0 and low == lower(name))
      assert(type(value) == "string")
      assert(index[low] and index[low] <= k)
    end
  else
    assert(math.type(n) == "integer" and n >= 1, "fields: bad position")
    assert(index == "syntax" or index == "line" or index == "count", "fields: bad reason")
  end

  local spec = sub(s, 1, b4 % 16)
  local ok, span = pcall(charset, spec)
  if not ok then
    assert(tostring(span):find("is reversed", 1, true), span)
    return
  end
  local i, j = signed(b1), signed(b2)
  local p = span(s, i, j)
  -- an i past the end comes back as it is, like string.find's init
  assert(math.type(p) == "integer" and p >= 1 and (p <= #s + 1 or p == i))
  local q = span(s)
  assert(q >= 1 and q <= #s + 1)
  if q <= #s then
    assert(not spec:find(sub(s, q, q), 1, true) or #spec >= 3,
           "span stopped on a byte of its spec")
  end
end
