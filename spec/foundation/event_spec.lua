-- Specs of tide.event: a flag tasks wait for (docs/lua-api.md, "Events").
local tide = require "tide"

describe("tide.event", function()
  it("wakes every waiter when set", async(function()
    local e = tide.event()
    local woken = 0
    local tasks = {}
    for i = 1, 3 do tasks[i] = tide.spawn(function() e:wait():await(); woken = woken + 1 end) end
    tide.sleep(0.01):await()
    assert.same({ 0, 3, false }, { woken, e.waiters, e:is_set() })
    e:set()
    for i = 1, 3 do tasks[i]:await() end
    assert.same({ 3, 0, true }, { woken, e.waiters, e:is_set() })
  end))

  it("lets waits through at once while set, and waits again after clear", async(function()
    local e = tide.event()
    e:set()
    assert.equal("fulfilled", e:wait():state())
    e:clear()
    assert.is_false(e:is_set())
    local p = e:wait()
    tide.sleep(0):await()
    assert.equal("pending", p:state())
    e:set()
    p:await()
  end))

  it("rejects a wait with ETIMEDOUT after its timeout", async(function()
    local e = tide.event()
    local ok, err = pcall(tide.await, e:wait(0.01))
    assert.is_false(ok)
    assert.equal("ETIMEDOUT", err.code)
    assert.equal(0, e.waiters)
  end))

  it("refuses a bad timeout, even when set", function()
    local e = tide.event()
    e:set()
    assert.has_error(function() e:wait(-1) end)
    assert.has_error(function() e:wait(0 / 0) end)
  end)

  it("forgets the wait of a cancelled task", async(function()
    local e = tide.event()
    local t = tide.spawn(function() e:wait():await() end)
    tide.sleep(0):await()
    assert.equal(1, e.waiters)
    t:cancel()
    assert.same({ false, tide.Cancelled }, { pcall(tide.await, t) })
    assert.equal(0, e.waiters)
  end))
end)
