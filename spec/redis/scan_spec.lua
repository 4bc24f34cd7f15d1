-- tide.resp (bindings/resp.c): whole plain RESP replies and commands in
-- one call, stopping before anything it leaves to tide.redis.resp's Lua
-- parser; tide.resp_encode; and the parser's queue of what it parsed
-- ahead.
local tide = require "tide"
local resp = require "tide.redis.resp"
local null = resp.null
local D = resp.DEFAULTS

-- tide.resp with the default limits, or those of `l`.
local function scan(s, init, l, commands)
  l = l or {}
  return tide.resp(s, init or 1, null, l.max_bulk or D.max_bulk, l.max_array or D.max_array,
    l.max_depth or D.max_depth, l.max_line or D.max_line, commands)
end

-- Asserts that tide.resp takes nothing of `s` (it leaves it to Lua).
local function stops(s, l, commands)
  local t, n, pos = scan(s, 1, l, commands)
  assert.equals(0, n, s)
  assert.equals(1, pos, s)
  assert.same({}, t)
end

-- The Lua parser's value for the plain reply `r`: inside an array that
-- ends with an error reply, which tide.resp leaves to the Lua parser.
local function lua_value(r)
  local p = resp.parser()
  p:feed("*2\r\n" .. r .. "-ERR end\r\n")
  local done, v = p:next()
  assert.is_true(done)
  assert.equals(0, p.qn, "the Lua parser took it")  -- nothing was queued
  return v[1]
end

local PLAIN = {
  "+OK\r\n", "+\r\n", "+a\rb\nc\r\n", ":0\r\n", ":-7\r\n", ":007\r\n",
  ":9223372036854775807\r\n", ":-9223372036854775808\r\n",
  "$3\r\nbar\r\n", "$0\r\n\r\n", "$4\r\na\r\nb\r\n", "$-1\r\n", "$-0\r\n\r\n", "*-1\r\n", "*0\r\n",
  "*3\r\n$1\r\na\r\n$-1\r\n*-1\r\n", "*2\r\n*2\r\n:1\r\n+x\r\n*0\r\n",
}

