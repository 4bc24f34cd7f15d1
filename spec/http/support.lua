-- spec/http/support.lua — what the HTTP specs share: parsing the bytes a
-- server wrote into responses, talking raw bytes to a port, and running
-- peers (curl, node, python3, wrk) as child processes, each bounded in
-- time. Every helper runs inside a task.
local tide = require "tide"
local h1 = require "tide.http.h1"

local M = {}

-- Peers run without the sanitizer runtime the specs may be preloaded with
-- (spec/run.sh under make check): it is not theirs.
local CHILD_ENV = { LD_PRELOAD = false, ASAN_OPTIONS = false, LSAN_OPTIONS = false }

-- Parses every response in `out`. Returns a list of {status=, headers=,
-- body=, head=}; the bytes after the last complete response are in
-- list.rest. `methods` (optional) lists the request method of each
-- response (HEAD answers have no body).
function M.responses(out, methods)
  local list, pos = {}, 1
  while pos <= #out do
    local e = out:find("\r\n\r\n", pos, true)
    if not e then break end
    local block = out:sub(pos, e - 1)
    local head = assert(h1.parse_response_head(block, nil, methods and methods[#list + 1]))
    pos = e + 4
    local body
    if head.body_kind == "length" then
      body = out:sub(pos, pos + head.content_length - 1)
      pos = pos + head.content_length
    elseif head.body_kind == "chunked" then
      local parts = {}
      while true do
        local le = assert(out:find("\r\n", pos, true), "truncated chunk")
        local size = tonumber(out:sub(pos, le - 1):match("^%x+"), 16)
        pos = le + 2
        if size == 0 then
          pos = assert(out:find("\r\n", pos, true)) + 2
          break
        end
        parts[#parts + 1] = out:sub(pos, pos + size - 1)
        pos = pos + size + 2
      end
      body = table.concat(parts)
    elseif head.body_kind == "close" then
      body = out:sub(pos)
      pos = #out + 1
    else
      body = ""
    end
    list[#list + 1] = { status = head.status, headers = head.headers, body = body, head = block }
  end
  list.rest = out:sub(pos)
  return list
end

-- Connects to 127.0.0.1:port, writes `bytes` (a string or a list of
-- strings written one after the other), half-closes unless keep_open, and
-- returns everything read until the server closes (at most `timeout`
-- seconds, default 5).
function M.raw(port, bytes, opts)
  opts = opts or {}
  local conn <close> = tide.tcp.connect("127.0.0.1", port, { timeout = 5 }):await()
  if type(bytes) == "string" then bytes = { bytes } end
  for _, b in ipairs(bytes) do conn:write(b):await() end
  if not opts.keep_open then conn:shutdown():await() end
  local parts, deadline = {}, tide.now() + (opts.timeout or 5)
  while true do
    local left = deadline - tide.now()
    if left <= 0 then break end
    local ok, data = pcall(function() return conn:read(left):await() end)
    if not ok then
      if tide.is_error(data, "ETIMEDOUT") or tide.is_error(data, "ECONNRESET") then break end
      error(data, 0)
    end
    if not data then break end
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- Runs a command (a list: program and arguments) with a time limit;
-- returns stdout, stderr, status.
function M.run(cmd, opts)
  opts = opts or {}
  local r = tide.timeout(tide.process.exec {
    cmd[1], args = { table.unpack(cmd, 2) }, input = opts.input, env = CHILD_ENV,
  }, opts.timeout or 8):await()
  return r.stdout, r.stderr, r.status
end

-- Writes `src` to a temporary file with suffix `ext`; returns its path.
function M.tmpfile(src, ext)
  local path = os.tmpname() .. (ext or "")
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

-- Runs a Node.js script (source text) with arguments; returns stdout,
-- stderr, status.
function M.node(src, ...)
  local path = M.tmpfile(src, ".js")
  local out, err, status = M.run({ "node", path, ... })
  os.remove(path)
  return out, err, status
end

-- Starts a peer server (a list: program and arguments, then an optional
-- table of environment variables) that prints lines "NAME PORT" on stdout,
-- the last one "port N"; returns the process and a table NAME -> port.
function M.start_peer(cmd, env)
  local e = {}
  for k, v in pairs(CHILD_ENV) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  local p = tide.process.spawn { cmd[1], args = { table.unpack(cmd, 2) }, stdout = "pipe", env = e }
  local ports = {}
  repeat
    local line = tide.timeout(p.stdout:read_line(), 5):await()
    assert(line, "the peer ended before reporting its port")
    local name, port = line:match("^(%w+)%s+(%d+)%s*$")
    assert(name, "unexpected line from the peer: " .. line)
    ports[name] = tonumber(port)
  until name == "port"
  return p, ports
end

-- Stops a peer started by start_peer.
function M.stop_peer(p)
  if not p.exited then p:kill() end
  pcall(function() tide.timeout(p:wait(), 3):await() end)
  p.stdout:close()
end

return M
