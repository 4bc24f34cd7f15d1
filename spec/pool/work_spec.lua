-- Specs of the thread pool seen from Lua: tide.work, tide.work_module,
-- tide.pool_size and the worker-side tide table (progress, hrtime).
--
-- Functions sent to workers must not capture locals (only _ENV), so the
-- job functions below are file-level locals without upvalues, or inline
-- functions that use only globals and their arguments.
local tide = require "tide"

-- Jobs ------------------------------------------------------------------

local function identity(...) return ... end

-- Busy for `seconds` of wall time; returns the worker's id.
local function spin(seconds)
  local tide = require "tide"
  local t0 = tide.hrtime()
  while tide.hrtime() - t0 < seconds * 1e9 do end
  return tide.worker_id
end

local function touch(path)
  local f = assert(io.open(path, "w"))
  f:write("ran")
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Keeps every worker busy for `seconds`; returns their promises.
local function fill_pool(seconds)
  local busy = {}
  for i = 1, tide.pool_size() do busy[i] = tide.work(spin, seconds) end
  return busy
end

-- Random values -----------------------------------------------------------

-- Every generated table carries a unique __id, so two structures can be
-- matched whatever order pairs() visits them in, table keys included.
local gen_value

local function gen_scalar(allow_nil)
  local r = math.random(allow_nil and 0 or 1, 12)
  if r == 0 then return nil
  elseif r == 1 then return true
  elseif r == 2 then return false
  elseif r == 3 then return math.random(-1000, 1000)
  elseif r == 4 then
    local ints = { math.maxinteger, math.mininteger, 0, -1, 1 << 53, -(1 << 62) }
    return ints[math.random(#ints)]
  elseif r == 5 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300)
  elseif r == 6 then
    local floats = { 0.0, -0.0, 1 / 0, -1 / 0, 0 / 0, 2.0 ^ 53, 0.1, -1.5, 3.0 }
    return floats[math.random(#floats)]
  else
    local n = math.random(0, 3) == 0 and math.random(100, 2000) or math.random(0, 24)
    local bytes = {}
    for i = 1, n do bytes[i] = string.char(math.random(0, 255)) end
    return table.concat(bytes)
  end
end

local function gen_key(ctx)
  local r = math.random(1, 8)
  if r <= 3 then return "k" .. math.random(1, 50)
  elseif r == 4 then return math.random(-5, 100)
  elseif r == 5 then return math.random() * 100 + 0.5  -- never integral
  elseif r == 6 then return math.random(2) == 1
  elseif r == 7 and #ctx.tables > 0 then return ctx.tables[math.random(#ctx.tables)]
  else
    local k = gen_scalar(false)
    if k ~= k then k = "nan" end  -- NaN cannot be a key
    return k
  end
end

local function gen_table(ctx, depth)
  ctx.ids = ctx.ids + 1
  local t = { __id = ctx.ids }
  ctx.tables[#ctx.tables + 1] = t  -- before its contents: cycles
  for i = 1, math.random(0, 6) do t[i] = gen_value(ctx, depth + 1, false) end
  for _ = 1, math.random(0, 6) do
    t[gen_key(ctx)] = gen_value(ctx, depth + 1, false)
  end
  return t
end

function gen_value(ctx, depth, allow_nil)
  local r = math.random(1, 10)
  if r <= 2 and #ctx.tables > 0 then
    return ctx.tables[math.random(#ctx.tables)]  -- shared, maybe a cycle
  elseif r <= 5 and depth < 4 then
    return gen_table(ctx, depth)
  end
  return gen_scalar(allow_nil)
end

-- Indexes every table reachable from v by its __id.
local function index_tables(v, idx)
  if type(v) ~= "table" or idx[v.__id] == v then return idx end
  assert(idx[v.__id] == nil, "two tables with one __id")
  idx[v.__id] = v
  for k, x in next, v do
    index_tables(k, idx)
    index_tables(x, idx)
  end
  return idx
end

-- Whether a and b are the same value graph: same types (integer and float
-- apart), same numbers bit for bit where Lua can tell (-0.0, NaN), same
-- strings, and tables matched one to one (sharing and cycles kept).
local function same(a, b, m)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  if m.fwd[a] ~= nil or m.back[b] ~= nil then return m.fwd[a] == b and m.back[b] == a end
  if a.__id ~= b.__id or m.index[a.__id] ~= b then return false end
  m.fwd[a], m.back[b] = b, a
  local na, nb = 0, 0
  for _ in next, b do nb = nb + 1 end
  for k, v in next, a do
    na = na + 1
    local bk = k
    if type(k) == "table" then
      bk = m.index[k.__id]
      if not same(k, bk, m) then return false end
    end
    if not same(v, rawget(b, bk), m) then return false end
  end
  return na == nb
end

local function same_all(a, b)
  if a.n ~= b.n then return false end
  local m = { fwd = {}, back = {}, index = {} }
  for i = 1, b.n do index_tables(b[i], m.index) end
  for i = 1, a.n do
    if not same(a[i], b[i], m) then return false end
  end
  return true
end

describe("tide.work", function()
  describe("results", function()
    it("runs the function on a worker and fulfils with its results", async(function()
      local r = table.pack(tide.work(function(a, b) return a + b, nil, a .. b end, 20, 22):await())
      assert.same({ n = 3, 42, nil, "2022" }, r)
    end))

    it("runs in a worker's own state, where tide is the worker-side table", async(function()
      local is_worker, progress, work, id, same_tide = tide.work(function()
        local t = require "tide"
        return t.is_worker, type(t.progress), t.work, t.worker_id, t == _G.tide
      end):await()
      assert.is_true(is_worker)
      assert.equal("function", progress)
      assert.is_nil(work)
      assert.is_true(id >= 1 and id <= tide.pool_size())
      assert.is_true(same_tide)
    end))

    it("keeps integers and floats apart and strings binary-safe", async(function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local s = table.concat(bytes) .. "\0end"
      local a, b, c, d, e, f, g = tide.work(identity, 3, 3.0, -0.0, 0 / 0, math.mininteger, s, 1 / 0):await()
      assert.equal("integer", math.type(a))
      assert.equal("float", math.type(b))
      assert.equal(-1 / 0, 1 / c)
      assert.is_true(d ~= d)
      assert.equal(math.mininteger, e)
      assert.equal(s, f)
      assert.equal(1 / 0, g)
    end))

    it("round-trips thousands of random nested values (fixed seed)", async(function()
      math.randomseed(20261122)
      local cases, batch = 3000, 50
      for first = 1, cases, batch do
        local sent, promises = {}, {}
        for i = 1, batch do
          local ctx = { ids = 0, tables = {} }
          local args = { n = math.random(0, 4) }
          for k = 1, args.n do args[k] = gen_value(ctx, 0, true) end
          sent[i] = args
          promises[i] = tide.work(identity, table.unpack(args, 1, args.n))
        end
        for i = 1, batch do
          local got = table.pack(promises[i]:await())
          if not same_all(sent[i], got) then
            error(string.format("case %d came back different", first + i - 1))
          end
        end
      end
    end, 120))

    it("keeps shared references and cycles, across arguments too", async(function()
      local shared = { "shared" }
      local cyc = { name = "cyc" }
      cyc.self = cyc
      local key = { "key" }
      local keyed = { [key] = key }
      local a, b, c, d, e = tide.work(identity, { shared, shared }, cyc, keyed, shared, shared):await()
      assert.equal(a[1], a[2])
      assert.equal(a[1], d)
      assert.equal(d, e)
      assert.equal(b, b.self)
      local k, v = next(c)
      assert.equal(k, v)
      assert.equal("key", k[1])
      assert.are_not.equal(shared, d)  -- a copy, not the caller's table
    end))
  end)

  describe("refusals", function()
    it("refuses a function with upvalues, naming the upvalue", function()
      local captured = 1
      local ok, err = pcall(tide.work, function() return captured end)
      assert.is_false(ok)
      assert.matches("upvalue 'captured'", err)
      assert.matches("bad argument #1", err)
    end)

    it("refuses C functions and non-functions", function()
      assert.matches("C function", select(2, pcall(tide.work, print)))
      assert.matches("bad argument #1", select(2, pcall(tide.work, 42)))
    end)

    it("refuses every value that cannot cross, saying where it was", function()
      local co = coroutine.create(function() end)
      local deep = {}
      local t = deep
      for _ = 1, 250 do t[1] = {}; t = t[1] end
      local cases = {
        { { 1, 2, { cb = print } }, 'argument 2: function at %[3%]%["cb"%] cannot be sent to another thread' },
        { co, "argument 2: thread cannot be sent" },
        { io.stdout, "argument 2: userdata cannot be sent" },
        { { x = { y = setmetatable({}, {}) } }, 'argument 2: table with a metatable at %["x"%]%["y"%]' },
        { { [print] = 1 }, "argument 2: function at {key}" },
        { deep, "nested more than 200 levels" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(tide.work, identity, case[1])
        assert.is_false(ok)
        assert.matches("^tide.work: ", err)
        assert.matches(case[2], err)
      end
      -- argument numbers count from tide.work's own arguments
      assert.matches("argument 4: function", select(2, pcall(tide.work, identity, 1, 2, print)))
    end)

    it("rejects when a result cannot cross, naming the result", async(function()
      local ok, err = pcall(tide.await, tide.work(function() return 1, { co = coroutine.create(print) } end))
      assert.is_false(ok)
      assert.equal("EWORKER", err.code)
      assert.matches('result 2: thread at %["co"%] cannot be sent to another thread', err.message)
    end))
  end)

  describe("errors", function()
    it("rejects with the worker's message and traceback", async(function()
      local ok, err = pcall(tide.await, tide.work(function(x)
        local function inner() error("boom " .. x) end
        inner()
      end, 7))
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "EWORKER"))
      assert.matches("work_spec.lua:%d+: boom 7", err.message)
      assert.matches("^EWORKER: .*boom 7", tostring(err))
      assert.matches("stack traceback:", err.traceback)
      assert.matches("in local 'inner'", err.traceback)
      assert.matches("work_spec.lua:%d+:", err.traceback)
    end))

    it("keeps an error value that can cross and describes one that cannot", async(function()
      local _, err = pcall(tide.await, tide.work(function() error({ code = 42, list = { 1, 2 } }) end))
      assert.same({ code = 42, list = { 1, 2 } }, err.value)
      assert.equal("(error object is a table value)", err.message)
      _, err = pcall(tide.await, tide.work(function()
        error(setmetatable({}, { __tostring = function() return "custom" end }))
      end))
      assert.equal("custom", err.message)
      assert.is_nil(err.value)
      _, err = pcall(tide.await, tide.work(function() error() end))
      assert.equal("(error object is a nil value)", err.message)
    end))

    it("leaves the worker usable after an error", async(function()
      local n = tide.pool_size()
      local failing = {}
      for i = 1, 3 * n do
        failing[i] = tide.work(function() error("fails") end):catch(function(e) return e end)
      end
      for i = 1, 3 * n do assert.equal("EWORKER", failing[i]:await().code) end
      local ok = {}
      for i = 1, 3 * n do ok[i] = tide.work(function(x) return x * 2 end, i) end
      for i = 1, 3 * n do assert.equal(2 * i, ok[i]:await()) end
    end))

    it("reports an unhandled worker error with the worker's traceback", function()
      local script = tmp_script([[
        local tide = require "tide"
        tide.work(function() local x = nil; return x.field end)
      ]])
      local _, err, status = run_tide(script)
      os.remove(script)
      assert.matches("unhandled rejection: EWORKER: .*attempt to index a nil value", err)
      assert.matches("stack traceback:", err)
      assert.is_not.equal(0, status)
    end)
  end)

  describe("progress", function()
    it("emits progress events in order, before the settlement", async(function()
      local seen = {}
      local p = tide.work(function(n)
        local tide = require "tide"
        for i = 1, n do tide.progress(i, { done = i, total = n }) end
        return "finished"
      end, 100)
      p:on("progress", function(i, info)
        assert.equal(i, info.done)
        seen[#seen + 1] = i
      end)
      p:next(function(v) seen[#seen + 1] = v end)
      assert.equal("finished", p:await())
      tide.sleep(0):await()  -- let the next() callback run
      assert.equal(101, #seen)
      for i = 1, 100 do assert.equal(i, seen[i]) end
      assert.equal("finished", seen[101])
    end))

    it("fails the job when a progress value cannot cross", async(function()
      local ok, err = pcall(tide.await, tide.work(function()
        require("tide").progress(1, print)
      end))
      assert.is_false(ok)
      assert.matches("tide.progress: argument 2: function cannot be sent", err.message)
    end))

    it("frees what it encoded when a progress value cannot cross", async(function()
      local function rss_kib()
        local f = assert(io.open("/proc/self/status"))
        local text = f:read("a")
        f:close()
        return tonumber(text:match("VmRSS:%s*(%d+)"))
      end
      local before = rss_kib()
      local refused = tide.work(function(n)
        local tide, big = require "tide", string.rep("x", 1 << 20)
        local refused = 0
        for _ = 1, n do
          if not pcall(tide.progress, big, print) then refused = refused + 1 end
        end
        return refused
      end, 300):await()
      assert.equal(300, refused)
      -- 300 MiB when each refusal leaks its buffer. Under AddressSanitizer
      -- its quarantine holds freed memory, and LeakSanitizer checks instead.
      if not (os.getenv("LD_PRELOAD") or ""):find("asan") then
        local grown = rss_kib() - before
        assert.is_true(grown < 64 * 1024, "RSS grew by " .. grown .. " KiB")
      end
    end))
  end)

  describe("the loop", function()
    it("keeps ticking while the pool is busy", async(function()
      local ticks = 0
      local ticker = tide.interval(0.01, function() ticks = ticks + 1 end)
      local t0 = tide.hrtime()
      local job = tide.work(spin, 1)
      local before = ticks
      job:await()
      local seconds = (tide.hrtime() - t0) / 1e9
      ticker:cancel()
      assert.is_true(seconds >= 1)
      assert.is_true(ticks - before >= 50, "only " .. (ticks - before) .. " ticks in " .. seconds .. " s")
    end, 20))

    it("is not starved of file reads by a busy pool (libuv's pool is separate)", async(function()
      local busy = fill_pool(1)
      local t0 = tide.hrtime()
      local data = tide.fs.readfile("spec/pool/work_spec.lua"):await()
      local seconds = (tide.hrtime() - t0) / 1e9
      assert.matches("^%-%- Specs of the thread pool", data)
      assert.is_true(seconds < 0.5, "the read took " .. seconds .. " s")
      for _, p in ipairs(busy) do assert.equal("pending", p:state()) end
      tide.all(busy):await()
    end, 20))
  end)

  describe("cancellation", function()
    it("cancels a queued job when the task awaiting it is cancelled", async(function()
      local busy = fill_pool(0.3)
      local path = os.tmpname()
      os.remove(path)
      local task = tide.spawn(function() return tide.work(touch, path):await() end)
      tide.sleep(0.02):await()  -- the task awaits the queued job now
      assert.is_true(task:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, task) })
      tide.all(busy):await()
      tide.all(fill_pool(0)):await()  -- anything still queued would have run
      assert.is_false(exists(path))
    end))

    it("cancels a queued job through its promise", async(function()
      local busy = fill_pool(0.2)
      local path = os.tmpname()
      os.remove(path)
      local p = tide.work(touch, path)
      assert.is_true(p:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, p) })
      tide.all(busy):await()
      tide.all(fill_pool(0)):await()
      assert.is_false(exists(path))
    end))

    it("drops a queued job whose promise was settled by hand", async(function()
      local busy = fill_pool(0.2)
      local path = os.tmpname()
      os.remove(path)
      local p = tide.work(touch, path)
      p:resolve("by hand")
      assert.equal("by hand", p:await())
      tide.all(busy):await()
      tide.all(fill_pool(0)):await()
      assert.is_false(exists(path))
    end))

    it("rejects a running job's promise at once and drops its result", async(function()
      local path = os.tmpname()
      os.remove(path)
      local p = tide.work(function(path, seconds)
        local tide = require "tide"
        local t0 = tide.hrtime()
        while tide.hrtime() - t0 < seconds * 1e9 do end
        local f = assert(io.open(path, "w")); f:close()
        return "late"
      end, path, 0.2)
      tide.sleep(0.05):await()  -- running now
      assert.is_true(p:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, p) })
      tide.sleep(0.3):await()
      assert.is_true(exists(path))  -- it ran to its end
      os.remove(path)
      assert.equal("rejected", p:state())
    end))
  end)

  describe("worker state", function()
    it("is kept between jobs", async(function()
      local counts = {}
      for _ = 1, 30 do
        local id, count = tide.work(function()
          work_spec_counter = (work_spec_counter or 0) + 1
          return require("tide").worker_id, work_spec_counter
        end):await()
        counts[id] = (counts[id] or 0) + 1
        assert.equal(counts[id], count)
      end
    end))

    it("caches loaded functions by bytecode", async(function()
      local seen_on = {}
      for _ = 1, 20 do
        -- a new closure every time, with the same bytecode
        local id, hit = tide.work(function()
          local f = debug.getinfo(1, "f").func
          work_spec_seen = work_spec_seen or setmetatable({}, { __mode = "k" })
          local hit = work_spec_seen[f] == true
          work_spec_seen[f] = true
          return require("tide").worker_id, hit
        end):await()
        assert.equal(seen_on[id] == true, hit)
        seen_on[id] = true
      end
    end))

    it("requires modules from the caller's package.path, as it is now", async(function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local f = assert(io.open(dir .. "/work_spec_mod.lua", "w"))
      f:write("return { double = function(x) return 2 * x end,\n"
        .. "  paths = function() return package.path, package.cpath end }\n")
      f:close()
      local old = package.path
      package.path = dir .. "/?.lua;" .. old
      local ok, err = pcall(function()
        assert.equal(42, tide.work_module("work_spec_mod", "double", 21):await())
        assert.same({ package.path, package.cpath }, { tide.work_module("work_spec_mod", "paths"):await() })
        assert.equal(8, tide.work(function(x) return require("work_spec_mod").double(x) end, 4):await())
      end)
      package.path = old
      os.remove(dir .. "/work_spec_mod.lua")
      os.remove(dir)
      assert(ok, err)
      -- and the old path again afterwards
      assert.equal(old, tide.work(function() return package.path end):await())
    end))
  end)

  describe("work_module", function()
    it("runs require(mod)[name](...) on a worker", async(function()
      assert.equal("ababab", tide.work_module("string", "rep", "ab", 3):await())
    end))

    it("checks its arguments at once", function()
      assert.has_error(function() tide.work_module(1, "f") end)
      assert.has_error(function() tide.work_module("string") end)
      assert.matches("argument 3: function", select(2, pcall(tide.work_module, "string", "rep", print)))
    end)

    it("rejects when the module or the function is missing", async(function()
      local _, err = pcall(tide.await, tide.work_module("no_such_module_here", "f"))
      assert.equal("EWORKER", err.code)
      assert.matches("module 'no_such_module_here' not found", err.message)
      _, err = pcall(tide.await, tide.work_module("string", "nope"))
      assert.matches("module 'string' has no function 'nope'", err.message)
    end))
  end)

  describe("pool", function()
    it("has the size TIDE_THREADS asks for", function()
      local out, err, status = sh("env TIDE_THREADS=3 " .. tide_bin .. [[ -e 'print(require("tide").pool_size())']])
      assert.equal(0, status, err)
      assert.equal("3\n", out)
      assert.is_true(tide.pool_size() >= 1)
    end)

    it("lets a state close with jobs queued: they are cancelled, not run", function()
      local n = tide.pool_size()
      local script = tmp_script(string.format([[
        local tide = require "tide"
        for i = 1, %d do
          tide.work(function()
            local tide = require "tide"
            local t0 = tide.hrtime()
            while tide.hrtime() - t0 < 0.2e9 do end
          end)
        end
        print("queued")
      ]], 20 * n))
      local t0 = tide.hrtime()
      local out, err, status = sh("lua5.4 " .. script)
      local seconds = (tide.hrtime() - t0) / 1e9
      os.remove(script)
      assert.equal(0, status, err)
      assert.equal("queued\n", out)
      assert.equal("", err)
      assert.is_true(seconds < 2, "closing took " .. seconds .. " s")  -- 4 s if they all ran
    end)
  end)
end)
