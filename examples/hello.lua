-- hello.lua — a first look at tide: tasks, timers, and a promise that
-- reports progress before it settles.
-- Usage: tide examples/hello.lua
local tide = require "tide"

-- A background job: a promise it fulfils later, emitting "progress" events
-- on the way. Functions that can wait return a promise; they take no callbacks.
local function download(size)
  local p = tide.promise()
  tide.spawn(function()
    for got = 1, size do
      tide.sleep(0.05):await()
      p:emit("progress", got, size)
    end
    p:resolve("file.bin", size)
  end)
  return p
end

local job = download(4)
job:on("progress", function(got, total)
  print(string.format("  progress %d/%d", got, total))
end)

-- Every callback gets the same original values; chaining is explicit.
job:next(function(name, size) print("callback: got " .. name .. " (" .. size .. " parts)") end)

-- Tasks read top to bottom: await suspends only this task.
local ticker = tide.interval(0.08, function(i) print("tick " .. i) end)

local name, size = job:await()
print("awaited: " .. name .. ", " .. size .. " parts")
ticker:cancel()

-- Errors come out as errors, with the line that raised them.
local _, err = pcall(function()
  tide.timeout(tide.sleep(1), 0.05):await()
end)
print("timeout: " .. tostring(err))
