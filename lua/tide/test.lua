-- tide.test — runs a test body (a busted `it`, or any function) as a task
-- under tide.run, with a deadline, optionally on a virtual clock and with
-- in-memory stream pairs, and fails it when it leaves tasks, open handles
-- or unhandled rejections behind. See docs/testing.md.
--
--   local test = require "tide.test"
--   it("times out", test({ clock = "virtual" }, function(t)
--     local a, b = t.pair()
--     ...
--   end))
--
-- Ownership: a run owns what it made for the body: the clock (the runtime
-- goes back to the real clock at the end), the pairs and the servers of
-- t.net (closed at the end)
-- and the table of the tasks spawned meanwhile (tide.track_tasks). Tasks
-- still running at the end are cancelled and waited for, so nothing of one
-- run goes on into the next.
local tide = require "tide"
local memory = require "tide.memory"

-- Seconds the cancelled leftovers of a run get to finish.
local CLEANUP_TIMEOUT = 5

local function default_timeout()
  return tonumber(rawget(_G, "TEST_TIMEOUT")) or tonumber(os.getenv("TEST_TIMEOUT")) or 10
end

-- The handles by type that `after` has more of than `before`, as text.
local function more_handles(before, after)
  local extra = {}
  for kind, n in pairs(after.handles) do
    local was = before.handles[kind] or 0
    if n > was then extra[#extra + 1] = string.format("%d %s", n - was, kind) end
  end
  table.sort(extra)
  return extra
end

--[[ test.run([opts,] fn, ...) -> fn's results: runs fn(t, ...) as a task.
  opts.timeout   seconds of real time the body may take (default
                 TEST_TIMEOUT or 10), whatever the runtime's clock
  opts.clock     "virtual": virtual time that jumps when every task waits on
                 time (autojump); "manual": virtual time that moves only by
                 t.clock:advance(seconds); nil: the real clock
  opts.autojump  with clock = "virtual": seconds of real idleness before a
                 jump (default 0)
  opts.leaks     false: do not check what the body leaves behind
The body gets `t`: t.clock (the clock object on virtual time), t.pair(opts)
(tide.memory.pair, closed at the end of the run), t.net (a
tide.memory.network, whose servers are closed at the end of the run). It fails (raises) with
the body's error, or when it timed out, or left tasks running, handles
open or rejections unhandled. ]]
local function run(opts, fn, ...)
  if type(opts) == "function" then return run({}, opts, fn, ...) end
  assert(type(opts) == "table", "opts must be a table")
  assert(type(fn) == "function", "missing the test body")
  assert(opts.clock == nil or opts.clock == "virtual" or opts.clock == "manual",
    "clock must be \"virtual\" or \"manual\"")
  local timeout = opts.timeout or default_timeout()
  local before = tide.stats()
  local tracked = setmetatable({}, { __mode = "k" })
  local t = { streams = {}, net = memory.network() }
  function t.pair(popts)
    local a, b = memory.pair(popts)
    t.streams[#t.streams + 1] = a
    t.streams[#t.streams + 1] = b
    return a, b
  end
  if opts.clock then
    local autojump = false
    if opts.clock == "virtual" then
      autojump = opts.autojump == nil or opts.autojump  -- false: by hand only
    end
    t.clock = tide.virtual_clock{ autojump = autojump }
  end
  -- The watch wakes every `period` seconds of real time; long enough not
  -- to stand in the way of a slow autojump.
  local period = math.max(0.05, 2 * (tonumber(opts.autojump) or 0))
  tide.track_tasks(tracked)
  local body = table.pack(pcall(tide.run, function(...)
    local task = tide.spawn(fn, t, ...)
    local start, quiet = tide.hrtime(), 0
    while task:state() == "pending" do
      local wake = tide.sleep(period, { real = true })
      pcall(tide.await, tide.race{ task, wake })
      wake:cancel()
      if task:state() ~= "pending" then break end
      if (tide.hrtime() - start) / 1e9 >= timeout then
        task:cancel()
        error(tide.error("ETIMEDOUT", string.format("the test took more than %g s", timeout)), 0)
      end
      -- Stuck: nothing (the watch's own timer has fired) can wake a task:
      -- no timer, socket, process or job. Twice in a row, so that a clock
      -- settling is not taken for it.
      quiet = tide.stats().alive == 0 and quiet + 1 or 0
      if quiet >= 2 then
        task:cancel()
        error(tide.error("EDEADLK", "the test is stuck: its tasks wait for each other, "
          .. "and no timer, socket, process or job can wake one"), 0)
      end
    end
    return task:await()
  end, ...))
  tide.track_tasks(nil)

  -- Clean up, and find what was left behind.
  local left = {}
  local cleanup_ok, cleanup_err = pcall(tide.run, function()
    local servers = {}
    for _, server in pairs(t.net.servers) do servers[#servers + 1] = server:close() end
    tide.timeout(tide.all(servers), CLEANUP_TIMEOUT, { shield = true }):catch(function() end):await()
    for _, s in ipairs(t.streams) do
      if not s.closed then s:close(0) end
    end
    tide.resolved():next(function() end):await()  -- a turn: closes settle
    local pending = {}
    for task in pairs(tracked) do
      if task:state() == "pending" then pending[#pending + 1] = task end
    end
    for _, task in ipairs(pending) do
      left[#left + 1] = tostring(task)
      task:cancel()
    end
    if #pending > 0 then
      tide.timeout(tide.settled(pending), CLEANUP_TIMEOUT, { shield = true }):catch(function() end):await()
    end
    tide.sleep(0):await()  -- a turn of the loop: handles closing are closed
  end)
  if t.clock then t.clock:close() end
  if not body[1] then error(body[2], 0) end
  if not cleanup_ok then error("tide.test: cleaning up failed: " .. tostring(cleanup_err), 0) end
  if opts.leaks ~= false then
    local problems = {}
    if #left > 0 then
      problems[#problems + 1] = string.format("%d task(s) still running at the end (cancelled): %s",
        #left, table.concat(left, ", "))
    end
    local after = tide.stats()
    local extra = more_handles(before, after)
    if #extra > 0 then
      problems[#problems + 1] = "handles left open: " .. table.concat(extra, ", ")
    end
    if after.unhandled > before.unhandled then
      problems[#problems + 1] = string.format("%d unhandled rejection(s) (printed above)",
        after.unhandled - before.unhandled)
    end
    if #problems > 0 then error("tide.test: the test left things behind:\n  " .. table.concat(problems, "\n  "), 0) end
  end
  return table.unpack(body, 2, body.n)
end

-- test([opts,] fn) -> a function for busted's `it` that runs fn (test.run).
local function wrap(opts, fn)
  if type(opts) == "function" then opts, fn = {}, opts end
  assert(type(fn) == "function", "missing the test body")
  return function(...) return run(opts, fn, ...) end
end

return setmetatable({ run = run, wrap = wrap }, {
  __call = function(_, opts, fn) return wrap(opts, fn) end,
})
