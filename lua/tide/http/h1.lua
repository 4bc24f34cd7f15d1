-- tide.http.h1: the HTTP/1.1 wire layer (RFC 9112), free of sockets.
--
-- Owns the parsing of request and response heads, message body framing,
-- chunked transfer coding, the serialization of heads and chunks, and the
-- URL, query and percent-encoding helpers the server and client need. Every
-- function works on strings or on a caller-supplied reader, so it can be
-- tested without the event loop. Parsers are strict: they reject, they never
-- guess. In particular only CRLF ends a line; a bare LF or bare CR anywhere
-- in a head is an error (RFC 9112 section 2.2 allows, but does not require,
-- accepting a bare LF).

local headers = require "tide.http.headers"
local tide = require "tide"
local split_fields, tide_error = tide.fields, tide.error

local find, sub, byte, lower, format, gsub, gmatch, match =
  string.find, string.sub, string.byte, string.lower, string.format,
  string.gsub, string.gmatch, string.match
local concat = table.concat
local tonumber, tostring, type, error, getmetatable =
  tonumber, tostring, type, error, getmetatable

local new_headers = headers.new
local headers_mt = headers.mt
local from_fields = headers.from_fields
local hfirst = headers.methods._first
local hadd = headers.methods._add

local h1 = {}

local DEFAULT_MAX_TARGET = 8 * 1024
local DEFAULT_MAX_HEADERS = 100
local DEFAULT_MAX_LINE = 8 * 1024
local DEFAULT_MAX_BODY = 8 * 1024 * 1024
local DEFAULT_MAX_CHUNK_LINE = 1024
local DEFAULT_MAX_READ = 64 * 1024

-- Character classes. A token is RFC 9110 section 5.6.2; a field value may
-- hold HTAB, SP, VCHAR and obs-text (section 5.5); a request-target may hold
-- any visible ASCII character except "#" (fragments are never sent).
local TCHAR = headers.TCHAR
local VCHAR = "[\t -~\128-\255]"
local TARGET_CHAR = "[!\"$-~]"

-- The request line without its end (CRLF, or the end of the block), for
-- the lines the fast path of parse_request_head leaves to it.
local REQUEST_LINE = "^(" .. TCHAR .. "+) (" .. TARGET_CHAR .. "+) HTTP/(%d)%.(%d)()"
-- The common request line, for the fast path of parse_request_head: an
-- upper-case method, an origin-form target (path, then "?" and the query
-- if any) and HTTP/1.x, ending in CRLF.
local REQUEST_LINE_FAST = "^(%u+) (/[!\"$->@-~]*)(%??[!\"$-~]*) HTTP/1%.([01])\r\n()"
local STATUS_LINE = "^HTTP/(%d)%.(%d) (%d%d%d)()"
local REASON = "^ (" .. VCHAR .. "*)\r\n()"
-- The value is captured greedily from after ": "; surrounding whitespace is
-- trimmed afterwards. Leaving optional whitespace to the pattern would make
-- a failing match backtrack quadratically on a long run of spaces.
local FIELD_LINE = "^(" .. TCHAR .. "+):[ \t]?(" .. VCHAR .. "*)\r\n()"
local TOKEN = headers.TOKEN


--------------------------------------------------------------------------
-- Errors raised by the body readers.

-- Raises a protocol error: a tide error object with code "EPROTO" and
-- `status`, the HTTP status a server answers with (tide.is_error(e,
-- "EPROTO") holds for every failure of the wire layer).
local function raise(status, message)
  error(tide_error("EPROTO", message, { status = status }), 2)
end

--------------------------------------------------------------------------
-- Field lines.

-- Trims leading and trailing SP/HTAB. Only called when the value starts or
-- ends with one, which is rare after the optional single space the field
-- pattern already skips.
local function trim_ows(v)
  local i, j = 1, #v
  local b = byte(v, i)
  while b == 32 or b == 9 do i = i + 1; b = byte(v, i) end
  b = byte(v, j)
  while j >= i and (b == 32 or b == 9) do j = j - 1; b = byte(v, j) end
  return sub(v, i, j)
end

