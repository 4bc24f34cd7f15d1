-- spec/kit/test_spec.lua — tide.test: a test body as a task with a
-- deadline, a clock and pairs, that fails when it leaves things behind.
local tide = require "tide"
local test = require "tide.test"

-- The error raised by test.run(...), as text.
local function failure(...)
  local ok, err = pcall(test.run, ...)
  assert.is_false(ok, "the run should have failed")
  return tostring(err)
end

describe("tide.test", function()
  describe("run", function()
    it("runs the body as a task and returns its results", function()
      local a, b = test.run(function(t, x)
        assert.is_table(t)
        assert.is_not_nil(tide.current())
        tide.sleep(0.001):await()
        return x, x * 2
      end, 21)
      assert.equal(21, a)
      assert.equal(42, b)
    end)

    it("fails with the body's error", function()
      assert.matches("boom", failure(function() error("boom") end))
    end)

    it("fails a body that overruns its deadline in real time, even on virtual time", function()
      local t0 = tide.hrtime()
      local err = failure({ timeout = 0.05, clock = "virtual", autojump = false }, function()
        tide.promise():await()
      end)
      assert.matches("ETIMEDOUT", err)
      assert.is_true((tide.hrtime() - t0) / 1e9 < 5)
    end)

    it("fails a stuck body at once instead of at its deadline", function()
      for _, clock in ipairs{ "virtual", "manual", false } do
        local t0 = tide.hrtime()
        local err = failure({ timeout = 30, clock = clock or nil }, function(t)
          local a, b = t.pair()
          tide.spawn(function() b:read():await() end)  -- nobody writes
          a:read():await()
        end)
        assert.matches("EDEADLK", err)
        assert.matches("stuck", err)
        assert.is_true((tide.hrtime() - t0) / 1e9 < 2, tostring(clock))
      end
    end)

    it("does not take a body waiting on real time or I/O for stuck", function()
      local got = test.run({ clock = "virtual" }, function()
        tide.sleep(0.3, { real = true }):await()
        local p = tide.process.spawn{ "sh", args = { "-c", "sleep 0.3; echo done" }, stdout = "pipe" }
        local out = p.stdout:read_all():await()
        p.stdout:close()
        p:wait():await()
        return out
      end)
      assert.equal("done\n", got)
    end)

    it("fails a body that leaves a task running, and cancels that task", function()
      local stray
      local err = failure(function()
        stray = tide.spawn(function() tide.sleep(3600):await() end)
      end)
      assert.matches("1 task%(s%) still running", err)
      assert.equal("rejected", stray:state())
      assert.is_true(tide.is_cancelled(select(2, stray:result())))
    end)

    it("fails a body that leaves a handle open", function()
      local server
      local err = failure(function()
        server = tide.tcp.serve({ host = "127.0.0.1", port = 0 }, function() end)
      end)
      assert.matches("handles left open: 1 tcp", err)
      tide.run(function() server:close():await() end)
    end)

    it("fails a body that leaves a rejection unhandled", function()
      local err = failure(function()
        tide.rejected(tide.error("EIO", "nobody looked"))
        tide.sleep(0.001):await()
      end)
      assert.matches("1 unhandled rejection", err)
    end)

    it("does not look for leftovers with leaks = false", function()
      test.run({ leaks = false }, function()
        tide.spawn(function() tide.sleep(3600):await() end)
      end)
    end)

    it("isolates runs: what one leaves does not run in the next", function()
      local ran = false
      pcall(test.run, function()
        tide.timer(0.01, function() ran = true end)
      end)
      test.run(function() tide.sleep(0.03):await() end)
      assert.is_false(ran)
    end)
  end)

  describe("clock", function()
    it("runs a 30-second timeout on virtual time in a moment", function()
      local t0 = tide.hrtime()
      test.run({ clock = "virtual" }, function(t)
        assert.is_not_nil(t.clock)
        local _, b = t.pair()
        local ok, err = pcall(tide.await, b:read(30))
        assert.is_false(ok)
        assert.equal("ETIMEDOUT", err.code)
      end)
      assert.is_true((tide.hrtime() - t0) / 1e9 < 1)
      tide.run(function()  -- back on the real clock
        local r0 = tide.hrtime()
        tide.sleep(0.02):await()
        assert.is_true((tide.hrtime() - r0) / 1e9 >= 0.015)
      end)
    end)

    it("moves a manual clock by t.clock:advance", function()
      test.run({ clock = "manual" }, function(t)
        local p = tide.sleep(10)
        t.clock:advance(9.999):await()
        assert.equal("pending", p:state())
        t.clock:advance(0.001):await()
        assert.equal("fulfilled", p:state())
      end)
    end)
  end)

  describe("pairs", function()
    it("closes the pairs of the run at its end", function()
      local a, b
      test.run(function(t)
        a, b = t.pair{ chunk = 1 }
        a:write("hi"):await()
        assert.equal("h", b:read():await())
      end)
      assert.is_true(a.closed)
      assert.is_true(b.closed)
    end)
  end)

  describe("as a busted body", function()
    it("wraps a body for it()", test({ clock = "virtual" }, function()
      local t0 = tide.now()
      tide.sleep(86400):await()
      assert.is_true(tide.now() - t0 >= 86400)
    end))
  end)
end)
