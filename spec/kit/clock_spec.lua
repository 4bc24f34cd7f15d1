-- spec/kit/clock_spec.lua — the virtual clock (tide.virtual_clock): time
-- that jumps when every task waits on it, or moves by hand.
local tide = require "tide"
local memory = require "tide.memory"

-- Runs fn as a task on a virtual clock made with `opts`; returns fn's
-- results and the real seconds the run took.
local function on_virtual(opts, fn)
  local t0 = tide.hrtime()
  local results = table.pack(tide.run(function()
    local clock <close> = tide.virtual_clock(opts)
    return fn(clock)
  end))
  return (tide.hrtime() - t0) / 1e9, table.unpack(results, 1, results.n)
end

-- Seconds since t0 (tide.now() is in ms: rounds away the float error).
local function since(t0)
  return math.floor((tide.now() - t0) * 1000 + 0.5) / 1000
end

local function rejection(p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

describe("tide.virtual_clock", function()
  describe("autojump", function()
    it("sleeps 30 seconds of virtual time in a moment", function()
      local real, slept = on_virtual(nil, function()
        local t0 = tide.now()
        tide.sleep(30):await()
        return since(t0)
      end)
      assert.equal(30, slept)
      assert.is_true(real < 1, "took " .. real .. " s of real time")
    end)

    it("fires timers in due order, each at its due time", function()
      local _, order = on_virtual(nil, function()
        local t0, order = tide.now(), {}
        local g = tide.group()
        for _, s in ipairs{ 3, 1, 2, 1 } do
          g:spawn(function()
            tide.sleep(s):await()
            order[#order + 1] = string.format("%g@%g", s, since(t0))
          end)
        end
        g:wait():await()
        return order
      end)
      assert.same({ "1@1", "1@1", "2@2", "3@3" }, order)
    end)

    it("times out tide.timeout, stream reads and tide.interval on virtual time", function()
      local real = on_virtual(nil, function()
        local t0 = tide.now()
        assert.equal("ETIMEDOUT", rejection(tide.timeout(tide.promise(), 3600)).code)
        assert.equal(3600, since(t0))
        local a, b = memory.pair()
        assert.equal("ETIMEDOUT", rejection(b:read(30)).code)
        assert.equal("ETIMEDOUT", rejection(b:read_line{ timeout = 30 }).code)
        assert.equal(3660, since(t0))
        a:close(); b:close()
        local ticks = {}
        local n = tide.interval(60, function(i)
          ticks[i] = since(t0)
          return i < 3
        end):await()
        assert.equal(3, n)
        assert.same({ 3720, 3780, 3840 }, ticks)
      end)
      assert.is_true(real < 1)
    end)

    it("times out a connect that hangs on virtual time", function()
      -- A listener that never accepts, with a backlog of 1: once its queue is
      -- full, the kernel drops the SYNs of the next connects, which hang.
      local real, code, took = on_virtual(nil, function()
        local l = tide.tcp.listen{ host = "127.0.0.1", port = 0, backlog = 1 }
        local conns, code, took = {}, nil, nil
        for _ = 1, 16 do
          local t0 = tide.now()
          local ok, c = pcall(tide.await, tide.tcp.connect("127.0.0.1", l.port, { timeout = 30 }))
          if not ok then code, took = c.code, since(t0) break end
          conns[#conns + 1] = c
        end
        for _, c in ipairs(conns) do c:close() end
        l:close()
        return code, took
      end)
      assert.equal("ETIMEDOUT", code)
      assert.equal(30, took)
      assert.is_true(real < 5)
    end)

    it("delivers the latency of a memory pair on virtual time", function()
      local _, took = on_virtual(nil, function()
        local a, b = memory.pair{ latency = 10 }
        local t0 = tide.now()
        a:write("slow")
        assert.equal("slow", b:read():await())
        a:close(); b:close()
        return since(t0)
      end)
      assert.equal(10, took)
    end)

    it("waits the threshold of real idleness before a jump", function()
      local real = on_virtual({ autojump = 0.05 }, function()
        tide.sleep(1000):await()
      end)
      assert.is_true(real >= 0.05, "jumped after " .. real .. " s")
    end)

    it("keeps a real sleep on the real clock", function()
      local real, virtual = on_virtual(nil, function()
        local t0 = tide.now()
        tide.sleep(0.05, { real = true }):await()
        return since(t0)
      end)
      -- A timer counts from the loop's time, taken when the turn began: it
      -- may fire a little less than 50 ms of real time after the call.
      assert.is_true(real >= 0.04, tostring(real))
      assert.equal(0, virtual)
    end)
  end)

  describe("advance", function()
    it("moves time by hand only, firing what falls due on the way", function()
      on_virtual({ autojump = false }, function(clock)
        local t0, fired = tide.now(), {}
        for _, s in ipairs{ 1, 5, 10 } do
          tide.spawn(function() tide.sleep(s):await(); fired[#fired + 1] = s end)
        end
        tide.sleep(0):await()  -- the tasks start and start their sleeps
        clock:advance(5):await()
        assert.same({ 1, 5 }, fired)
        assert.equal(5, since(t0))
        assert.equal(5, math.floor((clock:now() - t0) * 1000 + 0.5) / 1000)
        clock:advance(5):await()
        assert.same({ 1, 5, 10 }, fired)
      end)
    end)

    it("lets a zero sleep run without an advance, and never loops on one", function()
      on_virtual({ autojump = false }, function()
        local n = 0
        local spinner = tide.spawn(function() while true do tide.sleep(0):await(); n = n + 1 end end)
        tide.sleep(0):await()
        tide.sleep(0):await()
        spinner:cancel()
        assert.is_true(n >= 1 and n <= 3, "spun " .. n .. " times")
      end)
    end)

    it("ends the run when the task waits on time that nothing moves", function()
      local ok, err = pcall(tide.run, function()
        local _clock <close> = tide.virtual_clock{ autojump = false }
        tide.sleep(1):await()
      end)
      assert.is_false(ok)
      assert.matches("can never finish", tostring(err))
    end)
  end)

  describe("close", function()
    it("returns to the real clock without going back in time", function()
      local last
      tide.run(function()
        local clock = tide.virtual_clock()
        tide.sleep(7200):await()
        last = tide.now()
        local pending = tide.sleep(0.02)  -- runs on across the switch
        clock:close()
        assert.is_false(tide.now() < last)
        local t0 = tide.hrtime()
        pending:await()
        assert.is_true((tide.hrtime() - t0) / 1e9 >= 0.01)
        assert.is_true(since(last) >= 0.02)
        assert.has_error(function() clock:advance(1) end, "the virtual clock was closed")
      end)
    end)

    it("refuses a second virtual clock while one runs", function()
      tide.run(function()
        local _clock <close> = tide.virtual_clock()
        assert.has_error(function() tide.virtual_clock() end)
      end)
    end)
  end)
end)
