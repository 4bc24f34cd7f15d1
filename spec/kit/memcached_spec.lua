-- spec/kit/memcached_spec.lua — tide.memcached, the kit's one-page
-- protocol: deterministic specs over in-memory pairs (replies cut into
-- pieces, a silent server on virtual time, a reset), then the same client
-- against a real memcached started on a free port of 127.0.0.1.
local tide = require "tide"
local test = require "tide.test"
local memory = require "tide.memory"
local memcached = require "tide.memcached"

-- A small memcached on stream `conn` (get, set, delete, incr), enough for
-- the specs; `script` may answer a command line itself (returns the reply).
local function fake_server(conn, script)
  local data = {}
  while true do
    local l = conn:read_line():await()
    if l == nil then break end
    local words = {}
    for w in l:gmatch("%S+") do words[#words + 1] = w end
    local cmd, key = words[1], words[2]
    local reply = script and script(l)
    if reply then
    elseif cmd == "get" then
      local v = data[key]
      reply = v and ("VALUE %s %d %d\r\n%s\r\nEND\r\n"):format(key, v.flags, #v.value, v.value) or "END\r\n"
    elseif cmd == "set" then
      local value = conn:read_exactly(tonumber(words[5]) + 2):await():sub(1, -3)
      data[key] = { value = value, flags = tonumber(words[3]) }
      reply = "STORED\r\n"
    elseif cmd == "delete" then
      reply = data[key] and "DELETED\r\n" or "NOT_FOUND\r\n"
      data[key] = nil
    elseif cmd == "incr" then
      local v = data[key]
      if v then v.value = tostring(tonumber(v.value) + tonumber(words[3])) end
      reply = v and v.value .. "\r\n" or "NOT_FOUND\r\n"
    else
      reply = "ERROR\r\n"
    end
    conn:write(reply):await()
  end
  conn:close()
end

local function rejection(p)
  local ok, err = pcall(tide.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

describe("tide.memcached", function()
  describe("over an in-memory pair", function()
    for _, cut in ipairs{ { chunk = 1 }, { chunk = "random", seed = 7 } } do
      it("stores, gets, deletes and counts with replies cut as " .. tostring(cut.chunk), test(function(t)
        local a, b = t.pair(cut)
        local server = tide.spawn(fake_server, b)
        local mc = memcached.new(a)
        assert.is_true(mc:set("k", "hello\r\nworld", { flags = 42 }):await())
        assert.same({ "hello\r\nworld", 42 }, { mc:get("k"):await() })
        assert.is_nil(mc:get("missing"):await())
        assert.is_true(mc:set("n", "41"):await())
        assert.equal(42, mc:incr("n"):await())
        assert.is_nil(mc:incr("nope", 5):await())
        assert.is_true(mc:delete("k"):await())
        assert.is_false(mc:delete("k"):await())
        mc:close()
        server:await()
      end))
    end

    it("pipelines the commands of many tasks and matches the replies", test(function(t)
      local a, b = t.pair{ chunk = "random", seed = 3 }
      local server = tide.spawn(fake_server, b)
      local mc = memcached.new(a)
      local sets, gets = {}, {}
      for i = 1, 20 do sets[i] = mc:set("k" .. i, string.rep("v", i)) end
      for i = 1, 20 do gets[i] = tide.spawn(function() return mc:get("k" .. i):await() end) end
      tide.all(sets):await()
      for i = 1, 20 do assert.equal(string.rep("v", i), gets[i]:await()) end
      mc:close()
      server:await()
    end))

    it("rejects error replies with EMEMCACHED and goes on", test(function(t)
      local a, b = t.pair()
      local server = tide.spawn(fake_server, b, function(l)
        if l:find("^get bad") then return "CLIENT_ERROR bad data chunk\r\n" end
        if l:find("^get worse") then return "SERVER_ERROR out of memory\r\n" end
        if l:find("^get oops") then return "ERROR\r\n" end
      end)
      local mc = memcached.new(a)
      local err = rejection(mc:get("bad"))
      assert.equal("EMEMCACHED", err.code)
      assert.equal("CLIENT_ERROR", err.kind)
      assert.equal("bad data chunk", err.message)
      assert.equal("SERVER_ERROR", rejection(mc:get("worse")).kind)
      assert.equal("ERROR", rejection(mc:get("oops")).kind)
      assert.is_nil(mc:get("fine"):await())
      mc:close()
      server:await()
    end))

    it("times out a silent server after its timeout, on virtual time", test({ clock = "virtual" }, function(t)
      local a, b = t.pair()
      local mc = memcached.new(a, { timeout = 30 })
      local t0 = tide.now()
      assert.equal("ETIMEDOUT", rejection(mc:get("k")).code)
      assert.equal(30, math.floor(tide.now() - t0 + 0.5))
      assert.equal("get k", b:read_line():await())
    end))

    it("fails the commands in flight when the connection is reset", test(function(t)
      local a, b = t.pair{ latency = 0.01 }
      local mc = memcached.new(a)
      local p = mc:get("k")
      memory.reset(b)
      assert.equal("ECONNRESET", rejection(p).code)
    end))

    it("refuses a bad key at once", function()
      local mc = memcached.new({ write = function() end })
      assert.has_error(function() mc:get("two words") end, "invalid key")
      assert.has_error(function() mc:set("", "v") end, "invalid key")
      assert.has_error(function() mc:get(string.rep("k", 251)) end, "invalid key")
    end)
  end)

  describe("against memcached", function()
    local bin = io.popen("command -v memcached"):read("l")
    local run = bin and it or pending

    run("sets and gets through a real memcached on a free port", test({ timeout = 20 }, function()
      -- a free port: bind port 0, note it, let it go
      local probe = tide.tcp.serve({ host = "127.0.0.1", port = 0 }, function() end)
      local port = probe.port
      probe:close():await()
      local user = io.popen("id -u"):read("l") == "0" and { "-u", "root" } or {}  -- memcached refuses root otherwise
      local args = { "-l", "127.0.0.1", "-p", tostring(port), "-U", "0", "-m", "8", table.unpack(user) }
      local proc = tide.process.spawn{ bin, args = args }
      local mc
      for _ = 1, 100 do  -- until it listens
        local ok, c = pcall(tide.await, memcached.connect("127.0.0.1", port, { timeout = 2 }))
        if ok then mc = c break end
        tide.sleep(0.05):await()
      end
      assert.is_not_nil(mc, "memcached did not start")
      assert.is_true(mc:set("tide:k", "v\r\n1", { flags = 7 }):await())
      assert.same({ "v\r\n1", 7 }, { mc:get("tide:k"):await() })
      assert.is_true(mc:set("tide:n", "10"):await())
      local incs = {}
      for i = 1, 10 do incs[i] = mc:incr("tide:n", 1) end
      tide.all(incs):await()
      assert.equal(20, tonumber((mc:get("tide:n"):await())))
      assert.is_false(mc:add("tide:k", "other"):await())
      assert.is_true(mc:delete("tide:k"):await())
      assert.is_nil(mc:get("tide:k"):await())
      assert.is_true(mc:set("tide:s", "abc"):await())
      local err = rejection(mc:incr("tide:s"))
      assert.equal("EMEMCACHED", err.code)
      assert.equal("CLIENT_ERROR", err.kind)
      assert.equal("fine", (mc:set("tide:s", "fine"):await() and mc:get("tide:s"):await()))
      mc:close():await()
      proc:kill()
      proc:wait():await()
    end))
  end)
end)
