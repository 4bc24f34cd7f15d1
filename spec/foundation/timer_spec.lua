-- Specs of time: tide.sleep, tide.timer, tide.interval, tide.timeout, tide.now.
local tide = require "tide"

describe("tide time", function()
  describe("sleep", function()
    it("fulfils after the given seconds", async(function()
      local t0 = tide.hrtime()
      tide.sleep(0.05):await()
      local ms = (tide.hrtime() - t0) / 1e6
      assert.is_true(ms >= 45, "slept only " .. ms .. " ms")
    end))

    it("refuses negative, NaN and infinite durations", function()
      assert.has_error(function() tide.sleep(-1) end)
      assert.has_error(function() tide.sleep(0 / 0) end)
      assert.has_error(function() tide.sleep(math.huge) end)
      assert.has_error(function() tide.sleep("soon") end)
    end)

    it("stops its timer when settled by hand, so the loop does not wait for it", function()
      local t0 = tide.hrtime()
      local out, err = run_tide([[-e 'local s = tide.sleep(5); s:resolve("early"); print(s:await())' ]] ..
        [[-e 'local t = tide.timeout(tide.sleep(5), 10); t:reject("no"); print(pcall(tide.await, t))']])
      assert.equal("early\nfalse\tno\n", out, err)
      assert.is_true(tide.hrtime() - t0 < 2e9)
    end)

    it("can be cancelled, which rejects it with tide.Cancelled", async(function()
      local s = tide.sleep(10)
      assert.is_true(s:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, s) })
      assert.is_false(s:cancel())
    end))
  end)

  describe("timer", function()
    it("runs the function as a task after the delay and gives its results", async(function()
      local t = tide.timer(0.01, function(a) tide.sleep(0):await(); return a * 2 end, 21)
      assert.equal(42, t:await())
    end))

    it("runs a function without arguments as a full task: it awaits, knows itself, fails with a traceback", async(function()
      local me
      local t = tide.timer(0.005, function()
        me = tide.current()
        tide.sleep(0):await()
        return "done"
      end)
      assert.equal("done", t:await())
      assert.equal(t, me)
      local bad = tide.timer(0, function() error("boom") end)
      local ok, err = pcall(tide.await, bad)
      assert.is_false(ok)
      assert.matches("boom", tostring(err))
    end))

    it("fires timers of mixed delays in due order, then start order", async(function()
      local order, all = {}, {}
      for i, d in ipairs({ 0.03, 0.01, 0.02, 0.01, 0, 0.03 }) do
        all[#all + 1] = tide.timer(d, function() order[#order + 1] = i end)
      end
      tide.all(all):await()
      assert.same({ 5, 2, 4, 3, 1, 6 }, order)
    end))

    it("never runs the function when cancelled before the delay", async(function()
      local ran = false
      local t = tide.timer(0.02, function() ran = true end)
      t:cancel()
      assert.is_false(pcall(tide.await, t))
      tide.sleep(0.04):await()
      assert.is_false(ran)
    end))
  end)

  describe("interval", function()
    it("calls the function on schedule until it returns false", async(function()
      local calls = {}
      local t = tide.interval(0.01, function(i) calls[#calls + 1] = i; if i == 4 then return false end end)
      assert.equal(4, t:await())
      assert.same({ 1, 2, 3, 4 }, calls)
    end))

    it("stops when cancelled", async(function()
      local n = 0
      local t = tide.interval(0.005, function() n = n + 1 end)
      tide.sleep(0.03):await()
      t:cancel()
      local seen = n
      tide.sleep(0.03):await()
      assert.is_true(seen > 0)
      assert.equal(seen, n)
    end))

    it("refuses a zero period", function()
      assert.has_error(function() tide.interval(0, function() end) end)
    end)
  end)

  describe("timeout", function()
    it("settles as the promise when it is in time", async(function()
      assert.equal("fast", tide.timeout(tide.sleep(0.001):next(function() return "fast" end), 1):await())
    end))

    it("rejects with ETIMEDOUT and cancels the late task", async(function()
      local finished = false
      local slow = tide.spawn(function() tide.sleep(5):await(); finished = true end)
      local ok, err = pcall(tide.await, tide.timeout(slow, 0.01))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, slow) })
      assert.is_false(finished)
    end))

    it("with {shield = true} stops waiting without cancelling the promise", async(function()
      local slow = tide.spawn(function() tide.sleep(0.03):await(); return "finished" end)
      local ok, err = pcall(tide.await, tide.timeout(slow, 0.01, { shield = true }))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.equal("pending", slow:state())
      assert.equal("finished", slow:await())
    end))
  end)

  describe("now", function()
    it("is the loop's time in seconds and does not go backwards", async(function()
      local a = tide.now()
      tide.sleep(0.02):await()
      local b = tide.now()
      assert.is_true(b - a >= 0.015)
    end))
  end)
end)
