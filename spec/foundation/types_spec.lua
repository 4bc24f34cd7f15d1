-- The annotations of lua/tide/meta/*.lua (lua-language-server) against the
-- runtime, both ways: every name a module exports, and every method of its
-- objects, is annotated; every annotated function, method and module field
-- exists.
--
-- The meta files are read as text, line by line:
--   ---@class NAME          starts class NAME (generics and parents dropped)
--   ---@field name ...      a field of the current class
--   local X = {} / X = {}   binds X to the current class
--   A.b = {}                also: member b of A's class (a namespace)
--   function A.b( / A:b(   a function or method b of A's class
-- The runtime side: the tables the modules return, and the method tables
-- of objects (from the registry's metatables, or from an instance).
local tide = require "tide"

local META = "lua/tide/meta/"
local FILES = { "tide", "http", "tls", "websocket", "redis", "memory", "test", "memcached" }

-- Parses the meta files into classes[name] = {functions = set, fields = set}.
local function parse(files)
  local classes = {}
  local function class(name)
    local c = classes[name]
    if not c then c = { functions = {}, fields = {} }; classes[name] = c end
    return c
  end
  for _, file in ipairs(files) do
    local alias, current = {}, nil
    local function resolve(x) return alias[x] or x end
    for line in io.lines(META .. file .. ".lua") do
      local name = line:match("^%-%-%-@class%s+([%w_.]+)")
      if name then current = name; class(name) end
      local field = line:match("^%-%-%-@field%s+([%w_]+)")
      if field and current then class(current).fields[field] = true end
      local var = line:match("^local%s+([%w_]+)%s*=%s*{}") or line:match("^([%w_.]+)%s*=%s*{}")
      if var and current then
        alias[var] = current
        local owner, member = var:match("^(.+)%.([%w_]+)$")
        if owner then class(resolve(owner)).fields[member] = true end
      end
      local owner, sep, fname = line:match("^function%s+([%w_.]+)([.:])([%w_]+)%s*%(")
      if owner then
        local c = class(resolve(owner))
        c.functions[fname] = sep == ":" and "method" or "function"
      end
    end
  end
  return classes
end

-- The functions of a method table, without metamethods.
local function functions_of(t)
  local set = {}
  for k, v in pairs(t) do
    if type(k) == "string" and not k:match("^__") and type(v) == "function" then set[k] = true end
  end
  return set
end

-- The method table behind a metatable: its __index table, or the table
-- its C __index function keeps as an upvalue.
local function methods_of_mt(mt)
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then return functions_of(idx) end
  if type(idx) == "function" then
    for i = 1, 10 do
      local name, v = debug.getupvalue(idx, i)
      if not name then break end
      if type(v) == "table" then return functions_of(v) end
    end
  end
  error("no method table behind " .. tostring(rawget(mt, "__name")))
end
local function methods_of(obj) return methods_of_mt(getmetatable(obj)) end
local function registry(name) return methods_of_mt(debug.getregistry()[name]) end

-- The keys of a module table (what it exports).
local function keys_of(t)
  local set = {}
  for k in pairs(t) do if type(k) == "string" then set[k] = true end end
  return set
end

-- runtime() -> modules[class] = module table, objects[class] = method set.
local function runtime()
  local modules = {
    tide = tide,
    ["tide.http"] = require "tide.http",
    ["tide.http.h1"] = require "tide.http.h1",
    ["tide.http.headers"] = require "tide.http.headers",
    ["tide.http.server"] = require "tide.http.server",
    ["tide.http.client"] = require "tide.http.client",
    ["tide.tls"] = require "tide.tls",
    ["tide.websocket"] = require "tide.websocket",
    ["tide.redis"] = require "tide.redis",
    ["tide.redis.resp"] = require "tide.redis.resp",
    ["tide.memory"] = require "tide.memory",
    ["tide.test"] = require "tide.test",
    ["tide.memcached"] = require "tide.memcached",
  }
  for _, ns in ipairs{ "tcp", "udp", "pipe", "dns", "fs", "process", "ssl", "zlib" } do
    modules["tide." .. ns] = tide[ns]
  end
  local m = modules
  local objects = {}
  tide.run(function()
    local sem = tide.semaphore(1)
    local net = m["tide.memory"].network()
    local mserver = net:serve("types", function() end)
    objects = {
      ["tide.Promise"] = registry "tide.promise",
      ["tide.Group"] = methods_of(tide.group()),
      ["tide.Queue"] = methods_of(tide.queue()),
      ["tide.Semaphore"] = methods_of(sem),
      ["tide.Permit"] = methods_of(sem:acquire():await()),
      ["tide.Event"] = methods_of(tide.event()),
      ["tide.Clock"] = registry "tide.clock",
      ["tide.Stream"] = registry "tide.stream",
      ["tide.Server"] = registry "tide.server",
      ["tide.UdpSocket"] = registry "tide.udp",
      ["tide.Process"] = registry "tide.process",
      ["tide.SignalWatcher"] = registry "tide.signals",
      ["tide.fs.File"] = registry "tide.fs.file",
      ["tide.fs.Watcher"] = registry "tide.fs.watcher",
      ["tide.zlib.Stream"] = functions_of(debug.getregistry()["tide.zlib.stream"].methods),
      ["tide.ssl.Context"] = registry "tide.ssl.context",
      ["tide.ssl.Session"] = registry "tide.ssl.session",
      ["tide.http.Headers"] = methods_of(m["tide.http.headers"].new()),
      ["tide.http.Request"] = functions_of(m["tide.http.server"].Request),
      ["tide.http.Response"] = functions_of(m["tide.http.server"].Response),
      ["tide.http.Server"] = functions_of(m["tide.http.server"].Server),
      ["tide.http.ClientResponse"] = functions_of(m["tide.http.client"].Response),
      ["tide.http.Router"] = functions_of(require("tide.http.router").methods),
      ["tide.websocket.Conn"] = functions_of(m["tide.websocket"].Conn),
      ["tide.redis.Client"] = functions_of(m["tide.redis"].Client),
      ["tide.redis.Subscription"] = functions_of(m["tide.redis"].Subscription),
      ["tide.redis.resp.Parser"] = functions_of(m["tide.redis.resp"].Parser),
      ["tide.memory.Network"] = methods_of(net),
      ["tide.memory.Server"] = methods_of(mserver),
      ["tide.memcached.Client"] = functions_of(m["tide.memcached"].methods),
    }
    mserver:close():await()
  end)
  -- The custom stream's source answers push, finish and flush by name only.
  local s, src = tide.stream({ write = function() end })
  objects["tide.StreamSource"] = { push = src.push ~= nil, finish = src.finish ~= nil,
    flush = src.flush ~= nil }
  s:close()
  return modules, objects
end

-- Classes with methods that have no runtime counterpart here, and why.
local UNCHECKED = {
  ["tide.tls.Stream"] = "a tide.stream whose impl adds peer_certificate (spec/tls covers it)",
  ["tide.tls.Server"] = "needs a certificate to make (spec/tls covers accept and close)",
}

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

describe("type annotations (lua/tide/meta)", function()
  local classes = parse(FILES)
  local modules, objects = runtime()

  it("are valid Lua, and no runtime code requires them", function()
    for _, f in ipairs(FILES) do assert(loadfile(META .. f .. ".lua")) end
    local p = assert(io.popen("grep -rln 'tide%.meta\\|tide\\.meta' lua/ bindings/ --include='*.lua' --include='*.c' | grep -v '^lua/tide/meta/'"))
    local found = p:read("a")
    p:close()
    assert.equal("", found)
  end)

  it("annotate every name each module exports", function()
    local missing = {}
    for name, mod in pairs(modules) do
      local c = classes[name]
      if not c then
        missing[#missing + 1] = name .. " (no ---@class)"
      else
        for k in pairs(keys_of(mod)) do
          if not (c.functions[k] or c.fields[k]) then missing[#missing + 1] = name .. "." .. k end
        end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("annotate every method of the objects", function()
    local missing = {}
    for name, set in pairs(objects) do
      local c = classes[name]
      if not c then
        missing[#missing + 1] = name .. " (no ---@class)"
      else
        for k in pairs(set) do
          if c.functions[k] ~= "method" then missing[#missing + 1] = name .. ":" .. k end
        end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("name nothing that does not exist", function()
    local extra = {}
    for _, name in ipairs(sorted(classes)) do
      local c, mod, set = classes[name], modules[name], objects[name]
      if mod then
        for k in pairs(c.functions) do
          if type(mod[k]) ~= "function" then extra[#extra + 1] = name .. "." .. k end
        end
        for k in pairs(c.fields) do
          if mod[k] == nil then extra[#extra + 1] = name .. "." .. k end
        end
      elseif set then
        for k in pairs(c.functions) do
          if not set[k] then extra[#extra + 1] = name .. ":" .. k end
        end
      elseif next(c.functions) and not UNCHECKED[name] then
        extra[#extra + 1] = name .. " (a class with functions but no runtime counterpart in this spec)"
      end
    end
    assert.same({}, extra)
  end)
end)