describe("tide.resp", function()
  it("parses a batch of plain replies in one call, nil as the null sentinel", function()
    local s = table.concat(PLAIN)
    local t, n, pos = scan(s)
    assert.equals(#PLAIN, n)
    assert.equals(#s + 1, pos)
    assert.equals("OK", t[1]); assert.equals("", t[2]); assert.equals("a\rb\nc", t[3])
    assert.equals(0, t[4]); assert.equals(-7, t[5]); assert.equals(7, t[6])
    assert.equals(math.maxinteger, t[7]); assert.equals(math.mininteger, t[8])
    assert.equals("integer", math.type(t[8]))
    assert.equals("bar", t[9]); assert.equals("", t[10]); assert.equals("a\r\nb", t[11])
    assert.equals(null, t[12]); assert.equals("", t[13]); assert.equals(null, t[14])
    assert.same({}, t[15])
    assert.same({ "a", null, null }, t[16])
    assert.same({ { 1, "x" }, {} }, t[17])
  end)

  it("gives each plain reply the value the Lua parser gives it", function()
    for _, r in ipairs(PLAIN) do
      local t, n = scan(r)
      assert.equals(1, n, r)
      assert.same(lua_value(r), t[1], r)
    end
  end)

  it("agrees with the Lua parser on random plain replies", function()
    math.randomseed(12)  -- the same replies every run
    local ints = { "0", "-1", "42", "007", "9223372036854775807", "-9223372036854775808" }
    local function gen(depth)
      local k = math.random(depth < 3 and 6 or 4)
      if k == 1 then return "+" .. ("ab\r c\n"):sub(1, math.random(0, 6)) .. "\r\n"
      elseif k == 2 then return ":" .. ints[math.random(#ints)] .. "\r\n"
      elseif k == 3 then
        local b = {}
        for i = 1, math.random(0, 12) do b[i] = string.char(math.random(0, 255)) end
        b = table.concat(b)
        return "$" .. #b .. "\r\n" .. b .. "\r\n"
      elseif k == 4 then return math.random(2) == 1 and "$-1\r\n" or "*-1\r\n"
      else
        local n, parts = math.random(0, 4), {}
        for i = 1, n do parts[i] = gen(depth + 1) end
        return "*" .. n .. "\r\n" .. table.concat(parts)
      end
    end
    for _ = 1, 500 do
      local r = gen(0)
      local t, n, pos = scan(r)
      assert.equals(1, n, r); assert.equals(#r + 1, pos)
      assert.same(lua_value(r), t[1], r)
    end
  end)

  it("starts at init and tells where it stopped", function()
    local s = "xx:1\r\n$3\r\nab"
    local t, n, pos = scan(s, 3)
    assert.equals(1, n); assert.equals(1, t[1])
    assert.equals(7, pos)  -- the bulk string that has not all come
    t, n, pos = scan(s, #s + 1)
    assert.same({}, t); assert.equals(0, n); assert.equals(#s + 1, pos)
    assert.has_error(function() scan(s, 0) end)
    assert.has_error(function() scan(s, #s + 2) end)
  end)

  it("takes only whole replies, wherever the bytes are cut", function()
    local s = table.concat(PLAIN)
    local whole = scan(s)
    local ends, at = {}, 1  -- ends[k]: the position after reply k
    for k, r in ipairs(PLAIN) do at = at + #r; ends[k] = at end
    for cut = 0, #s do
      local t, n, pos = scan(s:sub(1, cut))
      local want = 0
      while ends[want + 1] and ends[want + 1] <= cut + 1 do want = want + 1 end
      assert.equals(want, n, "cut at " .. cut)
      assert.equals(want == 0 and 1 or ends[want], pos, "cut at " .. cut)
      for k = 1, n do assert.same(whole[k], t[k]) end
      -- the rest, from where it stopped, gives the replies after them
      local t2, n2 = scan(s, pos)
      assert.equals(#PLAIN - n, n2)
      for k = 1, n2 do assert.same(whole[n + k], t2[k]) end
    end
  end)

  it("stops before what it leaves to the Lua parser", function()
    for _, s in ipairs{
      "-ERR x\r\n", "*1\r\n-ERR x\r\n",                       -- error replies
      "%1\r\n+a\r\n+b\r\n", "~0\r\n", ">0\r\n", "|0\r\n", "_\r\n", "#t\r\n", ",1.5\r\n",
      "(1\r\n", "!3\r\nERR\r\n", "=5\r\ntxt:a\r\n",            -- RESP3
      "?\r\n", ":\r\n", ":1x\r\n", ":+1\r\n", ":-\r\n", "$-2\r\n", "*-2\r\n", "$x\r\n",
      "$3\r\nabcd\r\n", "$3\r\nabc\n\n",                       -- malformed
      ":9223372036854775808\r\n", ":-9223372036854775809\r\n",  -- past 64 bits
      ":00000000000000000001\r\n",                             -- 20 digits
      "+no end", "$3\r\nab", "*2\r\n:1\r\n", "*2\r\n:1\r\n+x",  -- cut
    } do
      stops(s)
      local t, n, pos = scan(":1\r\n" .. s)  -- after a reply it takes: that one only
      assert.same({ 1 }, t); assert.equals(1, n); assert.equals(5, pos)
    end
  end)

  it("keeps to the parser's limits and leaves what passes them to it", function()
    -- at each limit: taken; one past it: left to Lua, which raises EPROTO
    local cases = {
      { { max_bulk = 3 }, "$3\r\nabc\r\n", "$4\r\nabcd\r\n" },
      { { max_array = 2 }, "*2\r\n:1\r\n:2\r\n", "*3\r\n:1\r\n:2\r\n:3\r\n" },
      { { max_depth = 1 }, "*1\r\n:1\r\n", "*1\r\n*1\r\n:1\r\n" },
      { { max_line = 4 }, "+abc\r\n", "+abcd\r\n" },
      { { max_line = 4 }, ":123\r\n", ":1234\r\n" },
    }
    for _, c in ipairs(cases) do
      local l, ok, over = c[1], c[2], c[3]
      local t, n = scan(ok, 1, l)
      assert.equals(1, n, ok)
      assert.same(lua_value(ok), t[1])
      stops(over, l)
      local p = resp.parser(l)
      p:feed(over)
      local good, err = pcall(p.next, p)
      assert.is_false(good, over)
      assert.is_true(tide.is_error(err, "EPROTO"), tostring(err))
    end
    -- an array of a huge count that has not come allocates for its bytes only
    stops("*4194304\r\n:1\r\n")
    -- nesting deeper than C recursion goes is left to Lua, whatever max_depth says
    local deep = ("*1\r\n"):rep(40) .. ":1\r\n"
    stops(deep, { max_depth = 100 })
    local p = resp.parser{ max_depth = 100 }
    p:feed(deep)
    local done, v = p:next()
    assert.is_true(done)
    for _ = 1, 40 do v = v[1] end
    assert.equals(1, v)
  end)

  it("takes commands only, with commands = true", function()
    local s = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    local t, n, pos = scan(s, 1, nil, true)
    assert.equals(3, n); assert.equals(#s + 1, pos)
    assert.same({ { "GET", "k" }, {}, { "SET", "k", "" } }, t)
    for _, bad in ipairs{
      "PING\r\n", "+PING\r\n", "$4\r\nPING\r\n", "*-1\r\n", "*1\r\n$-1\r\n", "*1\r\n:1\r\n",
      "*1\r\n*1\r\n$1\r\na\r\n", "*2\r\n$3\r\nGET\r\n",
    } do
      stops(bad, nil, true)
    end
    stops("*1\r\n$1\r\na\r\n", { max_depth = 1, max_bulk = 0 }, true)
  end)
end)

describe("tide.resp_encode", function()
  it("makes the bytes of a command from strings and numbers in one call", function()
    assert.equals("*0\r\n", tide.resp_encode())
    assert.equals("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", tide.resp_encode("GET", ""))
    assert.equals("*3\r\n$1\r\n0\r\n$20\r\n-9223372036854775808\r\n$3\r\na\0b\r\n",
      tide.resp_encode(0, math.mininteger, "a\0b"))
    -- floats with 17 digits, as string.format gives them: they read back equal
    for _, x in ipairs{ 0.1, 1 / 3, -2.5, 1e300, 2^53 + 0.0, math.huge, -math.huge } do
      local s = string.format("%.17g", x)
      assert.equals("*1\r\n$" .. #s .. "\r\n" .. s .. "\r\n", tide.resp_encode(x))
      if x ~= math.huge and x ~= -math.huge then assert.equals(x, tonumber(s)) end
    end
    local big = ("x"):rep(100000)  -- past the C buffer's first size
    assert.equals("*2\r\n$3\r\nSET\r\n$100000\r\n" .. big .. "\r\n", tide.resp_encode("SET", big))
  end)

  it("returns nil and the position of the first argument of another type", function()
    assert.same({ nil, 3 }, { tide.resp_encode("SET", "k", nil) })
    assert.same({ nil, 1 }, { tide.resp_encode({}, "k") })
    assert.same({ nil, 2 }, { tide.resp_encode("SET", true, {}) })
    assert.same({ nil, 2 }, { tide.resp_encode("SET", null) })
  end)

  it("gives resp.encode's bytes for a list, and its errors", function()
    local args = {}
    for i = 1, 1000 do args[i] = i % 2 == 0 and i or tostring(i):rep(i % 7) end
    local want = { "*1000\r\n" }
    for i = 1, 1000 do
      local a = tostring(args[i])
      want[#want + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    assert.equals(table.concat(want), resp.encode(args, 1000))
    assert.equals("*1\r\n$3\r\nGET\r\n", resp.encode3(1, "GET"))
    assert.equals("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n", resp.encode3(3, "SET", "k", 1))
    assert.has_error(function() resp.encode3(2, "GET", false) end,
      "bad argument #2 to redis command (string or number expected, got boolean)")
  end)
end)

describe("tide.redis.resp's queue of replies parsed ahead", function()
  it("hands them out one by one, between replies the Lua parser takes", function()
    local p = resp.parser()
    p:feed(":1\r\n$-1\r\n-ERR x\r\n+a\r\n$3\r\nab")
    assert.same({ true, 1 }, { p:next() })
    assert.equals(2, p.qn)  -- both plain replies before the error came in one call
    local done, v = p:next()
    assert.is_true(done); assert.is_nil(v)
    done, v = p:next()
    assert.is_true(done); assert.is_true(tide.is_error(v, "ERR"))
    assert.same({ true, "a" }, { p:next() })
    assert.is_false(p:next())
    assert.equals(6, p:buffered())  -- "$3\r\nab"
    p:feed("c\r\n")
    assert.same({ true, "abc" }, { p:next() })
    assert.equals(0, p:buffered())
  end)

  it("checks commands queued by next() when next_command() takes them", function()
    local p = resp.parser{ max_depth = 1 }
    p:feed("*1\r\n$4\r\nPING\r\n:1\r\n")
    assert.same({ true, { "PING" } }, { p:next() })  -- queued both
    local ok, err = pcall(p.next_command, p)
    assert.is_false(ok)
    assert.is_true(tide.is_error(err, "EPROTO"))
  end)
end)
