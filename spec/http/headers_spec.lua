-- Specs for tide.http.headers: ordered, case-insensitive header fields.

local headers = require "tide.http.headers"

local function fields(h)
  local list = {}
  for name, value in h:each() do list[#list + 1] = { name, value } end
  return list
end

describe("tide.http.headers", function()
  describe("new", function()
    it("creates an empty collection without arguments", function()
      local h = headers.new()
      assert.are.equal(0, h:len())
      assert.are.equal(0, #h)
      assert.is_nil(h:get("host"))
    end)

    it("accepts a map of name to value in sorted name order", function()
      local h = headers.new { ["Content-Type"] = "text/plain", Accept = "*/*" }
      assert.are.same({ { "Accept", "*/*" }, { "Content-Type", "text/plain" } }, fields(h))
    end)

    it("accepts a list of values in a map for repeated fields", function()
      local h = headers.new { ["Set-Cookie"] = { "a=1", "b=2" } }
      assert.are.same({ "a=1", "b=2" }, h:get_all("set-cookie"))
    end)

    it("accepts a list of name and value pairs in order", function()
      local h = headers.new { { "B", "1" }, { "a", "2" }, { "b", "3" } }
      assert.are.same({ { "B", "1" }, { "a", "2" }, { "b", "3" } }, fields(h))
    end)

    it("copies another headers object", function()
      local a = headers.new { { "X", "1" } }
      local b = headers.new(a)
      b:append("Y", "2")
      assert.are.equal(1, a:len())
      assert.are.equal(2, b:len())
    end)

    it("turns numbers into strings", function()
      local h = headers.new { ["Content-Length"] = 42 }
      assert.are.equal("42", h:get("content-length"))
    end)

    it("rejects invalid names and values", function()
      assert.has_error(function() headers.new { ["Bad Name"] = "x" } end)
      assert.has_error(function() headers.new { { "X", "a\r\nY: b" } } end)
      assert.has_error(function() headers.new { { "X" } } end)
      assert.has_error(function() headers.new "x" end)
    end)
  end)

  describe("get", function()
    it("looks names up in any case", function()
      local h = headers.new { { "Content-Type", "text/html" } }
      assert.are.equal("text/html", h:get("content-type"))
      assert.are.equal("text/html", h:get("CONTENT-TYPE"))
    end)

    it("returns the first value of a repeated field", function()
      local h = headers.new { { "X", "1" }, { "x", "2" } }
      assert.are.equal("1", h:get("X"))
    end)

    it("returns nil for a missing field", function()
      assert.is_nil(headers.new():get("nope"))
    end)
  end)

  describe("get_all", function()
    it("returns every value in order", function()
      local h = headers.new { { "A", "1" }, { "B", "x" }, { "a", "2" }, { "A", "3" } }
      assert.are.same({ "1", "2", "3" }, h:get_all("a"))
    end)

    it("returns an empty list for a missing field", function()
      assert.are.same({}, headers.new():get_all("a"))
    end)
  end)

  describe("get_joined", function()
    it("joins repeated values with a comma", function()
      local h = headers.new { { "Accept", "a" }, { "accept", "b" } }
      assert.are.equal("a, b", h:get_joined("ACCEPT"))
      assert.is_nil(h:get_joined("x"))
    end)
  end)

  describe("has", function()
    it("tells whether a field is present in any case", function()
      local h = headers.new { { "Host", "x" } }
      assert.is_true(h:has("host"))
      assert.is_false(h:has("accept"))
    end)
  end)

  describe("append", function()
    it("keeps repeated fields in order and the original case", function()
      local h = headers.new()
      h:append("Set-Cookie", "a"):append("X-One", "1"):append("set-cookie", "b")
      assert.are.same({ { "Set-Cookie", "a" }, { "X-One", "1" }, { "set-cookie", "b" } }, fields(h))
    end)

    it("accepts an empty value and obs-text", function()
      local h = headers.new()
      h:append("X", "")
      h:append("Y", "caf\xc3\xa9\tok")
      assert.are.equal("", h:get("x"))
      assert.are.equal("caf\xc3\xa9\tok", h:get("y"))
    end)

    it("raises on a name that is not a token", function()
      local h = headers.new()
      for _, bad in ipairs { "", "a b", "a:b", "a\r\n", "é", "(x)", "a\0" } do
        assert.has_error(function() h:append(bad, "v") end)
      end
      assert.has_error(function() h:append(nil, "v") end)
      assert.are.equal(0, h:len())
    end)

    it("raises on a value with CR, LF or NUL", function()
      local h = headers.new()
      for _, bad in ipairs { "a\rb", "a\nb", "a\0b", "x\r\nInjected: 1" } do
        assert.has_error(function() h:append("X", bad) end, nil)
      end
      assert.has_error(function() h:append("X", {}) end)
      assert.are.equal(0, h:len())
    end)

    it("gives an error message that names the problem", function()
      local ok, err = pcall(headers.new().append, headers.new(), "X", "a\nb")
      assert.is_false(ok)
      assert.matches("CR, LF or NUL", err)
    end)
  end)

  describe("set", function()
    it("replaces every field of the name at the first one's position", function()
      local h = headers.new { { "A", "1" }, { "B", "2" }, { "a", "3" }, { "C", "4" } }
      h:set("a", "new")
      assert.are.same({ { "a", "new" }, { "B", "2" }, { "C", "4" } }, fields(h))
      assert.are.same({ "new" }, h:get_all("A"))
      assert.are.equal("4", h:get("c"))
    end)

    it("appends when the field is missing", function()
      local h = headers.new { { "A", "1" } }
      h:set("B", "2")
      assert.are.same({ { "A", "1" }, { "B", "2" } }, fields(h))
    end)

    it("validates like append", function()
      assert.has_error(function() headers.new():set("X", "a\r\nb") end)
      assert.has_error(function() headers.new():set("X Y", "a") end)
    end)
  end)

  describe("remove", function()
    it("removes every field of the name and keeps the others in order", function()
      local h = headers.new { { "A", "1" }, { "B", "2" }, { "a", "3" }, { "C", "4" } }
      assert.are.equal(2, h:remove("A"))
      assert.are.same({ { "B", "2" }, { "C", "4" } }, fields(h))
      assert.is_false(h:has("a"))
      assert.are.equal("4", h:get("C"))
      assert.are.equal(0, h:remove("missing"))
    end)
  end)

  describe("each", function()
    it("iterates in insertion order", function()
      local h = headers.new { { "Z", "1" }, { "A", "2" } }
      assert.are.same({ { "Z", "1" }, { "A", "2" } }, fields(h))
    end)

    it("is also what pairs iterates", function()
      local h = headers.new { { "Z", "1" }, { "A", "2" }, { "z", "3" } }
      local list = {}
      for name, value in pairs(h) do list[#list + 1] = name .. "=" .. value end
      assert.are.same({ "Z=1", "A=2", "z=3" }, list)
    end)
  end)

  describe("clone", function()
    it("returns an independent copy", function()
      local a = headers.new { { "A", "1" } }
      local b = a:clone()
      b:set("A", "2")
      assert.are.equal("1", a:get("a"))
      assert.are.equal("2", b:get("a"))
    end)
  end)

  describe("metatable", function()
    it("names the type and prints the fields", function()
      local h = headers.new { { "A", "1" } }
      assert.are.equal("tide.http.headers", getmetatable(h).__name)
      assert.are.equal('tide.http.headers{"A": "1"}', tostring(h))
      assert.are.equal(headers.mt, getmetatable(h))
      assert.are.equal(headers.methods.get, h.get)
    end)
  end)
end)
