-- Specs of the stream every byte stream shares (stream.c): the reads
-- served from its buffer, writes and their high-water mark, half-close,
-- close, <close> and the collector. Real TCP connections on 127.0.0.1.
local tide = require "tide"

-- Open descriptors of this process.
local function count_fds()
  return #tide.fs.readdir("/proc/self/fd"):await()
end

-- A connected pair of tcp streams: the accepted side, the connecting one,
-- and a to-be-closed value closing both.
local function pair(opts)
  local server <close> = tide.tcp.listen{ port = 0 }
  local b = tide.tcp.connect("127.0.0.1", server.port, opts)
  local a = server:accept(5):await()
  b = b:await()
  return a, b, setmetatable({}, { __close = function() a:close() b:close() end })
end

-- Awaits `p` and returns the error it rejects with.
local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection, got " .. tostring(err))
  return err
end

describe("tide.stream", function()
  describe("read", function()
    it("gives the bytes as they come and nil at the end", async(function()
      local a, b, _ <close> = pair()
      b:write("hello"):await()
      assert.equal("hello", a:read():await())
      b:close():await()
      assert.is_nil(a:read():await())
      assert.is_nil(a:read():await())
    end))

    it("answers from the buffer with a settled promise", async(function()
      local a, b, _ <close> = pair()
      b:write("abcdef"):await()
      assert.equal("ab", a:read_exactly(2):await())
      tide.sleep(0.05):await()  -- the rest is buffered now
      local p = a:read()
      assert.equal("fulfilled", p:state())
      assert.equal("cdef", p:await())
    end))

    it("gives at most max bytes", async(function()
      local a, b, _ <close> = pair()
      b:write("abcdef"):await()
      assert.equal("abc", a:read{ max = 3 }:await())
      assert.equal("def", a:read{ max = 10 }:await())
    end))

    it("refuses a second read while one is pending", async(function()
      local a, b, _ <close> = pair()
      local p = a:read()
      assert.has_error(function() a:read() end, "another read is pending on this stream (one reader at a time)")
      assert.has_error(function() a:read_line() end)
      b:write("x"):await()
      assert.equal("x", p:await())
    end))

    it("times out with ETIMEDOUT and leaves the stream usable", async(function()
      local a, b, _ <close> = pair()
      local t0 = tide.now()
      local err = rejection(a:read(0.1))
      assert.is_true(tide.is_error(err, "ETIMEDOUT"))
      assert.is_true(tide.now() - t0 >= 0.09)
      err = rejection(a:read_line{ timeout = 0.05 })
      assert.equal("ETIMEDOUT", err.code)
      b:write("after\n"):await()
      assert.equal("after", a:read_line{ timeout = 1 }:await())
    end))

    it("can be cancelled, and no byte is lost", async(function()
      local a, b, _ <close> = pair()
      local reader = tide.spawn(function() return a:read_exactly(4):await() end)
      b:write("ab"):await()
      tide.sleep(0.05):await()
      reader:cancel()
      assert.equal(tide.Cancelled, rejection(reader))
      local err = rejection(tide.timeout(a:read_exactly(4), 0.05))
      assert.equal("ETIMEDOUT", err.code)
      b:write("cd"):await()
      assert.equal("abcd", a:read_exactly(4):await())
    end))

    it("raises at once on a stream the program closed (misuse)", async(function()
      local a, _, _ <close> = pair()
      a:close():await()
      assert.has_error(function() a:read() end, "attempt to use a closed stream")
      assert.has_error(function() a:read_line() end)
      assert.has_error(function() a:shutdown() end)
    end))

    it("takes only a timeout or an options table", async(function()
      local a, _, _ <close> = pair()
      assert.has_error(function() a:read(-1) end)
      assert.has_error(function() a:read{ max = 0 } end)
      assert.has_error(function() a:read("x") end)
    end))
  end)

  describe("read_line", function()
    it("strips \\n and \\r\\n and ends with the last line and nil", async(function()
      local a, b, _ <close> = pair()
      b:write("one\ntwo\r\n\nlast"):await()
      b:shutdown():await()
      assert.equal("one", a:read_line():await())
      assert.equal("two", a:read_line():await())
      assert.equal("", a:read_line():await())
      assert.equal("last", a:read_line():await())
      assert.is_nil(a:read_line():await())
    end))

    it("finds lines written a byte at a time", async(function()
      local a, b, _ <close> = pair()
      tide.spawn(function()
        for c in ("first\r\nsecond\n"):gmatch(".") do
          b:write(c):await()
          tide.sleep(0.001):await()
        end
      end)
      assert.equal("first", a:read_line():await())
      assert.equal("second", a:read_line():await())
    end))

    it("rejects ELINETOOLONG past its limit and keeps the bytes", async(function()
      local a, b, _ <close> = pair()
      b:write("12345678\n123456789\n"):await()
      assert.equal("12345678", a:read_line(8):await())
      local err = rejection(a:read_line{ max = 8 })
      assert.equal("ELINETOOLONG", err.code)
      assert.equal("123456789", a:read_line(9):await())
      b:write(("x"):rep(70000)):await()
      assert.equal("ELINETOOLONG", rejection(a:read_line()).code)  -- 64 KiB by default
      b:close():await()
      assert.equal("ELINETOOLONG", rejection(a:read_line(8)).code)  -- an unfinished last line too
      assert.equal(70000, #a:read_all():await())
    end))

    it("accepts a line of max bytes ended by \\r\\n", async(function()
      local a, b, _ <close> = pair()
      b:write("1234\r\n"):await()
      assert.equal("1234", a:read_line(4):await())
    end))
  end)

  describe("read_exactly", function()
    it("gathers n bytes across chunks", async(function()
      local a, b, _ <close> = pair()
      local p = a:read_exactly(200000)
      for i = 1, 20 do b:write(("%09d\n"):format(i):rep(1000)):await() end
      local data = p:await()
      assert.equal(200000, #data)
      assert.equal(("%09d\n"):format(20):rep(1000), data:sub(-10000))
      assert.equal("", a:read_exactly(0):await())
    end))

    it("rejects EOF with the partial bytes when the stream ends inside them", async(function()
      local a, b, _ <close> = pair()
      b:write("0123456789"):await()
      b:close():await()
      local err = rejection(a:read_exactly(100))
      assert.equal("EOF", err.code)
      assert.equal("0123456789", err.partial)
      assert.is_nil(a:read_exactly(1):await())
    end))
  end)

  describe("read_until", function()
    it("finds a delimiter split across writes and consumes it", async(function()
      local a, b, _ <close> = pair()
      local p = a:read_until("\r\n\r\n")
      b:write("GET / HTTP/1.1\r\nHost: x\r"):await()
      tide.sleep(0.02):await()
      assert.equal("pending", p:state())
      b:write("\n\r\nbody"):await()
      assert.equal("GET / HTTP/1.1\r\nHost: x", p:await())
      assert.equal("body", a:read():await())
    end))

    it("rejects ELINETOOLONG past max and EOF at an unfinished end", async(function()
      local a, b, _ <close> = pair()
      b:write("abcdef;gh"):await()
      assert.equal("ELINETOOLONG", rejection(a:read_until(";", 5)).code)
      assert.equal("abcdef", a:read_until(";", { max = 6 }):await())
      b:close():await()
      local err = rejection(a:read_until(";"))
      assert.equal("EOF", err.code)
      assert.equal("gh", err.partial)
      assert.is_nil(a:read_until(";"):await())
      assert.has_error(function() a:read_until("") end)
    end))
  end)

  describe("read_all", function()
    it("reads to the end, and refuses more than max with EMSGSIZE", async(function()
      local a, b, _ <close> = pair()
      b:write({ "a", "bc", "def" }):await()
      b:shutdown():await()
      assert.equal("abcdef", a:read_all():await())
      assert.equal("", a:read_all():await())
      local c, d, _ <close> = pair()
      d:write(("z"):rep(100)):await()
      d:shutdown():await()
      assert.equal("EMSGSIZE", rejection(c:read_all(99)).code)
    end))
  end)

  describe("write", function()
    it("takes a string or a list of strings", async(function()
      local a, b, _ <close> = pair()
      b:write({ "x", "", "yz" }):await()
      b:write(""):await()
      assert.equal("xyz", a:read_exactly(3):await())
      assert.has_error(function() b:write({ "x", 1 }) end)
      assert.has_error(function() b:write(42) end)
    end))

    it("is settled at once under the high-water mark", async(function()
      local a, b, _ <close> = pair()
      assert.equal("fulfilled", b:write("quick"):state())
      assert.equal("quick", a:read():await())
      assert.equal(5, b.bytes_written)
      assert.equal(5, a.bytes_read)
    end))

    it("sends a task's small writes together once it yields, in order with everything after", async(function()
      local a, b, _ <close> = pair()
      local big = ("B"):rep(100 * 1024)
      b:write("one,")
      b:write{ "two,", "three," }
      assert.equal(14, b.write_queued)      -- held: the task has not yielded
      assert.equal(0, b.bytes_written)
      b:write(big)                          -- too big to hold: the held bytes go first
      b:write("four")
      b:shutdown()                          -- sends what is held, then the end
      assert.equal("one,two,three," .. big .. "four", a:read_all():await())
      assert.equal(14 + #big + 4, b.bytes_written)
      b:close()
      local c, d, _ <close> = pair()
      d:write("held"):await()               -- a settled promise: no yield yet
      assert.equal(4, d.write_queued)
      tide.sleep(0):await()                 -- the task yields: the bytes go
      assert.equal(0, d.write_queued)
      assert.equal(4, d.bytes_written)
      d:write("then closed")
      d:close():await()
      assert.equal("heldthen closed", c:read_all():await())
      -- held, sent by a larger write the kernel takes whole, then held again
      local e, f, _ <close> = pair()
      local p, ran = tide.promise(), false
      p:next(function() ran = true end)
      f:write("1")
      p:resolve()                           -- its callback is queued after the send
      f:write(("2"):rep(20000))
      f:write("3")
      f:write("4")
      tide.sleep(0):await()
      assert.is_true(ran)
      assert.equal(0, f.write_queued)
      f:close()
      assert.equal("1" .. ("2"):rep(20000) .. "34", e:read_all():await())
    end))

    it("holds the writer while the reader is slow (backpressure)", async(function()
      local a, b, _ <close> = pair{ high_water = 256 * 1024, low_water = 64 * 1024 }
      local chunk = ("c"):rep(64 * 1024)
      local total, most = 16 * 1024 * 1024, 0
      local writer = tide.spawn(function()
        for _ = 1, total // #chunk do
          b:write(chunk):await()
          most = math.max(most, b.write_queued)
        end
        b:shutdown():await()
      end)
      local got = 0
      while true do  -- a slow reader: small reads, with pauses
        local data = a:read{ max = 256 * 1024 }:await()
        if not data then break end
        got = got + #data
        if got % (1024 * 1024) < 256 * 1024 then tide.sleep(0.005):await() end
      end
      writer:await()
      assert.equal(total, got)
      assert.is_true(most > 0, "the kernel took everything: no backpressure seen")
      assert.is_true(most < 256 * 1024 + #chunk, "queued " .. most .. " bytes")
      assert.is_true(a.read_buffered == 0)
    end, 30))

    it("lets each waiting writer give up alone", async(function()
      local a, b, _ <close> = pair{ high_water = 1024, low_water = 0 }
      local big = ("w"):rep(4 * 1024 * 1024)
      local first, second = b:write(big), b:write(big)
      assert.equal("pending", first:state())
      assert.equal("pending", second:state())
      assert.equal("ETIMEDOUT", rejection(tide.timeout(first, 0.05)).code)
      assert.equal(tide.Cancelled, select(2, first:result()))
      assert.equal("pending", second:state())
      assert.equal(2 * #big, #a:read_exactly(2 * #big):await())  -- every byte still came
      second:await()
    end))

    it("rejects EPIPE after shutdown and raises once closed", async(function()
      local _, b, _ <close> = pair()
      b:shutdown():await()
      assert.equal("EPIPE", rejection(b:write("x")).code)
      b:close():await()
      assert.has_error(function() b:write("x") end, "attempt to use a closed stream")
    end))

    it("keeps the error of writes nobody awaited for the next read, reported nowhere", function()
      -- A script: 200 unawaited writes to a peer that reset, then a read.
      local out, err, status = run_tide("-", [[
        local tide = require "tide"
        local server = tide.tcp.serve({ port = 0 }, function(conn) conn:close(0) end)
        local c = tide.tcp.connect("127.0.0.1", server.port):await()
        tide.sleep(0.1):await()
        for _ = 1, 200 do c:write(("x"):rep(1000)) end
        tide.sleep(0.1):await()
        for _ = 1, 200 do c:write(("x"):rep(1000)) end
        tide.sleep(0.1):await()
        local ok, e = pcall(tide.await, c:read())
        print(ok, e.code)
        print(pcall(tide.await, c:read()))
        c:close()
        server:close()
      ]])
      assert.equal(0, status, err)
      assert.equal("", err)
      assert.matches("^false\t[A-Z]+\n", out)   -- EPIPE or ECONNRESET, once
      assert.matches("\ntrue\tnil\n", out)              -- then the end of the stream
    end)

    it("still rejects an awaited write to a reset peer", async(function()
      local server = tide.tcp.serve({ port = 0 }, function(conn) conn:close(0) end)
      local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      tide.sleep(0.1):await()
      local err
      for _ = 1, 100 do
        local ok, e = pcall(function() return c:write(("x"):rep(65536)):await() end)
        if not ok then err = e break end
      end
      assert.truthy(err and (err.code == "EPIPE" or err.code == "ECONNRESET"), tostring(err))
      server:close(0)
    end))

    it("rejects once the peer is gone", async(function()
      local a, b, _ <close> = pair()
      a:close():await()
      local err
      for _ = 1, 100 do
        local ok, e = pcall(function() return b:write(("x"):rep(65536)):await() end)
        if not ok then err = e break end
        tide.sleep(0.01):await()
      end
      assert.is_truthy(err)
      assert.is_true(err.code == "EPIPE" or err.code == "ECONNRESET", tostring(err))
    end))
  end)

  describe("shutdown", function()
    it("ends one direction while the other goes on (half-close)", async(function()
      local a, b, _ <close> = pair()
      b:write("question"):await()
      b:shutdown():await()
      assert.equal("question", a:read_all():await())
      a:write("answer"):await()
      a:close():await()
      assert.equal("answer", b:read_all():await())
      assert.equal("fulfilled", b:shutdown():state())  -- a second time
    end))
  end)

  describe("close", function()
    it("sends the queued writes first", async(function()
      local a, b, _ <close> = pair()
      local big = ("q"):rep(8 * 1024 * 1024)
      b:write(big)  -- not awaited: queued
      assert.is_true(b.write_queued > 0)
      local closed = b:close()
      assert.is_true(b.closed)
      assert.equal(#big, #a:read_all(#big):await())
      closed:await()
    end))

    it("ends a pending read with nil", async(function()
      local a, _, _ <close> = pair()
      local reader = tide.spawn(function() return a:read_line():await() end)
      tide.sleep(0.02):await()
      a:close():await()
      assert.is_nil(reader:await())
      assert.equal(a:close(), a:close())
    end))

    it("closes <close> variables and collected streams without leaking fds", async(function()
      local server <close> = tide.tcp.listen{ port = 0 }
      local before = count_fds()
      for _ = 1, 20 do
        local c <close> = tide.tcp.connect("127.0.0.1", server.port):await()
        local _s <close> = server:accept():await()
        c:write("x"):await()
      end
      local function forget()  -- in a call of its own: no register keeps them
        for _ = 1, 20 do  -- forgotten: the collector closes them
          tide.tcp.connect("127.0.0.1", server.port):await():write("x")
          server:accept():await()
        end
        for _ = 1, 5 do   -- a held write, then a larger one that sends it first
          local c = tide.tcp.connect("127.0.0.1", server.port):await()
          c:write("x")
          c:write(("y"):rep(20000))
          server:accept():await()
        end
      end
      forget()
      tide.sleep(0.01):await()  -- leave the callback that resumed this task
      collectgarbage()
      collectgarbage()
      tide.sleep(0.05):await()
      assert.equal(before, count_fds())
    end))
  end)

  describe("fields", function()
    it("tell the kind, counters, limits and state", async(function()
      local _, b, _ <close> = pair{ high_water = 1000, low_water = 10, read_buffer = 4096 }
      assert.equal("tcp", b.kind)
      assert.equal(1000, b.high_water)
      assert.equal(10, b.low_water)
      assert.equal(4096, b.read_buffer)
      b:set_limits{ high_water = 2000 }
      assert.equal(2000, b.high_water)
      assert.has_error(function() b:set_limits{ high_water = 10, low_water = 20 } end)
      assert.is_false(b.closed)
      assert.matches("^tide.stream %(tcp%)", tostring(b))
      b:close():await()
      assert.is_true(b.closed)
      assert.matches("^tide.stream %(closed%)", tostring(b))
    end))
  end)

  describe("made in Lua (tide.stream)", function()
    -- A pair in memory, cut into pieces of `chunk` bytes.
    local function mem_pair(chunk, limits)
      local a, b, sa, sb
      local function impl(peer)
        return {
          kind = "memory",
          write = function(data)
            local p
            for i = 1, #data, chunk do p = peer():push(data:sub(i, i + chunk - 1)) end
            return p
          end,
          shutdown = function() peer():finish() end,
          close = function() peer():finish() end,
          peername = function() return "peer", 1 end,
        }
      end
      a, sa = tide.stream(impl(function() return sb end), limits)
      b, sb = tide.stream(impl(function() return sa end), limits)
      return a, b, sa, sb
    end

    it("has the whole reader over bytes pushed one at a time", async(function()
      local a, b = mem_pair(1)
      a:write{ "line one\r\n", "abc", "DELIM", "rest" }
      assert.equal("line one", b:read_line():await())
      assert.equal("ab", b:read_exactly(2):await())
      assert.equal("c", b:read_until("DELIM"):await())
      a:shutdown()
      assert.equal("rest", b:read_all():await())
      assert.is_nil(b:read():await())
      assert.equal("memory", a.kind)
      assert.same({ "peer", 1 }, { a:peername() })
      a:close(); b:close()
    end))

    it("applies backpressure both ways and moves 8 MiB intact", async(function()
      local a, b = mem_pair(65536, { high_water = 65536, read_buffer = 65536 })
      local piece = ("0123456789abcdef"):rep(4096)
      local writer = tide.spawn(function()
        for _ = 1, 128 do a:write(piece):await() end
        a:shutdown():await()
      end)
      tide.sleep(0.01):await()
      assert.is_true(b.read_buffered <= 65536 + #piece)
      assert.equal("pending", writer:state())
      local n = 0
      while true do
        local d = b:read():await()
        if not d then break end
        n = n + #d
      end
      assert.equal(128 * #piece, n)
      writer:await()
      a:close(); b:close()
    end))

    it("ends reads with the error a source finishes with, and times reads out", async(function()
      local s, src = tide.stream{ write = function() end }
      assert.equal("ETIMEDOUT", rejection(s:read(0.05)).code)
      src:push("ab")
      src:finish(tide.error("ECONNRESET", "gone"))
      assert.equal("ab", s:read():await())
      assert.equal("ECONNRESET", rejection(s:read()).code)
      s:close()
      assert.is_true(src.closed)
    end))

    it("makes a write error of its impl the stream's", async(function()
      -- (small writes of a task go out together once it yields, as on sockets)
      local s = tide.stream{ write = function() error(tide.error("EIO", "broken")) end }
      s:write("x"):await()
      tide.sleep(0):await()
      assert.equal("EIO", rejection(s:write("y")).code)
      local big = ("x"):rep(32768)
      local t = tide.stream{ write = function() return tide.rejected(tide.error("EPIPE", "no")) end }
      assert.equal("EPIPE", rejection(t:write(big)).code)
      local u = tide.stream{ write = function() return 42 end }
      assert.equal("EINVAL", rejection(u:write(big)).code)
      assert.has_error(function() tide.stream{} end)
    end))

    it("closes its impl, once, when impl.write raises (its bytes may be lost)", async(function()
      local closes = 0
      local s = tide.stream{ write = function() error(tide.error("ENOMEM", "not enough memory")) end,
                             close = function() closes = closes + 1 end }
      s:write("x"):await()
      tide.sleep(0):await()
      assert.equal(1, closes)
      assert.equal("ENOMEM", rejection(s:write("y")).code)
      s:close()
      assert.equal(1, closes)
    end))

    it("calls impl.close once, and the collector closes a forgotten stream", async(function()
      local closes = 0
      local s = tide.stream{ write = function() end, close = function() closes = closes + 1 end }
      s:close():await()
      s:close()
      assert.equal(1, closes)
      do tide.stream{ write = function() end, close = function() closes = closes + 1 end } end
      collectgarbage(); collectgarbage()
      assert.equal(2, closes)
    end))
  end)
end)
