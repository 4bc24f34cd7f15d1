-- Specs of tide.semaphore: permits handed out in order (docs/lua-api.md,
-- "Semaphores").
local tide = require "tide"

describe("tide.semaphore", function()
  it("bounds 100 concurrent fetches to 5 at a time", async(function()
    local s = tide.semaphore(5)
    local in_flight, max_in_flight, done = 0, 0, 0
    local function fetch(i)
      local _permit <close> = s:acquire():await()
      in_flight = in_flight + 1
      if in_flight > max_in_flight then max_in_flight = in_flight end
      tide.sleep(0.001 * (i % 3)):await()
      in_flight = in_flight - 1
      done = done + 1
    end
    local g = tide.group()
    for i = 1, 100 do g:spawn(fetch, i) end
    g:wait():await()
    assert.equal(100, done)
    assert.equal(5, max_in_flight)
    assert.same({ 5, 0 }, { s.available, s.waiters })
  end))

  it("serves waiters first come, first served", async(function()
    local s = tide.semaphore(1)
    local first = s:acquire():await()
    local order = {}
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = tide.spawn(function()
        local _permit <close> = s:acquire():await()
        order[#order + 1] = i
        tide.sleep(0):await()
      end)
      tide.sleep(0):await()
    end
    assert.equal(4, s.waiters)
    first:release()
    for i = 1, 4 do tasks[i]:await() end
    assert.same({ 1, 2, 3, 4 }, order)
  end))

  it("gives a permit that releases once, through <close> or release()", async(function()
    local s = tide.semaphore(2)
    do
      local p <close> = s:acquire():await()
      assert.equal(1, s.available)
      p:release()
      p:release()
      assert.equal(2, s.available)
    end
    assert.equal(2, s.available)
    s:acquire():await()
    s:release()
    assert.equal(2, s.available)
    assert.has_error(function() s:release() end, "tide.semaphore: released more than acquired")
  end))

  it("rejects a waiting acquire with ETIMEDOUT after its timeout, keeping the count", async(function()
    local s = tide.semaphore(1)
    local held = s:acquire():await()
    local ok, err = pcall(tide.await, s:acquire(0.01))
    assert.is_false(ok)
    assert.equal("ETIMEDOUT", err.code)
    assert.equal(0, s.waiters)
    held:release()
    assert.equal(1, s.available)
  end))

  it("loses no permit when a waiting acquire is cancelled", async(function()
    local s = tide.semaphore(1)
    local held = s:acquire():await()
    local waiting = tide.spawn(function() local _p <close> = s:acquire():await() end)
    local next_in_line = tide.spawn(function()
      local _p <close> = s:acquire():await()
      return "served"
    end)
    tide.sleep(0):await()
    waiting:cancel()
    held:release()
    assert.equal("served", next_in_line:await())
    assert.same({ false, tide.Cancelled }, { pcall(tide.await, waiting) })
    assert.same({ 1, 0 }, { s.available, s.waiters })
  end))

  it("hands a permit granted just before a cancel to the task, whose <close> gives it back", async(function()
    local s = tide.semaphore(1)
    local held = s:acquire():await()
    local t = tide.spawn(function()
      local _p <close> = s:acquire():await()
      tide.sleep(0):await()              -- raises the cancel
    end)
    tide.sleep(0):await()
    held:release()                       -- granted to t ...
    t:cancel()                           -- ... which is cancelled in the same turn
    assert.same({ false, tide.Cancelled }, { pcall(tide.await, t) })
    assert.equal(1, s.available)
  end))

  it("makes a cancelled task acquire nothing", async(function()
    local s = tide.semaphore(1)
    local t = tide.spawn(function()
      pcall(tide.await, tide.sleep(5))
      return select(2, pcall(tide.await, s:acquire()))
    end)
    tide.sleep(0):await()
    t:cancel()
    assert.equal(tide.Cancelled, t:await())
    assert.equal(1, s.available)
  end))

  it("refuses a count that is not an integer >= 0", function()
    assert.has_error(function() tide.semaphore(-1) end)
    assert.has_error(function() tide.semaphore(1.5) end)
    assert.has_error(function() tide.semaphore() end)
  end)

  it("refuses a bad timeout, even when a permit is free", function()
    assert.has_error(function() tide.semaphore(1):acquire(-1) end)
    assert.has_error(function() tide.semaphore(1):acquire{ timeout = "soon" } end)
  end)
end)
