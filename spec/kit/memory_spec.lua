-- spec/kit/memory_spec.lua — tide.memory: in-memory stream pairs and the
-- controls that cut, delay and break what goes through them.
local tide = require "tide"
local memory = require "tide.memory"

local function rejection(p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

-- One turn of the callback queue: a failed write shows on the next operation.
local function turn()
  tide.resolved():next(function() end):await()
end

-- The error a write of `s` brings about: writes under the high-water mark
-- settle at once, and their failure becomes the stream's error.
local function write_error(s, data)
  s:write(data)
  turn()
  return rejection(s:write(data))
end

-- The sizes of the reads that make up `n` bytes.
local function read_sizes(s, n)
  local sizes, got = {}, 0
  while got < n do
    local data = s:read(5):await()
    sizes[#sizes + 1] = #data
    got = got + #data
  end
  return sizes
end

describe("tide.memory", function()
  describe("pair", function()
    it("connects two streams both ways with the whole reader", async(function()
      local a, b = memory.pair()
      assert.equal("memory", a.kind)
      a:write("one\r\ntwo\nthree|four five"):await()
      assert.equal("one", b:read_line():await())
      assert.equal("two", b:read_line{ timeout = 5 }:await())
      assert.equal("three", b:read_until("|"):await())
      assert.equal("four", b:read_exactly(4):await())
      b:write{ "po", "ng" }:await()
      assert.equal("pong", a:read(5):await())
      assert.equal("memory", select(1, a:peername()))
      a:close():await()
      assert.equal(" five", b:read_all():await())
      b:close():await()
    end))

    it("delivers writes one byte at a time with chunk = 1, and the reader reassembles them", async(function()
      local a, b = memory.pair{ chunk = 1 }
      a:write("hello\nworld\n"):await()
      assert.same({ 1, 1, 1 }, read_sizes(b, 3))
      assert.equal("lo", b:read_line():await())
      assert.equal("world", b:read_line():await())
      a:close(); b:close()
    end))

    it("cuts random pieces that the seed repeats", async(function()
      local function pieces(seed)
        local a, b = memory.pair{ chunk = "random", max_chunk = 7, seed = seed }
        a:write(string.rep("x", 200))
        local sizes = read_sizes(b, 200)
        a:close(); b:close()
        return sizes
      end
      local first = pieces(42)
      assert.same(first, pieces(42))
      assert.not_same(first, pieces(43))
      for _, n in ipairs(first) do assert.is_true(n >= 1 and n <= 7) end
    end))

    it("applies backpressure: a writer past the high-water mark waits for the reader", async(function()
      local a, b = memory.pair{ high_water = 1024, low_water = 256, read_buffer = 1024 }
      local written = 0
      local writer = tide.spawn(function()
        for _ = 1, 64 do a:write(string.rep("y", 512)):await(); written = written + 512 end
        a:shutdown():await()
      end)
      tide.sleep(0.02):await()
      assert.is_true(written < 8 * 1024, "the writer did not wait: " .. written)
      assert.equal(64 * 512, #b:read_all():await())
      writer:await()
      a:close(); b:close()
    end))

    it("half-closes with shutdown: the peer reads the end and can still write", async(function()
      local a, b = memory.pair{ chunk = 3 }
      a:write("last words"):await()
      a:shutdown():await()
      assert.equal("last words", b:read_all():await())
      b:write("reply"):await()
      assert.equal("reply", a:read_exactly(5):await())
      a:close(); b:close()
    end))

    it("rejects a write to a closed peer with EPIPE", async(function()
      local a, b = memory.pair()
      a:close():await()
      assert.is_nil(b:read():await())
      assert.equal("EPIPE", write_error(b, "anyone?").code)
      b:close()
    end))

    it("times reads out", async(function()
      local a, b = memory.pair()
      local err = rejection(b:read(0.02))
      assert.equal("ETIMEDOUT", err.code)
      a:close(); b:close()
    end))
  end)

  describe("reset", function()
    it("rejects the reads of both ends with ECONNRESET and their writes with EPIPE", async(function()
      local a, b = memory.pair()
      local pending = b:read()
      memory.reset(a)
      assert.equal("ECONNRESET", rejection(pending).code)
      assert.equal("ECONNRESET", rejection(a:read()).code)
      assert.equal("EPIPE", write_error(a, "x").code)
      a:close(); b:close()
    end))

    it("delivers what was written before it, even in the same turn, then ECONNRESET", async(function()
      for _, side in ipairs{ "writer", "reader" } do
        local a, b = memory.pair()
        a:write("sent"):await()  -- settled at once: gathered until the task yields
        memory.reset(side == "writer" and a or b)
        assert.equal("sent", b:read():await(), side)
        assert.equal("ECONNRESET", rejection(b:read()).code, side)
        a:close(); b:close()
      end
    end))

    it("loses the bytes still on the wire", async(function()
      local a, b = memory.pair{ latency = 0.05 }
      a:write("in flight")
      memory.reset(b)
      turn()
      assert.equal("EPIPE", rejection(a:write("more")).code)
      assert.equal("ECONNRESET", rejection(b:read()).code)
      a:close(); b:close()
    end))
  end)

  describe("fail", function()
    it("injects an error into the reads and writes of one end", async(function()
      local a, b = memory.pair()
      local pending = b:read()
      memory.fail(b, "EIO")
      assert.equal("EIO", rejection(pending).code)
      assert.equal("EIO", rejection(b:read()).code)
      assert.equal("EIO", write_error(b, "x").code)
      assert.equal("EPIPE", write_error(a, "after").code)
      a:close(); b:close()
    end))

    it("lets what was written before it arrive first", async(function()
      local a, b = memory.pair()
      a:write("sent"):await()
      memory.fail(b, "EIO")
      assert.equal("sent", b:read():await())
      assert.equal("EIO", rejection(b:read()).code)
      a:close(); b:close()
    end))
  end)

  describe("latency", function()
    it("delays each write by the latency on the runtime's clock, in order", async(function()
      local a, b = memory.pair{ latency = 0.05 }
      local t0 = tide.now()
      a:write("first ")
      a:write("second")
      assert.equal("first second", b:read_exactly(12):await())
      assert.is_true(tide.now() - t0 >= 0.05 - 1e-9)  -- (times are ms / 1000: float noise)
      memory.configure(a, { latency = 0 })
      a:write("now"):await()
      assert.equal("now", b:read():await())
      a:close(); b:close()
    end))
  end)

  describe("network", function()
    local test = require "tide.test"

    it("connects by name to a server that runs a handler per connection", test(function(t)
      local seen = {}
      local server = t.net:serve("echo:7", function(conn)
        local line = conn:read_line():await()
        seen[#seen + 1] = line
        conn:write(line:upper() .. "\n"):await()
      end)
      local c1 = t.net:connect("echo:7"):await()
      local c2 = t.net:connect("echo:7", { chunk = 1 }):await()
      c1:write("one\n"); c2:write("two\n")
      assert.equal("ONE", c1:read_line():await())
      assert.equal("TWO", c2:read_line():await())
      assert.is_nil(c1:read():await())  -- closed when the handler returned
      assert.equal(2, #seen)
      assert.equal(0, server.connections)
      c1:close(); c2:close()
      local err = select(2, pcall(tide.await, t.net:connect("nobody:1")))
      assert.equal("ECONNREFUSED", err.code)
    end))

    it("resets every connection of a server, and refuses connections once closed", test(function(t)
      local server = t.net:serve("db", function(conn) conn:read():await() end)
      local c = t.net:connect("db"):await()
      tide.sleep(0):await()
      server:reset_all()
      assert.equal("ECONNRESET", select(2, pcall(tide.await, c:read())).code)
      c:close()
      server:close():await()
      assert.equal("ECONNREFUSED", select(2, pcall(tide.await, t.net:connect("db"))).code)
      assert.equal(1, #server.errors)  -- the handler's read failed: ECONNRESET
    end))

    it("takes opts.latency to connect, on the runtime's clock", test({ clock = "virtual" }, function(t)
      t.net:serve("far", function() end)
      local t0 = tide.now()
      local c = t.net:connect("far", { latency = 2 }):await()
      assert.equal(2, math.floor(tide.now() - t0 + 0.5))
      c:close()
    end))

    it("gives up connecting after opts.timeout with ETIMEDOUT", test({ clock = "virtual" }, function(t)
      t.net:serve("far", function() end)
      local t0 = tide.now()
      local err = select(2, pcall(tide.await, t.net:connect("far", { latency = 30, timeout = 5 })))
      assert.equal("ETIMEDOUT", err.code)
      assert.equal(5, math.floor(tide.now() - t0 + 0.5))
      local c = t.net:connect("far", { latency = 1, timeout = 5 }):await()
      c:close()
      assert.has_error(function() t.net:connect("far", { timeout = -1 }) end)
    end))
  end)

  describe("under TLS", function()
    it("carries a TLS session delivered one byte at a time", async(function()
      local tls = require "tide.tls"
      local certs = require "tls.certs"
      local a, b = memory.pair{ chunk = 1 }
      local sp = tls.wrap(b, { server = true, cert = certs.path("localhost.pem"), key = certs.path("localhost.key") })
      local cp = tls.wrap(a, { ca = certs.path("ca.pem"), servername = "localhost" })
      local c, s = cp:await(), sp:await()
      c:write("ping over " .. string.rep("z", 3000) .. "\n"):await()
      assert.equal("ping over " .. string.rep("z", 3000), s:read_line{ timeout = 10 }:await())
      s:write("pong"):await()
      s:shutdown():await()
      assert.equal("pong", c:read_all{ timeout = 10 }:await())
      c:close():await(); s:close():await()
    end, 30))
  end)
end)
