-- examples/http_files.lua — a static file server: GET and HEAD of the files
-- under DIR, with Content-Type from the extension, Content-Length,
-- Last-Modified, index.html for directories, and 404 for anything missing
-- or outside DIR ("..", encoded or not, and symbolic links that lead out
-- of DIR are refused the same way). Files are streamed in pieces, so a
-- large file never sits in memory.
--
-- Usage: tide examples/http_files.lua [PORT [DIR]]   (PORT 0: any free port; DIR: .)
local tide = require "tide"
local http = require "tide.http"
local fs = tide.fs

local port, dir = tonumber(arg[1]) or 0, arg[2] or "."
local root = fs.realpath(dir):await()
-- What every path under root starts with ("/" itself when root is "/"),
-- and what a request path is appended to.
local prefix = root == "/" and "/" or root .. "/"
local base = root == "/" and "" or root

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  css = "text/css", js = "text/javascript", json = "application/json",
  lua = "text/plain; charset=utf-8", c = "text/plain; charset=utf-8", h = "text/plain; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png", jpg = "image/jpeg",
  jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp", ico = "image/x-icon",
  pdf = "application/pdf", wasm = "application/wasm", zip = "application/zip",
  gz = "application/gzip", mp4 = "video/mp4", mp3 = "audio/mpeg", woff2 = "font/woff2",
}

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local function http_date(t)
  local d = os.date("!*t", math.floor(t))
  return ("%s, %02d %s %d %02d:%02d:%02d GMT"):format(DAYS[d.wday], d.day, MONTHS[d.month],
    d.year, d.hour, d.min, d.sec)
end

local function answer(res, status, text)
  res.status = status
  res:set_header("Content-Type", "text/plain; charset=utf-8")
  res:finish(text .. "\n")
end

-- Maps a request path to a file under root, or nil. The path is decoded
-- first, so "%2e%2e" is a "..", and then any "." or ".." segment, NUL or
-- backslash is refused outright; the real path (symbolic links followed)
-- must still be under root.
local function resolve(path)
  local decoded = http.h1.decode_uri_component(path)
  if not decoded or decoded:find("[%z\\]") then return nil end
  for segment in decoded:gmatch("[^/]+") do
    if segment == "." or segment == ".." then return nil end
  end
  local ok, real = pcall(tide.await, fs.realpath(base .. decoded))
  if not ok then return nil end
  if real ~= root and real:sub(1, #prefix) ~= prefix then return nil end
  return real
end

-- The stat table of `path`, or nil when it cannot be read.
local function stat(path)
  local ok, st = pcall(tide.await, fs.stat(path))
  return ok and st or nil
end

local function serve_file(req, res, path, st)
  res:set_header("Content-Type", TYPES[(path:match("%.([%w]+)$") or ""):lower()] or "application/octet-stream")
  res:set_header("Content-Length", st.size)
  res:set_header("Last-Modified", http_date(st.mtime))
  if req.method == "HEAD" or st.size == 0 then return res:finish() end
  local f <close> = fs.open(path):await()
  while true do
    local data = f:read(65536):await()
    if not data then break end
    res:write(data)
  end
  res:finish()
end

local server = http.serve({ port = port }, function(req, res)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    res:set_header("Allow", "GET, HEAD")
    return answer(res, 405, "method not allowed")
  end
  local path = resolve(req.path)
  local st = path and stat(path)
  if st and st.type == "dir" then
    path = resolve(req.path:gsub("/*$", "") .. "/index.html")
    st = path and stat(path)
  end
  if not (st and st.type == "file") then return answer(res, 404, "not found") end
  serve_file(req, res, path, st)
end)

io.stdout:write("serving ", root, "\nlistening on 127.0.0.1:", server.port, "\n")
io.stdout:flush()
