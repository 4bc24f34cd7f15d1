-- Specs of tide.stdin, tide.stdout and tide.stderr: streams over fds 0-2
-- whether they are pipes, files or terminals, run under the tide binary.

-- Runs `src` under the tide binary through the shell line `fmt` (%s is
-- the command), with `input` on the line's stdin; returns stdout, stderr
-- and the exit status.
local function run(src, fmt, input)
  local script, line = tmp_script(src), os.tmpname()
  local f = assert(io.open(line, "w"))
  f:write((fmt or "%s"):format(tide_bin .. " " .. script), "\n")
  f:close()
  local out, err, status = sh("sh " .. line, input)
  os.remove(script)
  os.remove(line)
  return out, err, status
end

describe("tide stdio", function()
  it("is made on first access and kept", function()
    local out, err, status = run([[
      local tide = require "tide"
      print(rawget(tide, "stdout") == nil, tide.stdout == tide.stdout, rawget(tide, "stdout") ~= nil)
    ]])
    assert.equal("", err)
    assert.equal(0, status)
    assert.equal("true\ttrue\ttrue\n", out)
  end)

  it("reads stdin from a pipe", function()
    local out, err = run([[
      local tide = require "tide"
      print(tide.stdin.kind)
      for _ = 1, 3 do print(tide.stdin:read_line():await()) end
    ]], "printf 'one\\ntwo\\r\\n' | %s")
    assert.equal("", err)
    assert.equal("pipe\none\ntwo\nnil\n", out)
  end)

  it("reads stdin from a file and from /dev/null", function()
    local input = ("0123456789abcdef"):rep(65536)  -- 1 MiB
    local out, err = run([[
      local tide = require "tide"
      local all = tide.stdin:read_all():await()
      print(tide.stdin.kind, #all, all:sub(1, 16), tide.stdin:read():await())
    ]], nil, input)
    assert.equal("", err)
    assert.equal("file\t1048576\t0123456789abcdef\tnil\n", out)
    out = run([[
      local tide = require "tide"
      print(tide.stdin.kind, tide.stdin:read():await())
    ]], "%s </dev/null")
    assert.equal("file\tnil\n", out)
  end)

  it("writes stdout to a pipe in order with print", function()
    local out, err = run([[
      local tide = require "tide"
      for i = 1, 200 do
        tide.stdout:write(("stream %d\n"):format(i))
        print(("print %d"):format(i))
      end
      tide.stderr:write(tide.stdout.kind .. " " .. tide.stderr.kind .. "\n"):await()
    ]], "%s | cat")
    local want = {}
    for i = 1, 200 do want[#want + 1] = ("stream %d\nprint %d\n"):format(i, i) end
    assert.equal(table.concat(want), out)
    assert.equal("pipe file\n", err)
  end)

  it("writes stdout to a file", function()
    local out = run([[
      local tide = require "tide"
      tide.stdout:write({ tide.stdout.kind, "\n", ("x"):rep(100000), "\n" }):await()
      tide.stdout:close():await()
      io.write("still open\n")
    ]])
    assert.equal("file\n" .. ("x"):rep(100000) .. "\nstill open\n", out)
  end)

  it("closing a stdio stream leaves the fd open", function()
    local out = run([[
      local tide = require "tide"
      tide.stdout:write("before\n"):await()
      tide.stdout:close():await()
      print(tide.stdout.closed)
      io.stdout:write("after\n")
    ]], "%s | cat")
    assert.equal("before\ntrue\nafter\n", out)
  end)

  it("writes to a terminal", function()
    local out = run([[
      local tide = require "tide"
      tide.stdout:write(tide.stdout.kind .. " ok\n"):await()
    ]], "script -qec '%s' /dev/null")
    assert.matches("tty ok", out)
  end)

  it("raises EBADF for a closed fd", function()
    local out = run([[
      local tide = require "tide"
      local ok, err = pcall(function() return tide.stdin end)
      print(ok, err.code)
    ]], "%s <&-")
    assert.equal("false\tEBADF\n", out)
  end)
end)
