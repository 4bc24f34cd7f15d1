-- spec/helper.lua — shared by every busted spec (see .busted).
--
--   TEST_TIMEOUT          seconds an async test may take (default 10)
--   async(fn [, timeout]) wraps an `it` body: runs fn as a task under
--                         tide.run, fails it after `timeout` seconds
--   expect(n, fn)         a callback that must be called n times before the
--                         test ends (checked by async)
--   tide_bin              path of the built `tide` binary
--   run_tide(args, input) runs the binary, returns stdout, stderr, status
local tide = require "tide"

TEST_TIMEOUT = tonumber(os.getenv("TEST_TIMEOUT")) or 10
tide_bin = os.getenv("TIDE_BIN") or "build/tide"

local expectations = {}

function expect(n, fn)
  local e = { want = n, got = 0, where = debug.traceback("expected here", 2) }
  expectations[#expectations + 1] = e
  return function(...)
    e.got = e.got + 1
    if fn then return fn(...) end
  end
end

function async(fn, timeout)
  return function(...)
    local args = table.pack(...)
    expectations = {}
    tide.run(function()
      local task = tide.spawn(fn, table.unpack(args, 1, args.n))
      return tide.timeout(task, timeout or TEST_TIMEOUT):await()
    end)
    for _, e in ipairs(expectations) do
      if e.got ~= e.want then
        error(string.format("callback called %d times, expected %d\n%s", e.got, e.want, e.where), 2)
      end
    end
  end
end

-- Runs a shell command, returns its stdout, stderr and exit status.
function sh(cmd, input)
  local out, err = os.tmpname(), os.tmpname()
  local inp
  if input then
    inp = os.tmpname()
    local f = assert(io.open(inp, "wb")); f:write(input); f:close()
  end
  local full = string.format("timeout -k 2 %d %s >%s 2>%s <%s", TEST_TIMEOUT, cmd, out, err, inp or "/dev/null")
  local _, _, status = os.execute(full)
  local function slurp(p) local f = io.open(p, "rb"); local s = f:read("a"); f:close(); os.remove(p); return s end
  if inp then os.remove(inp) end
  return slurp(out), slurp(err), status
end

function run_tide(args, input)
  return sh(tide_bin .. " " .. args, input)
end

-- Writes `src` to a temporary .lua file and returns its path.
function tmp_script(src)
  local p = os.tmpname() .. ".lua"
  local f = assert(io.open(p, "wb")); f:write(src); f:close()
  return p
end
