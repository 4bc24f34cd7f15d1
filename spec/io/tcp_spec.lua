-- Specs of tide.tcp: connect (refused, names, IPv6, timeouts,
-- cancellation), listen and accept, serve (one task per connection,
-- errors logged), socket options, bulk transfer checked by hash, and a
-- thousand connections at once. Real sockets on 127.0.0.1.
local tide = require "tide"

local function count_fds()
  return #tide.fs.readdir("/proc/self/fd"):await()
end

local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection, got " .. tostring(err))
  return err
end

-- An echo server: each connection gets back what it sends.
local function echo_server(opts)
  opts = opts or {}
  opts.port = 0
  return tide.tcp.serve(opts, function(conn)
    while true do
      local data = conn:read():await()
      if data == nil then break end
      conn:write(data):await()
    end
  end)
end

-- A port nothing listens on.
local function free_port()
  local s = tide.tcp.listen{ port = 0 }
  local port = s.port
  s:close():await()
  return port
end

describe("tide.tcp", function()
  describe("connect", function()
    it("rejects ECONNREFUSED when nothing listens", async(function()
      local port = free_port()
      local err = rejection(tide.tcp.connect("127.0.0.1", port))
      assert.is_true(tide.is_error(err, "ECONNREFUSED"))
      assert.equal("ECONNREFUSED: connection refused: 127.0.0.1:" .. port, tostring(err))
    end))

    it("resolves names and tries each address", async(function()
      -- localhost may resolve to ::1 first: that attempt is refused, the
      -- IPv4 one connects
      local server <close> = echo_server()
      local c <close> = tide.tcp.connect("localhost", server.port):await()
      c:write("hi"):await()
      assert.equal("hi", c:read():await())
      assert.equal("127.0.0.1", c:peername())
    end))

    it("rejects an unknown name with the resolver's error", async(function()
      local err = rejection(tide.tcp.connect("no-such-host.invalid", 80))
      assert.matches("^EAI_", err.code)
    end))

    it("speaks IPv6", async(function()
      local ok, server = pcall(tide.tcp.listen, { host = "::1", port = 0 })
      if not ok then return pending("no IPv6 loopback here: " .. tostring(server)) end
      local _c <close> = tide.tcp.connect("::1", server.port):await()
      local s <close> = server:accept():await()
      assert.equal("::1", s:peername())
      assert.equal("::1", server.host)
      server:close()
    end))

    it("times out with ETIMEDOUT", async(function()
      -- a backlog of one fills up: later connects get no answer
      local server <close> = tide.tcp.listen{ port = 0, backlog = 1 }
      local conns, err = {}, nil
      for _ = 1, 20 do
        local ok, c = pcall(function()
          return tide.tcp.connect("127.0.0.1", server.port, { timeout = 0.2 }):await()
        end)
        if not ok then err = c break end
        conns[#conns + 1] = c
      end
      assert.is_truthy(err, "every connect succeeded")
      assert.equal("ETIMEDOUT", err.code)
      for _, c in ipairs(conns) do c:close() end
    end))

    it("can be cancelled without leaking", async(function()
      local before = count_fds()
      local server = tide.tcp.listen{ port = 0 }
      for _ = 1, 10 do
        local p = tide.tcp.connect("127.0.0.1", server.port)
        assert.is_true(p:cancel())
        assert.equal(tide.Cancelled, rejection(p))
      end
      local named = tide.tcp.connect("localhost", server.port)
      named:cancel()
      server:close():await()  -- it holds a connection libuv accepted
      tide.sleep(0.1):await()
      collectgarbage()
      tide.sleep(0.05):await()
      assert.equal(before, count_fds())
    end))

    it("refuses bad arguments at once", function()
      assert.has_error(function() tide.tcp.connect("127.0.0.1") end)
      assert.has_error(function() tide.tcp.connect("127.0.0.1", 0) end)
      assert.has_error(function() tide.tcp.connect("127.0.0.1", 70000) end)
      assert.has_error(function() tide.tcp.connect("127.0.0.1", 80, { timeout = -1 }) end)
      assert.has_error(function() tide.tcp.connect("127.0.0.1", 80, { high_water = 0 }) end)
    end)
  end)

  describe("listen", function()
    it("picks a free port and tells host and port", async(function()
      local server <close> = tide.tcp.listen{ port = 0 }
      assert.is_true(server.port > 0 and server.port < 65536)
      assert.equal("127.0.0.1", server.host)
      assert.is_nil(server.path)
      assert.equal("tcp", server.kind)
      assert.matches("^tide.server %(tcp%)", tostring(server))
    end))

    it("raises EADDRINUSE for a port in use, unless reuseport", async(function()
      local a <close> = tide.tcp.listen{ port = 0 }
      local ok, err = pcall(tide.tcp.listen, { port = a.port })
      assert.is_false(ok)
      assert.equal("EADDRINUSE: address already in use: 127.0.0.1:" .. a.port, tostring(err))
      local r1 <close> = tide.tcp.listen{ port = 0, reuseport = true }
      local r2 <close> = tide.tcp.listen{ port = r1.port, reuseport = true }
      assert.equal(r1.port, r2.port)
    end))

    it("refuses bad options at once", function()
      assert.has_error(function() tide.tcp.listen{ port = -1 } end)
      assert.has_error(function() tide.tcp.listen{ port = 1.5 } end)
      assert.has_error(function() tide.tcp.listen{ backlog = 0 } end)
      assert.has_error(function() tide.tcp.listen{ host = 42 } end)
      assert.has_error(function() tide.tcp.listen{ keepalive = 0 } end)
      assert.has_error(function() tide.tcp.listen() end)
    end)
  end)

  describe("accept", function()
    it("gives connections, times out, and gives nil once closed", async(function()
      local server = tide.tcp.listen{ port = 0 }
      local err = rejection(server:accept(0.05))
      assert.equal("ETIMEDOUT", err.code)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local s <close> = server:accept(1):await()
      assert.equal(c:sockname(), s:peername())
      assert.equal(select(2, c:sockname()), select(2, s:peername()))
      local waiting = server:accept()
      assert.has_error(function() server:accept() end, "another accept is pending on this server")
      server:close():await()
      assert.is_nil(waiting:await())
      assert.is_nil(server:accept():await())
      assert.is_true(server.closed)
    end))
  end)

  describe("serve", function()
    it("closes gracefully: stops accepting, waits for handlers, cancels the rest after the grace", async(function()
      local ended = {}
      local server = tide.tcp.serve({ port = 0 }, function(conn)
        local ok, err = pcall(function() return conn:read_line():await() end)
        ended[#ended + 1] = ok and "read " .. tostring(err) or err.code
        if not ok then error(err, 0) end
      end)
      local port = server.port
      local c1 <close> = tide.tcp.connect("127.0.0.1", port):await()
      local c2 <close> = tide.tcp.connect("127.0.0.1", port):await()
      tide.sleep(0.05):await()
      assert.equal(2, server.connections)
      c1:write("one\n"):await()
      tide.sleep(0.05):await()
      assert.equal(1, server.connections)
      local t0 = tide.now()
      local closed = server:close(0.3)
      assert.equal("pending", closed:state())
      assert.equal("ECONNREFUSED", rejection(tide.tcp.connect("127.0.0.1", port)).code)
      closed:await()
      assert.is_true(tide.now() - t0 >= 0.25)
      assert.same({ "read one", "ECANCELED" }, ended)
      assert.is_nil(c2:read():await())  -- its connection was closed
    end))

    it("settles close at once without live handlers, and when the last one returns", async(function()
      local server = tide.tcp.serve({ port = 0 }, function(conn) conn:read_line():await() end)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      tide.sleep(0.05):await()
      local closed = server:close(5)
      tide.sleep(0.05):await()
      assert.equal("pending", closed:state())
      c:write("bye\n"):await()
      tide.timeout(closed, 1):await()
      local idle = tide.tcp.serve({ port = 0 }, function() end)
      tide.timeout(idle:close(), 1):await()
    end))

    it("runs a task per connection and closes it after the handler", async(function()
      local seen = 0
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        seen = seen + 1
        conn:write("hello " .. conn:read_line():await() .. "\n"):await()
      end)
      for i = 1, 3 do
        local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
        c:write("n" .. i .. "\n"):await()
        assert.equal("hello n" .. i, c:read_line():await())
        assert.is_nil(c:read():await())  -- the server closed it
      end
      assert.equal(3, seen)
      assert.has_error(function() server:accept() end)
    end))

    it("logs a handler's error with its traceback and goes on", function()
      local script = tmp_script([[
        local tide = require "tide"
        local server = tide.tcp.serve({ port = 0 }, function(conn)
          local line = conn:read_line():await()
          if line == "boom" then error("handler failed on purpose") end
          conn:write("ok " .. line .. "\n"):await()
        end)
        local c1 = tide.tcp.connect("127.0.0.1", server.port):await()
        c1:write("boom\n"):await()
        assert(c1:read():await() == nil)
        local c2 = tide.tcp.connect("127.0.0.1", server.port):await()
        c2:write("fine\n"):await()
        print(c2:read_line():await())
        server:close()
      ]])
      local out, err, status = run_tide(script)
      os.remove(script)
      assert.equal(0, status)
      assert.equal("ok fine\n", out)
      assert.matches("error in connection handler: .*handler failed on purpose", err)
      assert.matches("stack traceback:", err)
    end)
  end)

  describe("streams", function()
    it("set nodelay and keepalive and tell both addresses", async(function()
      local server <close> = echo_server()
      local c <close> = tide.tcp.connect("127.0.0.1", server.port, { nodelay = false, keepalive = 30 }):await()
      assert.equal(c, c:nodelay(true))
      assert.equal(c, c:keepalive(true, 10))
      assert.equal(c, c:keepalive(false))
      assert.has_error(function() c:keepalive(true, 0) end)
      assert.has_error(function() c:nodelay() end)
      local host, port = c:peername()
      assert.same({ "127.0.0.1", server.port }, { host, port })
      host, port = c:sockname()
      assert.equal("127.0.0.1", host)
      assert.is_true(port > 0)
    end))

    it("sees the peer close in the middle of a read", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        conn:write("0123456789"):await()
      end)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local err = rejection(c:read_exactly(100))
      assert.equal("EOF", err.code)
      assert.equal("0123456789", err.partial)
    end))

    it("give each read its own time limit, shorter or longer than the one before", async(function()
      local go = tide.promise()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        conn:write("one\n"):await()
        go:await()
        conn:write("two\n"):await()
        tide.sleep(1):await()
      end)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local function timed(p)
        local t0 = tide.now()
        local ok, v = pcall(tide.await, p)
        return ok, v, tide.now() - t0
      end
      assert.equal("one", c:read_line{ timeout = 0.2 }:await())   -- data at once
      local ok, err, took = timed(c:read_line{ timeout = 0.4 })  -- longer: not at the stale 0.2
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_true(took >= 0.39 and took < 1.2, "took " .. took)
      ok, err, took = timed(c:read_line{ timeout = 0.1 })        -- shorter: must fire on time
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_true(took >= 0.09 and took < 1, "took " .. took)
      tide.timer(0.1, function() go:resolve() end)
      assert.equal("two", c:read_line{ timeout = 0.5 }:await())
      ok, err, took = timed(c:read_line{ timeout = 0.05 })       -- shorter than the stale 0.5
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_true(took >= 0.04 and took < 0.4, "took " .. took)
      ok, err, took = timed(c:read_line{ timeout = 0.3 })        -- longer than the one before
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_true(took >= 0.29 and took < 1, "took " .. took)
    end))

    it("leave the bytes a read waited for to the next read when it was settled by hand", async(function()
      local go, go2 = tide.promise(), tide.promise()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        go:await()
        conn:write("hello\n"):await()
        go2:await()
        conn:write("world\n"):await()
      end)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local waiting = c:read_line()
      waiting:resolve("by hand")
      assert.equal("by hand", waiting:await())
      go:resolve()
      assert.equal("hello", c:read_line():await())
      local other = c:read_exactly(3)
      other:reject("given up")
      go2:resolve()
      assert.same({ false, "given up" }, { pcall(tide.await, other) })
      assert.equal("world", c:read_line():await())
    end))

    it("carry 100 MiB through an echo server intact (sha256 both sides)", async(function()
      local server <close> = echo_server()
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local sent_hash = tide.process.spawn{ "sha256sum", stdin = "pipe", stdout = "pipe" }
      local got_hash = tide.process.spawn{ "sha256sum", stdin = "pipe", stdout = "pipe" }
      local block, total = {}, 100 * 1024 * 1024
      for i = 1, 4096 do block[i] = string.pack("<I4I4I4I4", i, i * 7, i * 13, i ~ 0x5a5a) end
      block = table.concat(block)  -- 64 KiB
      local writer = tide.spawn(function()
        for i = 1, total // #block do
          local chunk = string.pack("<I4", i) .. block:sub(5)
          c:write(chunk):await()
          sent_hash.stdin:write(chunk):await()
        end
        c:shutdown():await()
        sent_hash.stdin:close()
      end)
      local got = 0
      while true do
        local data = c:read():await()
        if data == nil then break end
        got = got + #data
        got_hash.stdin:write(data):await()
      end
      got_hash.stdin:close()
      writer:await()
      assert.equal(total, got)
      local a, b = sent_hash.stdout:read_all():await(), got_hash.stdout:read_all():await()
      assert.matches("^%x+", a)
      assert.equal(a, b)
      assert.equal(total, c.bytes_written)
      assert.equal(total, c.bytes_read)
    end, 60))

    it("serve a thousand connections at once", async(function()
      local server <close> = echo_server()
      local n, tasks = 1000, {}
      for i = 1, n do
        tasks[i] = tide.spawn(function()
          local c <close> = tide.tcp.connect("127.0.0.1", server.port, { timeout = 10 }):await()
          c:write("client " .. i .. "\n"):await()
          return c:read_line{ timeout = 10 }:await()
        end)
      end
      local lines = { tide.all(tasks):await() }
      assert.equal(n, #lines)
      for i = 1, n do assert.equal("client " .. i, lines[i]) end
    end, 60))
  end)
end)
