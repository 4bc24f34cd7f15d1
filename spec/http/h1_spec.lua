-- Specs for tide.http.h1: the socket-free HTTP/1.1 wire layer.

local tide = require "tide"
local h1 = require "tide.http.h1"
local headers = require "tide.http.headers"

-- A reader over a string, as h1.chunks expects: read_line(max) returns a
-- line with its "\n", or nil at the end or when the line is longer than max.
local function reader(s)
  local pos = 1
  return {
    read_line = function(max)
      local e = s:find("\n", pos, true)
      if not e or e - pos + 1 > max then return nil end
      local line = s:sub(pos, e)
      pos = e + 1
      return line
    end,
    read_exactly = function(n)
      if pos + n - 1 > #s then return nil end
      local data = s:sub(pos, pos + n - 1)
      pos = pos + n
      return data
    end,
  }
end

local function fields(h)
  local list = {}
  for name, value in h:each() do list[#list + 1] = { name, value } end
  return list
end

-- The error a parse raises: an EPROTO error object (asserted).
local function parse_error(parse, block, ...)
  local ok, err = pcall(parse, block, ...)
  assert.is_false(ok, "expected a rejection of " .. ("%q"):format(block))
  assert.is_true(tide.is_error(err, "EPROTO"), ("%q -> %s"):format(block, tostring(err)))
  assert.are.equal("string", type(err.message))
  return err
end

-- Asserts that parsing `block` as a request fails with `status`.
local function rejects(status, block, limits)
  local err = parse_error(h1.parse_request_head, block, limits)
  assert.are.equal(status, err.status, ("%q -> %s"):format(block, err.message))
end

-- Asserts that parsing `block` as a response head fails, as a gateway
-- would report it (502).
local function rejects_response(block, limits)
  local err = parse_error(h1.parse_response_head, block, limits)
  assert.are.equal(502, err.status, block)
  assert.truthy(err.message:find("^malformed response: "), err.message)
end

-- Runs the chunked decoder over `s`; returns the body and trailers, or
-- false and the error object.
local function decode(s, limits)
  local ok, body, trailers = pcall(h1.read_chunked, reader(s), limits)
  if not ok then return false, body end
  return body, trailers
end

local function decode_error(s, limits)
  local ok, err = decode(s, limits)
  assert.is_false(ok, ("expected %q to fail"):format(s))
  return err
end

describe("tide.http.h1", function()
  describe("parse_request_head", function()
    it("fills the table it is given", function()
      local into = { extra = 1 }
      local req = assert(h1.parse_request_head("GET /x?q HTTP/1.1\r\nHost: h", nil, into))
      assert.are.equal(into, req)
      assert.are.equal("/x", req.path)
      assert.are.equal("q", req.query)
      assert.are.equal(1, req.extra)
    end)

    it("parses a request line without fields, and a last line without CRLF", function()
      local req = assert(h1.parse_request_head("GET / HTTP/1.0"))
      assert.are.equal(0, req.headers:len())
      req = assert(h1.parse_request_head("GET / HTTP/1.1\r\nHost: h\r\nA: 1"))
      assert.are.equal("1", req.headers:get("a"))
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r")
      rejects(400, "GET / HTTP/1.10\r\nHost: h")
    end)

    it("parses a simple GET", function()
      local req = assert(h1.parse_request_head("GET /index.html HTTP/1.1\r\nHost: example.com"))
      assert.are.equal("GET", req.method)
      assert.are.equal("/index.html", req.target)
      assert.are.equal("/index.html", req.path)
      assert.is_nil(req.query)
      assert.is_nil(req.authority)
      assert.are.equal("1.1", req.version)
      assert.are.equal("example.com", req.headers:get("host"))
      assert.are.equal("none", req.body_kind)
      assert.are.equal(0, req.content_length)
      assert.are.equal(headers.mt, getmetatable(req.headers))
    end)

    it("splits the query from the path", function()
      local req = assert(h1.parse_request_head("GET /a/b?x=1&y=%20?z HTTP/1.1\r\nHost: h"))
      assert.are.equal("/a/b", req.path)
      assert.are.equal("x=1&y=%20?z", req.query)
    end)

    it("keeps an empty query as an empty string", function()
      local req = assert(h1.parse_request_head("GET /p? HTTP/1.1\r\nHost: h"))
      assert.are.equal("/p", req.path)
      assert.are.equal("", req.query)
    end)

    it("accepts HTTP/1.0 without Host", function()
      local req = assert(h1.parse_request_head("GET / HTTP/1.0"))
      assert.are.equal("1.0", req.version)
      assert.are.equal(0, req.headers:len())
    end)

    it("keeps header fields in order with their case and trims whitespace", function()
      local req = assert(h1.parse_request_head(
        "GET / HTTP/1.1\r\nHost: h\r\nX-A:  spaced value \t\r\nx-a:tight\r\nX-Empty:\r\nX-Blank:   \r\nX-Tab:\tv\tw"))
      assert.are.same({
        { "Host", "h" }, { "X-A", "spaced value" }, { "x-a", "tight" },
        { "X-Empty", "" }, { "X-Blank", "" }, { "X-Tab", "v\tw" },
      }, fields(req.headers))
      assert.are.same({ "spaced value", "tight" }, req.headers:get_all("X-A"))
    end)

    it("accepts obs-text in field values", function()
      local req = assert(h1.parse_request_head("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9"))
      assert.are.equal("caf\xc3\xa9", req.headers:get("x"))
    end)

    it("skips empty lines before the request line", function()
      local req = assert(h1.parse_request_head("\r\n\r\nGET / HTTP/1.1\r\nHost: h"))
      assert.are.equal("GET", req.method)
    end)

    it("accepts any token as a method", function()
      for _, m in ipairs { "PURGE", "M-SEARCH", "get", "X_Y.Z~1" } do
        local req = assert(h1.parse_request_head(m .. " / HTTP/1.1\r\nHost: h"))
        assert.are.equal(m, req.method)
      end
    end)

    it("frames a body with Content-Length", function()
      local req = assert(h1.parse_request_head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12"))
      assert.are.equal("length", req.body_kind)
      assert.are.equal(12, req.content_length)
      assert.are.equal("integer", math.type(req.content_length))
    end)

    it("treats Content-Length 0 as no body", function()
      local req = assert(h1.parse_request_head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 000"))
      assert.are.equal("none", req.body_kind)
      assert.are.equal(0, req.content_length)
    end)

    it("frames a chunked body in any case", function()
      for _, te in ipairs { "chunked", "Chunked", " CHUNKED ", "chunked, ", ", chunked" } do
        local req = assert(h1.parse_request_head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " .. te))
        assert.are.equal("chunked", req.body_kind)
        assert.is_nil(req.content_length)
      end
    end)

    it("parses the absolute form", function()
      local req = assert(h1.parse_request_head("GET http://example.com:8080/a?b HTTP/1.1\r\nHost: example.com:8080"))
      assert.are.equal("example.com:8080", req.authority)
      assert.are.equal("/a", req.path)
      assert.are.equal("b", req.query)
      req = assert(h1.parse_request_head("GET http://example.com HTTP/1.1\r\nHost: example.com"))
      assert.are.equal("/", req.path)
    end)

    it("parses the asterisk form for OPTIONS", function()
      local req = assert(h1.parse_request_head("OPTIONS * HTTP/1.1\r\nHost: h"))
      assert.are.equal("*", req.path)
    end)

    it("parses the authority form for CONNECT", function()
      local req = assert(h1.parse_request_head("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"))
      assert.are.equal("example.com:443", req.authority)
      assert.is_nil(req.path)
    end)

    it("accepts IPv6, empty and port-carrying Host values", function()
      for _, host in ipairs { "[::1]:8080", "[2001:db8::1]", "", "a.b-c_d:1", "127.0.0.1" } do
        assert(h1.parse_request_head("GET / HTTP/1.1\r\nHost: " .. host), host)
      end
    end)

    it("accepts exactly max_headers fields", function()
      local lines = { "GET / HTTP/1.1", "Host: h" }
      for i = 2, 100 do lines[#lines + 1] = "X-" .. i .. ": v" end
      assert(h1.parse_request_head(table.concat(lines, "\r\n")))
      assert(h1.parse_request_head("GET / HTTP/1.1\r\nHost: h\r\nX: y", { max_headers = 2 }))
    end)

    it("rejects a malformed request line with 400", function()
      for _, line in ipairs {
        "", "GET", "GET /", "GET / HTTP/1.1 ", "GET  / HTTP/1.1", " GET / HTTP/1.1",
        "GET / http/1.1", "GET / HTTP/1", "GET / HTTP/1.1.1", "GET / HTTP/11.1",
        "G(T / HTTP/1.1", "GET /a#frag HTTP/1.1", "GET /\xc3\xa9 HTTP/1.1",
        "GET /a\tb HTTP/1.1", "GET\t/ HTTP/1.1", "GET / HTTP/1.1\r\n\r\nHost: h",
      } do
        rejects(400, line .. "\r\nHost: h")
      end
    end)

    it("rejects bad request-target forms with 400", function()
      rejects(400, "GET * HTTP/1.1\r\nHost: h")
      rejects(400, "GET example.com HTTP/1.1\r\nHost: h")
      rejects(400, "GET http://user@h/ HTTP/1.1\r\nHost: h")
      rejects(400, "CONNECT / HTTP/1.1\r\nHost: h")
      rejects(400, "CONNECT example.com HTTP/1.1\r\nHost: h")
    end)

    it("rejects a request-target longer than max_target with 414", function()
      rejects(414, "GET /" .. ("a"):rep(8 * 1024) .. " HTTP/1.1\r\nHost: h")
      rejects(414, "GET /abcdef HTTP/1.1\r\nHost: h", { max_target = 4 })
      rejects(414, "GET /abcdef HTTP/2.0\r\nHost: h", { max_target = 4 })
      assert(h1.parse_request_head("GET /" .. ("a"):rep(8 * 1024 - 1) .. " HTTP/1.1\r\nHost: h"))
    end)

    it("rejects versions other than 1.0 and 1.1 with 505", function()
      for _, v in ipairs { "2.0", "1.2", "0.9", "3.0" } do
        rejects(505, "GET / HTTP/" .. v .. "\r\nHost: h")
      end
    end)

    it("rejects invalid characters in a header name with 400", function()
      for _, name in ipairs { "X@Y", "X(Y)", "X\"Y", "X/Y", "X[Y]", "X{Y}", "X\xc3\xa9" } do
        rejects(400, "GET / HTTP/1.1\r\nHost: h\r\n" .. name .. ": v")
      end
    end)

    it("rejects a field line without a name or a colon with 400", function()
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\n: v")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nNoColon")
    end)

    it("rejects whitespace before the colon with 400", function()
      rejects(400, "GET / HTTP/1.1\r\nHost : h")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX\t: v")
    end)

    it("rejects whitespace at the start of the first header line with 400", function()
      rejects(400, "GET / HTTP/1.1\r\n Host: h")
      rejects(400, "GET / HTTP/1.1\r\n\tHost: h")
    end)

    it("rejects obsolete line folding with 400", function()
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb")
    end)

    it("rejects bare CR with 400", function()
      rejects(400, "GET / HTTP/1.1\rHost: h")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r")
    end)

    it("rejects bare LF line endings with 400", function()
      rejects(400, "GET / HTTP/1.1\nHost: h")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\nX: y")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\n")
    end)

    it("rejects NUL with 400", function()
      rejects(400, "GET /\0 HTTP/1.1\r\nHost: h")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX\0: b")
    end)

    it("rejects control characters in field values with 400", function()
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\1b")
      rejects(400, "GET / HTTP/1.1\r\nHost: h\r\nX: a\127b")
    end)

    it("rejects a repeated Content-Length with 400, even with the same value", function()
      rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5")
      rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6")
    end)

    it("rejects an invalid Content-Length with 400", function()
      for _, v in ipairs { "", "abc", "-1", "+1", "1.0", "5, 5", "0x10", "1 2", ("9"):rep(16) } do
        rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " .. v)
      end
    end)

    it("rejects Content-Length with Transfer-Encoding with 400", function()
      rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked")
      rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5")
    end)

    it("rejects a missing Host in HTTP/1.1 with 400", function()
      rejects(400, "GET / HTTP/1.1")
      rejects(400, "GET / HTTP/1.1\r\nX: y")
    end)

    it("rejects a repeated Host with 400", function()
      rejects(400, "GET / HTTP/1.1\r\nHost: a\r\nHost: a")
      rejects(400, "GET / HTTP/1.0\r\nHost: a\r\nhost: b")
    end)

    it("rejects an invalid Host with 400", function()
      for _, v in ipairs { "a/b", "a b", "a:b:c", "[::1", "a@b", "[zz]" } do
        rejects(400, "GET / HTTP/1.1\r\nHost: " .. v)
      end
    end)

    it("rejects a bad chunked Transfer-Encoding with 400", function()
      for _, v in ipairs { "chunked, chunked", "chunked;x=1", "", " , ", "chunk ed", "chunked\"" } do
        rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " .. v)
      end
      rejects(400, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked")
      rejects(400, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked")
    end)

    it("rejects an unknown transfer coding with 501", function()
      for _, v in ipairs { "gzip", "gzip, chunked", "chunked, gzip", "identity", "x-custom" } do
        rejects(501, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " .. v)
      end
      rejects(501, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked")
    end)

    it("rejects more than max_headers fields with 431", function()
      local lines = { "GET / HTTP/1.1", "Host: h" }
      for i = 1, 100 do lines[#lines + 1] = "X-" .. i .. ": v" end
      rejects(431, table.concat(lines, "\r\n"))
      rejects(431, "GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\nY: 2", { max_headers = 2 })
    end)

    it("rejects a field line longer than max_line with 431", function()
      rejects(431, "GET / HTTP/1.1\r\nHost: h\r\nX: " .. ("v"):rep(8 * 1024))
      rejects(431, "GET / HTTP/1.1\r\nHost: h\r\nX: 123456", { max_line = 8 })
      rejects(431, "GET / HTTP/1.1\r\nHost: h\r\nX: 1234\r56", { max_line = 8 })
      assert(h1.parse_request_head("GET / HTTP/1.1\r\nHost: h\r\nX: 12345", { max_line = 8 }))
    end)

    it("stays fast on adversarial whitespace", function()
      local spaces = (" "):rep(8000)
      local t = os.clock()
      for _ = 1, 20 do
        pcall(h1.parse_request_head, "GET / HTTP/1.1\r\nHost: h\r\nX:" .. spaces .. "a\rb")
        pcall(h1.parse_request_head, "GET / HTTP/1.1\r\nHost: h\r\nX: a" .. spaces .. "b" .. spaces)
        pcall(h1.parse_request_head, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: a" .. spaces .. "b")
      end
      assert.is_true(os.clock() - t < 1)
    end)

    -- The parser scans with byte sets (tide.charset); these oracles say
    -- the same rules with Lua patterns, on heads made of random pieces.
    local TCHAR = "[!#$%%&'*+%-.^_`|~0-9A-Za-z]"
    local VCHAR = "[\t -~\128-\255]"
    local function oracle_line(s)
      local m, t, major, minor, e = s:match("^(" .. TCHAR .. "+) (/[!\"$-~]*) HTTP/(%d)%.(%d)()")
      if not m or m == "CONNECT" or s:sub(e) ~= "\r\nHost: h" then return nil end
      if major ~= "1" or (minor ~= "0" and minor ~= "1") then return nil end
      return m, t, "1." .. minor
    end
    local function oracle_fields(s, pos)
      local out = {}
      while pos <= #s do
        local name, value, e = s:match("^(" .. TCHAR .. "+):[ \t]?(" .. VCHAR .. "*)()", pos)
        if not name then return nil end
        if e <= #s then
          if s:sub(e, e + 1) ~= "\r\n" then return nil end
          e = e + 2
        end
        out[#out + 1] = { name, (value:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")) }
        pos = e
      end
      return out
    end
    local function pick(rnd, list) return list[rnd(#list)] end

    it("reads random request lines as the pattern oracle does", function()
      local rnd = math.random
      math.randomseed(7)
      local methods = { "GET", "POST", "get", "G-T", "", "CONNECT", "PUT", "G(T" }
      local targets = { "/", "/a?b=c", "/%41", "", "x", "/a b", "/#f", "/\0", "/\128", "/\"q\"", "/~$" }
      local versions = { "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.", "HTTP/1.1 " }
      local ends = { "\r\nHost: h", "\nHost: h", "\rHost: h", "xHost: h" }
      for _ = 1, 3000 do
        local head = pick(rnd, methods) .. pick(rnd, { " ", " ", "  ", "\t" }) .. pick(rnd, targets) ..
          pick(rnd, { " ", " ", "" }) .. pick(rnd, versions) .. pick(rnd, ends)
        local m, t, v = oracle_line(head)
        local ok, req = pcall(h1.parse_request_head, head)
        if m then
          assert(ok, head)
          assert.same({ m, t, v }, { req.method, req.target, req.version })
        else
          assert(not ok and tide.is_error(req, "EPROTO"), head)
        end
      end
    end)

    it("reads random field lines as the pattern oracle does", function()
      local rnd = math.random
      math.randomseed(11)
      local pieces = { "a", "Z", "-", "X-Y", ":", " ", "\t", "\r", "\n", "\r\n", "\0", "\128\255",
        "\"", ",", "@", "(", "v", "\127", "~", "Host" }
      for _ = 1, 5000 do
        local parts = {}
        for i = 1, rnd(1, 12) do parts[i] = pick(rnd, pieces) end
        local block = table.concat(parts)
        local head = "GET / HTTP/1.0\r\n" .. block
        local want = oracle_fields(head, 17)
        local ok, req = pcall(h1.parse_request_head, head)
        if want and not (want[1] and block:lower():find("host", 1, true)) then
          assert(ok, ("%q"):format(block))
          local got = {}
          for i = 1, req.headers.n do got[i] = { req.headers[3 * i - 2], req.headers[3 * i] } end
          assert.same(want, got)
        elseif not want then
          assert(not ok and tide.is_error(req, "EPROTO"), ("%q"):format(block))
        end
      end
    end)
  end)

  describe("parse_response_head", function()
    it("parses a status line and headers", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b"))
      assert.are.equal("1.1", res.version)
      assert.are.equal(200, res.status)
      assert.are.equal("OK", res.reason)
      assert.are.equal("b", res.headers:get("x-a"))
      assert.are.equal("length", res.body_kind)
      assert.are.equal(3, res.content_length)
    end)

    it("accepts an empty or missing reason phrase", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 404 \r\nContent-Length: 0"))
      assert.are.equal("", res.reason)
      res = assert(h1.parse_response_head("HTTP/1.1 404\r\nContent-Length: 0"))
      assert.are.equal("", res.reason)
      res = assert(h1.parse_response_head("HTTP/1.0 200 It is   fine"))
      assert.are.equal("It is   fine", res.reason)
      assert.are.equal("1.0", res.version)
    end)

    it("gives 1xx, 204 and 304 responses no body", function()
      for _, code in ipairs { 100, 101, 103, 204, 304 } do
        local res = assert(h1.parse_response_head("HTTP/1.1 " .. code .. " X\r\nContent-Length: 10"))
        assert.are.equal("none", res.body_kind)
        assert.are.equal(0, res.content_length)
      end
    end)

    it("gives responses to HEAD no body", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 10", nil, "HEAD"))
      assert.are.equal("none", res.body_kind)
      res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", nil, "HEAD"))
      assert.are.equal("none", res.body_kind)
    end)

    it("turns a 2xx answer to CONNECT into a tunnel with no body", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 200 Connection established", nil, "CONNECT"))
      assert.are.equal("none", res.body_kind)
      res = assert(h1.parse_response_head("HTTP/1.1 407 Auth\r\nContent-Length: 2", nil, "CONNECT"))
      assert.are.equal("length", res.body_kind)
    end)

    it("frames chunked, length and close-delimited bodies", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"))
      assert.are.equal("chunked", res.body_kind)
      assert.is_nil(res.content_length)
      res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 0"))
      assert.are.equal("none", res.body_kind)
      res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nContent-Type: text/plain"))
      assert.are.equal("close", res.body_kind)
      assert.is_nil(res.content_length)
      res = assert(h1.parse_response_head("HTTP/1.0 200 OK"))
      assert.are.equal("close", res.body_kind)
    end)

    it("reads to the end of the connection when the last transfer coding is not chunked, and reports the codings", function()
      local res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"))
      assert.are.equal("close", res.body_kind)
      assert.are.same({ "gzip" }, res.transfer_codings)
      res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, GZIP"))
      assert.are.equal("close", res.body_kind)
      assert.are.same({ "chunked", "gzip" }, res.transfer_codings)
      res = assert(h1.parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked"))
      assert.are.equal("chunked", res.body_kind)
      assert.are.same({ "gzip", "chunked" }, res.transfer_codings)
    end)

    it("rejects a malformed status line", function()
      for _, line in ipairs {
        "", "HTTP/1.1", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 200OK", "http/1.1 200 OK",
        "HTTP/1.1  200 OK", "HTTP/1.1 200 O\rK", "HTTP/1.1 200 OK\n", "HTTP/1.1 200 O\0K",
        "ICY 200 OK", "HTTP/1.1 abc OK",
      } do
        rejects_response(line)
      end
    end)

    it("rejects other versions and status codes outside 100..599", function()
      rejects_response("HTTP/2.0 200 OK")
      rejects_response("HTTP/1.2 200 OK")
      rejects_response("HTTP/1.1 099 X")
      rejects_response("HTTP/1.1 600 X")
    end)

    it("rejects ambiguous framing", function()
      for _, block in ipairs {
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
        "HTTP/1.1 200 OK\r\nContent-Length: x",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: g/zip",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked",
      } do
        rejects_response(block)
      end
    end)

    it("rejects bad header fields and applies limits", function()
      rejects_response("HTTP/1.1 200 OK\r\nBad Name: x")
      rejects_response("HTTP/1.1 200 OK\r\nX: a\r\n b")
      rejects_response("HTTP/1.1 200 OK\r\nX: a\nY: b")
      rejects_response("HTTP/1.1 200 OK\r\nX: 1\r\nY: 2", { max_headers = 1 })
      rejects_response("HTTP/1.1 200 OK\r\nX: 123456789", { max_line = 8 })
      rejects_response("HTTP/1.1 200 A long reason", { max_line = 8 })
    end)
  end)

  describe("chunks", function()
    it("yields the data of each chunk", function()
      local got = {}
      for data in h1.chunks(reader("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")) do
        got[#got + 1] = data
      end
      assert.are.same({ "hello", " ", "world" }, got)
    end)

    it("accepts upper- and lower-case hex sizes with leading zeros", function()
      local body = ("x"):rep(26)
      assert.are.equal(body .. body, (decode("1A\r\n" .. body .. "\r\n001a\r\n" .. body .. "\r\n0\r\n\r\n")))
    end)

    it("ignores chunk extensions", function()
      assert.are.equal("abc", (decode("3;name=value;x\r\nabc\r\n0 ; last=\"yes\"\r\n\r\n")))
    end)

    it("accepts extensions with quoted values holding escapes, semicolons and spaces", function()
      assert.are.equal("abc", (decode('3 ; a = "x;\\"y\\" z" ;b\r\nabc\r\n0\r\n\r\n')))
    end)

    it("rejects extensions that break the chunk-ext grammar with 400", function()
      for _, ext in ipairs({ ";", "; ", ";=x", ";a=", ';a="x', ";a=\"x\\\"", "; a b", ";a=b c", ";a;", "x" }) do
        local err = decode_error("3" .. ext .. "\r\nabc\r\n0\r\n\r\n")
        assert.are.equal(400, err.status, ext)
        assert.is_true(require("tide").is_error(err, "EPROTO"), ext)
      end
    end)

    it("decodes an empty body", function()
      local body, trailers = decode("0\r\n\r\n")
      assert.are.equal("", body)
      assert.are.equal(0, trailers:len())
    end)

    it("fills the trailers it is given", function()
      local trailers = headers.new()
      local n = 0
      for _ in h1.chunks(reader("1\r\na\r\n0\r\nX-Checksum:  abc \r\nx-more: 1\r\n\r\n"), nil, trailers) do
        n = n + 1
      end
      assert.are.equal(1, n)
      assert.are.same({ { "X-Checksum", "abc" }, { "x-more", "1" } }, fields(trailers))
    end)

    it("splits big chunks into pieces of at most max_read bytes", function()
      local body = ("0123456789"):rep(10)
      local got = {}
      for data in h1.chunks(reader("64\r\n" .. body .. "\r\n0\r\n\r\n"), { max_read = 30 }) do
        got[#got + 1] = data
      end
      assert.are.same({ 30, 30, 30, 10 }, { #got[1], #got[2], #got[3], #got[4] })
      assert.are.equal(body, table.concat(got))
    end)

    it("accepts a body of exactly max_body bytes", function()
      assert.are.equal("abcd", (decode("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", { max_body = 4 })))
    end)

    it("rejects a body larger than max_body with 413", function()
      local err = decode_error("5\r\nhello\r\n0\r\n\r\n", { max_body = 4 })
      assert.are.equal(413, err.status)
      err = decode_error("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", { max_body = 5 })
      assert.are.equal(413, err.status)
      err = decode_error("fffffffffffffff\r\n")
      assert.are.equal(413, err.status)
    end)

    it("rejects more than 15 hex digits with 400", function()
      local err = decode_error("1000000000000000\r\nx\r\n0\r\n\r\n", { max_body = math.huge })
      assert.are.equal(400, err.status)
      err = decode_error("0000000000000001\r\nx\r\n0\r\n\r\n")
      assert.are.equal(400, err.status)
    end)

    it("rejects malformed chunk-size lines with 400", function()
      for _, s in ipairs {
        "\r\n", "x\r\n", "-1\r\n", " 5\r\nhello\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n", "5;a\rb\r\nhello\r\n0\r\n\r\n",
        "5;\1\r\nhello\r\n0\r\n\r\n", "+5\r\nhello\r\n0\r\n\r\n",
      } do
        assert.are.equal(400, decode_error(s).status, s)
      end
    end)

    it("rejects a chunk-size line longer than max_chunk_line with 400", function()
      local ext = ";" .. ("e"):rep(2000)
      assert.are.equal(400, decode_error("5" .. ext .. "\r\nhello\r\n0\r\n\r\n").status)
      assert.are.equal("abc", (decode("3;xy\r\nabc\r\n0\r\n\r\n", { max_chunk_line = 6 })))
      assert.are.equal(400, decode_error("3;xyz\r\nabc\r\n0\r\n\r\n", { max_chunk_line = 6 }).status)
    end)

    it("rejects chunk data not followed by CRLF with 400", function()
      assert.are.equal(400, decode_error("5\r\nhelloXX0\r\n\r\n").status)
      assert.are.equal(400, decode_error("5\r\nhello\n0\r\n\r\n").status)
      assert.are.equal(400, decode_error("3\r\nhello\r\n0\r\n\r\n").status)
    end)

    it("rejects truncated input with 400", function()
      for _, s in ipairs { "", "5\r\nhel", "5\r\nhello", "5\r\nhello\r\n", "0\r\n", "0\r\nX: y\r\n", "5" } do
        assert.are.equal(400, decode_error(s).status, s)
      end
    end)

    it("rejects invalid trailer fields with 400", function()
      for _, t in ipairs { "Bad Name: x\r\n", " X: y\r\n", "X : y\r\n", "X: a\rb\r\n", "X: y\n", "NoColon\r\n" } do
        assert.are.equal(400, decode_error("0\r\n" .. t .. "\r\n").status, t)
      end
    end)

    it("rejects too many or too long trailer fields with 431", function()
      assert.are.equal(431, decode_error("0\r\nA: 1\r\nB: 2\r\n\r\n", { max_headers = 1 }).status)
      -- A reader that honours `max` ends the line early (400); one that
      -- hands back the long line anyway gets 431.
      local err = decode_error("0\r\nA: 123456789\r\n\r\n", { max_line = 8 })
      assert.are.equal(400, err.status)
      local r = reader("0\r\nA: 123456789\r\n\r\n")
      local read_line = r.read_line
      r.read_line = function() return read_line(math.huge) end
      local ok
      ok, err = pcall(h1.read_chunked, r, { max_line = 8 })
      assert.is_false(ok)
      assert.are.equal(431, err.status)
    end)

    it("raises a structured error that prints as one line", function()
      local err = decode_error("zz\r\n")
      assert.are.equal(400, err.status)
      assert.are.equal("EPROTO", err.code)
      assert.are.equal("string", type(err.message))
      assert.is_true(require("tide").is_error(err, "EPROTO"))
      assert.is_nil(tostring(err):find("\n"))
    end)

    it("keeps failing after an error instead of ending cleanly", function()
      local it = h1.chunks(reader("zz\r\n0\r\n\r\n"))
      assert.has_error(it)
      local ok, err = pcall(it)
      assert.is_false(ok)
      assert.are.equal(400, err.status)
    end)

    it("returns nil again after the end", function()
      local it = h1.chunks(reader("1\r\na\r\n0\r\n\r\n"))
      assert.are.equal("a", it())
      assert.is_nil(it())
      assert.is_nil(it())
    end)

    it("requires a reader with both functions", function()
      assert.has_error(function() h1.chunks({}) end)
      assert.has_error(function() h1.chunks({ read_line = print }) end)
    end)
  end)

  describe("read_chunked", function()
    it("returns the whole body and the trailers", function()
      local body, trailers = h1.read_chunked(reader("3\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"))
      assert.are.equal("abcde", body)
      assert.are.equal("v", trailers:get("t"))
    end)

    it("calls on_chunk for each piece and returns the byte count", function()
      local got = {}
      local total, trailers = h1.read_chunked(reader("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), nil,
        function(data) got[#got + 1] = data end)
      assert.are.equal(5, total)
      assert.are.same({ "abc", "de" }, got)
      assert.are.equal(0, trailers:len())
    end)

    it("raises the structured error on bad input", function()
      local ok, err = pcall(h1.read_chunked, reader("3\r\nabc\r\n"))
      assert.is_false(ok)
      assert.are.equal(400, err.status)
    end)
  end)

  describe("request_head", function()
    it("serializes the request line and fields", function()
      local h = headers.new { { "Host", "example.com" }, { "Accept", "*/*" }, { "accept", "x" } }
      assert.are.equal("GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\naccept: x\r\n\r\n",
        h1.request_head("GET", "/a?b", h))
    end)

    it("accepts plain tables and no headers", function()
      assert.are.equal("POST / HTTP/1.1\r\nHost: h\r\n\r\n", h1.request_head("POST", "/", { Host = "h" }))
      assert.are.equal("OPTIONS * HTTP/1.1\r\n\r\n", h1.request_head("OPTIONS", "*"))
    end)

    it("refuses CR, LF and whitespace anywhere", function()
      assert.has_error(function() h1.request_head("GET\r\nX: y", "/") end)
      assert.has_error(function() h1.request_head("G T", "/") end)
      assert.has_error(function() h1.request_head("GET", "/ HTTP/1.1\r\nX: y") end)
      assert.has_error(function() h1.request_head("GET", "/a b") end)
      assert.has_error(function() h1.request_head("GET", "/a\nb") end)
      assert.has_error(function() h1.request_head("GET", "") end)
      assert.has_error(function() h1.request_head("GET", "/", { Host = "h\r\nX: y" }) end)
      assert.has_error(function() h1.request_head("GET", "/", { ["Host\r\nX"] = "y" }) end)
      assert.has_error(function() h1.request_head(nil, "/") end)
    end)
  end)

  describe("response_head", function()
    it("serializes the status line with the standard reason", function()
      local h = headers.new { { "Content-Length", "5" } }
      assert.are.equal("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", h1.response_head(200, nil, h))
      assert.are.equal("HTTP/1.1 404 Not Found\r\n\r\n", h1.response_head(404))
    end)

    it("uses a given reason, an empty reason for unknown codes, and HTTP/1.0", function()
      assert.are.equal("HTTP/1.1 200 Fine\r\n\r\n", h1.response_head(200, "Fine"))
      assert.are.equal("HTTP/1.1 299 \r\n\r\n", h1.response_head(299))
      assert.are.equal("HTTP/1.1 200 \r\n\r\n", h1.response_head(200, ""))
      assert.are.equal("HTTP/1.0 500 Internal Server Error\r\n\r\n", h1.response_head(500, nil, nil, "1.0"))
    end)

    it("refuses CR and LF in the reason and invalid statuses or versions", function()
      assert.has_error(function() h1.response_head(200, "OK\r\nSet-Cookie: x") end)
      assert.has_error(function() h1.response_head(200, "O\nK") end)
      assert.has_error(function() h1.response_head(200, "O\0K") end)
      assert.has_error(function() h1.response_head(99) end)
      assert.has_error(function() h1.response_head(600) end)
      assert.has_error(function() h1.response_head(200.5) end)
      assert.has_error(function() h1.response_head("200") end)
      assert.has_error(function() h1.response_head(200, nil, nil, "2.0") end)
      assert.has_error(function() h1.response_head(200, nil, { X = "a\nb" }) end)
    end)
  end)

  describe("reasons", function()
    it("holds the standard reason phrases", function()
      assert.are.equal("OK", h1.reasons[200])
      assert.are.equal("Not Found", h1.reasons[404])
      assert.are.equal("Content Too Large", h1.reasons[413])
      assert.are.equal("URI Too Long", h1.reasons[414])
      assert.are.equal("Request Header Fields Too Large", h1.reasons[431])
      assert.are.equal("Not Implemented", h1.reasons[501])
      assert.are.equal("HTTP Version Not Supported", h1.reasons[505])
    end)
  end)

  describe("chunk", function()
    it("frames data with its hex size", function()
      assert.are.equal("5\r\nhello\r\n", h1.chunk("hello"))
      assert.are.equal("1a\r\n" .. ("x"):rep(26) .. "\r\n", h1.chunk(("x"):rep(26)))
    end)

    it("gives an empty string for empty data so it never ends the body", function()
      assert.are.equal("", h1.chunk(""))
    end)

    it("round-trips through chunks with last_chunk and trailers", function()
      assert.are.equal("0\r\n\r\n", h1.last_chunk)
      local wire = h1.chunk("abc") .. h1.chunk("") .. h1.chunk(("z"):rep(300)) .. h1.last_chunk
      assert.are.equal("abc" .. ("z"):rep(300), (decode(wire)))
      local trailer = h1.last_chunk_with(headers.new { { "X-Sum", "1" } })
      assert.are.equal("0\r\nX-Sum: 1\r\n\r\n", trailer)
      local body, trailers = decode(h1.chunk("q") .. trailer)
      assert.are.equal("q", body)
      assert.are.equal("1", trailers:get("x-sum"))
    end)
  end)

  describe("decode_uri_component", function()
    it("decodes percent escapes in any case and leaves plus alone", function()
      assert.are.equal("a b/c+d\xc3\xa9", h1.decode_uri_component("a%20b%2Fc+d%C3%a9"))
      assert.are.equal("%41", h1.decode_uri_component("%2541"))
      assert.are.equal("plain", h1.decode_uri_component("plain"))
      assert.are.equal("\0", h1.decode_uri_component("%00"))
    end)

    it("returns nil and a message for malformed escapes", function()
      for _, s in ipairs { "%", "%4", "a%zz", "%4g", "%%41" } do
        local v, err = h1.decode_uri_component(s)
        assert.is_nil(v, s)
        assert.are.equal("string", type(err))
      end
    end)
  end)

  describe("encode_uri_component", function()
    it("encodes everything but the unreserved characters", function()
      assert.are.equal("a%20b%2Fc%2Bd%C3%A9", h1.encode_uri_component("a b/c+d\xc3\xa9"))
      assert.are.equal("AZaz09-_.!~*'()", h1.encode_uri_component("AZaz09-_.!~*'()"))
      assert.are.equal("%3F%26%3D%23%25%00", h1.encode_uri_component("?&=#%\0"))
    end)

    it("round-trips every byte", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      all = table.concat(all)
      assert.are.equal(all, h1.decode_uri_component(h1.encode_uri_component(all)))
    end)
  end)

  describe("parse_query", function()
    it("decodes names and values, with plus as a space", function()
      assert.are.same({ a = "1", b = "x y z", ["c d"] = "+" }, h1.parse_query("a=1&b=x+y%20z&c+d=%2B"))
    end)

    it("keeps the first value of a repeated name", function()
      assert.are.same({ a = "1", b = "2" }, h1.parse_query("a=1&b=2&a=3"))
    end)

    it("gives names without = an empty value and skips empty pieces", function()
      assert.are.same({ flag = "", x = "", y = "=z" }, h1.parse_query("flag&&x=&y==z&"))
    end)

    it("returns an empty table for nil or an empty string", function()
      assert.are.same({}, h1.parse_query(nil))
      assert.are.same({}, h1.parse_query(""))
    end)

    it("returns nil and a message on malformed escapes", function()
      local q, err = h1.parse_query("a=%zz")
      assert.is_nil(q)
      assert.are.equal("string", type(err))
      assert.is_nil(h1.parse_query("%4=1"))
    end)
  end)

  describe("parse_url", function()
    it("parses host, default port, path and query", function()
      local u = assert(h1.parse_url("http://example.com/a/b?x=1"))
      assert.are.same({
        scheme = "http", host = "example.com", port = 80, path = "/a/b", query = "x=1",
        target = "/a/b?x=1", authority = "example.com",
      }, u)
    end)

    it("parses an explicit port and an empty path", function()
      local u = assert(h1.parse_url("HTTP://Example.com:8080"))
      assert.are.equal("http", u.scheme)
      assert.are.equal(8080, u.port)
      assert.are.equal("/", u.path)
      assert.are.equal("/", u.target)
      assert.are.equal("Example.com:8080", u.authority)
      assert.are.equal(80, assert(h1.parse_url("http://h:/")).port)
      assert.are.equal("/?q", assert(h1.parse_url("http://h?q")).target)
    end)

    it("parses IPv6 literals in brackets", function()
      local u = assert(h1.parse_url("http://[::1]:3000/p"))
      assert.are.equal("::1", u.host)
      assert.are.equal(3000, u.port)
      assert.are.equal("[::1]:3000", u.authority)
      u = assert(h1.parse_url("http://[2001:db8::7]/"))
      assert.are.equal("2001:db8::7", u.host)
      assert.are.equal(80, u.port)
      assert.are.equal("[2001:db8::7]", u.authority)
    end)

    it("drops the fragment and keeps userinfo", function()
      local u = assert(h1.parse_url("http://user:pw@h/p?q#frag"))
      assert.are.equal("user:pw", u.userinfo)
      assert.are.equal("h", u.host)
      assert.are.equal("/p?q", u.target)
      assert.are.equal("/", assert(h1.parse_url("http://h#x")).path)
    end)

    it("takes https with 443 as its default port", function()
      local u = assert(h1.parse_url("HTTPS://example.com/p"))
      assert.are.equal("https", u.scheme)
      assert.are.equal(443, u.port)
      assert.are.equal("example.com", u.authority)
      assert.are.equal("example.com:80", assert(h1.parse_url("https://example.com:80/")).authority)
      assert.are.equal("example.com:443", assert(h1.parse_url("http://example.com:443/")).authority)
    end)

    it("rejects other schemes and malformed URLs", function()
      for _, url in ipairs {
        "ftp://h/", "ws://h/", "example.com/", "/path", "http:/h", "",
        "http:///p", "http://h:0/", "http://h:65536/", "http://h:x/", "http://h:123456/",
        "http://[::1/", "http://[zz]/", "http://[1.2.3.4]/", "http://h/a b", "http://h/\r\n",
        "http://h/\xc3\xa9", "http://a b/", "http://h:80:80/",
      } do
        local u, err = h1.parse_url(url)
        assert.is_nil(u, url)
        assert.are.equal("string", type(err), url)
      end
      assert.is_nil(h1.parse_url(42))
    end)
  end)

  describe("round trip", function()
    local TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    local PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%"
    local VALUE_CHARS = " \t\"(),/:;<=>?@[\\]{}abcXYZ019!#$%&'*+-.^_`|~\128\200\255"

    local function pick(set, min, max)
      local out = {}
      for i = 1, math.random(min, max) do
        local k = math.random(#set)
        out[i] = set:sub(k, k)
      end
      return table.concat(out)
    end

    -- A value with no whitespace at either end (the parser trims it).
    local function value()
      if math.random(5) == 1 then return "" end
      local v = pick(VALUE_CHARS, 1, 40)
      return "v" .. v .. "v"
    end

    local function random_fields(n)
      local list = {}
      for i = 1, n do
        list[i] = { "X-" .. pick(TCHARS, 1, 20), value() }
      end
      return list
    end

    it("parses serialized random request heads back to the same values", function()
      math.randomseed(42)
      for _ = 1, 300 do
        local method = pick(TCHARS, 1, 10)
        local target = "/" .. pick(PATH_CHARS, 0, 60)
        if math.random(2) == 1 then target = target .. "?" .. pick(PATH_CHARS .. "?", 0, 30) end
        local list = random_fields(math.random(0, 20))
        table.insert(list, math.random(#list + 1), { "Host", "host" .. math.random(1000) })
        local wire = h1.request_head(method, target, headers.new(list))
        assert.are.equal("\r\n\r\n", wire:sub(-4))
        local ok, req = pcall(h1.parse_request_head, wire:sub(1, -5))
        assert(ok, tostring(req) .. " " .. wire)
        assert.are.equal(method, req.method)
        assert.are.equal(target, req.target)
        assert.are.equal(target, req.path .. (req.query and "?" .. req.query or ""))
        assert.are.equal("1.1", req.version)
        assert.are.same(list, fields(req.headers))
        assert.are.equal("none", req.body_kind)
      end
    end)

    it("parses serialized random response heads back to the same values", function()
      math.randomseed(42)
      for _ = 1, 300 do
        local status = math.random(100, 599)
        local reason = math.random(3) == 1 and nil or pick("abc XYZ-()'\128\255", 0, 20)
        local version = math.random(2) == 1 and "1.1" or "1.0"
        local list = random_fields(math.random(0, 20))
        local wire = h1.response_head(status, reason, headers.new(list), version)
        local res, err = h1.parse_response_head(wire:sub(1, -5))
        assert(res, tostring(err) .. " " .. wire)
        assert.are.equal(status, res.status)
        assert.are.equal(reason or h1.reasons[status] or "", res.reason)
        assert.are.equal(version, res.version)
        assert.are.same(list, fields(res.headers))
      end
    end)

    it("decodes random bodies framed with chunk", function()
      math.randomseed(42)
      for _ = 1, 100 do
        local parts = {}
        for i = 1, math.random(0, 10) do parts[i] = pick(VALUE_CHARS .. "\r\n\0", 0, 300) end
        local wire = {}
        for i, p in ipairs(parts) do wire[i] = h1.chunk(p) end
        wire[#wire + 1] = h1.last_chunk
        assert.are.equal(table.concat(parts), (decode(table.concat(wire), { max_read = 7 })))
      end
    end)
  end)
end)
