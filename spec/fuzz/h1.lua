-- Fuzz script for tide.http.h1 (see lua_target.c): the first byte of the
-- input picks what the rest goes to, modulo 3:
--   0  parse_request_head   (the head without its blank line, as the server
--                            passes it, with a table to fill as `into`)
--   1  parse_response_head  (as the client passes it; GET, or HEAD when the
--                            second byte is odd)
--   2  read_chunked         (the body after the head, through a reader over
--                            the bytes; small limits, so that they are hit)
-- The contract of all three is a result or an EPROTO error object with a
-- status. Anything else raised escapes, and is a finding.
local h1 = require "tide.http.h1"

local byte, sub, find = string.byte, string.sub, string.find

local function reader(s, pos)
  return {
    read_line = function(max)
      local e = find(s, "\n", pos, true)
      if not e then return nil end
      if e - pos + 1 > max then return false end
      local line = sub(s, pos, e)
      pos = e + 1
      return line
    end,
    read_exactly = function(n)
      if pos + n - 1 > #s then return nil end
      local data = sub(s, pos, pos + n - 1)
      pos = pos + n
      return data
    end,
  }
end

-- Walks what a parser returned, as its callers would.
local function use_headers(h)
  for name, value in h:each() do
    assert(type(name) == "string" and type(value) == "string")
  end
  h:get("host")
  h:get("content-length")
end

local limits = { max_body = 4096, max_read = 512, max_chunk_line = 256,
                 max_headers = 32, max_line = 1024 }

local function expected(e)
  if type(e) == "table" and e.code == "EPROTO" then
    assert(math.type(e.status) == "integer", "EPROTO error without a status")
    return
  end
  error(e, 0)
end

return function(data)
  local mode = (byte(data, 1) or 0) % 3
  local s = sub(data, 2)
  if mode == 0 then
    local ok, req = pcall(h1.parse_request_head, s, nil, {})
    if ok then
      assert(type(req.method) == "string" and type(req.target) == "string")
      use_headers(req.headers)
    else
      expected(req)
    end
  elseif mode == 1 then
    local method = (byte(data, 2) or 0) % 2 == 1 and "HEAD" or "GET"
    local ok, res = pcall(h1.parse_response_head, s, nil, method)
    if ok then
      assert(math.type(res.status) == "integer")
      use_headers(res.headers)
    else
      expected(res)
    end
  else
    local ok, body, trailers = pcall(h1.read_chunked, reader(s, 1), limits)
    if ok then
      assert(type(body) == "string" and #body <= limits.max_body)
      use_headers(trailers)
    else
      expected(body)
    end
  end
end
