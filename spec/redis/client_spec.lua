-- tide.redis client over a scripted server (spec/redis/fake.lua): no sockets.
local tide = require "tide"
local redis = require "tide.redis"
local fake = require "redis.fake"

local function connect(srv, opts)
  opts = opts or {}
  opts.transport = srv.transport
  return redis.connect(opts):await()
end

local function err_of(p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

describe("tide.redis client", function()
  describe("connect", function()
    it("parses URLs into options", function()
      local o = redis.parse_options("redis://u:p%40ss@example.com:6380/3?timeout=2.5")
      assert.equals("u", o.username); assert.equals("p@ss", o.password)
      assert.equals("example.com", o.host); assert.equals(6380, o.port)
      assert.equals(3, o.db); assert.equals(2.5, o.timeout)
      o = redis.parse_options("redis://:secret@localhost")
      assert.is_nil(o.username); assert.equals("secret", o.password); assert.equals(6379, o.port)
      o = redis.parse_options("rediss://[::1]:7000")
      assert.equals("::1", o.host); assert.equals(7000, o.port); assert.is_true(o.tls)
      o = redis.parse_options{ url = "redis://h/2", db = 5 }
      assert.equals(5, o.db)
    end)

    it("raises at once on bad options", function()
      assert.has_error(function() redis.connect("http://x") end)
      assert.has_error(function() redis.connect("redis://h/x") end)
      assert.has_error(function() redis.connect{ nope = 1 } end)
      assert.has_error(function() redis.connect{ timeout = -1 } end)
      assert.has_error(function() redis.connect{ port = 0 } end)
      assert.has_error(function() redis.connect{ reconnect = { attempts = 1.5 } } end)
    end)

    it("runs AUTH, SELECT and CLIENT SETNAME first", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv, { password = "pw", username = "me", db = 2 })
      assert.same({ "AUTH", "me", "pw" }, srv.commands[1])
      assert.same({ "SELECT", "2" }, srv.commands[2])
      assert.equals("OK", r:set("a", "b"):await())
    end))

    it("rejects with the server's error when AUTH fails", async(function()
      local srv = fake.server(function(cmd)
        if cmd[1] == "AUTH" then return "-WRONGPASS invalid username-password pair\r\n" end
      end)
      local err = err_of(redis.connect{ transport = srv.transport, password = "x" })
      assert.is_true(tide.is_error(err, "WRONGPASS"))
    end))
  end)

  describe("call", function()
    it("maps replies and error replies", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv)
      assert.equals("OK", r:call("SET", "k", "v"):await())
      assert.equals("v", r:get("k"):await())
      assert.is_nil(r:get("missing"):await())
      assert.equals(1, r:incr("n"):await())
      local err = err_of(r:call("NOPE"))
      assert.is_true(tide.is_error(err, "ERR"))
      assert.is_true(err.redis)
      assert.has_error(function() r:set("k", {}) end)
    end))

    it("sends the commands of many tasks in one write and answers each in order", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv)
      local writes = srv.writes
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = tide.spawn(function() return r:incr("c"):await(), i end)
      end
      for i = 1, 50 do
        local n, j = tasks[i]:await()
        assert.equals(i, n); assert.equals(i, j)
      end
      assert.equals(writes + 1, srv.writes)
    end))

    it("gets its replies right when they come one byte at a time", async(function()
      local srv = fake.server(fake.memory(), { chunk = 1 })
      local r <close> = connect(srv)
      local ps = {}
      for i = 1, 20 do ps[i] = r:set("k" .. i, string.rep("v", i)) end
      for i = 1, 20 do assert.equals("OK", ps[i]:await()) end
      for i = 1, 20 do ps[i] = r:get("k" .. i) end
      for i = 1, 20 do assert.equals(string.rep("v", i), ps[i]:await()) end
    end))
  end)

  describe("giving up on a reply", function()
    it("drops that reply when it comes and keeps the others in step", async(function()
      local mem = fake.memory()
      local srv = fake.server(function(cmd, conn)
        if cmd[1] == "GET" and cmd[2] == "slow" then
          return { "$4\r\nslow\r\n", delay = 0.05 }
        end
        return mem(cmd)
      end)
      local r <close> = connect(srv)
      local err = err_of(tide.timeout(r:get("slow"), 0.01))
      assert.is_true(tide.is_error(err, "ETIMEDOUT"))
      local later = r:ping()      -- its reply comes after the slow one
      local task = tide.spawn(function() return r:get("slow"):await() end)
      tide.sleep(0.01):await()
      task:cancel()
      assert.equals("PONG", later:await())
      assert.is_true(tide.is_cancelled(select(2, pcall(tide.await, task))))
      assert.equals("OK", r:set("k", "v"):await())
      assert.equals("v", r:get("k"):await())
      assert.equals(1, #srv.connections)
    end))
  end)

  describe("pipeline", function()
    it("sends a batch in one write and gives every reply", async(function()
      local srv = fake.server(fake.memory(), { chunk = 3 })
      local r <close> = connect(srv)
      local writes = srv.writes
      local res = r:pipeline(function(p)
        p:set("a", "1"); p:incr("a"); p:get("none"); p:call("BAD")
      end):await()
      assert.equals(writes + 1, srv.writes)
      assert.equals(4, res.n)
      assert.equals("OK", res[1]); assert.equals(2, res[2]); assert.equals(redis.null, res[3])
      assert.is_true(tide.is_error(res[4], "ERR"))
      assert.same({ n = 0 }, r:pipeline(function() end):await())
    end))
  end)

  describe("timeouts", function()
    it("drops a connection whose reply takes too long, and reconnects for the next command", async(function()
      local silent = true
      local mem = fake.memory()
      local srv = fake.server(function(cmd, conn)
        if silent and cmd[1] == "GET" then return nil end
        return mem(cmd)
      end)
      local r <close> = connect(srv, { timeout = 0.05 })
      local t0 = tide.now()
      local a, b = r:get("x"), r:get("y")
      assert.is_true(tide.is_error(err_of(a), "ETIMEDOUT"))
      assert.is_true(tide.is_error(err_of(b), "ETIMEDOUT"))
      assert.is_true(tide.now() - t0 < 1)
      assert.is_true(srv.connections[1].closed)
      silent = false
      assert.equals("OK", r:set("x", "1"):await())
      assert.equals("1", r:get("x"):await())
      assert.equals(2, #srv.connections)
      silent = true   -- the new connection is watched too
      assert.is_true(tide.is_error(err_of(r:get("x")), "ETIMEDOUT"))
      assert.is_true(srv.connections[2].closed)
    end))
  end)

  describe("reconnection", function()
    it("rejects what waited when the server dies mid-reply, then reconnects", async(function()
      local mem = fake.memory()
      local srv = fake.server(function(cmd, conn)
        if cmd[1] == "GET" and cmd[2] == "die" then
          conn:send("$10\r\nhalf")
          conn:kill()
          return nil
        end
        return mem(cmd)
      end, { chunk = 2 })
      local r <close> = connect(srv)
      local a, b, c = r:set("k", "v"), r:get("die"), r:get("k")
      assert.equals("OK", a:await())
      assert.is_true(tide.is_error(err_of(b), "ECONNRESET"))
      assert.is_true(tide.is_error(err_of(c), "ECONNRESET"))
      assert.equals("v", r:get("k"):await())
      assert.equals(2, #srv.connections)
      assert.equals(1, r.reconnects)
    end))

    it("reconnects when the server closed an idle connection", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv, { db = 1 })
      assert.equals("OK", r:set("k", "v"):await())
      srv.connections[1]:kill()
      tide.sleep(0.01):await()
      assert.equals("v", r:get("k"):await())  -- not an error: it never went out
      assert.equals(2, #srv.connections)
      assert.same({ "SELECT", "1" }, srv.commands[#srv.commands - 1])
    end))

    it("rejects the waiting commands with the connect error once attempts run out", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv, { reconnect = { attempts = 2, delay = 0.01 } })
      srv.connections[1]:kill()
      srv.refuse = true
      tide.sleep(0.01):await()
      local a, b = r:get("k"), r:get("k")
      assert.is_true(tide.is_error(err_of(a), "ECONNREFUSED"))
      assert.is_true(tide.is_error(err_of(b), "ECONNREFUSED"))
      assert.equals("down", r:status())
      srv.refuse = false
      assert.equals("PONG", r:ping():await())
    end))

    it("with reconnect = false, stays broken with the error that broke it", async(function()
      local srv = fake.server(fake.memory())
      local r <close> = connect(srv, { reconnect = false })
      srv.connections[1]:kill(tide.error("ECONNRESET", "reset by peer"))
      assert.is_true(tide.is_error(err_of(r:ping()), "ECONNRESET"))
      assert.is_true(tide.is_error(err_of(r:ping()), "ECONNRESET"))
      assert.equals(1, #srv.connections)
    end))

    it("closes the connection on bad bytes and rejects what waited with EPROTO", async(function()
      local mem = fake.memory()
      local srv = fake.server(function(cmd)
        if cmd[1] == "GET" then return "!garbage\r\n" end
        return mem(cmd)
      end)
      local r <close> = connect(srv)
      local a, b = r:get("k"), r:ping()
      assert.is_true(tide.is_error(err_of(a), "EPROTO"))
      assert.is_true(tide.is_error(err_of(b), "EPROTO"))
      assert.is_true(srv.connections[1].closed)
      assert.equals("PONG", r:ping():await())
    end))
  end)

  describe("subscriptions", function()
    local function push(...)
      local parts = { "*" .. select("#", ...) .. "\r\n" }
      for _, v in ipairs{ ... } do
        parts[#parts + 1] = type(v) == "number" and (":" .. v .. "\r\n") or ("$" .. #v .. "\r\n" .. v .. "\r\n")
      end
      return table.concat(parts)
    end

    it("confirms, delivers split messages in order and ends on the last unsubscribe", async(function()
      local conns = {}
      local subs = 0
      local srv = fake.server(function(cmd, conn)
        conns[#conns + 1] = conn
        local out = {}
        for i = 2, #cmd do
          if cmd[1] == "SUBSCRIBE" then subs = subs + 1 else subs = subs - 1 end
          out[#out + 1] = push(cmd[1]:lower(), cmd[i], subs)
        end
        return table.concat(out)
      end, { chunk = 2 })
      local r <close> = connect(srv)
      local sub <close> = r:subscribe("a", "b"):await()
      local conn = conns[#conns]
      conn:send(push("message", "a", "one") .. push("message", "b", "two"))
      assert.same({ kind = "message", channel = "a", data = "one" }, sub:next():await())
      assert.equals("two", sub:next():await().data)
      assert.is_true(tide.is_error(select(2, pcall(tide.await, sub:next(0.02))), "ETIMEDOUT"))
      sub:unsubscribe("a"):await()
      conn:send(push("message", "b", "three"))
      sub:unsubscribe():await()
      assert.equals("three", sub:next():await().data)
      assert.is_nil(sub:next():await())
      assert.has_error(function() sub:subscribe("c") end, "attempt to use a closed redis subscription")
    end))

    it("ends with EPROTO when the server sends what a subscription cannot take", async(function()
      local conn
      local srv = fake.server(function(cmd, c)
        conn = c
        return push("subscribe", cmd[2], 1)
      end)
      local r <close> = connect(srv)
      local sub <close> = r:subscribe("a"):await()
      conn:send(":12\r\n")
      local ok, err = pcall(tide.await, sub:next())
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EPROTO"))
      assert.is_true(conn.closed)
    end))
  end)

  describe("close", function()
    it("rejects what waited with ECONNABORTED; using the client then raises", async(function()
      local srv = fake.server(function() return nil end)
      local r = connect(srv)
      local p = r:get("k")
      r:close()
      assert.is_true(tide.is_error(err_of(p), "ECONNABORTED"))
      assert.has_error(function() r:get("k") end, "attempt to use a closed redis client")
      r:close()
      assert.equals("closed", r:status())
    end))
  end)
end)
