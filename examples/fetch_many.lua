-- examples/fetch_many.lua — fetches many URLs concurrently, at most LIMIT at
-- a time: a task per URL, and a semaphore of LIMIT permits that each task
-- holds while it fetches (released by its <close> variable, even when the
-- fetch fails).
-- Prints one line per URL as it completes, then a summary. Without URLs it
-- starts a small local server and fetches 40 of its pages, as a demo.
--
-- Usage: tide examples/fetch_many.lua [-c LIMIT] [URL ...]    (LIMIT: 8)
local tide = require "tide"
local http = require "tide.http"

local limit, urls = 8, {}
local i = 1
while i <= #arg do
  if arg[i] == "-c" then
    limit = tonumber(arg[i + 1]) or error("-c takes a number")
    i = i + 2
  else
    urls[#urls + 1] = arg[i]
    i = i + 1
  end
end

local server
if #urls == 0 then
  -- The demo: pages that take a little while, so the limit shows.
  server = http.serve({ port = 0 }, function(req, res)
    tide.sleep(0.02 + math.random() * 0.03):await()
    res:set_header("Content-Type", "text/plain")
    res:finish(("page %s\n"):format(req.path):rep(100))
  end)
  for n = 1, 40 do urls[n] = ("http://127.0.0.1:%d/page/%d"):format(server.port, n) end
end

local done, failed, bytes, running, most = 0, 0, 0, 0, 0
local slots = tide.semaphore(limit)

local function fetch(url)
  local permit <close> = slots:acquire():await()  -- luacheck: ignore 211 (held until return)
  running = running + 1
  if running > most then most = running end
  local t0 = tide.now()
  local ok, res = pcall(tide.await, http.get(url, { timeout = 10 }))
  running = running - 1
  local ms = (tide.now() - t0) * 1000
  if ok then
    done = done + 1
    bytes = bytes + #res.body
    print(("%3d %6d B %6.1f ms  %s"):format(res.status, #res.body, ms, url))
  else
    failed = failed + 1
    print(("ERR %s  %s"):format(tostring(res), url))
  end
end

local t0 = tide.now()
local tasks = {}
for n, url in ipairs(urls) do tasks[n] = tide.spawn(fetch, url) end
tide.all(tasks):await()
print(("%d fetched, %d failed, %d bytes in %.2f s, at most %d at once"):format(
  done, failed, bytes, tide.now() - t0, most))
if server then server:close():await() end
if failed > 0 then os.exit(1) end
