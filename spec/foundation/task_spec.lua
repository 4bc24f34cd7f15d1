-- Specs of tasks: docs/lua-api.md, "Tasks" (coroutines that await).
local tide = require "tide"

describe("tide tasks", function()
  describe("the seed case", function()
    it("prints 3 from the background promise and 7 from the task", function()
      local script = tmp_script([[
local function background_job()
  local p = tide.promise()
  tide.timer(0.01, function() p:resolve(3) end)
  return p
end
local bg = background_job()
local final = tide.spawn(function() return tide.await(bg) + 4 end)
bg:next(print)
final:next(print)
]])
      local out, err, status = run_tide(script)
      os.remove(script)
      assert.equal("3\n7\n", out)
      assert.equal("", err)
      assert.equal(0, status)
    end)
  end)

  describe("spawn", function()
    it("returns a task that is a promise of the function's results", async(function()
      local t = tide.spawn(function(a, b) return a + b, "sum" end, 2, 3)
      assert.is_true(tide.is_promise(t))
      assert.same({ 5, "sum" }, { t:await() })
    end))

    it("starts the task from the queue, never inside spawn", async(function()
      local started = false
      local t = tide.spawn(function() started = true end)
      assert.is_false(started)
      t:await()
      assert.is_true(started)
    end))

    it("rejects the task with what the function raises", async(function()
      local t = tide.spawn(function() error("task failed", 0) end)
      assert.same({ false, "task failed" }, { pcall(tide.await, t) })
    end))
  end)

  describe("await", function()
    it("works from nested calls", async(function()
      local function c() return tide.sleep(0.001):next(function() return "deep" end):await() end
      local function b() return c() .. "!" end
      local function a() return b() end
      assert.equal("deep!", a())
    end))

    it("works inside pcall and re-raises rejections as errors", async(function()
      local ok, v = pcall(function() return tide.sleep(0):next(function() return 1 end):await() end)
      assert.same({ true, 1 }, { ok, v })
      local ok2, err = pcall(function() tide.rejected({ code = "X" }):await() end)
      assert.is_false(ok2)
      assert.equal("X", err.code)
    end))

    it("works inside iterators of a generic for", async(function()
      local function ticks(n)
        local i = 0
        return function()
          i = i + 1
          if i > n then return nil end
          return tide.sleep(0):next(function() return i end):await()
        end
      end
      local got = {}
      for v in ticks(3) do got[#got + 1] = v end
      assert.same({ 1, 2, 3 }, got)
    end))

    it("works inside metamethods", async(function()
      local obj = setmetatable({}, { __index = function(_, k) return tide.resolved(k .. "!"):next(function(v) return v end):await() end })
      assert.equal("key!", obj.key)
    end))

    it("returns the values of a settled promise at once", async(function()
      local p = tide.resolved("now")
      local order = {}
      tide.spawn(function() order[#order + 1] = "other" end)
      order[#order + 1] = p:await()
      assert.same({ "now" }, order)
    end))

    it("is a clear error outside a task", function()
      local ok, err = pcall(tide.await, tide.promise())
      assert.is_false(ok)
      assert.matches("not inside a task", err)
    end)

    it("is a clear error where the coroutine cannot yield", async(function()
      local ok, err = pcall(table.sort, { 3, 2, 1 }, function(a, b) tide.sleep(0):await(); return a < b end)
      assert.is_false(ok)
      assert.matches("cannot wait inside a C function", err)
    end))

    it("works at the top level of a script run by the binary", function()
      local out, _, status = run_tide([[-e 'print(tide.sleep(0.01):next(function() return "top" end):await())']])
      assert.equal("top\n", out)
      assert.equal(0, status)
    end)
  end)

  describe("cancel", function()
    it("raises tide.Cancelled at the await point", async(function()
      local reached, caught
      local t = tide.spawn(function()
        local _, err = pcall(function() tide.sleep(5):await(); reached = true end)
        caught = err
        return "cleaned up"
      end)
      tide.sleep(0.01):await()
      assert.is_true(t:cancel())
      assert.equal("cleaned up", t:await())
      assert.is_nil(reached)
      assert.equal(tide.Cancelled, caught)
    end))

    it("rejects the task with tide.Cancelled when not caught", async(function()
      local t = tide.spawn(function() tide.sleep(5):await() end)
      tide.sleep(0):await()
      t:cancel()
      local ok, err = pcall(tide.await, t)
      assert.is_false(ok)
      assert.equal(tide.Cancelled, err)
      assert.equal("ECANCELED", err.code)
      assert.is_false(t:cancel())
    end))

    it("cancels a task that has not started yet", async(function()
      local ran = false
      local t = tide.spawn(function() ran = true end)
      t:cancel()
      assert.is_false(pcall(tide.await, t))
      assert.is_false(ran)
    end))

    it("releases the timer it waited on", function()
      local start = os.time()
      local out, _, status = run_tide([[-e 'local t = tide.spawn(function() tide.sleep(30):await() end)
        tide.sleep(0.01):await(); t:cancel(); print("cancelled")']])
      assert.equal("cancelled\n", out)
      assert.equal(0, status)
      assert.is_true(os.time() - start < 5)
    end)

    it("does not report a cancelled task as an unhandled rejection", function()
      local _, err, status = run_tide([[-e 'local t = tide.spawn(function() tide.sleep(30):await() end); tide.sleep(0):await(); t:cancel()']])
      assert.equal("", err)
      assert.equal(0, status)
    end)
  end)

  describe("errors", function()
    it("carry a traceback showing the user's lines", function()
      local script = tmp_script([[
local function parse(x)
  error("cannot parse " .. x)
end
local function handle() parse("input") end
tide.sleep(0):await()
handle()
]])
      local _, err, status = run_tide(script)
      os.remove(script)
      assert.equal(1, status)
      assert.matches(":2: cannot parse input", err)
      assert.matches("in upvalue 'parse'", err)
      assert.matches("in local 'handle'", err)
      assert.not_matches("task.c", err)
    end)

    it("add the traceback to tide error objects", async(function()
      local t = tide.spawn(function() error(tide.error("EPROTO", "bad frame")) end)
      local ok, err = pcall(tide.await, t)
      assert.is_false(ok)
      assert.equal("EPROTO", err.code)
      assert.equal("EPROTO: bad frame", tostring(err))
      assert.matches("stack traceback", err.traceback)
    end))
  end)

  describe("run", function()
    it("returns the results of the function's task", function()
      assert.same({ 1, 2 }, { tide.run(function() tide.sleep(0):await(); return 1, 2 end) })
    end)

    it("raises the task's error", function()
      assert.has_error(function() tide.run(function() error("inside run", 0) end) end, "inside run")
    end)

    it("returns as soon as the task is done, even when what it opened keeps the loop alive", function()
      local server
      local t0 = tide.hrtime()
      assert.has_error(function()
        tide.run(function()
          server = tide.tcp.listen{ port = 0 }
          error("failed after listening", 0)
        end)
      end, "failed after listening")
      assert.equal("open", tide.run(function()
        server = server or tide.tcp.listen{ port = 0 }
        return "open"
      end))
      assert.is_true(tide.hrtime() - t0 < 2e9)
      tide.run(function() server:close():await() end)
    end)

    it("refuses to run inside a task", function()
      local ok, err = pcall(tide.run, function() tide.run(function() end) end)
      assert.is_false(ok)
      assert.matches("already running", err)
    end)

    it("fails clearly when the task waits on something that can never happen", function()
      local ok, err = pcall(tide.run, function() tide.promise():await() end)
      assert.is_false(ok)
      assert.matches("can never finish", err)
    end)
  end)

  describe("current", function()
    it("is the running task inside a task and nil outside", async(function()
      local inner
      local t = tide.spawn(function() inner = tide.current() end)
      t:await()
      assert.equal(t, inner)
    end))
  end)
end)
