-- Specs of tide.charset: byte sets and their scan function.
local tide = require "tide"

describe("tide.charset", function()
  it("scans to the first byte outside the set", function()
    local span = tide.charset("a-z0-9_")
    assert.equal(6, span("ab_09X1"))
    assert.equal(4, span("abc"))
    assert.equal(1, span("Abc"))
    assert.equal(1, span(""))
  end)

  it("takes a - first or last as itself, and ranges anywhere else", function()
    assert.equal(4, tide.charset("-a")("a-aX"))
    assert.equal(4, tide.charset("a-")("a-aX"))
    local plus_to_dot = tide.charset("+-.")     -- + , - .
    assert.equal(5, plus_to_dot("+,-.x"))
  end)

  it("handles every byte value, NUL and 255 included", function()
    local all = tide.charset("\0-\255")
    local s = {}
    for b = 0, 255 do s[#s + 1] = string.char(b) end
    s = table.concat(s)
    assert.equal(257, all(s))
    assert.equal(2, tide.charset("\0")("\0\1"))
    assert.equal(1, tide.charset("\1-\255")("\0"))
  end)

  it("scans s[i..j] with string.sub's rules for positions", function()
    local digits = tide.charset("0-9")
    local s = "ab123cd"
    assert.equal(6, digits(s, 3))
    assert.equal(5, digits(s, 3, 4))       -- j + 1: all of s[3..4] are digits
    assert.equal(6, digits(s, -5))         -- from "1"
    assert.equal(5, digits(s, -5, -4))
    assert.equal(1, digits(s, 0))          -- 0 counts as 1: "a" is no digit
    assert.equal(9, digits(s, 9))          -- past the end: the empty range
    assert.equal(4, digits(s, 4, 2))       -- empty: i
  end)

  it("rejects a reversed range and a spec that is not a string", function()
    assert.has_error(function() tide.charset("z-a") end, "tide.charset: range z-a is reversed")
    assert.has_error(function() tide.charset({}) end)
    assert.has_error(function() tide.charset("a")({}) end)
  end)
end)
