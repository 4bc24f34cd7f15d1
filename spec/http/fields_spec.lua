-- tide.fields: the C splitter of "Name: value" blocks that tide.http.h1
-- parses header blocks with.
local tide = require "tide"

describe("tide.fields", function()
  it("splits fields into name, lowercased name and trimmed value, indexing first positions", function()
    local t, n, index = tide.fields("Host: a\r\nX-A:  1 \t\r\nx-a: 2", 1)
    assert.are.equal(3, n)
    assert.are.same({ "Host", "host", "a", "X-A", "x-a", "1", "x-a", "x-a", "2" }, t)
    assert.are.same({ host = 1, ["x-a"] = 2 }, index)
  end)

  it("starts at the given position and accepts an empty value", function()
    local t, n = tide.fields("GET / HTTP/1.1\r\nA:\r\n", 17)
    assert.are.equal(1, n)
    assert.are.same({ "A", "a", "" }, t)
  end)

  it("reports the line at fault and why", function()
    local s = "A: 1\r\nB : 2\r\n"
    assert.are.same({ nil, 7, "syntax" }, { tide.fields(s, 1) })
    assert.are.same({ nil, 1, "syntax" }, { tide.fields("A: 1\nB: 2", 1) })
    assert.are.same({ nil, 1, "syntax" }, { tide.fields("A: \0", 1) })
    assert.are.same({ nil, 7, "count" }, { tide.fields("A: 1\r\nB: 2", 1, 1) })
    assert.are.same({ nil, 1, "line" }, { tide.fields("A: 12345", 1, 10, 5) })
  end)

  it("lowercases long names too", function()
    local name = string.rep("Ab", 100)
    local t = tide.fields(name .. ": v", 1)
    assert.are.equal(name:lower(), t[2])
  end)
end)
