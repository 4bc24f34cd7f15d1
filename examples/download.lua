-- examples/download.lua — downloads URL into FILE, streaming: the body goes
-- to the file piece by piece (never whole in memory) while a progress bar,
-- drawn from the response's "progress" events, shows on stderr. Redirects
-- are followed; a status other than 2xx is an error.
--
-- Usage: tide examples/download.lua URL FILE
local tide = require "tide"
local http = require "tide.http"

local url, file = arg[1], arg[2]
if not url or not file then
  io.stderr:write("usage: tide examples/download.lua URL FILE\n")
  os.exit(2)
end

local function size(n)
  if n >= 1048576 then return ("%.1f MiB"):format(n / 1048576) end
  if n >= 1024 then return ("%.1f KiB"):format(n / 1024) end
  return math.floor(n) .. " B"
end

-- Draws the bar on one terminal line, at most every 50 ms and always for
-- the end.
local WIDTH, last_draw = 30, -1
local function draw(got, total, final)
  local t = tide.now()
  if not final and t - last_draw < 0.05 then return end
  last_draw = t
  local line
  if total and total > 0 then
    local filled = math.floor(WIDTH * got / total)
    line = ("[%s%s] %3d%%  %s / %s"):format(("#"):rep(filled), (" "):rep(WIDTH - filled),
      math.floor(100 * got / total), size(got), size(total))
  else
    line = ("[%s] %s"):format(("?"):rep(WIDTH), size(got))
  end
  io.stderr:write("\r", line, final and "\n" or "")
end

local t0 = tide.now()
local res = http.get(url, { stream = true }):await()
if res.status < 200 or res.status > 299 then
  io.stderr:write(("download: %s: %d %s\n"):format(url, res.status, res.reason))
  res:close()
  os.exit(1)
end

res.done:on("progress", draw)
local out <close> = tide.fs.open(file, "w"):await()
for piece in res:chunks() do
  out:write(piece):await()
end
local total = res.done:await()
draw(total, total, true)
local dt = math.max(tide.now() - t0, 0.001)
io.stderr:write(("saved %s to %s in %.2f s (%s/s)\n"):format(size(total), file, dt, size(total / dt)))
