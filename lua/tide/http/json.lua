-- tide.http.json: JSON bodies for the server and the client, on lua-cjson
-- (the library OpenResty uses; Debian package lua-cjson).
--
-- Owns the one convention for JSON in tide.http: malformed JSON is a tide
-- error object with code "EPROTO" and status 400 (the server answers it
-- with a 400), a value that cannot be encoded raises at once (a bug of the
-- program). cjson is loaded on first use, so a program without JSON does
-- not need it. JSON null decodes to http.null (cjson.null).

local tide = require "tide"

local pcall, error, tostring = pcall, error, tostring
local tide_error = tide.error

local M = {}

local cjson  -- loaded on first use
local function lib()
  if not cjson then
    local ok, m = pcall(require, "cjson")
    if not ok then
      error("tide.http JSON needs lua-cjson (Debian: apt-get install lua-cjson)", 3)
    end
    cjson = m.new()  -- a private instance: settings of other users stay theirs
    cjson.decode_max_depth(128)
    cjson.encode_max_depth(128)
    cjson.decode_invalid_numbers(false)
    cjson.encode_invalid_numbers(false)
  end
  return cjson
end

--- Decodes the JSON text `s`. Raises an EPROTO error with status 400
-- when it is not JSON; `what` names the text in the message.
function M.decode(s, what)
  local c = lib()
  local ok, v = pcall(c.decode, s)
  if not ok then
    error(tide_error("EPROTO", "malformed JSON in " .. what .. ": " .. tostring(v),
      { status = 400 }), 0)
  end
  return v
end

--- Encodes `value` as JSON text; raises (at `level`) when it cannot.
function M.encode(value, level)
  local c = lib()
  local ok, s = pcall(c.encode, value)
  if not ok then error("cannot encode as JSON: " .. tostring(s), level + 1) end
  return s
end

--- The JSON null (cjson.null), or nil when lua-cjson is missing.
function M.null()
  local ok = pcall(lib)
  return ok and cjson.null or nil
end

return M
