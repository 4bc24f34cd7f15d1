-- tide.redis against a real redis-server started on a free port.
local tide = require "tide"
local redis = require "tide.redis"
local server = require "redis.server"

local srv, why = server.start()

local function err_of(p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

describe("tide.redis against redis-server", function()
  if not srv then
    pending(why)
    return
  end
  teardown(function() srv.stop() end)

  local function connect(opts)
    opts = opts or {}
    opts.url = srv.url
    return redis.connect(opts):await()
  end

  describe("commands", function()
    it("maps strings, integers, arrays, nils and errors", async(function()
      local r <close> = connect{ db = 1 }
      r:flushdb():await()
      assert.equals("OK", r:set("s", "v"):await())
      assert.equals("v", r:get("s"):await())
      assert.is_nil(r:get("nothing"):await())
      assert.equals(3, r:rpush("l", "a", "b", "c"):await())
      assert.same({ "a", "b", "c" }, r:lrange("l", 0, -1):await())
      assert.same({ "v", redis.null, "v" }, r:mget("s", "nothing", "s"):await())
      local err = err_of(r:incr("l"))
      assert.is_true(tide.is_error(err, "WRONGTYPE"))
      assert.equals("PONG", r:ping():await())
      assert.equals("default", r:acl_whoami():await())
      local big = string.rep("0123456789", 100000)
      r:set("big", big):await()
      assert.equals(big, r:get("big"):await())
    end))

    it("keeps databases apart with SELECT", async(function()
      local a <close> = connect{ db = 2 }
      local b <close> = connect{ url = srv.url .. "/3" }
      a:set("k", "in 2"):await()
      b:set("k", "in 3"):await()
      assert.equals("in 2", a:get("k"):await())
      assert.equals("in 3", b:get("k"):await())
    end))

    it("authenticates an ACL user from the URL", async(function()
      local admin <close> = connect()
      admin:acl_setuser("alice", "on", ">s3cret", "~*", "+@all"):await()
      local r <close> = redis.connect(("redis://alice:s3cret@127.0.0.1:%d"):format(srv.port)):await()
      assert.equals("alice", r:acl_whoami():await())
      local err = err_of(redis.connect(("redis://alice:wrong@127.0.0.1:%d"):format(srv.port)))
      assert.is_true(tide.is_error(err, "WRONGPASS"))
    end))

    it("answers 50 tasks of 200 commands each, in order", async(function()
      local r <close> = connect{ db = 4 }
      local g = tide.group()
      for i = 1, 50 do
        g:spawn(function()
          for j = 1, 200 do
            r:set("k" .. i, j)
            assert.equals(tostring(j), r:get("k" .. i):await())
          end
        end)
      end
      g:wait():await()
    end))
  end)

  describe("RESP3", function()
    it("says HELLO 3 and maps the replies RESP3 gives", async(function()
      local r <close> = connect{ db = 8, protocol = 3, name = "three" }
      r:del("h"):await()
      r:hset("h", "a", "1", "b", "2"):await()
      assert.same({ a = "1", b = "2" }, r:hgetall("h"):await())
      assert.equals("three", r:client_getname():await())
      assert.equals(3, r:hello():await().proto)
      -- invalidation pushes of client tracking are not taken for replies
      r:client_tracking("on"):await()
      r:set("t", "1"):await(); r:get("t"):await(); r:set("t", "2"):await()
      assert.equals("2", r:get("t"):await())
      local sub <close> = r:subscribe("three"):await()
      r:publish("three", "hi"):await()
      assert.equals("hi", sub:next():await().data)
    end))
  end)

  describe("pipelines and transactions", function()
    it("runs a pipeline and a transaction", async(function()
      local r <close> = connect{ db = 5 }
      local res = r:pipeline(function(p)
        for i = 1, 100 do p:set("p" .. i, i) end
        p:get("p100"); p:incr("p1"); p:hget("p1", "f")
      end):await()
      assert.equals(103, res.n)
      assert.equals("100", res[101]); assert.equals(2, res[102])
      assert.is_true(tide.is_error(res[103], "WRONGTYPE"))
      local tx = r:transaction(function(t) t:set("x", 1); t:incr("x"); t:lpush("x", 1) end):await()
      assert.equals("OK", tx[1]); assert.equals(2, tx[2])
      assert.is_true(tide.is_error(tx[3], "WRONGTYPE"))
      local err = err_of(r:transaction(function(t) t:set("x", 1); t:call("NOPE") end))
      assert.is_true(tide.is_error(err, "EXECABORT"))
      assert.is_true(tide.is_error(err.errors[1], "ERR"))
    end))

    it("gives nil when a WATCHed key changed", async(function()
      local r <close> = connect{ db = 5 }
      local w <close> = r:duplicate():await()
      w:select(5):await()
      w:watch("x"):await()
      r:set("x", "changed"):await()
      assert.is_nil(w:transaction(function(t) t:set("x", "mine") end):await())
      assert.equals("changed", r:get("x"):await())
    end))
  end)

  describe("pub/sub", function()
    it("delivers messages in order, by channel and by pattern", async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("news", "sport"):await()
      sub:psubscribe("log.*"):await()
      assert.equals(1, r:publish("news", "a"):await())
      r:publish("log.err", "b"):await()
      r:publish("sport", "c"):await()
      local m1, m2, m3 = sub:next():await(), sub:next():await(), sub:next():await()
      assert.same({ kind = "message", channel = "news", data = "a" }, m1)
      assert.same({ kind = "pmessage", pattern = "log.*", channel = "log.err", data = "b" }, m2)
      assert.equals("c", m3.data)
      assert.is_true(tide.is_error(err_of(sub:next(0.05)), "ETIMEDOUT"))
      sub:unsubscribe("news"):await()
      assert.equals(0, r:publish("news", "x"):await())
      sub:unsubscribe():await()
      sub:punsubscribe():await()
      assert.is_nil(sub:next():await())
    end))

    it("iterates over messages until unsubscribed", async(function()
      local r <close> = connect()
      local sub <close> = r:subscribe("q"):await()
      tide.spawn(function()
        for i = 1, 5 do r:publish("q", tostring(i)):await() end
        sub:unsubscribe():await()
      end)
      local got = {}
      for msg in sub:messages() do got[#got + 1] = msg.data end
      assert.same({ "1", "2", "3", "4", "5" }, got)
    end))

    it("ends a subscription with the error when its connection is lost", async(function()
      local r <close> = connect()
      r:client_setname("keeper"):await()
      local sub <close> = r:subscribe("gone"):await()
      r:client_kill("TYPE", "pubsub"):await()
      local err = err_of(sub:next(2))
      assert.is_true(tide.is_error(err, "ECONNRESET"))
    end))
  end)

  describe("blocking commands", function()
    it("run on a connection of their own and hold no other command up", async(function()
      local r <close> = connect{ db = 6 }
      r:del("jobs"):await()
      local waiter = r:blpop("jobs", 5)
      for _ = 1, 10 do assert.equals("PONG", r:ping():await()) end
      r:rpush("jobs", "j1"):await()
      assert.same({ "jobs", "j1" }, waiter:await())
      assert.is_nil(r:brpop("jobs", 0.05):await())
      assert.is_true(tide.is_error(err_of(tide.timeout(r:blpop("jobs", 0), 0.05)), "ETIMEDOUT"))
    end))
  end)

  describe("reconnection", function()
    it("reconnects after the server dropped the connection", async(function()
      local r <close> = connect{ db = 7, name = "victim" }
      r:set("k", "v"):await()
      local admin <close> = connect()
      admin:client_kill("TYPE", "normal", "SKIPME", "yes"):await()
      tide.sleep(0.02):await()
      assert.equals("v", r:get("k"):await())  -- on database 7 again
      assert.equals("victim", r:client_getname():await())
      assert.equals(1, r.reconnects)
    end))

    it("rejects with ECONNREFUSED when nothing listens", async(function()
      local err = err_of(redis.connect{ port = 1 })
      assert.is_true(tide.is_error(err, "ECONNREFUSED"))
    end))
  end)

  describe("rediss://", function()
    it("talks to a TLS redis-server and checks its certificate", async(function()
      local certs = require "tls.certs"
      local tls_port = server.free_port()
      local tsrv = assert(server.start(("--tls-port %d --tls-cert-file %s --tls-key-file %s "
        .. "--tls-ca-cert-file %s --tls-auth-clients no"):format(tls_port, certs.path("localhost.pem"),
        certs.path("localhost.key"), certs.path("ca.pem"))))
      local ok, err = pcall(function()
        local url = ("rediss://localhost:%d/3"):format(tls_port)
        local r <close> = redis.connect{ url = url, tls = { ca = certs.path("ca.pem") } }:await()
        assert.equals("OK", r:set("k", "over tls"):await())
        local g = tide.group()
        for _ = 1, 20 do g:spawn(function() for _ = 1, 20 do r:incr("n") end return r:get("k"):await() end) end
        g:wait():await()
        assert.equals("400", r:get("n"):await())
        local e = err_of(redis.connect(url))  -- the system's CAs do not know the test CA
        assert.is_true(tide.is_error(e, "ETLS"))
      end)
      tsrv.stop()
      if not ok then error(err, 0) end
    end))
  end)
end)
