-- tide.websocket.handshake: the parts of the WebSocket opening handshake
-- (RFC 6455 section 4) and of permessage-deflate negotiation (RFC 7692
-- section 7) that need no socket: the accept key (SHA-1 and base64), the
-- checks of a client's request and of a server's answer, and the parsing
-- of Sec-WebSocket-Extensions. Everything here is a pure function, tested
-- without the loop (spec/websocket/handshake_spec.lua).

local byte, sub, find, lower, rep, gmatch, match =
  string.byte, string.sub, string.find, string.lower, string.rep,
  string.gmatch, string.match
local pack, unpack = string.pack, string.unpack
local concat = table.concat
local tonumber, type, ipairs = tonumber, type, ipairs

local M = {}

M.GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

-- SHA-1 (FIPS 180-4). Only the handshake uses it, once per connection.
local function rol(x, n) return ((x << n) | (x >> (32 - n))) & 0xffffffff end

function M.sha1(msg)
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local ml = #msg
  msg = msg .. "\128" .. rep("\0", (55 - ml) % 64) .. pack(">I8", ml * 8)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = unpack(">I4", msg, chunk + 4 * i) end
    for i = 16, 79 do w[i] = rol(w[i - 3] ~ w[i - 8] ~ w[i - 14] ~ w[i - 16], 1) end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then f, k = (b & c) | (~b & d), 0x5A827999
      elseif i < 40 then f, k = b ~ c ~ d, 0x6ED9EBA1
      elseif i < 60 then f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
      else f, k = b ~ c ~ d, 0xCA62C1D6 end
      local t = (rol(a, 5) + (f & 0xffffffff) + e + k + w[i]) & 0xffffffff
      a, b, c, d, e = t, a, rol(b, 30), c, d
    end
    h0, h1, h2, h3, h4 = (h0 + a) & 0xffffffff, (h1 + b) & 0xffffffff,
      (h2 + c) & 0xffffffff, (h3 + d) & 0xffffffff, (h4 + e) & 0xffffffff
  end
  return pack(">I4I4I4I4I4", h0, h1, h2, h3, h4)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(s)
  local out, n = {}, 0
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = (a << 16) | ((b or 0) << 8) | (c or 0)
    local q = {}
    for j = 1, 4 do
      local x = (v >> (6 * (4 - j))) & 63
      q[j] = sub(B64, x + 1, x + 1)
    end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    n = n + 1
    out[n] = concat(q)
  end
  return concat(out)
end

--- accept_key(key) -> the Sec-WebSocket-Accept value for a client's key.
function M.accept_key(key)
  return M.base64(M.sha1(key .. M.GUID))
end

--- new_key() -> a fresh Sec-WebSocket-Key: 16 random bytes in base64.
function M.new_key()
  return M.base64(pack("<I4I4I4I4", math.random(0, 0xffffffff), math.random(0, 0xffffffff),
    math.random(0, 0xffffffff), math.random(0, 0xffffffff)))
end

-- Whether a comma-separated header value holds `token` (case-insensitive).
local function has_token(v, token)
  if not v then return false end
  for t in gmatch(lower(v), "[^,]+") do
    if match(t, "^%s*(.-)%s*$") == token then return true end
  end
  return false
end
M.has_token = has_token

