-- Specs of level-triggered cancellation: task:cancel, tide.shield,
-- tide.is_cancelled (docs/lua-api.md, "Cancellation").
local tide = require "tide"

-- A task that catches the first cancellation, then runs `after` and
-- records what it returned or raised.
local function catching(after)
  local rec = {}
  local t = tide.spawn(function()
    rec.first = select(2, pcall(tide.await, tide.sleep(5)))
    rec.after = table.pack(pcall(after))
    return "done"
  end)
  return t, rec
end

describe("cancellation", function()
  describe("is level-triggered", function()
    it("raises tide.Cancelled again at the next await of a task that swallowed it", async(function()
      local t, rec = catching(function() return tide.sleep(0.01):await() end)
      tide.sleep(0):await()
      assert.is_true(t:cancel())
      assert.equal("done", t:await())
      assert.equal(tide.Cancelled, rec.first)
      assert.same({ false, tide.Cancelled, n = 2 }, rec.after)
    end))

    it("raises at every await until the task ends, without suspending", async(function()
      local seen = {}
      local t = tide.spawn(function()
        pcall(tide.await, tide.sleep(5))
        for i = 1, 3 do
          local before = tide.hrtime()
          local ok, err = pcall(tide.await, tide.sleep(1))
          seen[i] = { ok, err, (tide.hrtime() - before) < 5e8 }
        end
      end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      for i = 1, 3 do assert.same({ false, tide.Cancelled, true }, seen[i]) end
    end))

    it("raises on awaiting a promise that has settled already", async(function()
      local t, rec = catching(function() return tide.resolved("ready"):await() end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      assert.same({ false, tide.Cancelled, n = 2 }, rec.after)
    end))

    it("ends a task that swallowed it and returns without awaiting as fulfilled", async(function()
      local t = tide.spawn(function()
        local _, err = pcall(tide.await, tide.sleep(5))
        if tide.is_cancelled(err) then return "cleaned up, no await" end
      end)
      tide.sleep(0):await()
      t:cancel()
      assert.same({ "cleaned up, no await" }, { t:await() })
      assert.equal("fulfilled", t:state())
    end))

    it("rejects the task with tide.Cancelled when the second one is not caught", async(function()
      local t = tide.spawn(function()
        pcall(tide.await, tide.sleep(5))
        tide.sleep(0.01):await()
        return "not reached"
      end)
      tide.sleep(0):await()
      t:cancel()
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, t) })
    end))

    it("releases what a cancelled task awaits (a sleep is stopped)", async(function()
      local sleep
      local t = tide.spawn(function()
        pcall(tide.await, tide.sleep(5))
        sleep = tide.sleep(30)
        pcall(tide.await, sleep)
      end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      assert.equal("rejected", sleep:state())
      assert.same({ false, tide.Cancelled }, { sleep:result() })
    end))

    it("lets an await return what had already settled when the cancel came, and raises at the next", async(function()
      local p = tide.promise()
      local got, second
      local t = tide.spawn(function()
        got = p:await()
        second = table.pack(pcall(tide.await, tide.resolved(1)))
      end)
      tide.sleep(0):await()
      p:resolve("item")        -- the task's wake-up is queued ...
      assert.is_true(t:cancel())  -- ... when the cancel comes
      t:await()
      assert.equal("item", got)
      assert.same({ false, tide.Cancelled, n = 2 }, second)
    end))
  end)

  describe("task:cancel", function()
    it("is a no-op on a finished task and on one cancelled already", async(function()
      local done = tide.spawn(function() return "finished" end)
      assert.equal("finished", done:await())
      assert.is_false(done:cancel())
      assert.equal("fulfilled", done:state())
      assert.equal("finished", done:await())
      local t = tide.spawn(function()
        pcall(tide.await, tide.sleep(5))
        return "caught"
      end)
      tide.sleep(0):await()
      assert.is_true(t:cancel())
      assert.is_false(t:cancel())
      assert.equal("caught", t:await())
    end))

    it("is done once by tide.timeout on a task", async(function()
      local caught = 0
      local t = tide.spawn(function()
        local _, err = pcall(tide.await, tide.sleep(5))
        if err == tide.Cancelled then caught = caught + 1 end
        tide.shield(function() tide.sleep(0.02):await() end)
        return "cleaned up"
      end)
      local ok, err = pcall(tide.await, tide.timeout(t, 0.01))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_false(t:cancel())  -- the timeout did it, once
      assert.equal("cleaned up", t:await())
      assert.equal(1, caught)
    end))
  end)

  describe("tide.shield", function()
    it("lets a cancelled task await inside it and returns the function's results", async(function()
      local t, rec = catching(function()
        return tide.shield(function(a, b)
          tide.sleep(0.01):await()
          return a + b, "shielded"
        end, 1, 2)
      end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      assert.same({ true, 3, "shielded", n = 3 }, rec.after)
    end))

    it("runs a cleanup with a time limit of its own", async(function()
      local t, rec = catching(function()
        return tide.shield(function() return tide.timeout(tide.promise(), 0.01):await() end)
      end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      assert.is_false(rec.after[1])
      assert.equal("ETIMEDOUT", rec.after[2].code)
    end))

    it("holds back a cancel that arrives inside it until the first await after it", async(function()
      local steps = {}
      local t = tide.spawn(function()
        tide.shield(function()
          tide.sleep(0.03):await()         -- cancelled meanwhile: not interrupted
          steps[#steps + 1] = "slept"
        end)
        steps[#steps + 1] = "after the shield"
        local _, err = pcall(tide.await, tide.sleep(0.01))
        steps[#steps + 1] = err
      end)
      tide.sleep(0.01):await()
      assert.is_true(t:cancel())
      t:await()
      assert.same({ "slept", "after the shield", tide.Cancelled }, steps)
    end))

    it("nests: the cancel waits for the outermost shield to end", async(function()
      local steps = {}
      local t = tide.spawn(function()
        tide.shield(function()
          tide.shield(function() tide.sleep(0.02):await() end)
          steps[#steps + 1] = select(2, pcall(tide.await, tide.sleep(0.01))) or "inner ended, still shielded"
        end)
        steps[#steps + 1] = select(2, pcall(tide.await, tide.sleep(0.01)))
      end)
      tide.sleep(0.005):await()
      t:cancel()
      t:await()
      assert.same({ "inner ended, still shielded", tide.Cancelled }, steps)
    end))

    it("raises what the function raises, and ends the shield", async(function()
      local t, rec = catching(function()
        local ok, err = pcall(tide.shield, function()
          tide.sleep(0):await()
          error("cleanup failed", 0)
        end)
        assert(not ok and err == "cleanup failed")
        return tide.resolved(1):await()
      end)
      tide.sleep(0):await()
      t:cancel()
      t:await()
      assert.same({ false, tide.Cancelled, n = 2 }, rec.after)
    end))

    it("just calls the function outside a task", function()
      assert.same({ 1, 2 }, { tide.shield(function(...) return ... end, 1, 2) })
    end)
  end)

  describe("tide.is_cancelled", function()
    it("is true for tide.Cancelled and ECANCELED error objects only", async(function()
      local t = tide.spawn(function() tide.sleep(5):await() end)
      tide.sleep(0):await()
      t:cancel()
      local _, err = pcall(tide.await, t)
      assert.is_true(tide.is_cancelled(err))
      assert.is_true(tide.is_cancelled(tide.Cancelled))
      assert.is_true(tide.is_cancelled(tide.error("ECANCELED", "stopped")))
      assert.is_false(tide.is_cancelled(tide.error("ETIMEDOUT", "timed out")))
      assert.is_false(tide.is_cancelled({ code = "ECANCELED" }))
      assert.is_false(tide.is_cancelled("cancelled"))
      assert.is_false(tide.is_cancelled(nil))
    end))
  end)

  describe("task groups", function()
    it("end a child that swallows the cancellation and awaits again", async(function()
      local g = tide.group()
      local second
      local child = g:spawn(function()
        pcall(tide.await, tide.sleep(5))
        second = select(2, pcall(tide.await, tide.sleep(5)))
      end)
      g:spawn(function() tide.sleep(0.01):await(); error("boom", 0) end)
      assert.same({ false, "boom" }, { pcall(tide.await, g:wait()) })
      child:await()
      assert.equal(tide.Cancelled, second)
    end))
  end)
end)