-- Explains why the line at `pos` of `s` (which ends in CRLF) is not a
-- valid field line. Returns status, reason.
local function diagnose_field(s, pos, first, max_line)
  local le = find(s, "\r\n", pos, true) or #s + 1
  local line = sub(s, pos, le - 1)
  if #line > max_line then return 431, "header field line too long" end
  if line == "" then return 400, "empty line inside the head" end
  if find(line, "\0", 1, true) then return 400, "NUL in header field" end
  if find(line, "\n", 1, true) then return 400, "bare LF in header (only CRLF ends a line)" end
  if find(line, "\r", 1, true) then return 400, "bare CR in header" end
  local b = byte(line, 1)
  if b == 32 or b == 9 then
    if first then return 400, "whitespace before the first header field" end
    return 400, "obsolete line folding in header"
  end
  local colon = find(line, ":", 1, true)
  if not colon then return 400, "header field without a colon" end
  if colon == 1 then return 400, "empty header name" end
  b = byte(line, colon - 1)
  if b == 32 or b == 9 then return 400, "whitespace between header name and colon" end
  if not find(sub(line, 1, colon - 1), TOKEN) then
    return 400, "invalid character in header name"
  end
  return 400, "invalid character in header value"
end

-- Where the line that ends at `e` of `s` is followed: the position after
-- its CRLF, the end of `s` (a last line ends the block), or nil when
-- anything else follows.
local function line_end(s, e)
  if e > #s then return e end
  if byte(s, e) == 13 and byte(s, e + 1) == 10 then return e + 2 end
  return nil
end

-- Parses the field lines of `s` from `pos` to its end (each ending in
-- CRLF, the last one maybe at the end of `s`) into a new headers object.
-- Returns the headers; raises EPROTO with the status a server answers,
-- or for a response (`response` true) with 502 and a message that says
-- so. tide.fields splits the lines in one C call, straight into the
-- headers layout.
local function parse_fields(s, pos, max_headers, max_line, response)
  local h, n, index = split_fields(s, pos, max_headers, max_line)
  if not h then
    local status, reason
    if index == "count" then
      status, reason = 431, "too many header fields"
    elseif index == "line" then
      status, reason = 431, "header field line too long"
    else
      status, reason = diagnose_field(s, n, n == pos, max_line)
    end
    if response then raise(502, "malformed response: " .. reason) end
    raise(status, reason)
  end
  return from_fields(h, n, index)
end

-- Returns the number of fields named `lname` (lowercase) in `h`.
local count = headers.methods._count

-- Validates Content-Length. Returns the length; raises EPROTO otherwise
-- (400, or 502 for a response).
local function content_length(h, response)
  local why
  if count(h, "content-length") > 1 then
    why = "repeated Content-Length"
  else
    local v = h:get("content-length")
    -- 15 digits keep the value exact in a float too, and are far beyond
    -- any body limit.
    if find(v, "^%d+$") and #v <= 15 then return tonumber(v) end
    why = "invalid Content-Length"
  end
  if response then raise(502, "malformed response: " .. why) end
  raise(400, why)
end

-- Checks the Transfer-Encoding of a request (every field, as one list):
-- chunked must be the one and only coding. Raises EPROTO otherwise: 501
-- for a coding this layer does not implement (wherever it is in the
-- list), 400 for anything else.
local function transfer_coding(h)
  local v = lower(h:get_joined("transfer-encoding"))
  local chunked, last, unknown = 0, nil, nil
  for item in gmatch(v .. ",", "([^,]*),") do
    local coding = trim_ows(item)
    if coding ~= "" then
      if not find(coding, TOKEN) then
        raise(400, "invalid Transfer-Encoding")
      end
      if coding == "chunked" then
        chunked = chunked + 1
      else
        unknown = unknown or coding
      end
      last = coding
    end
  end
  if not last then raise(400, "empty Transfer-Encoding") end
  if unknown then raise(501, "unsupported transfer coding '" .. unknown .. "'") end
  if chunked > 1 then raise(400, "chunked applied more than once") end
end

