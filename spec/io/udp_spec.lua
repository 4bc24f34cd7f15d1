-- Specs of tide.udp: bind, send, recv (queue, bound, timeout, cancel),
-- close, multicast membership, errors. Real sockets on 127.0.0.1.
local tide = require "tide"

-- Open descriptors of this process.
local function count_fds()
  return #tide.fs.readdir("/proc/self/fd"):await()
end

local function pair()
  return tide.udp.bind{ host = "127.0.0.1" }, tide.udp.bind{ host = "127.0.0.1" }
end

describe("tide.udp", function()
  describe("bind", function()
    it("picks a free port for port 0 and tells it", async(function()
      local s <close> = tide.udp.bind{ host = "127.0.0.1", port = 0 }
      assert.is_true(s.port > 0 and s.port < 65536)
      assert.equal(4, s.family)
      assert.same({ "127.0.0.1", s.port }, { s:address() })
    end))

    it("binds IPv6 addresses", async(function()
      local ok, s = pcall(tide.udp.bind, { host = "::1" })
      if not ok then return pending("no IPv6 loopback here: " .. tostring(s)) end
      assert.equal(6, s.family)
      local c <close> = tide.udp.bind{ host = "::1" }
      c:send("six", "::1", s.port):await()
      local data, host = s:recv(2):await()
      assert.equal("six", data)
      assert.equal("::1", host)
      s:close()
    end))

    it("raises an EADDRINUSE error object for a port in use", async(function()
      local a <close> = tide.udp.bind{ host = "127.0.0.1" }
      local ok, err = pcall(tide.udp.bind, { host = "127.0.0.1", port = a.port })
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EADDRINUSE"))
      assert.equal("EADDRINUSE: address already in use: 127.0.0.1:" .. a.port, tostring(err))
    end))

    it("names a wrong option, what it takes and what it got, as every binding does", function()
      local function message(f, ...)
        local ok, err = pcall(f, ...)
        assert.is_false(ok)
        return err
      end
      assert.matches("option 'ttl': integer from 1 to 255 expected, got 300",
        message(tide.udp.bind, { host = "127.0.0.1", ttl = 300 }), 1, true)
      assert.matches("option 'queue': integer from 0 to", message(tide.udp.bind, { queue = -1 }), 1, true)
      assert.matches("option 'backlog': integer from 1 to 65535 expected, got 0",
        message(tide.tcp.listen, { backlog = 0 }), 1, true)
      assert.matches("option 'backlog': integer from 1 to 65535 expected, got string",
        message(tide.pipe.listen, { path = "/nonexistent/x", backlog = "many" }), 1, true)
      assert.matches("option 'timeout': seconds (a finite number >= 0) expected, got -1",
        message(tide.dns.lookup, "localhost", { timeout = -1 }), 1, true)
      assert.matches("option 'timeout': seconds (a finite number >= 0) expected, got -1",
        message(tide.tcp.connect, "127.0.0.1", 1, { timeout = -1 }), 1, true)
    end)

    it("shares a port with reuseaddr", async(function()
      local a <close> = tide.udp.bind{ host = "127.0.0.1", reuseaddr = true }
      local b <close> = tide.udp.bind{ host = "127.0.0.1", port = a.port, reuseaddr = true }
      assert.equal(a.port, b.port)
    end))

    it("refuses bad options at once", function()
      assert.has_error(function() tide.udp.bind{ host = "localhost" } end)
      assert.has_error(function() tide.udp.bind{ host = "127.0.0.1", port = 70000 } end)
      assert.has_error(function() tide.udp.bind{ host = "127.0.0.1", port = 1.5 } end)
      assert.has_error(function() tide.udp.bind{ host = "127.0.0.1", queue = -1 } end)
      assert.has_error(function() tide.udp.bind{ host = "127.0.0.1", ttl = 0 } end)
      assert.has_error(function() tide.udp.bind("127.0.0.1") end)
    end)
  end)

  describe("send and recv", function()
    it("carry a datagram both ways with the sender's address", async(function()
      local a, b = pair()
      a:send("ping", "127.0.0.1", b.port):await()
      local data, host, port = b:recv(2):await()
      assert.same({ "ping", "127.0.0.1", a.port }, { data, host, port })
      b:send("pong", host, port):await()
      assert.equal("pong", (a:recv(2):await()))
      a:close(); b:close()
    end))

    it("are binary-safe and carry empty datagrams", async(function()
      local a, b = pair()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes):rep(100)
      a:send(all, "127.0.0.1", b.port):await()
      a:send("", "127.0.0.1", b.port):await()
      assert.equal(all, (b:recv(2):await()))
      assert.equal("", (b:recv(2):await()))
      a:close(); b:close()
    end))

    it("queue datagrams that arrive while nobody waits, in order", async(function()
      local a, b = pair()
      for i = 1, 5 do a:send("d" .. i, "127.0.0.1", b.port):await() end
      tide.sleep(0.05):await()
      assert.equal(5, b.queued)
      local p = b:recv()
      assert.equal("fulfilled", p:state())  -- already at hand
      assert.equal("d1", (p:await()))
      for i = 2, 5 do assert.equal("d" .. i, (b:recv(1):await())) end
      assert.equal(0, b.queued)
      a:close(); b:close()
    end))

    it("drop and count datagrams beyond the queue bound", async(function()
      local a = tide.udp.bind{ host = "127.0.0.1" }
      local b = tide.udp.bind{ host = "127.0.0.1", queue = 2 }
      for i = 1, 5 do a:send("d" .. i, "127.0.0.1", b.port):await() end
      tide.sleep(0.05):await()
      assert.equal(2, b.queued)
      assert.equal(3, b.dropped)
      assert.equal("d1", (b:recv(1):await()))
      assert.equal("d2", (b:recv(1):await()))
      assert.is_true(tide.is_error(select(2, pcall(tide.await, b:recv(0.05))), "ETIMEDOUT"))
      a:close(); b:close()
    end))

    it("serve several waiting recvs in the order they were made", async(function()
      local a, b = pair()
      local p1, p2 = b:recv(2), b:recv(2)
      a:send("first", "127.0.0.1", b.port):await()
      a:send("second", "127.0.0.1", b.port):await()
      assert.equal("first", (p1:await()))
      assert.equal("second", (p2:await()))
      a:close(); b:close()
    end))

    it("send to a host name after resolving it", async(function()
      local a, b = pair()
      a:send("by name", "localhost", b.port):await()
      assert.equal("by name", (b:recv(2):await()))
      local ok, err = pcall(tide.await, a:send("x", "no-such-host.invalid", b.port))
      assert.is_false(ok)
      assert.is_truthy(tostring(err.code):match("^E"))
      a:close(); b:close()
    end))

    it("refuse bad arguments at once", async(function()
      local a <close> = tide.udp.bind{ host = "127.0.0.1" }
      assert.has_error(function() a:send("x", "127.0.0.1", 0) end)
      assert.has_error(function() a:send("x", "127.0.0.1", 65536) end)
      assert.has_error(function() a:send({}, "127.0.0.1", 9) end)
      assert.has_error(function() a:send(("x"):rep(70000), "127.0.0.1", 9) end)
      assert.has_error(function() a:recv(-1) end)
    end))
  end)

  describe("recv timeout", function()
    it("rejects with ETIMEDOUT and gives the next datagram to the next recv", async(function()
      local a, b = pair()
      local t0 = tide.now()
      local ok, err = pcall(tide.await, b:recv(0.05))
      assert.is_false(ok)
      assert.equal("ETIMEDOUT", err.code)
      assert.is_true(tide.now() - t0 >= 0.04)
      a:send("late", "127.0.0.1", b.port):await()
      assert.equal("late", (b:recv(1):await()))
      assert.equal(0, b.dropped)
      a:close(); b:close()
    end))

    it("is released when the waiting task is cancelled", async(function()
      local a, b = pair()
      local task = tide.spawn(function() return b:recv(5):await() end)
      tide.sleep(0.01):await()
      task:cancel()
      assert.is_false(pcall(tide.await, task))
      a:send("after", "127.0.0.1", b.port):await()
      assert.equal("after", (b:recv(1):await()))
      a:close(); b:close()
    end))

    it("a cancelled recv leaves the feed", async(function()
      local a, b = pair()
      local p = b:recv()
      assert.is_true(p:cancel())
      a:send("kept", "127.0.0.1", b.port):await()
      tide.sleep(0.02):await()
      assert.equal(1, b.queued)
      assert.equal("kept", (b:recv(1):await()))
      a:close(); b:close()
    end))
  end)

  describe("close", function()
    it("fulfils waiting recvs with nothing and refuses further use", async(function()
      local s = tide.udp.bind{ host = "127.0.0.1" }
      local p = s:recv()
      s:close()
      assert.equal(0, select("#", p:await()))
      s:close()  -- again: nothing
      assert.has_error(function() s:recv() end, "attempt to use a closed UDP socket")
      assert.has_error(function() s:send("x", "127.0.0.1", 9) end)
      assert.is_nil(s.port)
    end))

    it("closes with <close> and the GC, leaking no descriptor", async(function()
      local before = count_fds()
      do
        local _s <close> = tide.udp.bind{ host = "127.0.0.1" }
        assert.equal(before + 1, count_fds())
      end
      assert.equal(before, count_fds())
      for _ = 1, 20 do tide.udp.bind{ host = "127.0.0.1" } end
      collectgarbage(); collectgarbage()
      tide.sleep(0):await()
      assert.equal(before, count_fds())
    end))

    it("a socket nobody waits on does not keep the loop alive", function()
      local out, err, status = run_tide("-e " .. ("%q"):format(
        "local s = tide.udp.bind{host='127.0.0.1'}; print('bound', s.port > 0)"))
      assert.equal(0, status, err)
      assert.equal("bound\ttrue\n", out)
    end)
  end)

  describe("multicast", function()
    it("joins and leaves a group, or fails with an error object", async(function()
      local s <close> = tide.udp.bind{ host = "0.0.0.0", reuseaddr = true }
      local ok, err = pcall(s.join, s, "239.255.7.7", "127.0.0.1")
      if not ok then
        assert.is_truthy(tide.is_error(err), tostring(err))
        return pending("multicast is not available here: " .. tostring(err))
      end
      assert.equal(s, s:leave("239.255.7.7", "127.0.0.1"))
    end))

    it("refuses addresses that are not numeric", async(function()
      local s <close> = tide.udp.bind{ host = "127.0.0.1" }
      assert.has_error(function() s:join("group") end)
      assert.has_error(function() s:join("239.255.7.7", "lo") end)
    end))
  end)

  describe("send errors nobody awaited", function()
    it("are not reported: the next recv raises the first, once", function()
      local out, err, status = run_tide("-", [[
        local tide = require "tide"
        local u = tide.udp.bind{ host = "0.0.0.0", port = 0 }
        for _ = 1, 200 do u:send("x", "255.255.255.255", 9) end  -- EACCES: no SO_BROADCAST
        tide.sleep(0.05):await()
        print(pcall(tide.await, u:recv(0.05)))
        print(pcall(tide.await, u:recv(0.05)))
        u:close()
      ]])
      assert.equal(0, status, err)
      assert.equal("", err)
      assert.equal("false\tEACCES: permission denied: 255.255.255.255:9\nfalse\tETIMEDOUT: timed out\n", out)
    end)
  end)
end)
