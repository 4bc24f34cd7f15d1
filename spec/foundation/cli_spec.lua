-- Specs of the `tide` binary: it behaves like lua5.4 where it can.
local tide = require "tide"
describe("the tide binary", function()
  it("runs a script with its arguments in `arg` and `...`", function()
    local script = tmp_script('print(arg[0] ~= nil, arg[1], arg[2], select("#", ...), ...)')
    local out, _, status = run_tide(script .. " one two")
    os.remove(script)
    assert.equal("true\tone\ttwo\t2\tone\ttwo\n", out)
    assert.equal(0, status)
  end)

  it("runs -e chunks in order, as tasks", function()
    local out = run_tide([[-e 'x = tide.sleep(0):next(function() return 1 end):await()' -e 'print(x + 1)']])
    assert.equal("2\n", out)
  end)

  it("loads a module with -l", function()
    local out, _ = run_tide([[-l string -e 'print(type(string.format))']])
    assert.equal("function\n", out)
  end)

  it("reads the script from stdin with -", function()
    local out = run_tide("-", 'print("from stdin", tide.resolved(5):await())')
    assert.equal("from stdin\t5\n", out)
  end)

  it("runs a shebang script", function()
    local script = tmp_script("#!/usr/bin/env tide\nprint('shebang ok')\n")
    local out = run_tide(script)
    os.remove(script)
    assert.equal("shebang ok\n", out)
  end)

  it("prints its version with -v and usage with -h", function()
    local out = run_tide("-v")
    assert.matches("^tide %d+%.%d+%.%d+ %(Lua 5%.4", out)
    local _, err, status = run_tide("-h")
    assert.matches("usage:", err)
    assert.equal(0, status)
  end)

  it("rejects an unknown option with status 1", function()
    local _, err, status = run_tide("-Z")
    assert.matches("unrecognized option '%-Z'", err)
    assert.equal(1, status)
  end)

  it("reports a syntax error with status 1", function()
    local _, err, status = run_tide([[-e 'this is not lua']])
    assert.matches("syntax error", err)
    assert.equal(1, status)
  end)

  it("reports a missing script", function()
    local _, err, status = run_tide("/nonexistent/script.lua")
    assert.matches("cannot open /nonexistent/script.lua", err)
    assert.equal(1, status)
  end)

  it("waits for background tasks before exiting", function()
    local out, _, status = run_tide([[-e 'tide.spawn(function() tide.sleep(0.05):await(); print("background") end); print("main done")']])
    assert.equal("main done\nbackground\n", out)
    assert.equal(0, status)
  end)

  it("ends at once with status 1 when the main chunk fails, servers open or not", function()
    local t0 = tide.hrtime()
    local out, err, status = run_tide([[-e 'local s = tide.tcp.listen{ port = 0 }' ]] ..
      [[-e 'tide.spawn(function() tide.sleep(5):await() end); print("started"); error("config is wrong")' ]] ..
      [[-e 'print("never")']])
    assert.equal("started\n", out)
    assert.matches("config is wrong", err)
    assert.equal(1, status)
    assert.is_true(tide.hrtime() - t0 < 3e9)
  end)

  it("exits with os.exit's status, closing the state when asked", function()
    for _, case in ipairs {
      { "os.exit(3, true)", 3 },
      { "os.exit(3)", 3 },
      { "tide.sleep(0.01):await(); os.exit(true, true)", 0 },
      { "tide.spawn(function() os.exit(false, true) end)", 1 },
    } do
      -- Under make check, a leak shows on stderr and makes the status 1.
      local _, err, status = run_tide("-e '" .. case[1] .. "'")
      assert.equal("", err, case[1])
      assert.equal(case[2], status, case[1])
    end
  end)

  it("finds tide's Lua modules", function()
    local out, err = run_tide([[-e 'print(type(require("tide.http.h1").parse_request_head))']])
    assert.equal("function\n", out, err)
  end)

  it("offers a REPL on a terminal where await works at the prompt", function()
    -- `script` gives the binary a pseudo-terminal.
    local out = sh([[script -qec "]] .. tide_bin .. [[" /dev/null]], "x = tide.sleep(0.01):next(function() return 40 end):await()\nprint(x + 2)\nreturn 'a', 1\n")
    assert.matches("42", out)
    assert.matches("a\t1", out)
  end)
end)
