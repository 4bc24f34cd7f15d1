-- tide.http.server_common: what the parts of the HTTP/1.1 server share.
--
-- Owns the small steps the server, the connection loop, the request and
-- the response all take: token lists, request errors (the client's fault,
-- answered with their status), the write of a connection (waiting only
-- under backpressure), the report of server problems.

local tide = require "tide"

local find, byte =
  string.find, string.byte
local error, pcall =
  error, pcall

local tide_error, timeout =
  tide.error, tide.timeout
local await, pstate = tide.await, tide.resolved().state

--------------------------------------------------------------------------
-- Small helpers.

-- Whether the comma-separated list `v` (lowercase) holds the token `tok`.
local function has_token(v, tok)
  local i = 1
  while true do
    local s, e = find(v, tok, i, true)
    if not s then return false end
    local before, after = byte(v, s - 1), byte(v, e + 1)
    if (not before or before == 44 or before == 32 or before == 9)
      and (not after or after == 44 or after == 32 or after == 9) then
      return true
    end
    i = e + 1
  end
end

-- An error of the request (the client's fault): answered with `status`,
-- never logged as a server error.
local function request_error(status, code, message)
  return tide_error(code, message, { status = status })
end

-- Writes `data` to connection `c`; waits (bounded by send_timeout) only
-- when the stream applies backpressure.
local function send(c, data)
  local p = c.write(c.sock, data)
  if pstate(p) == "fulfilled" then return end
  if pstate(p) == "pending" then p = timeout(p, c.o.send_timeout) end
  local ok, err = pcall(await, p)
  if not ok then
    c.broken, c.dead = true, true
    error(err, 0)
  end
end

-- Reports a server problem: through the server's log option, or on
-- stderr.
local function report(o, msg)
  if o.log then o.log(msg) else io.stderr:write(msg, "\n") end
end

return {
  has_token = has_token, request_error = request_error, send = send, report = report,
}
