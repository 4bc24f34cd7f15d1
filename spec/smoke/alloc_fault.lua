-- spec/smoke/alloc_fault.lua — tide's core paths in one short script, for
-- spec/smoke/alloc_fault.sh to run with each of its allocations failing in
-- turn (TIDE_ALLOC_FAIL). It prints "alloc_fault: done" when every part
-- did what it should; any failure must end it with an error.
-- Usage: tide spec/smoke/alloc_fault.lua [CERTS]
--   CERTS  a folder with ca.pem, localhost.pem and localhost.key (from
--          spec/tls/certs.sh): adds a TLS handshake over a memory pair
local tide = require "tide"
local certs = arg[1]

-- Awaits `p`, which must fail with an error that `is(err)` accepts;
-- another error (not enough memory) goes on up as it is.
local function expect_error(p, is, what)
  local ok, err = pcall(tide.await, p)
  if ok then error(what .. " expected, got a success", 2) end
  if not is(err) then error(err, 0) end
end
-- Raises unless `got` is `want`, saying what was got.
local function same(got, want, what)
  if got ~= want then error(("%s: %s expected, got %s"):format(what, tostring(want), tostring(got)), 2) end
end
local function is_eio(e) return tide.is_error(e, "EIO") end
local function is_timeout(e) return tide.is_error(e, "ETIMEDOUT") end

-- Promises, chaining, combinators, events.
local p = tide.promise()
local chained = p:next(function(v) return v + 1 end)
p:on("progress", function() end)
p:emit("progress", 1)
p:resolve(41)
same(chained:await(), 42, "next")
assert(select("#", tide.all{ tide.resolved(1), tide.resolved(2) }:await()) > 0)
local slow = tide.sleep(1)
same(tide.race{ slow, tide.resolved("fast") }:await(), "fast", "race")
slow:cancel()
expect_error(tide.rejected(tide.error("EIO", "test")), is_eio, "EIO")

-- Tasks, cancellation, groups, queues.
local blocked = tide.spawn(function() tide.sleep(10):await() end)
blocked:cancel()
expect_error(blocked, tide.is_cancelled, "a cancellation")
local g = tide.group()
local q = tide.queue{ max = 1 }
g:spawn(function() for i = 1, 3 do q:put(i):await() end end)
g:spawn(function() for _ = 1, 3 do q:get():await() end end)
g:wait():await()

-- Timers: a sleep, an interval, a timeout that fires.
tide.sleep(0.001):await()
local ticks = 0
local iv = tide.interval(0.001, function() ticks = ticks + 1 end)
tide.sleep(0.005):await()
iv:cancel()
expect_error(tide.timeout(tide.sleep(1), 0.001), is_timeout, "ETIMEDOUT")

-- A TCP echo over 127.0.0.1.
local server <close> = tide.tcp.serve({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local data = conn:read():await()
    if data == nil then break end
    conn:write(data):await()
  end
end)
local conn <close> = tide.tcp.connect("127.0.0.1", server.port):await()
conn:write("ping\n"):await()
same(conn:read_line():await(), "ping", "echo")
conn:shutdown():await()
same(conn:read():await(), nil, "the end of the echo")

-- A process with pipes.
local proc = tide.process.spawn{ "cat", stdin = "pipe", stdout = "pipe" }
proc.stdin:write("through cat"):await()
proc.stdin:close()
same(proc.stdout:read_all():await(), "through cat", "cat")
same(proc:wait():await(), 0, "the status of cat")

-- The pool: work in a worker's own state.
same(tide.work(function(a, b) return a .. b end, "wo", "rk"):await(), "work", "work")

-- HTTP: one request to tide's own server.
local http = require "tide.http"
local web <close> = http.serve({ host = "127.0.0.1", port = 0 }, function(_, res)
  res:finish("hello")
end)
local res = http.get("http://127.0.0.1:" .. web.port .. "/"):await()
same(res.status, 200, "HTTP status")
same(res.body, "hello", "HTTP body")

-- TLS: a handshake and one line over an in-memory pair.
if certs then
  local memory = require "tide.memory"
  local tls = require "tide.tls"
  local a, b = memory.pair()
  -- both ends at once: a failure of either one ends the wait
  local client, srv = tide.all{
    tls.wrap(a, { servername = "localhost", ca = certs .. "/ca.pem" }),
    tls.wrap(b, { server = true, cert = certs .. "/localhost.pem", key = certs .. "/localhost.key" }),
  }:await()
  local c <close> = client
  local s <close> = srv
  c:write("secret\n"):await()
  same(s:read_line():await(), "secret", "TLS")
end

print("alloc_fault: done")