-- The transfer codings of `h` (every Transfer-Encoding field, as one
-- list), lowercased, in the order they were applied. Raises EPROTO (for
-- a response: status 502) when it is not a list of codings.
local function coding_list(h)
  local v = lower(h:get_joined("transfer-encoding"))
  local list = {}
  for item in gmatch(v .. ",", "([^,]*),") do
    local coding = trim_ows(item)
    if coding ~= "" then
      local name = match(coding, "^([^;]*)")
      name = trim_ows(name)
      if not find(name, TOKEN) then raise(502, "malformed response: invalid Transfer-Encoding") end
      list[#list + 1] = name
    end
  end
  if #list == 0 then raise(502, "malformed response: empty Transfer-Encoding") end
  return list
end

local function option(limits, name, default)
  local v = limits and limits[name]
  if v == nil then return default end
  return v
end

--------------------------------------------------------------------------
-- Request head.

-- Explains why the request line at `pos` of `s` did not match.
local function diagnose_request_line(s, pos, max_target)
  local le = find(s, "\r\n", pos, true) or #s + 1
  local line = sub(s, pos, le - 1)
  if find(line, "\0", 1, true) then return 400, "NUL in request line" end
  if find(line, "\n", 1, true) then return 400, "bare LF in request line (only CRLF ends a line)" end
  if find(line, "\r", 1, true) then return 400, "bare CR in request line" end
  local method, target, version = match(line, "^([^ ]*) ([^ ]*) ([^ ]*)$")
  if not method then return 400, "malformed request line" end
  if #target > max_target then return 414, "request-target too long" end
  if not find(method, TOKEN) then return 400, "invalid method" end
  if target == "" or find(target, "[^!\"$-~]") then
    return 400, "invalid request-target"
  end
  if find(version, "^HTTP/%d%.%d$") then return 505, "HTTP version not supported" end
  return 400, "malformed HTTP version"
end

-- Host values found valid recently (a server sees few distinct ones), so
-- that they are not matched again for every request. Bounded: emptied
-- when full.
local valid_hosts, valid_hosts_n = {}, 0

-- Host header: empty, a reg-name or IPv4 address, or an IPv6 literal, each
-- with an optional port.
local function valid_host(v)
  return find(v, "^[A-Za-z0-9%-._~!$&'()*+,;=%%]*:?%d*$")
    or find(v, "^%[[%x:.]+%]:?%d*$")
    or find(v, "^%[v%x+%.[A-Za-z0-9%-._~!$&'()*+,;=:]+%]:?%d*$")
end

-- The path and the query (nil without a "?") of a target's path part.
local function split_query(target)
  local q = find(target, "?", 1, true)
  if q then return sub(target, 1, q - 1), sub(target, q + 1) end
  return target
end

--[[ Parses a request head. `block` holds the request line and the field
lines, without the empty line that ends the head (the caller found the
"\r\n\r\n" with a bounded read). Empty lines before the request line are
skipped (RFC 9112 section 2.2). `limits` is optional:
  max_target   longest request-target in bytes (8 KiB); longer -> 414
  max_headers  most header fields (100); more -> 431
  max_line     longest field line in bytes (8 KiB); longer -> 431
Returns a request table:
  method, target, version ("1.1" or "1.0"), headers (a tide.http.headers),
  path (the target without its query; for the absolute form the path part of
  the URL, "/" when empty; "*" for the asterisk form; nil for the authority
  form), query (the raw string after "?", or nil), authority (the host[:port]
  of an absolute- or authority-form target, else nil),
  body_kind ("none", "length" or "chunked") and content_length (0 for "none",
  the byte count for "length", nil for "chunked").
A malformed head raises an EPROTO error object whose `status` is the HTTP
error code to answer (400, 414, 431, 501, 505).
`into`, when given, is the table to fill and return instead of a new one
(the server passes its request object, sized for these fields). ]]
function h1.parse_request_head(block, limits, into)
  local max_target, max_headers, max_line = DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADERS, DEFAULT_MAX_LINE
  if limits then
    max_target = limits.max_target or max_target
    max_headers = limits.max_headers or max_headers
    max_line = limits.max_line or max_line
  end

  local s = block
  local pos = 1

  local method, target, version, hpos, path, query, authority
  -- The common shape first, in one match: an upper-case method, an
  -- origin-form target, HTTP/1.0 or 1.1, a CRLF. Anything else takes the
  -- general path.
  local _, qpart, minor
  _, _, method, path, qpart, minor, hpos = find(s, REQUEST_LINE_FAST)
  if hpos and method ~= "CONNECT" then
    if qpart == "" then
      target = path
    else
      target, query = path .. qpart, sub(qpart, 2)
    end
    version = minor == "1" and "1.1" or "1.0"
    if #target > max_target then raise(414, "request-target too long") end
  else
    local major
    path, query = nil, nil
    while byte(s, pos) == 13 and byte(s, pos + 1) == 10 do pos = pos + 2 end
    _, _, method, target, major, minor, hpos = find(s, REQUEST_LINE, pos)
    if hpos then hpos = line_end(s, hpos) end
    if not hpos then
      raise(diagnose_request_line(s, pos, max_target))
    end
    if #target > max_target then raise(414, "request-target too long") end
    if major == "1" and minor == "1" then
      version = "1.1"
    elseif major == "1" and minor == "0" then
      version = "1.0"
    else
      raise(505, "HTTP version not supported")
    end

    -- Request-target forms (RFC 9112 section 3.2).
    if method == "CONNECT" then
      authority = target
      if not valid_host(target) or not find(target, ":%d+$") then
        raise(400, "invalid authority-form request-target")
      end
    elseif byte(target, 1) == 47 then -- "/": origin-form
      path, query = split_query(target)
    elseif target == "*" then
      if method ~= "OPTIONS" then
        raise(400, "asterisk-form request-target is only for OPTIONS")
      end
      path = "*"
    else
      local rest
      authority, rest = match(target, "^[Hh][Tt][Tt][Pp][Ss]?://([^/?]+)(.*)$")
      if not authority or not valid_host(authority) or find(authority, "@", 1, true) then
        raise(400, "invalid request-target")
      end
      path, query = split_query(rest)
      if path == "" then path = "/" end
    end
  end

  local h = parse_fields(s, hpos, max_headers, max_line)

  local index = h._index
  local host = index.host
  if host then
    local v = hfirst(h, "host")
    if not valid_hosts[v] then
      if not valid_host(v) then raise(400, "invalid Host") end
      if valid_hosts_n >= 256 then valid_hosts, valid_hosts_n = {}, 0 end
      valid_hosts[v], valid_hosts_n = true, valid_hosts_n + 1
    end
    if h.n > 1 and count(h, "host") > 1 then raise(400, "repeated Host") end
  elseif version == "1.1" then
    raise(400, "missing Host")
  end

  local body_kind, length = "none", 0
  if index["transfer-encoding"] then
    if index["content-length"] then
      raise(400, "both Content-Length and Transfer-Encoding")
    end
    if version == "1.0" then
      raise(400, "Transfer-Encoding in an HTTP/1.0 request")
    end
    transfer_coding(h)
    body_kind, length = "chunked", nil
  elseif index["content-length"] then
    length = content_length(h)
    if length > 0 then body_kind = "length" end
  end

  if into then
    into.method, into.target, into.path, into.query, into.authority = method, target, path, query, authority
    into.version, into.headers, into.body_kind, into.content_length = version, h, body_kind, length
    return into
  end
  return {
    method = method,
    target = target,
    path = path,
    query = query,
    authority = authority,
    version = version,
    headers = h,
    body_kind = body_kind,
    content_length = length,
  }
end

--------------------------------------------------------------------------
-- Response head.

--[[ Parses a response head for the client. `block` is the status line and
field lines without the final empty line. `limits` takes max_headers and
max_line as for requests (a longer status line is rejected too).
`request_method` is the method of the request this answers: responses to
HEAD have no body, and 2xx answers to CONNECT turn the connection into a
tunnel (body_kind "none"). The reason phrase may be empty, and the space
before it may be missing ("HTTP/1.1 200"), which some servers send.
Framing follows RFC 9112 section 6.3: 1xx, 204, 304 and HEAD -> "none";
Transfer-Encoding with chunked final -> "chunked", without -> "close";
Content-Length -> "length" (or "none" when 0); otherwise "close" (the body
ends when the server closes the connection).
Returns {version=, status= (integer), reason=, headers=, body_kind=,
content_length= (0 for "none", n for "length", nil otherwise),
transfer_codings=}. A malformed head raises an EPROTO error object with
status 502 (what a gateway answers) and a message "malformed response: ...". ]]
function h1.parse_response_head(block, limits, request_method)
  local max_headers = option(limits, "max_headers", DEFAULT_MAX_HEADERS)
  local max_line = option(limits, "max_line", DEFAULT_MAX_LINE)

  local s = block .. "\r\n"
  local _, _, major, minor, code, pos = find(s, STATUS_LINE)
  if not major then raise(502, "malformed response: invalid status line") end
  local version
  if major == "1" and minor == "1" then
    version = "1.1"
  elseif major == "1" and minor == "0" then
    version = "1.0"
  else
    raise(502, "malformed response: unsupported HTTP version " .. major .. "." .. minor)
  end
  local status = tonumber(code)
  if status < 100 or status > 599 then raise(502, "malformed response: invalid status code " .. code) end
  local reason, hpos
  if byte(s, pos) == 13 and byte(s, pos + 1) == 10 then
    reason, hpos = "", pos + 2
  else
    _, _, reason, hpos = find(s, REASON, pos)
    if not reason then raise(502, "malformed response: invalid status line") end
  end
  if hpos - 3 > max_line then raise(502, "malformed response: status line too long") end

  local h = parse_fields(s, hpos, max_headers, max_line, true)

  local index = h._index
  local body_kind, length, codings = "close", nil, nil
  if request_method == "HEAD" or status < 200 or status == 204 or status == 304
    or (request_method == "CONNECT" and status < 300) then
    body_kind, length = "none", 0
  elseif index["transfer-encoding"] then
    if index["content-length"] then
      raise(502, "malformed response: both Content-Length and Transfer-Encoding")
    end
    if version == "1.0" then
      raise(502, "malformed response: Transfer-Encoding in an HTTP/1.0 response")
    end
    -- RFC 9112 section 6.3: chunked last frames the body; any other last
    -- coding leaves it to the end of the connection. The caller gets the
    -- codings to undo (this layer undoes none but chunked).
    codings = coding_list(h)
    if codings[#codings] == "chunked" then
      for i = 1, #codings - 1 do
        if codings[i] == "chunked" then raise(502, "malformed response: chunked applied more than once") end
      end
      body_kind = "chunked"
    end
  elseif index["content-length"] then
    length = content_length(h, true)
    body_kind = length > 0 and "length" or "none"
  end

  return {
    version = version,
    status = status,
    reason = reason,
    headers = h,
    body_kind = body_kind,
    content_length = length,
    transfer_codings = codings,
  }
end

--------------------------------------------------------------------------
-- Chunked transfer coding (RFC 9112 section 7.1).

-- Reads trailer fields after the last chunk into `trailers` (a headers
-- object, or nil to check and discard them).
local function read_trailers(read_line, trailers, max_headers, max_line)
  local n = 0
  while true do
    local line = read_line(max_line + 2)
    if line == false then raise(431, "trailer field line too long") end
    if not line then raise(400, "truncated chunked body (in trailer section)") end
    if line == "\r\n" then return end
    n = n + 1
    if n > max_headers then raise(431, "too many trailer fields") end
    if #line > max_line + 2 then raise(431, "trailer field line too long") end
    local _, _, name, value, e = find(line, FIELD_LINE)
    if not name or e ~= #line + 1 then
      if byte(line, -1) ~= 10 or byte(line, -2) ~= 13 then
        raise(400, "trailer field line not ended by CRLF")
      end
      local _, why = diagnose_field(line, 1, n == 1, max_line)
      raise(400, "invalid trailer field: " .. why)
    end
    if trailers then
      local vlen = #value
      if vlen > 0 then
        local b1, b2 = byte(value, 1), byte(value, vlen)
        if b1 == 32 or b1 == 9 or b2 == 32 or b2 == 9 then value = trim_ows(value) end
      end
      hadd(trailers, name, lower(name), value)
    end
  end
end

-- Whether `ext` follows the chunk-ext grammar (RFC 9112 section 7.1.1):
-- *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
local TOKEN_END = "^" .. TCHAR .. "+()"
local function valid_chunk_ext(ext)
  local pos, len = 1, #ext
  while pos <= len do
    pos = match(ext, "^[ \t]*;[ \t]*()", pos)
    if not pos then return false end
    pos = match(ext, TOKEN_END, pos)
    if not pos then return false end  -- ";" without a name
    local v = match(ext, "^[ \t]*=[ \t]*()", pos)
    if v then
      pos = match(ext, TOKEN_END, v)
      if not pos then
        if byte(ext, v) ~= 34 then return false end
        -- quoted-string: qdtext or quoted-pair up to the closing quote
        pos = v + 1
        while true do
          local b = byte(ext, pos)
          if not b then return false end  -- unbalanced quote
          if b == 34 then pos = pos + 1; break end
          if b == 92 then
            pos = pos + 1
            b = byte(ext, pos)
            if not b or (b < 32 and b ~= 9) or b == 127 then return false end
          elseif (b < 32 and b ~= 9) or b == 127 then
            return false
          end
          pos = pos + 1
        end
      end
    end
  end
  return true
end

-- Parses a chunk-size line (with its CRLF). Returns the size.
local function chunk_size(line, max_chunk_line)
  if line == false then raise(400, "chunk size line too long") end
  if not line then raise(400, "truncated chunked body") end
  if #line > max_chunk_line then raise(400, "chunk size line too long") end
  local _, _, hex, ext = find(line, "^(%x+)(.-)\r\n$")
  if not hex then
    if byte(line, -1) ~= 10 then raise(400, "truncated chunked body") end
    raise(400, "invalid chunk size line")
  end
  if #hex > 15 then raise(400, "chunk size overflow") end
  -- Chunk extensions are checked (bounded by the line length) and ignored.
  if ext ~= "" and not valid_chunk_ext(ext) then
    raise(400, "invalid chunk extension")
  end
  return tonumber(hex, 16)
end

--[[ Returns an iterator over the data of a chunked body, to use as
  for data in h1.chunks(reader, limits, trailers) do ... end
`reader` is a table of two functions, called synchronously (inside a task
they may await):
  reader.read_line(max) returns the next line INCLUDING its "\n" terminator,
    nil at end of input, or false when no "\n" came within `max` bytes (a
    reader that cannot tell may return nil there too);
  reader.read_exactly(n) returns exactly n bytes, or nil at end of input.
`limits` is optional:
  max_body        most body bytes in total (8 MiB); more -> 413
  max_read        largest piece handed out at once (64 KiB): big chunks are
                  read in pieces of at most this size
  max_chunk_line  longest chunk-size line, extensions included (1 KiB)
  max_headers, max_line   bounds on the trailer section, as for heads
`trailers`, when given, is a headers object that receives the trailer fields;
otherwise they are checked and discarded.
Bad input raises an error object {status=400|413|431, message=, code="EPROTO"}
whose tostring is one line. Empty chunks are never yielded. ]]
function h1.chunks(reader, limits, trailers)
  local read_line, read_exactly = reader.read_line, reader.read_exactly
  assert(type(read_line) == "function", "reader.read_line must be a function")
  assert(type(read_exactly) == "function", "reader.read_exactly must be a function")
  local max_body = option(limits, "max_body", DEFAULT_MAX_BODY)
  local max_read = option(limits, "max_read", DEFAULT_MAX_READ)
  local max_chunk_line = option(limits, "max_chunk_line", DEFAULT_MAX_CHUNK_LINE)
  local max_headers = option(limits, "max_headers", DEFAULT_MAX_HEADERS)
  local max_line = option(limits, "max_line", DEFAULT_MAX_LINE)

  -- `broken` is set around every step that may raise, so that an iterator
  -- that failed once keeps failing instead of looking like a clean end.
  local remaining, total, started, done, broken = 0, 0, false, false, false
  return function()
    if done then return nil end
    if broken then raise(400, "chunked body already failed") end
    broken = true
    if remaining == 0 then
      if started and read_exactly(2) ~= "\r\n" then
        raise(400, "chunk data not followed by CRLF")
      end
      started = true
      local size = chunk_size(read_line(max_chunk_line), max_chunk_line)
      if size == 0 then
        read_trailers(read_line, trailers, max_headers, max_line)
        done, broken = true, false
        return nil
      end
      if size > max_body - total then
        raise(413, "chunked body larger than " .. max_body .. " bytes")
      end
      total = total + size
      remaining = size
    end
    local n = remaining < max_read and remaining or max_read
    local data = read_exactly(n)
    if not data or #data ~= n then raise(400, "truncated chunked body") end
    remaining = remaining - n
    broken = false
    return data
  end
end

--- Reads a whole chunked body. Calls `on_chunk(data)` for each piece when it
-- is given and returns the total byte count and the trailers (a headers
-- object); without `on_chunk` returns the body as one string and the
-- trailers. Raises like `h1.chunks`.
function h1.read_chunked(reader, limits, on_chunk)
  local trailers = new_headers()
  if on_chunk then
    local total = 0
    for data in h1.chunks(reader, limits, trailers) do
      total = total + #data
      on_chunk(data)
    end
    return total, trailers
  end
  local parts, n = {}, 0
  for data in h1.chunks(reader, limits, trailers) do
    n = n + 1
    parts[n] = data
  end
  return concat(parts), trailers
end

--------------------------------------------------------------------------
-- Serializers.

h1.reasons = {
  [100] = "Continue", [101] = "Switching Protocols", [102] = "Processing",
  [103] = "Early Hints",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content", [207] = "Multi-Status",
  [208] = "Already Reported", [226] = "IM Used",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [305] = "Use Proxy",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [418] = "I'm a teapot",
  [421] = "Misdirected Request", [422] = "Unprocessable Content",
  [423] = "Locked", [424] = "Failed Dependency", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [506] = "Variant Also Negotiates", [507] = "Insufficient Storage",
  [508] = "Loop Detected", [511] = "Network Authentication Required",
}

-- Appends the field lines of `h` (a headers object, a table accepted by
-- headers.new, or nil) and the empty line to `buf` from position `n`.
local function put_fields(buf, n, h)
  if h ~= nil and getmetatable(h) ~= headers_mt then h = new_headers(h) end
  if h then n = h:_put(buf, n) end
  buf[n + 1] = "\r\n"
  return concat(buf)
end

--- Returns the head of a request: "METHOD target HTTP/1.1", the fields of
-- `hdrs` and the empty line. Raises on a method that is not a token or a
-- target holding whitespace or control characters (no header injection).
function h1.request_head(method, target, hdrs)
  if type(method) ~= "string" or not find(method, TOKEN) then
    error("invalid method " .. format("%q", tostring(method)), 2)
  end
  if type(target) ~= "string" or not find(target, "^" .. TARGET_CHAR .. "+$") then
    error("invalid request-target " .. format("%q", tostring(target)), 2)
  end
  return put_fields({ method, " ", target, " HTTP/1.1\r\n" }, 4, hdrs)
end

--- Returns the head of a response: the status line, the fields of `hdrs`
-- and the empty line. `reason` defaults to h1.reasons[status] (or empty);
-- `version` is "1.1" (default) or "1.0". Raises on a status outside
-- 100..599 or a reason holding CR, LF or other control characters.
function h1.response_head(status, reason, hdrs, version)
  if math.type(status) ~= "integer" or status < 100 or status > 599 then
    error("invalid status " .. tostring(status), 2)
  end
  if reason == nil then
    reason = h1.reasons[status] or ""
  elseif type(reason) ~= "string" or find(reason, "[\0-\8\10-\31\127]") then
    error("invalid reason phrase " .. format("%q", tostring(reason)), 2)
  end
  version = version or "1.1"
  if version ~= "1.1" and version ~= "1.0" then
    error("invalid HTTP version " .. tostring(version), 2)
  end
  return put_fields({ "HTTP/", version, " ", tostring(status), " ", reason, "\r\n" }, 7, hdrs)
end

--- Returns `data` framed as one chunk. An empty string gives "" (an empty
-- chunk would end the body; use h1.last_chunk for that).
function h1.chunk(data)
  local n = #data
  if n == 0 then return "" end
  return format("%x\r\n", n) .. data .. "\r\n"
end

--- The last chunk with an empty trailer section: ends a chunked body.
h1.last_chunk = "0\r\n\r\n"

--- Returns the last chunk followed by the trailer fields of `trailers`.
function h1.last_chunk_with(trailers)
  return put_fields({ "0\r\n" }, 1, trailers)
end

--------------------------------------------------------------------------
-- Percent-encoding, queries and URLs.

-- "%XX" (any hex case) -> byte, and byte -> "%XX" (upper case), precomputed
-- so gsub can replace through a table with no Lua call per match.
local pct_decode, pct_encode = {}, {}
do
  local digits = "0123456789abcdefABCDEF"
  for i = 1, #digits do
    for j = 1, #digits do
      local hi, lo = sub(digits, i, i), sub(digits, j, j)
      pct_decode["%" .. hi .. lo] = string.char(tonumber(hi .. lo, 16))
    end
  end
  for b = 0, 255 do pct_encode[string.char(b)] = format("%%%02X", b) end
end

-- Checks that every "%" starts a valid escape.
local function valid_escapes(s)
  return not (find(s, "%%%X") or find(s, "%%%x%X") or find(s, "%%%x?$"))
end

--- Decodes %XX escapes (any hex case). "+" is left alone. Returns the
-- decoded string, or nil, err on a malformed escape.
function h1.decode_uri_component(s)
  if not find(s, "%", 1, true) then return s end
  if not valid_escapes(s) then return nil, "invalid percent-encoding" end
  return (gsub(s, "%%%x%x", pct_decode))
end

--- Percent-encodes every byte except the unreserved characters
-- A-Z a-z 0-9 - _ . ! ~ * ' ( ), like JavaScript's encodeURIComponent.
local UNSAFE = "[^A-Za-z0-9%-_.!~*'()]"
function h1.encode_uri_component(s)
  if not find(s, UNSAFE) then return s end
  return (gsub(s, UNSAFE, pct_encode))
end

-- Decodes one name or value of application/x-www-form-urlencoded data.
local function decode_form(s)
  if not find(s, "[+%%]") then return s end
  s = gsub(s, "%+", " ")
  if not valid_escapes(s) then return nil end
  return (gsub(s, "%%%x%x", pct_decode))
end

--- Parses a query string ("a=1&b=x%20y&c") into a table of decoded
-- name -> value, decoding "+" as a space. When a name repeats, the FIRST
-- value wins (later ones are ignored); a name without "=" gets "". Empty
-- pieces ("a=1&&b=2") are skipped. Returns the table, or nil, err on a
-- malformed percent escape. nil or "" gives an empty table.
function h1.parse_query(qs)
  local result = {}
  if qs == nil or qs == "" then return result end
  for piece in gmatch(qs, "[^&]+") do
    local eq = find(piece, "=", 1, true)
    local name, value
    if eq then
      name, value = decode_form(sub(piece, 1, eq - 1)), decode_form(sub(piece, eq + 1))
    else
      name, value = decode_form(piece), ""
    end
    if not name or not value then return nil, "invalid percent-encoding in query" end
    if result[name] == nil then result[name] = value end
  end
  return result
end

local DEFAULT_PORT = { http = 80, https = 443 }

--[[ Parses an absolute http or https URL for the client:
  http[s]://[userinfo@]host[:port][/path][?query][#fragment]
The scheme is case-insensitive; host may be an IPv6 literal in brackets;
the port defaults to 80 (443 for https); the fragment is dropped. Returns
  {scheme="http"|"https", host= (no brackets), port= (integer), path= ("/"
  when empty), query= (raw, or nil), target= (path and "?query": what goes
  in the request line), authority= (the Host header value: host, bracketed
  for IPv6, with ":port" unless the scheme's default), userinfo= (raw, or
  nil)}
or nil, err for any other scheme or a malformed URL. ]]
function h1.parse_url(url)
  if type(url) ~= "string" then return nil, "URL must be a string" end
  local scheme, rest = match(url, "^(%a[%w+.%-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL" end
  scheme = lower(scheme)
  local port = DEFAULT_PORT[scheme]
  if not port then return nil, "unsupported scheme '" .. scheme .. "'" end
  local default_port = port
  local auth, tail = match(rest, "^([^/?#]*)(.*)$")
  local userinfo, hostport = match(auth, "^(.*)@(.*)$")
  if not userinfo then hostport = auth end
  local host, portpart, bracketed
  if byte(hostport, 1) == 91 then -- "["
    host, portpart = match(hostport, "^%[([%x:.]+)%](.*)$")
    if not host or not find(host, ":", 1, true) then return nil, "invalid IPv6 literal" end
    bracketed = true
  else
    host, portpart = match(hostport, "^([^:]*)(.*)$")
    if host == "" then return nil, "missing host" end
    if not find(host, "^[A-Za-z0-9%-._~!$&'()*+,;=%%]+$") then return nil, "invalid host" end
  end
  if portpart ~= "" and portpart ~= ":" then
    local digits = match(portpart, "^:(%d+)$")
    port = digits and #digits <= 5 and tonumber(digits)
    if not port or port < 1 or port > 65535 then return nil, "invalid port" end
  end
  tail = match(tail, "^[^#]*")
  if find(tail, "[^!-~]") then return nil, "invalid character in URL path or query" end
  local path, query = tail, nil
  local q = find(tail, "?", 1, true)
  if q then path, query = sub(tail, 1, q - 1), sub(tail, q + 1) end
  if path == "" then path = "/" end
  local authority = bracketed and "[" .. host .. "]" or host
  if port ~= default_port then authority = authority .. ":" .. port end
  return {
    scheme = scheme,
    host = host,
    port = port,
    path = path,
    query = query,
    target = query and path .. "?" .. query or path,
    authority = authority,
    userinfo = userinfo,
  }
end

return h1
