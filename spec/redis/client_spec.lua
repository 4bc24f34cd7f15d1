-- tide.redis client over a scripted server on an in-memory network
-- (tide.memory, through the `transport` option), each spec under tide.test
-- on the virtual clock: no sockets, no real time, nothing left behind.
local tide = require "tide"
local test = require "tide.test"
local memory = require "tide.memory"
local redis = require "tide.redis"
local resp = require "tide.redis.resp"

local VIRTUAL = { clock = "virtual" }

-- A tiny Redis: GET, SET, INCR, PING, AUTH, SELECT; `data` is its keyspace.
local function memory_redis()
  local data = {}
  return function(cmd)
    local name = cmd[1]:upper()
    if name == "PING" then return "+PONG\r\n"
    elseif name == "SET" then data[cmd[2]] = cmd[3]; return "+OK\r\n"
    elseif name == "GET" then
      local v = data[cmd[2]]
      return v and ("$" .. #v .. "\r\n" .. v .. "\r\n") or "$-1\r\n"
    elseif name == "INCR" then
      local v = (tonumber(data[cmd[2]]) or 0) + 1
      data[cmd[2]] = tostring(v)
      return ":" .. v .. "\r\n"
    elseif name == "AUTH" or name == "SELECT" then return "+OK\r\n"
    end
    return "-ERR unknown command '" .. name .. "'\r\n"
  end
end

-- serve(t, handler [, opts]) -> srv: a scripted Redis served on t.net as
-- "redis". Each command of a connection goes in order to
-- handler(cmd, c, srv), which returns the bytes of the reply, nil for none,
-- or {bytes, delay = s} for a reply `s` seconds late (holding up the ones
-- after it, as a real server would). `opts` are the pair controls of the
-- server's writes (chunk = 1, chunk = "random"...). srv.conns[i] is the
-- i-th connection: c.conn its server end, c.ended a promise settled when
-- the client closed it (or it broke); srv.commands lists every command,
-- srv.reads counts the server's reads. srv.transport is the client's
-- `transport` option; srv:stop() refuses connections (closing those open),
-- srv:start() serves again.
local function serve(t, handler, opts)
  local srv = { conns = {}, commands = {}, reads = 0 }
  local function handle(conn)
    local c = { conn = conn, n = #srv.conns + 1, ended = tide.promise() }
    srv.conns[c.n] = c
    local parser = resp.parser()
    local ok, err = pcall(function()
      while true do
        local data = conn:read():await()
        if data == nil then return end
        srv.reads = srv.reads + 1
        parser:feed(data)
        while true do
          local done, cmd = parser:next()
          if not done then break end
          srv.commands[#srv.commands + 1] = cmd
          local reply = handler(cmd, c, srv)
          if type(reply) == "table" then
            tide.sleep(reply.delay):await()
            reply = reply[1]
          end
          if reply then conn:write(reply):await() end
        end
      end
    end)
    c.ended:resolve(true)
    if not ok and not tide.is_error(err, "ECONNRESET") and not tide.is_error(err, "EPIPE") then error(err, 0) end
  end
  function srv.start() srv.server = t.net:serve("redis", handle, opts) end
  function srv.stop() return srv.server:close():await() end
  function srv.transport() return t.net:connect("redis") end
  srv.start()
  return srv
end

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

-- Whether connection `c` ends (the client closed it) within `seconds` of
-- virtual time (default 1): the server sees it at its next read.
local function ends(c, seconds)
  return pcall(tide.await, tide.timeout(c.ended, seconds or 1))
end

local function push(...)
  local parts = { "*" .. select("#", ...) .. "\r\n" }
  for _, v in ipairs{ ... } do
    parts[#parts + 1] = type(v) == "number" and (":" .. v .. "\r\n") or ("$" .. #v .. "\r\n" .. v .. "\r\n")
  end
  return table.concat(parts)
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

    it("runs AUTH, SELECT and CLIENT SETNAME first", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv, { password = "pw", username = "me", db = 2 })
      assert.same({ "AUTH", "me", "pw" }, srv.commands[1])
      assert.same({ "SELECT", "2" }, srv.commands[2])
      assert.equals("OK", r:set("a", "b"):await())
    end))

    it("rejects with the server's error when AUTH fails", test(VIRTUAL, function(t)
      local srv = serve(t, function(cmd)
        if cmd[1] == "AUTH" then return "-WRONGPASS invalid username-password pair\r\n" end
      end)
      local err = err_of(redis.connect{ transport = srv.transport, password = "x" })
      assert.is_true(tide.is_error(err, "WRONGPASS"))
      assert.is_true(ends(srv.conns[1]))
    end))

    it("gives up connecting after connect_timeout (30 s of virtual time)", test(VIRTUAL, function(t)
      local srv = serve(t, function() return nil end)   -- never answers AUTH
      local t0 = tide.now()
      local err = err_of(redis.connect{ transport = srv.transport, password = "x", connect_timeout = 30 })
      assert.is_true(tide.is_error(err, "ETIMEDOUT"))
      assert.near(30, tide.now() - t0, 0.001)
      assert.is_true(ends(srv.conns[1]))
    end))

    it("rejects with ECONNREFUSED when nothing serves", test(VIRTUAL, function(t)
      local err = err_of(redis.connect{ transport = function() return t.net:connect("nobody") end })
      assert.is_true(tide.is_error(err, "ECONNREFUSED"))
    end))
  end)

  describe("call", function()
    it("maps replies and error replies", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv)
      assert.equals("OK", r:call("SET", "k", "v"):await())
      assert.equals("v", r:get("k"):await())
      assert.is_nil(r:get("missing"):await())
      assert.equals(1, r:incr("n"):await())
      local err = err_of(r:call("NOPE"))
      assert.is_true(tide.is_error(err, "ERR"))
      assert.is_true(err.redis)
      assert.has_error(function() r:set("k", {}) end)
      -- the error names the argument, counted with the command's name,
      -- and the line that called
      local ok, e = pcall(function() r:call("SET", "k", nil) end)
      assert.is_false(ok)
      assert.matches("client_spec.lua:%d+: bad argument #3 to redis command %(string or number expected, got nil%)", e)
      ok, e = pcall(function() r:set("k", redis.null) end)
      assert.is_false(ok)
      assert.matches("got redis.null", e)
      assert.has_error(function() r:call(42) end, "bad argument #1 to 'call' (command name expected)")
      -- numbers go as Redis reads them back
      assert.equals("OK", r:set("f", 0.1):await())
      assert.equals("0.10000000000000001", r:get("f"):await())
      assert.equals("OK", r:set("i", math.mininteger):await())
      assert.equals("-9223372036854775808", r:get("i"):await())
    end))

    it("sends the commands of many tasks together and answers each in order", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv)
      local reads = srv.reads
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = tide.spawn(function() return r:incr("c"):await(), i end)
      end
      for i = 1, 50 do
        local n, j = tasks[i]:await()
        assert.equals(i, n); assert.equals(i, j)
      end
      assert.equals(reads + 1, srv.reads)   -- the 50 commands came in one read
    end))

    for _, cut in ipairs{ { chunk = 1 }, { chunk = "random", seed = 7 }, { chunk = "random", seed = 99, max_chunk = 5 } } do
      local how = cut.chunk == 1 and "one byte at a time" or ("in random pieces (seed " .. cut.seed .. ")")
      it("gets its replies right when they come " .. how, test(VIRTUAL, function(t)
        local srv = serve(t, memory_redis(), cut)
        local r <close> = connect(srv)
        local ps = {}
        for i = 1, 20 do ps[i] = r:set("k" .. i, string.rep("v\r\n", i)) end
        for i = 1, 20 do assert.equals("OK", ps[i]:await()) end
        for i = 1, 20 do ps[i] = r:get("k" .. i) end
        for i = 1, 20 do assert.equals(string.rep("v\r\n", i), ps[i]:await()) end
        assert.equals(1, r:incr("n"):await())
        assert.is_true(tide.is_error(err_of(r:call("NOPE")), "ERR"))
        assert.is_nil(r:get("none"):await())
      end))
    end

    it("reassembles replies cut one byte at a time in both directions", test(VIRTUAL, function(t)
      local handler = memory_redis()
      local srv = serve(t, handler, { chunk = 1 })
      local r <close> = redis.connect{ transport = function()
        return t.net:connect("redis", { chunk = 1 })
      end }:await()
      local big = string.rep("0123456789", 100)
      assert.equals("OK", r:set("big", big):await())
      assert.equals(big, r:get("big"):await())
      assert.equals(1, #srv.conns)
    end))
  end)

  describe("giving up on a reply", function()
    it("drops that reply when it comes and keeps the others in step", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" and cmd[2] == "slow" then
          return { "$4\r\nslow\r\n", delay = 60 }
        end
        return mem(cmd)
      end)
      local r <close> = connect(srv)
      local t0 = tide.now()
      local err = err_of(tide.timeout(r:get("slow"), 30))
      assert.is_true(tide.is_error(err, "ETIMEDOUT"))
      assert.near(30, tide.now() - t0, 0.001)
      local later = r:ping()      -- its reply comes after the slow one
      local task = tide.spawn(function() return r:get("slow"):await() end)
      tide.sleep(10):await()
      task:cancel()
      assert.equals("PONG", later:await())
      assert.near(60, tide.now() - t0, 0.001)
      assert.is_true(tide.is_cancelled(select(2, pcall(tide.await, task))))
      assert.equals("OK", r:set("k", "v"):await())
      assert.equals("v", r:get("k"):await())
      assert.near(120, tide.now() - t0, 0.001)   -- the second slow GET went first
      assert.equals(1, #srv.conns)
    end))
  end)

  describe("pipeline", function()
    it("sends a batch together and gives every reply", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis(), { chunk = 3 })
      local r <close> = connect(srv)
      local reads = srv.reads
      local res = r:pipeline(function(p)
        p:set("a", "1"); p:incr("a"); p:get("none"); p:call("BAD")
      end):await()
      assert.equals(reads + 1, srv.reads)
      assert.equals(4, res.n)
      assert.equals("OK", res[1]); assert.equals(2, res[2]); assert.equals(redis.null, res[3])
      assert.is_true(tide.is_error(res[4], "ERR"))
      assert.same({ n = 0 }, r:pipeline(function() end):await())
    end))

    it("shares a read of replies with single commands, in order", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv)
      r:set("k", "v"):await()
      local before = r:get("k")
      local batch = r:pipeline(function(p) p:get("k"); p:get("none"); p:call("BAD"); p:incr("n") end)
      local after, missing = r:incr("n"), r:get("none")
      assert.equals("v", before:await())
      local res = batch:await()
      assert.equals("v", res[1]); assert.equals(redis.null, res[2])
      assert.is_true(tide.is_error(res[3], "ERR")); assert.equals(1, res[4])
      assert.equals(2, after:await())
      assert.is_nil(missing:await())
    end))
  end)

  describe("timeouts", function()
    it("drops a connection whose reply takes longer than 30 s, and reconnects for the next command", test(VIRTUAL, function(t)
      local silent = true
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if silent and cmd[1] == "GET" then return nil end
        return mem(cmd)
      end)
      local r <close> = connect(srv, { timeout = 30 })
      local t0 = tide.now()
      local a, b = r:get("x"), r:get("y")
      assert.is_true(tide.is_error(err_of(a), "ETIMEDOUT"))
      assert.is_true(tide.is_error(err_of(b), "ETIMEDOUT"))
      assert.near(30, tide.now() - t0, 0.001)
      assert.is_true(ends(srv.conns[1]))
      silent = false
      assert.equals("OK", r:set("x", "1"):await())
      assert.equals("1", r:get("x"):await())
      assert.equals(2, #srv.conns)
      silent = true   -- the new connection is watched too
      assert.is_true(tide.is_error(err_of(r:get("x")), "ETIMEDOUT"))
      assert.is_true(ends(srv.conns[2]))
    end))

    it("keeps a connection whose replies are slow but come in time", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" then return { mem(cmd), delay = 20 } end
        return mem(cmd)
      end)
      local r <close> = connect(srv, { timeout = 30 })
      local t0 = tide.now()
      local a, b, c = r:get("x"), r:get("y"), r:get("z")   -- 60 s in all, 20 s apart
      assert.is_nil(a:await()); assert.is_nil(b:await()); assert.is_nil(c:await())
      assert.near(60, tide.now() - t0, 0.001)
      assert.equals(1, #srv.conns)
      assert.equals("ready", r:status())
      -- The client's watchdog sleeps out its last 30 s even once nothing
      -- waits (and even after r:close()): let it end so no task is left.
      tide.sleep(30):await()
    end))

    it("counts time from the last reply: 30 s of silence after one drops the connection", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" and cmd[2] == "late" then return { mem(cmd), delay = 20 } end
        if cmd[1] == "GET" and cmd[2] == "never" then return nil end
        return mem(cmd)
      end)
      local r <close> = connect(srv, { timeout = 30 })
      local t0 = tide.now()
      local a, b = r:get("late"), r:get("never")
      assert.is_nil(a:await())
      assert.is_true(tide.is_error(err_of(b), "ETIMEDOUT"))
      assert.near(50, tide.now() - t0, 0.001)
    end))
  end)

  describe("reconnection", function()
    it("rejects what waited when the server resets mid-reply, then reconnects", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd, c)
        if cmd[1] == "GET" and cmd[2] == "die" then
          -- Once the client read the OK: a reset drops what it did not read.
          tide.sleep(1):await()
          c.conn:write("$10\r\nhalf"):await()
          memory.reset(c.conn)
          return nil
        end
        return mem(cmd)
      end, { chunk = 2 })
      local r <close> = connect(srv)
      local a, b, c = r:set("k", "v"), r:get("die"), r:get("k")
      assert.equals("OK", a:await())
      assert.is_true(tide.is_error(err_of(b), "ECONNRESET"))
      assert.is_true(tide.is_error(err_of(c), "ECONNRESET"))
      assert.equals("down", r:status())
      assert.equals("v", r:get("k"):await())
      assert.equals(2, #srv.conns)
      assert.equals(1, r.reconnects)
    end))

    it("rejects what waited when the whole server resets, then reconnects", test(VIRTUAL, function(t)
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" then return { "$1\r\nx\r\n", delay = 5 } end
        return "+OK\r\n"
      end)
      local r <close> = connect(srv)
      local p = r:get("k")
      tide.sleep(1):await()
      srv.server:reset_all()
      assert.is_true(tide.is_error(err_of(p), "ECONNRESET"))
      assert.equals("x", r:get("k"):await())
      assert.equals(1, r.reconnects)
    end))

    it("reconnects when the server closed an idle connection", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv, { db = 1 })
      assert.equals("OK", r:set("k", "v"):await())
      srv.conns[1].conn:close():await()
      tide.sleep(1):await()
      assert.equals("v", r:get("k"):await())  -- not an error: it never went out
      assert.equals(2, #srv.conns)
      assert.same({ "SELECT", "1" }, srv.commands[#srv.commands - 1])
    end))

    it("backs off between attempts on virtual time, and rejects with the connect error once they run out", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv, { reconnect = { attempts = 3, delay = 1, max_delay = 3 } })
      srv.stop()                 -- closes the connection, then refuses
      tide.sleep(1):await()
      local t0 = tide.now()
      local a, b = r:get("k"), r:get("k")
      assert.equals("connecting", r:status())
      assert.is_true(tide.is_error(err_of(a), "ECONNREFUSED"))
      assert.is_true(tide.is_error(err_of(b), "ECONNREFUSED"))
      assert.near(1 + 2 + 3, tide.now() - t0, 0.001)   -- 4 attempts: after 0, 1, 3 and 6 s
      assert.equals("down", r:status())
      -- Served again after 2.5 s: the third attempt (3 s) connects.
      t0 = tide.now()
      tide.spawn(function() tide.sleep(2.5):await(); srv.start() end)
      assert.equals("PONG", r:ping():await())
      assert.near(3, tide.now() - t0, 0.001)
      assert.equals(1, r.reconnects)
      assert.equals(2, #srv.conns)
    end))

    it("with reconnect = false, stays broken with the error that broke it", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r <close> = connect(srv, { reconnect = false })
      memory.reset(srv.conns[1].conn)
      assert.is_true(tide.is_error(err_of(r:ping()), "ECONNRESET"))
      assert.is_true(tide.is_error(err_of(r:ping()), "ECONNRESET"))
      assert.equals("broken", r:status())
      assert.equals(1, #srv.conns)
    end))

    it("closes the connection on bad bytes and rejects what waited with EPROTO", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" then return "!garbage\r\n" end
        return mem(cmd)
      end)
      local r <close> = connect(srv)
      local a, b = r:get("k"), r:ping()
      assert.is_true(tide.is_error(err_of(a), "EPROTO"))
      assert.is_true(tide.is_error(err_of(b), "EPROTO"))
      assert.is_true(ends(srv.conns[1]))
      assert.equals("PONG", r:ping():await())
    end))

    it("answers what it asked for and drops the connection on a reply nobody asked for", test(VIRTUAL, function(t)
      local mem = memory_redis()
      local srv = serve(t, function(cmd)
        if cmd[1] == "GET" and cmd[2] == "twice" then return "$1\r\na\r\n$1\r\nb\r\n:3\r\n" end
        return mem(cmd)
      end)
      local r <close> = connect(srv)
      local a = r:get("twice")
      assert.equals("a", a:await())  -- its reply came in the same read as the stray ones
      assert.is_true(ends(srv.conns[1]))
      assert.equals("PONG", r:ping():await())  -- on a new connection
      assert.equals(2, #srv.conns)
    end))
  end)

  describe("subscriptions", function()
    it("confirms, delivers split messages in order and ends on the last unsubscribe", test(VIRTUAL, function(t)
      local subs = 0
      local srv = serve(t, function(cmd)
        local out = {}
        for i = 2, #cmd do
          if cmd[1] == "SUBSCRIBE" then subs = subs + 1 else subs = subs - 1 end
          out[#out + 1] = push(cmd[1]:lower(), cmd[i], subs)
        end
        return table.concat(out)
      end, { chunk = 2 })
      local r <close> = connect(srv)
      local sub <close> = r:subscribe("a", "b"):await()
      local conn = srv.conns[#srv.conns].conn
      conn:write(push("message", "a", "one") .. push("message", "b", "two"))
      assert.same({ kind = "message", channel = "a", data = "one" }, sub:next():await())
      assert.equals("two", sub:next():await().data)
      local t0 = tide.now()
      assert.is_true(tide.is_error(select(2, pcall(tide.await, sub:next(30))), "ETIMEDOUT"))
      assert.near(30, tide.now() - t0, 0.001)
      sub:unsubscribe("a"):await()
      conn:write(push("message", "b", "three"))
      sub:unsubscribe():await()
      assert.equals("three", sub:next():await().data)
      assert.is_nil(sub:next():await())
      assert.has_error(function() sub:subscribe("c") end, "attempt to use a closed redis subscription")
    end))

    it("ends with EPROTO when the server sends what a subscription cannot take", test(VIRTUAL, function(t)
      local srv = serve(t, function(cmd)
        return push("subscribe", cmd[2], 1)
      end)
      local r <close> = connect(srv)
      local sub <close> = r:subscribe("a"):await()
      local c = srv.conns[#srv.conns]
      c.conn:write(":12\r\n")
      local ok, err = pcall(tide.await, sub:next())
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EPROTO"))
      assert.is_true(ends(c))
    end))

    it("rejects next() with ECONNRESET when its connection is reset", test(VIRTUAL, function(t)
      local srv = serve(t, function(cmd) return push("subscribe", cmd[2], 1) end, { chunk = "random" })
      local r <close> = connect(srv)
      local sub <close> = r:subscribe("a"):await()
      memory.reset(srv.conns[#srv.conns].conn)
      assert.is_true(tide.is_error(err_of(sub:next()), "ECONNRESET"))
    end))
  end)

  describe("blocking commands", function()
    local function blpop_server(t)
      local mem = memory_redis()
      return serve(t, function(cmd)
        if cmd[1] == "BLPOP" then return { push("jobs", "job 1"), delay = 20 } end
        return mem(cmd)
      end)
    end

    it("run on a connection of their own, kept for the next one", test(VIRTUAL, function(t)
      local srv = blpop_server(t)
      local r <close> = connect(srv, { timeout = 5 })
      local t0 = tide.now()
      local job = r:blpop("jobs", 0)
      assert.equals("PONG", r:ping():await())     -- not held up by the BLPOP
      assert.equals(0, tide.now() - t0)
      assert.same({ "jobs", "job 1" }, job:await())
      assert.near(20, tide.now() - t0, 0.001)     -- beyond `timeout`: not subject to it
      assert.equals(2, #srv.conns)
      assert.same({ "jobs", "job 1" }, r:blpop("jobs", 0):await())
      assert.equals(2, #srv.conns)                -- the spare connection again
      assert.equals(0, r.reconnects)
      tide.sleep(5):await()   -- the watchdog of the shared connection ends (see below)
    end))

    it("close their connection when given up on", test(VIRTUAL, function(t)
      local srv = blpop_server(t)
      local r <close> = connect(srv)
      local t0 = tide.now()
      local err = err_of(tide.timeout(r:blpop("jobs", 0), 10))
      assert.is_true(tide.is_error(err, "ETIMEDOUT"))
      -- Closed: the server reads the end once its 20 s reply went out,
      -- where a spare connection would wait for its next command.
      assert.is_true(ends(srv.conns[2], 30))
      assert.near(20, tide.now() - t0, 0.001)
      assert.same({ "jobs", "job 1" }, r:blpop("jobs", 0):await())
      assert.equals(3, #srv.conns)
    end))
  end)

  describe("close", function()
    it("rejects what waited with ECONNABORTED; using the client then raises", test(VIRTUAL, function(t)
      local srv = serve(t, function() return nil end)
      local r = connect(srv)
      local p = r:get("k")
      r:close()
      assert.is_true(tide.is_error(err_of(p), "ECONNABORTED"))
      assert.has_error(function() r:get("k") end, "attempt to use a closed redis client")
      r:close()
      assert.equals("closed", r:status())
      assert.is_true(ends(srv.conns[1]))
    end))

    -- The reply-timeout watchdog sleeps until `timeout` after the last
    -- reply, whether commands still wait or the client was closed: it should
    -- end with the connection (lost() / close() cancelling it).
    it("leaves no task behind when it has a reply timeout", test(VIRTUAL, function(t)
      local srv = serve(t, memory_redis())
      local r = connect(srv, { timeout = 30 })
      assert.equals("PONG", r:ping():await())
      r:close()
    end))
  end)
end)
