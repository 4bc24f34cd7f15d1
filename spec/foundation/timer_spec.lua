-- Specs of time: tide.sleep, tide.timer, tide.interval, tide.timeout, tide.now.
-- Bodies run under tide.test; those about schedules run on its virtual
-- clock, so minutes of timers take no real time and their times are exact.
local tide = require "tide"
local test = require "tide.test"

local VIRTUAL = { clock = "virtual" }

-- Seconds since t0 on the runtime's clock, rounded to its ms.
local function since(t0)
  return math.floor((tide.now() - t0) * 1000 + 0.5) / 1000
end

describe("tide time", function()
  describe("sleep", function()
    it("fulfils after the given seconds", test(function()
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

    it("can be cancelled, which rejects it with tide.Cancelled", test(function()
      local s = tide.sleep(10)
      assert.is_true(s:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, s) })
      assert.is_false(s:cancel())
    end))
  end)

  describe("timer", function()
    it("runs the function as a task after the delay and gives its results", test(VIRTUAL, function()
      local t0 = tide.now()
      local t = tide.timer(30, function(a) tide.sleep(0):await(); return a * 2 end, 21)
      assert.equal(42, t:await())
      assert.equal(30, since(t0))
    end))

    it("runs a function without arguments as a full task: it awaits, knows itself, fails with a traceback", test(VIRTUAL, function()
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

    it("fires timers of mixed delays in due order, then start order, each at its time", test(VIRTUAL, function()
      local order, all, t0 = {}, {}, tide.now()
      for i, d in ipairs({ 300, 100, 200, 100, 0, 300 }) do
        all[#all + 1] = tide.timer(d, function() order[#order + 1] = string.format("%d@%g", i, since(t0)) end)
      end
      tide.all(all):await()
      assert.same({ "5@0", "2@100", "4@100", "3@200", "1@300", "6@300" }, order)
    end))

    it("never runs the function when cancelled before the delay", test(VIRTUAL, function()
      local ran = false
      local t = tide.timer(20, function() ran = true end)
      t:cancel()
      assert.is_false(pcall(tide.await, t))
      tide.sleep(40):await()
      assert.is_false(ran)
    end))
  end)

  describe("interval", function()
    it("calls the function on schedule until it returns false", test(VIRTUAL, function()
      local calls, t0 = {}, tide.now()
      local t = tide.interval(60, function(i) calls[#calls + 1] = since(t0); if i == 4 then return false end end)
      assert.equal(4, t:await())
      assert.same({ 60, 120, 180, 240 }, calls)
    end))

    it("skips the ticks missed while the function ran", test(VIRTUAL, function()
      local calls, t0 = {}, tide.now()
      local t = tide.interval(10, function(i)
        calls[#calls + 1] = string.format("%d@%g", i, since(t0))
        if i == 1 then tide.sleep(25):await() end  -- ticks 2 and 3 pass meanwhile
        if i == 5 then return false end
      end)
      assert.equal(5, t:await())
      assert.same({ "1@10", "4@40", "5@50" }, calls)
    end))

    it("stops when cancelled", test(VIRTUAL, function()
      local n = 0
      local t = tide.interval(5, function() n = n + 1 end)
      tide.sleep(31):await()
      t:cancel()
      assert.equal(6, n)
      tide.sleep(30):await()
      assert.equal(6, n)
    end))

    it("refuses a zero period", function()
      assert.has_error(function() tide.interval(0, function() end) end)
    end)
  end)

  describe("timeout", function()
    it("settles as the promise when it is in time", test(VIRTUAL, function()
      assert.equal("fast", tide.timeout(tide.sleep(0.001):next(function() return "fast" end), 1):await())
    end))

    it("rejects with ETIMEDOUT after its seconds and cancels the late task", test(VIRTUAL, function()
      local finished, t0 = false, tide.now()
      local slow = tide.spawn(function() tide.sleep(3600):await(); finished = true end)
      local ok, err = pcall(tide.await, tide.timeout(slow, 30))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.equal(30, since(t0))
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, slow) })
      assert.is_false(finished)
    end))

    it("with {shield = true} stops waiting without cancelling the promise", test(VIRTUAL, function()
      local slow = tide.spawn(function() tide.sleep(30):await(); return "finished" end)
      local ok, err = pcall(tide.await, tide.timeout(slow, 10, { shield = true }))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.equal("pending", slow:state())
      assert.equal("finished", slow:await())
    end))
  end)

  describe("now", function()
    it("is the loop's time in seconds and does not go backwards", test(function()
      local a = tide.now()
      tide.sleep(0.02):await()
      local b = tide.now()
      assert.is_true(b - a >= 0.015)
    end))

    it("is virtual time on a virtual clock", test(VIRTUAL, function()
      local a, r = tide.now(), tide.hrtime()
      tide.sleep(86400):await()
      assert.equal(86400, since(a))
      assert.is_true(tide.hrtime() - r < 1e9)
    end))
  end)
end)
