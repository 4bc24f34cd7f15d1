-- spec/io/inflight_close_spec.lua — the `tide` binary ends on an error
-- while operations are still in flight: the state closes under them, and
-- the process must end with the error (status 1), never with an abort, a
-- sanitizer report or a hang. Found by spec/smoke/alloc_fault.sh, where a
-- failed allocation ends scripts at any point.

-- Runs `src` with the binary; returns its status and stderr.
local function run(src)
  local path = tmp_script("local tide = require 'tide'\n" .. src)
  local _, err, status = run_tide(path)
  os.remove(path)
  return status, err
end

local function ends_with_error(src)
  local status, err = run(src)
  assert.is_nil(err:find("Assertion", 1, true), err)
  assert.is_nil(err:find("Sanitizer", 1, true), err)
  assert.is_truthy(err:find("boom", 1, true), err)
  assert.are.equal(1, status, err)
end

describe("the state closing with operations in flight", function()
  it("a TCP connect", function()
    ends_with_error("tide.tcp.connect('127.0.0.1', 1)\nerror('boom')")
  end)

  it("a TCP connect with a time limit", function()
    ends_with_error("tide.tcp.connect('127.0.0.1', 1, { timeout = 5 })\nerror('boom')")
  end)

  it("a pipe connect", function()
    ends_with_error("tide.pipe.connect(os.tmpname() .. '.none')\nerror('boom')")
  end)
end)