-- The comma-separated items of the fields `name` of `hdrs`, trimmed.
local function list(hdrs, name)
  local out = {}
  for _, v in ipairs(hdrs:get_all(name)) do
    for t in gmatch(v, "[^,]+") do
      t = match(t, "^%s*(.-)%s*$")
      if t ~= "" then out[#out + 1] = t end
    end
  end
  return out
end
M.list = list

--- parse_extensions(value) -> list of {name =, params = {k = v|true}, n = count},
-- or nil, reason for a malformed value (RFC 6455 section 9.1 grammar;
-- quoted parameter values are unquoted).
function M.parse_extensions(value)
  local exts = {}
  local TOKEN = "^[!#$%%&'*+%-.^_`|~0-9A-Za-z]+$"
  for item in gmatch(value, "[^,]+") do
    local parts, k = {}, 0
    for p in gmatch(item, "[^;]+") do
      k = k + 1
      parts[k] = match(p, "^%s*(.-)%s*$")
    end
    if k == 0 or parts[1] == "" then return nil, "empty extension" end
    if not find(parts[1], TOKEN) then return nil, "bad extension name" end
    local e = { name = lower(parts[1]), params = {}, n = 0 }
    for i = 2, k do
      local name, v = match(parts[i], "^([^=]-)%s*=%s*(.*)$")
      if not name then name, v = parts[i], true end
      if type(v) == "string" then
        local q = match(v, '^"(.*)"$')
        if q then v = q end
        if not find(v, TOKEN) then return nil, "bad extension parameter value" end
      end
      if not find(name, TOKEN) then return nil, "bad extension parameter" end
      name = lower(name)
      if e.params[name] ~= nil then return nil, "repeated extension parameter " .. name end
      e.params[name] = v
      e.n = e.n + 1
    end
    exts[#exts + 1] = e
  end
  return exts
end

local function bits(v)
  if type(v) ~= "string" or not find(v, "^[1-9]%d?$") then return nil end
  local n = tonumber(v)
  if n < 8 or n > 15 then return nil end
  return n
end

-- Options for permessage-deflate (`opts.compression`, true or a table):
--   server_no_context_takeover, client_no_context_takeover  booleans
--   server_max_window_bits, client_max_window_bits          8..15
--   level (zlib level, default 6), mem_level, threshold (messages shorter
--   than this many bytes are sent uncompressed, default 0)

--- negotiate_server(offers_value, want) -> response value, agreed or nil.
-- `want` is the server's compression options. The first permessage-deflate
-- offer the server can take wins; malformed or unknown offers are skipped.
-- agreed = {deflate_bits =, inflate_bits =, deflate_reset =, inflate_reset =}.
function M.negotiate_server(value, want)
  if not value or not want then return nil end
  local exts = M.parse_extensions(value)
  if not exts then return nil end
  for _, e in ipairs(exts) do
    if e.name == "permessage-deflate" then
      local p, ok = e.params, true
      for k, v in pairs(p) do
        if k == "server_no_context_takeover" or k == "client_no_context_takeover" then
          if v ~= true then ok = false end
        elseif k == "server_max_window_bits" then
          if not bits(v) or bits(v) == 8 then ok = false end  -- zlib deflates with 9 at least
        elseif k == "client_max_window_bits" then
          if v ~= true and not bits(v) then ok = false end
        else
          ok = false
        end
      end
      if ok then
        local out = { "permessage-deflate" }
        local a = {}
        a.deflate_reset = p.server_no_context_takeover or want.server_no_context_takeover or false
        a.inflate_reset = p.client_no_context_takeover or want.client_no_context_takeover or false
        if a.deflate_reset then out[#out + 1] = "server_no_context_takeover" end
        if a.inflate_reset then out[#out + 1] = "client_no_context_takeover" end
        local sb = bits(p.server_max_window_bits) or 15
        local wsb = want.server_max_window_bits or 15
        if wsb < 9 then wsb = 9 end
        if wsb < sb then sb = wsb end
        if sb < 15 or p.server_max_window_bits then
          out[#out + 1] = "server_max_window_bits=" .. sb
        end
        a.deflate_bits = sb
        local cb = 15
        if p.client_max_window_bits then
          cb = bits(p.client_max_window_bits) or 15
          local wcb = want.client_max_window_bits or 15
          if wcb < cb then cb = wcb end
          if cb < 15 or p.client_max_window_bits ~= true then
            out[#out + 1] = "client_max_window_bits=" .. cb
          end
        end
        a.inflate_bits = cb
        return concat(out, "; "), a
      end
    end
  end
  return nil
end

--- offer_client(want) -> the Sec-WebSocket-Extensions value a client sends.
function M.offer_client(want)
  local out = { "permessage-deflate" }
  if want.server_no_context_takeover then out[#out + 1] = "server_no_context_takeover" end
  if want.client_no_context_takeover then out[#out + 1] = "client_no_context_takeover" end
  if want.server_max_window_bits then
    out[#out + 1] = "server_max_window_bits=" .. want.server_max_window_bits
  end
  out[#out + 1] = "client_max_window_bits" ..
    (want.client_max_window_bits and ("=" .. want.client_max_window_bits) or "")
  return concat(out, "; ")
end

--- accept_client(value, want) -> agreed, or nil, reason: checks the
-- server's Sec-WebSocket-Extensions answer against what was offered.
function M.accept_client(value, want)
  local exts, err = M.parse_extensions(value)
  if not exts then return nil, err end
  if #exts ~= 1 or exts[1].name ~= "permessage-deflate" or not want then
    return nil, "the server accepted an extension that was not offered: " .. value
  end
  local p = exts[1].params
  local a = { deflate_bits = 15, inflate_bits = 15,
    deflate_reset = want.client_no_context_takeover or false,
    inflate_reset = want.server_no_context_takeover or false }
  for k, v in pairs(p) do
    if k == "server_no_context_takeover" and v == true then
      a.inflate_reset = true
    elseif k == "client_no_context_takeover" and v == true then
      a.deflate_reset = true
    elseif k == "server_max_window_bits" and bits(v) then
      if want.server_max_window_bits and bits(v) > want.server_max_window_bits then
        return nil, "server_max_window_bits larger than offered"
      end
      a.inflate_bits = bits(v)
    elseif k == "client_max_window_bits" and bits(v) then
      a.deflate_bits = bits(v)
    else
      return nil, "bad permessage-deflate parameter in the answer: " .. k
    end
  end
  if want.server_no_context_takeover and not a.inflate_reset then
    return nil, "server_no_context_takeover was asked for and not agreed"
  end
  if want.server_max_window_bits and not p.server_max_window_bits then
    return nil, "server_max_window_bits was asked for and not agreed"
  end
  return a
end

--- check_request(req) -> nil when `req` (a tide.http request) is a valid
-- opening handshake, else status, message, extra header {name, value}.
function M.check_request(req)
  local h = req.headers
  if req.method ~= "GET" then return 405, "a WebSocket handshake must be a GET" end
  if req.version ~= "1.1" then return 400, "a WebSocket handshake needs HTTP/1.1" end
  if not has_token(h:get_joined("upgrade"), "websocket") then
    return 426, "Upgrade: websocket expected", { "Upgrade", "websocket" }
  end
  if not has_token(h:get_joined("connection"), "upgrade") then
    return 400, "Connection: Upgrade expected"
  end
  local v = h:get_all("sec-websocket-version")
  if #v ~= 1 or v[1] ~= "13" then
    return 426, "unsupported WebSocket version", { "Sec-WebSocket-Version", "13" }
  end
  local keys = h:get_all("sec-websocket-key")
  if #keys ~= 1 or not find(keys[1], "^[A-Za-z0-9+/]+=*$") or #keys[1] ~= 24
      or sub(keys[1], 23) ~= "==" then
    return 400, "missing or invalid Sec-WebSocket-Key"
  end
  return nil
end

return M
