-- Specs of tide.pipe: Unix domain socket servers and clients with the
-- stream API. Sockets live in a fresh temporary folder.
local tide = require "tide"

local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection, got " .. tostring(err))
  return err
end

local function exists(path)
  return os.execute("test -e " .. path) == true
end

describe("tide.pipe", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)
  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  describe("serve and connect", function()
    it("carry a conversation over a socket file", async(function()
      local path = dir .. "/echo.sock"
      local server = tide.pipe.serve({ path = path }, function(conn)
        while true do
          local line = conn:read_line():await()
          if line == nil then break end
          conn:write(line:upper() .. "\n"):await()
        end
      end)
      assert.equal(path, server.path)
      assert.is_true(exists(path))
      assert.is_nil(server.port)
      assert.equal("pipe", server.kind)
      local c <close> = tide.pipe.connect(path, { timeout = 2 }):await()
      assert.equal("pipe", c.kind)
      assert.equal(path, c:peername())
      for _, word in ipairs{ "one", "two", "three" } do
        c:write(word .. "\n"):await()
        assert.equal(word:upper(), c:read_line():await())
      end
      c:shutdown():await()
      assert.is_nil(c:read():await())
      server:close():await()
      assert.is_false(exists(path), "the socket file is removed at close")
    end))
  end)

  describe("listen", function()
    it("accepts connections one by one", async(function()
      local path = dir .. "/accept.sock"
      local server <close> = tide.pipe.listen{ path = path }
      local c <close> = tide.pipe.connect(path):await()
      local s <close> = server:accept(2):await()
      assert.equal(path, s:sockname())
      s:write("from server"):await()
      assert.equal("from server", c:read():await())
    end))

    it("raises EADDRINUSE for a path in use", async(function()
      local path = dir .. "/busy.sock"
      local _a <close> = tide.pipe.listen{ path = path }
      local ok, err = pcall(tide.pipe.listen, { path = path })
      assert.is_false(ok)
      assert.equal("EADDRINUSE", err.code)
      assert.matches(path, tostring(err), 1, true)
    end))

    it("refuses bad options at once", function()
      assert.has_error(function() tide.pipe.listen{} end)
      assert.has_error(function() tide.pipe.listen{ path = dir .. "/x", backlog = 0 } end)
      assert.has_error(function() tide.pipe.listen(dir) end)
      assert.has_error(function() tide.pipe.serve({ path = dir .. "/x" }) end)
    end)
  end)

  describe("connect", function()
    it("rejects ENOENT for a missing socket and ECONNREFUSED for a dead one", async(function()
      local err = rejection(tide.pipe.connect(dir .. "/missing.sock"))
      assert.equal("ENOENT", err.code)
      assert.matches("missing.sock", tostring(err), 1, true)
      -- a listener killed with SIGKILL leaves its socket file behind
      local path = dir .. "/dead.sock"
      local p = tide.process.spawn{ tide_bin, "-e", ("tide.pipe.listen{ path = %q } print('up') io.stdout:flush() tide.sleep(30):await()"):format(path), stdout = "pipe" }
      assert.equal("up", p.stdout:read_line{ timeout = 5 }:await())
      p:kill("SIGKILL")
      assert.same({ nil, "SIGKILL" }, { p:wait():await() })
      assert.is_true(exists(path))
      err = rejection(tide.pipe.connect(path))
      assert.equal("ECONNREFUSED", err.code)
    end))
  end)
end)
