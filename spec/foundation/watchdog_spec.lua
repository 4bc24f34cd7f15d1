-- Specs of the blocked-loop watchdog (TIDE_WATCHDOG, tide.watchdog): a
-- task that holds the loop is reported with its stack while it runs, an
-- idle loop is not, and the program goes on.
local SPIN = [[
local tide = require "tide"
local function spin(seconds)
  local t = os.clock()
  while os.clock() - t < seconds do end
end
%s
print(tide.spawn(function() spin(0.8) return "spun" end):await())
tide.sleep(0.5):await()
print("done")
]]

describe("the watchdog", function()
  it("reports a task that holds the loop, once, with its stack, and the loop goes on", function()
    local out, err, status = sh("env TIDE_WATCHDOG=200ms " .. tide_bin .. " -", SPIN:format(""))
    assert.equal(0, status, err)
    assert.equal("spun\ndone\n", out)
    local _, reports = err:gsub("tide: watchdog: the loop has not turned for", "")
    assert.equal(1, reports, err)
    assert.matches("in upvalue 'spin'", err)
  end)

  it("is started and stopped from Lua", function()
    local out, err = run_tide("-", SPIN:format("tide.watchdog(0.2)"))
    assert.equal("spun\ndone\n", out)
    assert.matches("tide: watchdog: ", err)
    out, err = run_tide("-", SPIN:format("tide.watchdog(0.2) tide.watchdog(false)"))
    assert.equal("spun\ndone\n", out)
    assert.equal("", err)
  end)

  it("stays quiet while the loop waits, and refuses bad durations", function()
    local out, err = sh("env TIDE_WATCHDOG=100ms " .. tide_bin .. " -", [[
      local tide = require "tide"
      tide.sleep(0.5):await()
      print(pcall(tide.watchdog, "soon"), pcall(tide.watchdog, -1))
    ]])
    assert.equal("", err)
    assert.matches("^false\t.*false\t", out)
  end)
end)
