-- Specs of tide.process: spawn with pipes for stdin, stdout and stderr,
-- exit codes and signals, kill, environment and folder, stdio choices,
-- exec with captured output, and no fd left behind.
local tide = require "tide"

local function count_fds()
  return #tide.fs.readdir("/proc/self/fd"):await()
end

-- Children start without the sanitizer runtime `make check` preloads into
-- the interpreter: its leak report would change their exit status.
local function clean(opts)
  opts.env = opts.env or {}
  opts.env.LD_PRELOAD = false
  return opts
end

local function spawn(opts) return tide.process.spawn(clean(opts)) end
local function exec(cmd, ...)
  if type(cmd) == "table" then return tide.process.exec(clean(cmd)) end
  return tide.process.exec(clean{ cmd, args = { ... } })
end

local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection, got " .. tostring(err))
  return err
end

describe("tide.process", function()
  describe("spawn", function()
    it("talks to a child through its three pipes", async(function()
      local p = spawn{ "sh", args = { "-c", "tr a-z A-Z; echo done >&2" },
                                    stdin = "pipe", stdout = "pipe", stderr = "pipe" }
      assert.is_true(p.pid > 0)
      assert.equal("pipe", p.stdin.kind)
      p.stdin:write("hello\nworld\n"):await()
      p.stdin:close():await()
      assert.equal("HELLO", p.stdout:read_line():await())
      assert.equal("WORLD", p.stdout:read_line():await())
      assert.is_nil(p.stdout:read_line():await())
      assert.equal("done\n", p.stderr:read_all():await())
      assert.same({ 0 }, { p:wait():await() })
      assert.is_true(p.exited)
      assert.equal(p.pid, p.pid)
    end))

    it("takes its arguments after the command too", async(function()
      local p = spawn{ "printf", "%s-%s", "a", 42, stdout = "pipe" }
      assert.equal("a-42", p.stdout:read_all():await())
      p:wait():await()
    end))

    it("tells exit codes and signals", async(function()
      local p = spawn{ "sh", "-c", "exit 3" }
      assert.same({ 3 }, { p:wait():await() })
      p = spawn{ "sleep", "10" }
      assert.is_true(p:kill())
      local code, signal = p:wait():await()
      assert.is_nil(code)
      assert.equal("SIGTERM", signal)
      assert.is_false(p:kill())  -- gone
      p = spawn{ "sh", "-c", "kill -KILL $$" }
      assert.same({ nil, "SIGKILL" }, { p:wait():await() })
      p = spawn{ "sleep", "10" }
      p:kill(15)
      assert.same({ nil, "SIGTERM" }, { p:wait():await() })
    end))

    it("waits with a time limit", async(function()
      local p = spawn{ "sleep", "10" }
      assert.equal("ETIMEDOUT", rejection(p:wait(0.05)).code)
      p:kill("SIGINT")
      assert.same({ nil, "SIGINT" }, { p:wait(5):await() })
    end))

    it("raises ENOENT for a missing command", function()
      local ok, err = pcall(spawn, { "/no/such/command" })
      assert.is_false(ok)
      assert.equal("ENOENT", err.code)
      assert.matches("/no/such/command", tostring(err), 1, true)
    end)

    it("sets the environment and the folder", async(function()
      local p = spawn{ "sh", "-c", 'printf "%s|%s|%s|%s" "$TIDE_A" "${HOME+set}" "${PATH:+path}" "$(pwd)"',
                                    env = { TIDE_A = "alpha", HOME = false }, cwd = "/tmp", stdout = "pipe" }
      assert.equal("alpha||path|/tmp", p.stdout:read_all():await())
      p:wait():await()
    end))

    it("inherits, ignores, or takes a stream or an fd for stdio", async(function()
      -- one child's stdout feeds another's stdin directly
      local first = spawn{ "printf", "b\\na\\nb\\n", stdout = "pipe" }
      local second = spawn{ "sort", stdin = first.stdout, stdout = "pipe", stderr = "ignore" }
      first.stdout:close()
      assert.equal("a\nb\nb\n", second.stdout:read_all():await())
      assert.same({ 0 }, { first:wait():await() })
      assert.same({ 0 }, { second:wait():await() })
      local p = spawn{ "sh", "-c", "echo to-devnull", stdout = "ignore" }
      assert.is_nil(p.stdout)
      assert.same({ 0 }, { p:wait():await() })
    end))

    it("refuses bad options at once", function()
      assert.has_error(function() spawn{} end)
      assert.has_error(function() tide.process.spawn("ls") end)
      assert.has_error(function() spawn{ "ls", stdout = "file" } end)
      assert.has_error(function() spawn{ "ls", args = { {} } } end)
      assert.has_error(function() spawn{ "ls", env = { ["A=B"] = "x" } } end)
      assert.has_error(function() spawn{ "ls", env = { A = {} } } end)
      assert.has_error(function() spawn{ "ls", cwd = {} } end)
    end)

    it("leaves no fd behind, and <close> ends a running child", async(function()
      collectgarbage()  -- what earlier specs left to the collector
      tide.sleep(0.05):await()
      local before = count_fds()
      for _ = 1, 10 do
        local p = spawn{ "cat", stdin = "pipe", stdout = "pipe", stderr = "pipe" }
        p.stdin:write("x"):await()
        p.stdin:close()
        assert.equal("x", p.stdout:read_all():await())
        p:wait():await()
      end
      local child
      do
        local p <close> = spawn{ "sleep", "10", stdout = "pipe" }
        child = p
      end
      assert.same({ nil, "SIGTERM" }, { child:wait(5):await() })
      tide.sleep(0.05):await()
      collectgarbage()
      tide.sleep(0.05):await()
      assert.equal(before, count_fds())
    end))

    it("frees a child still running when the state closes", function()
      -- Under make check, LeakSanitizer reports what the closing left.
      local chunk = "tide.process.spawn{ \"sleep\", \"1\", env = { LD_PRELOAD = false } }"
      local _, err, status = run_tide("-e '" .. chunk .. "; error(\"stop\")'")
      assert.matches("stop", err)
      assert.is_nil(err:find("Sanitizer", 1, true), err)
      assert.equal(1, status)
      _, err, status = sh("lua5.4 -e 'local tide = require \"tide\"; " .. chunk .. "; os.exit(0, true)'")
      assert.equal("", err)
      assert.equal(0, status)
    end)
  end)

  describe("exec", function()
    it("captures status and output", async(function()
      local r = exec("sh", "-c", "echo out; echo err >&2; exit 2"):await()
      assert.same({ status = 2, stdout = "out\n", stderr = "err\n" }, r)
      r = exec("sh", "-c", "kill -TERM $$"):await()
      assert.is_nil(r.status)
      assert.equal("SIGTERM", r.signal)
    end))

    it("feeds input and limits the output", async(function()
      local r = exec{ "tr", "a-z", "A-Z", input = "quiet\n" }:await()
      assert.equal("QUIET\n", r.stdout)
      local big = exec{ "head", "-c", "100000", "/dev/zero", max_output = 1000 }
      assert.equal("EMSGSIZE", rejection(big).code)
    end))

    it("rejects ENOENT for a missing command", async(function()
      assert.equal("ENOENT", rejection(exec("/no/such/command")).code)
    end))
  end)
end)
