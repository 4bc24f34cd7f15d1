-- tide.http.server_response: the response object of the HTTP/1.1 server.
--
-- Owns what a handler writes: status, header fields (checked as they are
-- set: no header injection), the head with Content-Length or chunked
-- framing (close-delimited for HTTP/1.0), HEAD and bodiless statuses,
-- JSON bodies, and the server's error answers in the format of the
-- error_body option. One write of head and body together on the hot path.

local tide = require "tide"
local h1 = require "tide.http.h1"
local headers = require "tide.http.headers"

local find, byte, lower, format, match, gmatch =
  string.find, string.byte, string.lower, string.format, string.match, string.gmatch
local concat = table.concat
local type, tostring, tonumber, error, pcall =
  type, tostring, tonumber, error, pcall
local mtype = math.type
local ostime, osdate = os.time, os.date

local timeout =
  tide.timeout
local await, pstate = tide.await, tide.resolved().state
local reasons = h1.reasons

local json = require "tide.http.json"

local common = require "tide.http.server_common"
local check_name, check_value = headers.check_name, headers.check_value
local field_list = headers.fields
local set_field, add_field, get_field, remove_fields, clear_fields, field_lines =
  field_list.set, field_list.add, field_list.get, field_list.remove, field_list.clear,
  field_list.lines
local has_token, send, report =
  common.has_token, common.send, common.report

local M = {}

-- The Date header line, recomputed once per second. Built by hand so that
-- it never depends on the C locale.
local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local date_time, date_line = -1, ""
local function current_date_line()
  local t = ostime()
  if t ~= date_time then
    local d = osdate("!*t", t)
    date_time = t
    date_line = format("Date: %s, %02d %s %d %02d:%02d:%02d GMT\r\n",
      DAYS[d.wday], d.day, MONTHS[d.month], d.year, d.hour, d.min, d.sec)
  end
  return date_line
end

-- "HTTP/1.1 200 OK\r\n" for every status a response may have (nil for
-- anything else).
local status_lines = {}
for status = 200, 599 do
  status_lines[status] = "HTTP/1.1 " .. status .. " " .. (reasons[status] or "") .. "\r\n"
end

