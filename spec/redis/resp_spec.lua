-- tide.redis.resp: the RESP2 codec, without sockets.
local tide = require "tide"
local resp = require "tide.redis.resp"
local null = resp.null

-- Feeds `bytes` to a new parser `step` bytes at a time; returns every reply.
local function parse_all(bytes, step, limits)
  local p = resp.parser(limits)
  local out = { n = 0 }
  for i = 1, #bytes, step or #bytes do
    p:feed(bytes:sub(i, i + (step or #bytes) - 1))
    while true do
      local done, v = p:next()
      if not done then break end
      out.n = out.n + 1
      out[out.n] = v
    end
  end
  return out, p
end

local function proto_error(bytes, limits, pattern)
  local ok, err = pcall(parse_all, bytes, nil, limits)
  assert.is_false(ok)
  assert.is_true(tide.is_error(err, "EPROTO"), tostring(err))
  if pattern then assert.matches(pattern, err.message) end
end

describe("tide.redis.resp", function()
  describe("parser", function()
    it("maps every reply type to Lua", function()
      local out = parse_all("+OK\r\n:42\r\n:-7\r\n$3\r\nbar\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n")
      assert.equals(8, out.n)
      assert.equals("OK", out[1])
      assert.equals(42, out[2]); assert.equals("integer", math.type(out[2]))
      assert.equals(-7, out[3])
      assert.equals("bar", out[4])
      assert.equals("", out[5])
      assert.is_nil(out[6]); assert.is_nil(out[7])
      assert.same({}, out[8])
    end)

    it("gives error replies as error objects with Redis's prefix as code", function()
      local out = parse_all("-WRONGTYPE Operation against a key\r\n-ERR\r\n-oops lower case\r\n")
      assert.is_true(tide.is_error(out[1], "WRONGTYPE"))
      assert.equals("Operation against a key", out[1].message)
      assert.is_true(out[1].redis)
      assert.equals("WRONGTYPE: Operation against a key", tostring(out[1]))
      assert.is_true(tide.is_error(out[2], "ERR"))
      assert.is_true(tide.is_error(out[3], "ERR"))
      assert.equals("oops lower case", out[3].message)
    end)

    it("puts redis.null where a nil stands inside an array", function()
      local out = parse_all("*4\r\n$1\r\na\r\n$-1\r\n*-1\r\n:1\r\n")
      assert.same({ "a", null, null, 1 }, out[1])
      assert.equals("redis.null", tostring(null))
    end)

    it("parses nested arrays with errors inside", function()
      local bytes = "*3\r\n*2\r\n+a\r\n*1\r\n:1\r\n-ERR bad\r\n*0\r\n"
      local out = parse_all(bytes)
      assert.equals("a", out[1][1][1])
      assert.equals(1, out[1][1][2][1])
      assert.is_true(tide.is_error(out[1][2], "ERR"))
      assert.same({}, out[1][3])
    end)

    it("gives the same replies when the bytes come one at a time", function()
      local bytes = "+OK\r\n*3\r\n$5\r\nhello\r\n*2\r\n:1\r\n$-1\r\n-ERR x\r\n$4\r\na\r\nb\r\n"
      local whole = parse_all(bytes)
      for _, step in ipairs{ 1, 2, 3, 7 } do
        local out = parse_all(bytes, step)
        assert.equals(whole.n, out.n)
        assert.equals("OK", out[1])
        assert.equals("hello", out[2][1])
        assert.same({ 1, null }, out[2][2])
        assert.equals("x", out[2][3].message)
        assert.equals("a\r\nb", out[3])
      end
    end)

    it("gathers a large bulk string in pieces and joins it once", function()
      local big = string.rep("x", 300000)
      local out, p = parse_all("$" .. #big .. "\r\n" .. big .. "\r\n:1\r\n", 4096)
      assert.equals(2, out.n)
      assert.equals(big, out[1])
      assert.equals(1, out[2])
      assert.equals(0, p:buffered())
    end)

    it("parses a long array cut anywhere without parsing it again", function()
      local parts = { "*10000\r\n" }
      for i = 1, 10000 do parts[#parts + 1] = "$" .. #tostring(i) .. "\r\n" .. i .. "\r\n" end
      local out = parse_all(table.concat(parts), 1000)
      assert.equals(1, out.n)
      assert.equals(10000, #out[1])
      assert.equals("10000", out[1][10000])
    end)

    it("rejects unknown types, bad lengths and missing CRLF with EPROTO", function()
      proto_error("?what\r\n", nil, "unknown reply type")
      proto_error("$abc\r\n", nil, "bad bulk length")
      proto_error("$-2\r\n", nil, "bad bulk length")
      proto_error(":12x\r\n", nil, "bad integer")
      proto_error(": 12\r\n", nil, "bad integer")
      proto_error(":0x10\r\n", nil, "bad integer")
      proto_error("*1x\r\n", nil, "bad aggregate length")
      proto_error("$3\r\nabcd\r\n", nil, "not followed by CRLF")
      -- found by make fuzz: 19 digits past 2^63 read as a float
      proto_error("$9994567890123456781\r\n", nil, "bad bulk length")
      proto_error("*9994567890123456781\r\n", nil, "bad aggregate length")
      proto_error(":-9999999999999999999\r\n", nil, "bad integer")
    end)

    it("enforces its limits", function()
      proto_error("$11\r\nhello world\r\n", { max_bulk = 10 }, "bulk string of 11 bytes")
      proto_error("*3\r\n", { max_array = 2 }, "aggregate of 3 elements")
      proto_error("*1\r\n*1\r\n*1\r\n:1\r\n", { max_depth = 2 }, "nested deeper than 2")
      proto_error("+" .. string.rep("a", 100) .. "\r\n", { max_line = 50 }, "line longer")
      -- a line without its end is refused as soon as it is too long
      local p = resp.parser{ max_line = 50 }
      p:feed("+" .. string.rep("a", 60))
      local ok, err = pcall(p.next, p)
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EPROTO"))
      assert.has_error(function() resp.parser{ max_bulk = 0 } end)
    end)

    it("waits for more while a reply is incomplete", function()
      local p = resp.parser()
      p:feed("*2\r\n$3\r\nab")
      assert.is_false(p:next())
      p:feed("c\r\n")
      assert.is_false(p:next())
      p:feed(":5\r\n")
      local done, v = p:next()
      assert.is_true(done)
      assert.same({ "abc", 5 }, v)
    end)
  end)

  describe("parser, RESP3", function()
    local bytes = "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*2\r\n_\r\n#t\r\n" ..  -- a map
      "~2\r\n+x\r\n+y\r\n,3.5\r\n,-inf\r\n(12345678901234567890\r\n" ..
      "=8\r\ntxt:hell\r\n!10\r\nERR failed\r\n" ..
      "|1\r\n+ttl\r\n:5\r\n+after the attribute\r\n" ..
      ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n_\r\n#f\r\n%0\r\n|0\r\n:7\r\n"

    local function all(step)
      local p = resp.parser()
      local out = {}
      for i = 1, #bytes, step do
        p:feed(bytes:sub(i, i + step - 1))
        while true do
          local done, v, push = p:next()
          if not done then break end
          out[#out + 1] = { v = v, push = push }
        end
      end
      return out
    end

    it("maps maps, sets, nulls, booleans, doubles, big numbers, verbatim strings and blob errors", function()
      for _, step in ipairs{ #bytes, 1, 3 } do
        local o = all(step)
        assert.equals(13, #o)
        assert.same({ a = 1, b = { null, true } }, o[1].v)
        assert.same({ "x", "y" }, o[2].v)
        assert.equals(3.5, o[3].v); assert.equals("float", math.type(o[3].v))
        assert.equals(-math.huge, o[4].v)
        assert.equals("12345678901234567890", o[5].v)
        assert.equals("hell", o[6].v)
        assert.is_true(tide.is_error(o[7].v, "ERR")); assert.equals("failed", o[7].v.message)
        assert.equals("after the attribute", o[8].v)   -- the attribute is dropped
        assert.same({ "message", "ch", "hi" }, o[9].v); assert.is_true(o[9].push)
        assert.is_nil(o[10].v); assert.is_false(o[11].v)
        assert.same({}, o[12].v)
        assert.equals(7, o[13].v)
      end
    end)

    it("rejects bad RESP3 values", function()
      proto_error("#x\r\n", nil, "bad boolean")
      proto_error(",1.2.3\r\n", nil, "bad double")
      proto_error("(12a\r\n", nil, "bad big number")
      proto_error("_x\r\n", nil, "bad null")
      proto_error("%-1\r\n", nil, "bad aggregate length")
      proto_error("=2\r\nab\r\n", nil, "verbatim")
    end)
  end)

  describe("next_command", function()
    local function commands(bytes, step)
      local p = resp.parser{ max_depth = 1 }
      local out = {}
      for i = 1, #bytes, step do
        p:feed(bytes:sub(i, i + step - 1))
        while true do
          local done, c = p:next_command()
          if not done then break end
          out[#out + 1] = c
        end
      end
      return out
    end

    it("takes arrays of bulk strings and inline lines, whole or cut anywhere", function()
      local bytes = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\nPING\r\nGET  k\n*1\r\n$4\r\nPING\r\n"
      for _, step in ipairs{ #bytes, 1, 5 } do
        assert.same({ { "SET", "k", "a\r\nb" }, { "PING" }, { "GET", "k" }, { "PING" } }, commands(bytes, step))
      end
    end)

    it("refuses commands that are not arrays of bulk strings", function()
      local p = resp.parser{ max_depth = 1 }
      p:feed("*2\r\n:1\r\n:2\r\n")
      assert.has_error(function() p:next_command() end)
      p = resp.parser{ max_depth = 1 }
      p:feed("*1\r\n*1\r\n$1\r\na\r\n")
      local ok, err = pcall(p.next_command, p)
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EPROTO"))
      p = resp.parser{ max_depth = 1 }
      p:feed("*1\r\n$1\r\nab\r\n")
      assert.has_error(function() p:next_command() end)
    end)
  end)

  describe("encode", function()
    it("makes an array of bulk strings from strings and numbers", function()
      assert.equals("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n", resp.encode({ "SET", "k", 42 }, 3))
      assert.equals("*2\r\n$4\r\nECHO\r\n$3\r\n0.5\r\n", resp.encode({ "ECHO", 0.5 }, 2))
      assert.equals("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", resp.encode({ "ECHO", "" }, 2))
    end)

    it("raises on arguments that are neither strings nor numbers", function()
      assert.has_error(function() resp.encode({ "SET", "k", true }, 3) end,
        "bad argument #3 to redis command (string or number expected, got boolean)")
      assert.has_error(function() resp.encode({ "SET", "k", nil }, 3) end)
      assert.has_error(function() resp.encode({ "SET", "k", null }, 3) end)
    end)
  end)
end)
