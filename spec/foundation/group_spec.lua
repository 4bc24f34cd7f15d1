-- Specs of task groups: tide.group.
local tide = require "tide"

describe("tide.group", function()
  it("waits for every child and gives their results in spawn order", async(function()
    local g = tide.group()
    g:spawn(function() tide.sleep(0.02):await(); return "a", 1 end)
    g:spawn(function() return "b" end)
    local r = g:wait():await()
    assert.equal(2, #r)
    assert.same({ "a", 1, n = 2 }, r[1])
    assert.same({ "b", n = 1 }, r[2])
  end))

  it("cancels the siblings and fails with the first error", async(function()
    local g = tide.group()
    local cleaned = false
    local slow = g:spawn(function()
      local ok = pcall(function() tide.sleep(5):await() end)
      cleaned = not ok
    end)
    g:spawn(function() tide.sleep(0.01):await(); error("child failed", 0) end)
    assert.same({ false, "child failed" }, { pcall(tide.await, g:wait()) })
    slow:await()
    assert.is_true(cleaned)
  end))

  it("refuses new children once it has failed", async(function()
    local g = tide.group()
    g:spawn(function() error("x", 0) end)
    pcall(tide.await, g:wait())
    assert.has_error(function() g:spawn(function() end) end)
  end))

  it("cancels its running children when a <close> variable goes out of scope", async(function()
    local child
    do
      local g <close> = tide.group()
      child = g:spawn(function() tide.sleep(5):await() end)
      tide.sleep(0):await()
    end
    assert.same({ false, tide.Cancelled }, { pcall(tide.await, child) })
  end))

  it("fulfils at once when it has no children", async(function()
    assert.same({}, tide.group():wait():await())
  end))
end)