-- Lowercased names of response header names already checked as tokens
-- (the checks themselves are tide.http.headers').
local checked_names, checked_n = {}, 0
local function check_header_name(name, level)
  local lname = checked_names[name]
  if lname then return lname end
  check_name(name, level + 1)
  lname = lower(name)
  if checked_n >= 512 then checked_names, checked_n = {}, 0 end
  checked_names[name], checked_n = lname, checked_n + 1
  return lname
end

local function check_header_value(name, value, level)
  return check_value(name, value, level + 1)
end

--------------------------------------------------------------------------
-- Response.

local Response = {}
local response_mt = {
  __name = "tide.http.response",
  __index = Response,
  __tostring = function(res)
    return "tide.http.response: " .. tostring(res.status)
  end,
}

-- Response states.
local FRESH, STREAMING, FINISHED = 0, 1, 2

-- Layout (private): the fields the handler set live in the response's own
-- array part, a field list of tide.http.headers (its `fields` functions
-- own the layout; `n` counts them). Fields the server owns are noted when
-- set: `_length` (Content-Length), `_date` (Date), `_conn_close`
-- (Connection holding "close"), `_te` (Transfer-Encoding). Streaming:
-- `_chunked` (chunked coding), `_sent` (body bytes sent).

-- Values of response fields already checked (no CR, LF or NUL).
local checked_values, checked_values_n = {}, 0

-- Checks a field for a response; returns the lowercased name and the
-- value as a string.
local function check_field(name, value, level)
  local lname = checked_names[name] or check_header_name(name, level + 1)
  if checked_values[value] then return lname, value end
  value = check_header_value(name, value, level + 1)
  if #value <= 64 then
    if checked_values_n >= 512 then checked_values, checked_values_n = {}, 0 end
    checked_values[value], checked_values_n = true, checked_values_n + 1
  end
  return lname, value
end

-- Notes a field the server owns.
local OWNED = { ["content-length"] = true, ["transfer-encoding"] = true,
  ["connection"] = true, ["date"] = true }
local function note_owned(res, lname, value)
  if lname == "content-length" then
    if not find(value, "^%d+$") or #value > 15 then
      error("invalid Content-Length " .. format("%q", value), 4)
    end
    res._length = tonumber(value)
  elseif lname == "date" then
    res._date = true
  elseif lname == "connection" then
    res._conn_close = has_token(lower(value), "close")
  else
    res._te = true
  end
end

--- res:set_header(name, value): sets a header of the response, replacing
-- any field of that name. Raises on an invalid name or a value holding CR,
-- LF or NUL, and once the head was sent. Returns res.
function Response:set_header(name, value)
  local lname
  lname, value = check_field(name, value, 2)
  if self._state ~= FRESH then error("res:set_header: the head was already sent", 2) end
  if OWNED[lname] then note_owned(self, lname, value) end
  set_field(self, name, lname, value)
  return self
end

--- res:add_header(name, value): adds a field even if the name is present
-- (Set-Cookie). Returns res.
function Response:add_header(name, value)
  local lname
  lname, value = check_field(name, value, 2)
  if self._state ~= FRESH then error("res:add_header: the head was already sent", 2) end
  if OWNED[lname] and lname ~= "connection" then
    return self:set_header(name, value)  -- never two framings or dates
  end
  if lname == "connection" then note_owned(self, lname, value) end
  add_field(self, name, lname, value)
  return self
end

--- res:get_header(name) -> the first value of a field set so far, or nil.
function Response:get_header(name)
  return get_field(self, lower(name))
end

--- res:remove_header(name): removes the fields of that name set so far.
function Response:remove_header(name)
  if self._state ~= FRESH then error("res:remove_header: the head was already sent", 2) end
  local lname = lower(name)
  if lname == "content-length" then self._length = nil
  elseif lname == "date" then self._date = nil
  elseif lname == "connection" then self._conn_close = nil
  elseif lname == "transfer-encoding" then self._te = nil end
  remove_fields(self, lname)
end

-- Decides whether the connection stays open after this response and
-- returns the Connection field to send ("" for none).
local function connection_line(res, c)
  local close = c.close or c.srv.closing or c.broken or res._conn_close
  if not close and not c.done then
    -- A body nobody read: it can be skipped after the response, unless the
    -- client still waits for 100 Continue (it may never send it) or it is
    -- too large to be worth reading.
    if c.continue then
      close = true
    elseif c.req.body_kind == "length" and c.left > c.o.max_body then
      close = true
    end
  end
  c.close = close
  if close then return "Connection: close\r\n" end
  if c.req.version == "1.0" then return "Connection: keep-alive\r\n" end
  return ""
end

-- Fields the server owns and writes itself: left out of the handler's
-- field lines.
local NOT_SENT = { ["content-length"] = true, ["transfer-encoding"] = true,
  ["connection"] = true }

-- The status line of `res`, checking the status and the reason.
local function status_line(res)
  local status = res.status
  if mtype(status) ~= "integer" or status < 200 or status > 599 then
    error("res.status must be an integer in 200..599, got " .. tostring(status), 3)
  end
  local reason = res.reason
  if reason == nil then return status_lines[status] end
  if type(reason) ~= "string" or find(reason, "[%z\1-\8\10-\31\127]") then
    error("res.reason must be a string without control characters", 3)
  end
  return "HTTP/1.1 " .. status .. " " .. reason .. "\r\n"
end

-- "Content-Length: n\r\n" per length, for the lengths seen recently.
local length_lines, length_lines_n = {}, 0
local function length_line(n)
  local line = length_lines[n]
  if line then return line end
  line = "Content-Length: " .. n .. "\r\n"
  if length_lines_n >= 1024 then length_lines, length_lines_n = {}, 0 end
  length_lines[n], length_lines_n = line, length_lines_n + 1
  return line
end

-- Whether a response with this status has no body at all.
local function bodiless(status)
  return status == 204 or status == 304
end

-- res:finish once the head is out (after res:write).
local function finish_streaming(res, c, body)
  res._state = FINISHED
  if c.req.method == "HEAD" or bodiless(res.status) then return end
  if res._chunked then
    if body ~= "" then
      send(c, h1.chunk(body) .. "0\r\n\r\n")
    else
      send(c, "0\r\n\r\n")
    end
    return
  end
  local length = res._length
  if body ~= "" then
    res._sent = res._sent + #body
    if length and res._sent > length then
      c.broken = true
      error("res:finish: more bytes than the Content-Length", 3)
    end
    send(c, body)
  end
  if length and res._sent < length then
    c.broken = true
    error("res:finish: fewer bytes than the Content-Length", 3)
  end
end

-- Content types worth compressing.
local TEXTUAL = { "^text/", "json", "javascript", "xml", "svg" }

-- Whether the client of `req` accepts gzip (a "gzip" coding not at q=0).
local function accepts_gzip(req)
  local ae = req.headers:get("accept-encoding")
  if ae == nil then return false end
  for coding in gmatch(lower(ae), "[^,]+") do
    local name, params = match(coding, "^%s*([%w%-]+)%s*(.*)$")
    if name == "gzip" or name == "x-gzip" or name == "*" then
      local q = match(params, "q%s*=%s*([%d.]+)")
      return q == nil or tonumber(q) > 0
    end
  end
  return false
end

-- [the compress option of http.serve] `body` gzipped, or nil when the
-- response is not worth compressing or the client does not take it.
local function gzipped(res, c, body, status)
  local opt = c.o.compress
  if not opt or #body < opt.min_size or res._length or bodiless(status) or c.req.method == "HEAD" then
    return nil
  end
  if get_field(res, "content-encoding") then return nil end
  local ctype = get_field(res, "content-type")
  if ctype == nil then return nil end
  ctype = lower(ctype)
  for i = 1, #TEXTUAL do
    if find(ctype, TEXTUAL[i]) then
      if not accepts_gzip(c.req) then return nil end
      local z = tide.zlib.deflate{ format = "gzip", level = opt.level }
      local out = z:write(body, "finish")
      z:close()
      return out
    end
  end
  return nil
end

--- res:finish([body]): sends the response with `body` (a string, "" by
-- default) and ends it; after res:write(), sends `body` as the last piece.
-- The head carries Content-Length (none for 204 and 304) and Date. For
-- HEAD requests the body is not sent. Returns once the bytes were handed
-- to the connection (waiting only under backpressure).
function Response:finish(body)
  if body == nil then
    body = ""
  elseif type(body) ~= "string" then
    error("res:finish: body must be a string, got " .. type(body), 2)
  end
  local c = self._c
  local state = self._state
  if state ~= FRESH then
    if state == FINISHED then error("res:finish: the response is already finished", 2) end
    return finish_streaming(self, c, body)
  end
  local req = c.req
  local status = self.status
  local line = self.reason == nil and status_lines[status] or status_line(self)
  local length = self._length
  if length and length ~= #body and not (req.method == "HEAD" and body == "") then
    error("res:finish: Content-Length " .. length .. " does not match the body (" ..
      #body .. " bytes)", 2)
  end
  if self._te then error("res:finish: Transfer-Encoding is set by the server", 2) end
  if body ~= "" and bodiless(status) then
    error("res:finish: a " .. status .. " response has no body", 2)
  end
  -- Every check is done: from here on the response is sent.
  local fields = field_lines(self, NOT_SENT)
  local packed = c.o.compress and gzipped(self, c, body, status)
  if packed then
    body = packed
    fields = fields .. "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
  end
  local date = self._date and "" or (ostime() == date_time and date_line or current_date_line())
  self._state = FINISHED
  c.started = true
  local conn = ""
  if c.close or not c.done or c.broken or self._conn_close or c.srv.closing
    or req.version ~= "1.1" then
    conn = connection_line(self, c)
  end
  local out
  if status == 204 or status == 304 then
    out = line .. fields .. date .. conn .. "\r\n"
  elseif req.method == "HEAD" then
    out = line .. fields .. date .. length_line(length or #body) .. conn .. "\r\n"
  else
    out = line .. fields .. date .. length_line(#body) .. conn .. "\r\n" .. body
  end
  local p = c.write(c.sock, out)
  if pstate(p) ~= "fulfilled" then
    -- Backpressure or a failure: the slow path.
    if pstate(p) == "pending" then p = timeout(p, c.o.send_timeout) end
    local ok, err = pcall(await, p)
    if not ok then
      c.broken, c.dead = true, true
      error(err, 0)
    end
  end
end

--- res:write(chunk): sends a piece of the body. The first call sends the
-- head: with Content-Length when the handler set one, otherwise with
-- chunked transfer coding (close-delimited for HTTP/1.0 clients). Returns
-- once the bytes were handed to the connection (waiting under
-- backpressure).
function Response:write(data)
  if type(data) ~= "string" then
    error("res:write: data must be a string, got " .. type(data), 2)
  end
  local c = self._c
  local state = self._state
  if state == FINISHED then error("res:write: the response is already finished", 2) end
  local req = c.req
  if state == FRESH then
    local line = status_line(self)
    local status = self.status
    if self._te then error("res:write: Transfer-Encoding is set by the server", 2) end
    local fields = field_lines(self, NOT_SENT)
    local framing = ""
    local length = self._length
    if bodiless(status) then
      if data ~= "" then error("res:write: a " .. status .. " response has no body", 2) end
    elseif length then
      if #data > length and req.method ~= "HEAD" then
        error("res:write: more bytes than the Content-Length", 2)
      end
      self._sent = 0
      framing = length_line(length)
    elseif req.version == "1.1" then
      self._chunked = true
      framing = "Transfer-Encoding: chunked\r\n"
    else
      -- An HTTP/1.0 client: the body ends when the connection closes.
      c.close = true
      self._sent = 0
    end
    self._state = STREAMING
    c.started = true
    local conn = connection_line(self, c)
    local date = self._date and "" or current_date_line()
    local head = line .. fields .. date .. framing .. conn .. "\r\n"
    if req.method == "HEAD" or bodiless(status) or data == "" then
      send(c, head)
      return
    end
    if self._chunked then
      send(c, head .. h1.chunk(data))
      return
    end
    self._sent = #data
    send(c, head .. data)
    return
  end
  if data == "" or req.method == "HEAD" or bodiless(self.status) then return end
  if self._chunked then
    send(c, h1.chunk(data))
    return
  end
  self._sent = self._sent + #data
  if self._length and self._sent > self._length then
    c.broken = true
    error("res:write: more bytes than the Content-Length", 2)
  end
  send(c, data)
end

--- res:started() -> whether the head was sent.
function Response:started()
  return self._state ~= FRESH
end

-- The body and content type of an error answer with `status` and
-- `message` (a string or nil): the server's error_body option, or the
-- reason phrase and the message as plain text. A failing error_body is
-- reported and the plain text is used.
local function error_body(o, status, message)
  local t = type(message)
  if t == "number" then
    message = tostring(message)
  elseif t ~= "string" then
    message = nil  -- a message that is not text is left out
  end
  if o.error_body then
    local ok, body, ctype = pcall(o.error_body, status, message)
    if ok and type(body) == "string" and (ctype == nil or type(ctype) == "string") then
      if not ctype then
        local b = byte(body, 1)
        ctype = (b == 123 or b == 91) and "application/json" or "text/plain; charset=utf-8"
      end
      if not find(ctype, "[%z\r\n]") then return body, ctype end
    end
    report(o, "tide: http error_body failed: " ..
      (ok and "it must return a string and an optional content type" or tostring(body)))
  end
  return (reasons[status] or "Error") .. (message and (": " .. message) or "") .. "\n",
    "text/plain; charset=utf-8"
end

local function error_response(o, status, message)
  local body, ctype = error_body(o, status, message)
  return status_lines[status] .. current_date_line() ..
    "Content-Type: " .. ctype .. "\r\nContent-Length: " .. #body ..
    "\r\nConnection: close\r\n\r\n" .. body
end

--- res:error(status [, message]): answers with the server's error format
-- (the error_body option; plain text by default) and ends the response;
-- the connection stays open. `status` is an integer in 400..599.
function Response:error(status, message)
  if mtype(status) ~= "integer" or status < 400 or status > 599 then
    error("res:error: status must be an integer in 400..599, got " .. tostring(status), 2)
  end
  if self._state ~= FRESH then error("res:error: the head was already sent", 2) end
  local body, ctype = error_body(self._c.o, status, message)
  self.status = status
  self:set_header("Content-Type", ctype)
  return self:finish(body)
end

--- res:json(value [, status]): sends `value` encoded as JSON (lua-cjson)
-- with Content-Type application/json, and ends the response. Raises at
-- once when `value` cannot be encoded (a function, a cycle, ...).
function Response:json(value, status)
  if status ~= nil then
    if mtype(status) ~= "integer" or status < 200 or status > 599 then
      error("res:json: status must be an integer in 200..599, got " .. tostring(status), 2)
    end
  end
  local body = json.encode(value, 2)
  if status then self.status = status end
  self:set_header("Content-Type", "application/json")
  return self:finish(body)
end

-- Empties a response before the server answers in the handler's place.
local function reset_response(res)
  clear_fields(res)
  res.status, res.reason = 200, nil
  res._length, res._date, res._conn_close, res._te = nil, nil, nil, nil
end

--- req:upgrade([fields]) -> stream: answers "101 Switching Protocols" with
-- `fields` (a map, or a list of {name, value}) and hands the connection
-- over for another protocol (WebSocket). Bytes the client sent after the
-- head are still buffered in the stream, to be read first. The server
-- reads no more requests from it and closes it when the handler returns.
-- Raises once the response was started or when a request body is unread.
-- (A method of requests, set by tide.http.server_conn: it changes the
-- response's state, which this module owns.)
local function upgrade(req, fields)
  local c = req._c
  if c.req ~= req then error("req:upgrade: the request is over", 2) end
  local res = c.res
  if res._state ~= FRESH then error("req:upgrade: the response was already started", 2) end
  if not c.done then error("req:upgrade: the request body was not read", 2) end
  local out, n = { "HTTP/1.1 101 Switching Protocols\r\n" }, 1
  fields = fields or {}
  local list = fields[1] ~= nil
  for k, v in (list and ipairs or pairs)(fields) do
    if list then k, v = v[1], v[2] end
    local _, value = check_field(k, v, 2)  -- no header injection
    n = n + 1
    out[n] = k .. ": " .. value .. "\r\n"
  end
  out[n + 1] = "\r\n"
  res._state, c.started, c.close = FINISHED, true, true
  send(c, concat(out))
  return c.sock
end

M.Response, M.response_mt, M.FRESH, M.FINISHED = Response, response_mt, FRESH, FINISHED
M.upgrade = upgrade
M.error_response, M.reset_response = error_response, reset_response
M.current_date_line, M.status_lines = current_date_line, status_lines
return M
