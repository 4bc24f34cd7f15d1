-- Specs of tide.fs: files, paths, readfile/writefile, watch. Each test
-- works in a fresh temporary directory.
local tide = require "tide"
local fs = tide.fs

-- Open descriptors of this process.
local function count_fds()
  return #fs.readdir("/proc/self/fd"):await()
end

-- A fresh directory; `rm -rf`'d by the returned function.
local function tmpdir()
  local dir = fs.mkdtemp("/tmp/tide-fs-XXXXXX"):await()
  return dir, function() os.execute("rm -rf '" .. dir .. "'") end
end

-- n bytes of every value, in a 251-byte cycle (a prime: shifts show).
local cycle = {}
for i = 1, 251 do cycle[i] = string.char((i * 7) % 256) end
cycle = table.concat(cycle)
local function bytes(n)
  return cycle:rep(n // 251 + 1):sub(1, n)
end

local function fails_with(code, p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected " .. code)
  assert.is_true(tide.is_error(err, code), tostring(err))
  return err
end

describe("tide.fs", function()
  describe("readfile and writefile", function()
    it("round-trip binary data, small and large", async(function()
      local dir, done = tmpdir()
      for _, n in ipairs{ 0, 1, 4096, 3 * 1024 * 1024 + 17 } do
        local data = bytes(n)
        assert.equal(n, fs.writefile(dir .. "/f", data):await())
        assert.equal(data, fs.readfile(dir .. "/f"):await())
      end
      done()
    end))

    it("replace, or append with append = true, and set the mode of new files", async(function()
      local dir, done = tmpdir()
      fs.writefile(dir .. "/f", "one"):await()
      fs.writefile(dir .. "/f", "two"):await()
      fs.writefile(dir .. "/f", "three", { append = true }):await()
      assert.equal("twothree", fs.readfile(dir .. "/f"):await())
      fs.writefile(dir .. "/m", "x", { mode = "600" }):await()
      assert.equal(tonumber("600", 8), fs.stat(dir .. "/m"):await().perm & tonumber("600", 8))
      done()
    end))

    it("read files whose size stat does not tell", async(function()
      local text = fs.readfile("/proc/self/status"):await()
      assert.is_truthy(text:match("^Name:"))
    end))

    it("reject ENOENT with the path in the message", async(function()
      local err = fails_with("ENOENT", fs.readfile("/no/such/file"))
      assert.equal("ENOENT: no such file or directory: /no/such/file", tostring(err))
      assert.equal("no such file or directory: /no/such/file", err.message)
      assert.equal("/no/such/file", err.subject)
      fails_with("ENOENT", fs.writefile("/no/such/dir/file", "x"))
      fails_with("EISDIR", fs.readfile("/tmp"))
    end))

    it("refuse bad arguments at once", function()
      assert.has_error(function() fs.readfile() end)
      assert.has_error(function() fs.readfile("a\0b") end)
      assert.has_error(function() fs.writefile("/tmp/x") end)
      assert.has_error(function() fs.writefile("/tmp/x", "y", { mode = "9" }) end)
    end)

    it("can be cancelled", async(function()
      local p = fs.readfile("/etc/hosts")
      assert.is_true(p:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, p) })
    end))
  end)

  describe("files", function()
    it("read and write at the position or at an offset, nil at the end", async(function()
      local dir, done = tmpdir()
      local f = fs.open(dir .. "/f", "w+"):await()
      assert.equal(dir .. "/f", f.path)
      assert.equal(5, f:write("hello"):await())
      assert.equal(6, f:write(" world"):await())
      assert.equal("hello", f:read(5, 0):await())
      assert.equal("world", f:read(100, 6):await())
      assert.is_nil(f:read(10, 11):await())
      assert.equal(2, f:write("HE", 0):await())
      assert.equal(11, f:stat():await().size)
      f:close():await()
      assert.equal("HEllo world", fs.readfile(dir .. "/f"):await())
      done()
    end))

    it("open with fopen-like flags", async(function()
      local dir, done = tmpdir()
      local p = dir .. "/f"
      fails_with("ENOENT", fs.open(p))
      local f = fs.open(p, "wx", "640"):await()
      f:close():await()
      assert.equal(tonumber("640", 8), fs.stat(p):await().perm)
      fails_with("EEXIST", fs.open(p, "wx"))
      f = fs.open(p, "a"):await()
      f:write("1"):await(); f:write("2"):await()
      f:close():await()
      f = fs.open(p, "a+"):await()
      f:write("3"):await()
      assert.equal("123", f:read(10, 0):await())
      f:close():await()
      f = fs.open(p, "r"):await()
      fails_with("EBADF", f:write("x"))
      f:close():await()
      assert.has_error(function() fs.open(p, "rw") end)
      assert.has_error(function() fs.open(p, "rx") end)
      assert.has_error(function() fs.open(p, "w", "abc") end)
      assert.has_error(function() fs.open(p, "w", 99999) end)
      done()
    end))

    it("close after the requests in flight, and refuse use once closed", async(function()
      local dir, done = tmpdir()
      fs.writefile(dir .. "/f", bytes(100000)):await()
      local f = fs.open(dir .. "/f"):await()
      local reads = {}
      for i = 1, 10 do reads[i] = f:read(10000, (i - 1) * 10000) end
      local closed = f:close()
      assert.equal(closed, f:close())   -- the same promise while closing
      assert.has_error(function() f:read(1) end, "attempt to use a closed file")
      for i = 1, 10 do assert.equal(bytes(100000):sub((i - 1) * 10000 + 1, i * 10000), reads[i]:await()) end
      closed:await()
      assert.is_true(f.closed)
      assert.equal("fulfilled", f:close():state())
      assert.has_error(function() f:stat() end, "attempt to use a closed file")
      done()
    end))

    it("refuse bad arguments at once", async(function()
      local f <close> = fs.open("/etc/hosts"):await()
      assert.has_error(function() f:read(0) end)
      assert.has_error(function() f:read(-1) end)
      assert.has_error(function() f:read(1, -5) end)
      assert.has_error(function() f:write(nil) end)
      assert.has_error(function() f.read(nil, 1) end)
    end))

    it("complete a read while many others are in flight", async(function()
      local dir, done = tmpdir()
      local big = bytes(256 * 1024)
      fs.writefile(dir .. "/big", big):await()
      fs.writefile(dir .. "/small", "just this"):await()
      local many = {}
      for i = 1, 200 do many[i] = fs.readfile(dir .. "/big") end
      local f <close> = fs.open(dir .. "/small"):await()
      assert.equal("just this", f:read(100):await())
      for i = 1, 200 do assert.equal(big, many[i]:await()) end
      done()
    end))

    it("leak no descriptor: close, <close>, GC and cancelled opens", async(function()
      local before = count_fds()
      for _ = 1, 10 do fs.open("/etc/hosts"):await():close():await() end
      for _ = 1, 10 do local _f <close> = fs.open("/etc/hosts"):await() end
      for _ = 1, 10 do fs.open("/etc/hosts"):await() end
      collectgarbage(); collectgarbage()
      for _ = 1, 10 do
        local f = fs.open("/etc/hosts"):await()
        f:read(10)        -- in flight when the last reference goes
      end
      collectgarbage(); collectgarbage()
      local opens = {}
      for i = 1, 20 do opens[i] = fs.open("/etc/hosts") end
      for i = 1, 20 do opens[i]:cancel() end
      tide.sleep(0.1):await()
      collectgarbage(); collectgarbage()
      assert.equal(before, count_fds())
    end))
  end)

  describe("paths", function()
    it("stat and lstat tell types and sizes", async(function()
      local dir, done = tmpdir()
      fs.writefile(dir .. "/f", "12345"):await()
      os.execute("ln -s f '" .. dir .. "/l'")
      local st = fs.stat(dir .. "/f"):await()
      assert.equal("file", st.type)
      assert.equal(5, st.size)
      assert.equal("number", type(st.mtime))
      assert.is_true(math.abs(st.mtime - os.time()) < 60)
      assert.equal("file", fs.stat(dir .. "/l"):await().type)
      assert.equal("link", fs.lstat(dir .. "/l"):await().type)
      assert.equal("dir", fs.stat(dir):await().type)
      fails_with("ENOENT", fs.stat(dir .. "/none"))
      done()
    end))

    it("readdir lists names and types", async(function()
      local dir, done = tmpdir()
      fs.writefile(dir .. "/b", ""):await()
      fs.mkdir(dir .. "/a"):await()
      local list = fs.readdir(dir):await()
      table.sort(list, function(x, y) return x.name < y.name end)
      assert.same({ { name = "a", type = "dir" }, { name = "b", type = "file" } }, list)
      assert.same({}, fs.readdir(dir .. "/a"):await())
      fails_with("ENOTDIR", fs.readdir(dir .. "/b"))
      done()
    end))

    it("mkdir, rename, unlink and rmdir, with both paths in rename errors", async(function()
      local dir, done = tmpdir()
      fs.mkdir(dir .. "/d", "700"):await()
      assert.equal(tonumber("700", 8), fs.stat(dir .. "/d"):await().perm)
      fails_with("EEXIST", fs.mkdir(dir .. "/d"))
      fs.writefile(dir .. "/d/f", "x"):await()
      fails_with("ENOTEMPTY", fs.rmdir(dir .. "/d"))
      fs.rename(dir .. "/d/f", dir .. "/g"):await()
      assert.equal("x", fs.readfile(dir .. "/g"):await())
      local err = fails_with("ENOENT", fs.rename(dir .. "/d/f", dir .. "/h"))
      assert.equal("ENOENT: no such file or directory: " .. dir .. "/d/f -> " .. dir .. "/h", tostring(err))
      fs.unlink(dir .. "/g"):await()
      fails_with("ENOENT", fs.unlink(dir .. "/g"))
      fs.rmdir(dir .. "/d"):await()
      assert.same({}, fs.readdir(dir):await())
      done()
    end))

    it("mkdtemp and realpath give paths", async(function()
      local dir, done = tmpdir()
      assert.is_truthy(dir:match("^/tmp/tide%-fs%-%w%w%w%w%w%w$"), dir)
      fs.mkdir(dir .. "/x"):await()
      assert.equal(dir .. "/x", fs.realpath(dir .. "/x/../x/."):await())
      fails_with("EINVAL", fs.mkdtemp(dir .. "/no-template"))
      done()
    end))
  end)

  describe("watch", function()
    it("refuses to watch a tree on Linux rather than watch one directory", function()
      local ok, err = pcall(fs.watch, "/tmp", { recursive = true })
      assert.is_false(ok)
      assert.equal("ENOTSUP", err.code)
    end)

    it("sees a file appear and change", async(function()
      local dir, done = tmpdir()
      local w <close> = fs.watch(dir)
      assert.equal(dir, w.path)
      fs.writefile(dir .. "/new", "1"):await()
      local name, event = w:next(2):await()
      assert.equal("new", name)
      assert.equal("rename", event)
      -- drain what the creation made, then change the file
      while w.queued > 0 do w:next():await() end
      fs.writefile(dir .. "/new", "22", { append = true }):await()
      repeat name, event = w:next(2):await() until event == "change"
      assert.equal("new", name)
      done()
    end))

    it("fulfils a waiting next with nothing when closed, and times out", async(function()
      local dir, done = tmpdir()
      local w = fs.watch(dir)
      assert.equal("ETIMEDOUT", select(2, pcall(tide.await, w:next(0.02))).code)
      local p = w:next()
      w:close()
      assert.equal(0, select("#", p:await()))
      assert.has_error(function() w:next() end, "attempt to use a closed watcher")
      done()
    end))

    it("raises ENOENT for a missing path", function()
      local ok, err = pcall(fs.watch, "/no/such/dir")
      assert.is_false(ok)
      assert.equal("ENOENT: no such file or directory: /no/such/dir", tostring(err))
    end)
  end)
end)
