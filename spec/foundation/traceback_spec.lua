-- Specs of causal tracebacks: an error that crosses awaits shows where it
-- came from, then each task that awaited it (and, with TIDE_DEBUG, the line
-- where that task was spawned), in unhandled reports and in err.traceback.
local tide = require "tide"

local CHAIN = [[
local tide = require "tide"
local function inner()
  tide.sleep(0.01):await()
  error(tide.error("EBAD", "something broke"))
end
local function middle()
  return tide.spawn(inner):await()
end
local function outer()
  return tide.spawn(middle):await()
end
tide.spawn(outer)
]]

describe("causal tracebacks", function()
  it("report where an unhandled error came from, then every task that awaited it", function()
    local _, err, status = run_tide("-", CHAIN)
    assert.equal(1, status)
    local origin = err:find("stdin:4: in function", 1, true)
    local first = err:find("awaited by a task", 1, true)
    assert.truthy(origin and first and origin < first, err)
    local _, n = err:gsub("awaited by a task", "")
    assert.equal(2, n, err)
    assert.truthy(err:find("stdin:7: in function", 1, true), err)   -- middle's await
    assert.truthy(err:find("stdin:10: in function", 1, true), err)  -- outer's await
  end)

  it("name the line where each awaiting task was spawned with TIDE_DEBUG", function()
    local _, err = sh("env TIDE_DEBUG=1 " .. tide_bin .. " -", CHAIN)
    assert.truthy(err:find("awaited by the task spawned at stdin:10:", 1, true), err)
    assert.truthy(err:find("awaited by the task spawned at stdin:12:", 1, true), err)
  end)

  it("put the chain in err.traceback of an error caught after crossing awaits", async(function()
    local function inner()
      tide.sleep(0):await()
      error(tide.error("EBAD", "deep"))
    end
    local ok, err = pcall(function() return tide.spawn(function() return tide.spawn(inner):await() end):await() end)
    assert.is_false(ok)
    assert.equal("EBAD", err.code)
    assert.matches("traceback_spec.lua:%d+: in function", err.traceback)
    assert.matches("awaited by", err.traceback)
  end))

  it("keep nothing of a rejection a task caught, once the task returned", async(function()
    -- The cause of the last rejection an await raised stays in the
    -- registry while the task runs, for the chain; it used to stay after a
    -- task that caught it returned (a registry entry a task, for good).
    local function failing()
      tide.sleep(0):await()
      error(tide.error("EBAD", "caught"))
    end
    local function entries()
      collectgarbage()
      collectgarbage()
      local n = 0
      for _ in pairs(debug.getregistry()) do n = n + 1 end
      return n
    end
    local before = entries()
    for _ = 1, 50 do
      tide.spawn(function() assert(not pcall(tide.await, tide.spawn(failing))) end):await()
    end
    assert.is_true(entries() - before < 10, "registry entries: " .. before .. " -> " .. entries())
  end))

  it("keep a task's own traceback when it raises another error than the one it awaited", function()
    local _, err = run_tide("-", [[
      local tide = require "tide"
      tide.spawn(function()
        pcall(tide.await, tide.spawn(function() error("first") end))
        error("second")
      end)
    ]])
    assert.truthy(err:find("second", 1, true), err)
    assert.falsy(err:find("awaited by", 1, true), err)
  end)
end)
