-- Specs of tide.signal and tide.signals: signals raised to this very
-- process with kill(1), and a `tide` script that waits for SIGINT.
local tide = require "tide"

-- This process's id: /proc/self/stat, opened by the process itself.
local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local id = f:read("l"):match("^(%d+)")
  f:close()
  return id
end

local function raise(name)
  assert(os.execute("kill -" .. name .. " " .. pid()))
end

describe("tide.signal", function()
  it("settles with the signal's name when it arrives", async(function()
    local p = tide.signal("SIGUSR1")
    assert.equal("pending", p:state())
    raise("USR1")
    assert.equal("SIGUSR1", p:await())
  end))

  it("settles every promise waiting for the same signal", async(function()
    local a, b = tide.signal("SIGUSR2"), tide.signal("USR2")
    raise("USR2")
    assert.same({ "SIGUSR2", "SIGUSR2" }, { tide.all{ a, b }:await() })
  end))

  it("settles with the first of several signals and releases them all", async(function()
    local p = tide.signal("SIGUSR1", "SIGUSR2")
    raise("USR2")
    assert.equal("SIGUSR2", p:await())
    -- the handle of SIGUSR1 is gone: a new promise is the only one to see it
    local q = tide.signal("SIGUSR1")
    raise("USR1")
    assert.equal("SIGUSR1", q:await())
  end))

  it("accepts names without SIG and numbers", async(function()
    local p = tide.signal(10)  -- SIGUSR1 on Linux
    raise("USR1")
    assert.equal("SIGUSR1", p:await())
  end))

  it("refuses unknown signals and those that cannot be awaited", function()
    assert.has_error(function() tide.signal("SIGUSR1", "SIGNOPE") end)
    assert.has_error(function() tide.signals("SIGUSR1", { queue = -1 }) end)
    assert.has_error(function() tide.signals({}) end)
    assert.has_error(function() tide.signal("SIGNOPE") end, "bad argument #1 to 'signal' (unknown signal 'SIGNOPE')")
    assert.has_error(function() tide.signal("SIGKILL") end)
    assert.has_error(function() tide.signal("STOP") end)
    assert.has_error(function() tide.signal("SIGSEGV") end)
    assert.has_error(function() tide.signal(0) end)
    assert.has_error(function() tide.signal(1000) end)
    assert.has_error(function() tide.signal() end)
  end)

  it("is released by cancelling it", async(function()
    local p = tide.signal("SIGUSR1")
    assert.is_true(p:cancel())
    assert.same({ false, tide.Cancelled }, { pcall(tide.await, p) })
    -- a task awaiting it with a time limit lets go too
    local ok, err = pcall(tide.await, tide.timeout(tide.signal("SIGUSR1"), 0.02))
    assert.is_false(ok)
    assert.equal("ETIMEDOUT", err.code)
  end))

  it("keeps a script alive until the signal comes, then lets it finish", function()
    local script = tmp_script([[
      io.stdout:setvbuf("no")
      print("waiting")
      local name = tide.signal("SIGINT", "SIGTERM"):await()
      print("got " .. name)
    ]])
    for _, sig in ipairs{ "INT", "TERM" } do
      local out, err, status = sh("sh -c '" .. tide_bin .. " " .. script ..
        " & child=$!; sleep 0.5; kill -" .. sig .. " $child; wait $child'")
      assert.equal(0, status, err)
      assert.equal("waiting\ngot SIG" .. sig .. "\n", out)
    end
    os.remove(script)
  end)

  it("does not hold a script whose signal promise was cancelled", function()
    local out, err, status = run_tide("-e " .. ("%q"):format(
      "local p = tide.signal('SIGHUP'); p:cancel(); print('done')"))
    assert.equal(0, status, err)
    assert.equal("done\n", out)
  end)
end)

describe("tide.signals", function()
  it("hands out one promise per arrival", async(function()
    local w <close> = tide.signals("SIGUSR1", "SIGUSR2")
    assert.same({ "SIGUSR1", "SIGUSR2" }, w.signals)
    for _, sig in ipairs{ "USR1", "USR2", "USR1" } do
      local p = w:next(2)
      raise(sig)
      assert.equal("SIG" .. sig, p:await())
    end
  end))

  it("queues arrivals nobody waited for, up to its bound", async(function()
    local w = tide.signals("SIGUSR2", { queue = 2 })
    for _ = 1, 4 do raise("USR2") end
    tide.sleep(0.05):await()
    assert.equal(2, w.queued)
    assert.equal(2, w.dropped)
    assert.equal("SIGUSR2", w:next():await())
    assert.equal("SIGUSR2", w:next():await())
    assert.equal("ETIMEDOUT", select(2, pcall(tide.await, w:next(0.02))).code)
    w:close()
  end))

  it("fulfils waiting promises with nothing when closed, then refuses use", async(function()
    local w = tide.signals("SIGUSR1")
    local p = w:next()
    w:close()
    assert.equal(0, select("#", p:await()))
    w:close()
    assert.has_error(function() w:next() end, "attempt to use a closed signal watcher")
  end))

  it("a watcher nobody waits on does not keep a script alive", function()
    local out, err, status = run_tide("-e " .. ("%q"):format(
      "local w = tide.signals('SIGHUP'); print('watching', w.signals[1])"))
    assert.equal(0, status, err)
    assert.equal("watching\tSIGHUP\n", out)
  end)
end)
